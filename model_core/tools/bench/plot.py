"""--plot: the stage times as a bar chart (PNG). matplotlib is optional: without it the plot is skipped."""

from __future__ import annotations

import sys
from typing import Any

STAGES = (
    ("frontend_ms", "front end"),
    ("encoder_ms", "encoder+adaptor"),
    ("prefill_ms", "prefill"),
    ("decode_ms_per_token", "decode / token"),
)


def plot(report: dict[str, Any], path: str) -> None:
    """Stage times, ours vs mlx-audio (and the floor), one group of bars per stage and audio length."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("--plot needs matplotlib (pip install matplotlib); skipped", file=sys.stderr)
        return
    series = {impl: res["stages"] for impl, res in report["results"].items()} | {"floor": report["floors"]}
    labels = [f"{name}\n{sec} s" for sec in report["floors"] for _, name in STAGES]
    fig, ax = plt.subplots(figsize=(max(6, len(labels) * 1.2), 4))
    width = 0.8 / len(series)
    for i, (name, per_len) in enumerate(series.items()):
        values = [per_len[sec].get(key, 0.0) for sec in report["floors"] for key, _ in STAGES]
        ax.bar([x + i * width for x in range(len(labels))], values, width, label=name)
    ax.set_xticks([x + 0.4 - width / 2 for x in range(len(labels))], labels, fontsize=8)
    ax.set_ylabel("ms")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title(f"Fun-ASR-Nano stages ({report['config']['dtype']}, {report['machine']['cpu_count']} CPUs)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
