"""The report's PNG plots (matplotlib, Agg): latency CDF per graph, stacked per-stage bars, quality vs latency,
RSS of each node over the run."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from .metrics import STAGES


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@contextmanager
def _figure(path: Path, figsize: tuple[float, float], **subplots: Any) -> Iterator[Any]:
    """The axes of a new figure (plt.subplots); on leaving, the figure is laid out, saved to `path` and closed."""
    plt = _plt()
    fig, axes = plt.subplots(figsize=figsize, **subplots)
    try:
        yield axes
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)


def latency_cdf(runs: list[dict[str, Any]], path: Path) -> None:
    with _figure(path, (7, 4)) as ax:
        for run in runs:
            values = sorted(u["ttfs_s"] for u in run["utterances"] if u["ttfs_s"] is not None)
            if values and run["mode"] == "realtime":
                ax.step(values, np.arange(1, len(values) + 1) / len(values), where="post", label=run["graph"])
        ax.set_xlabel("end of speech -> final English (s), real-time replay")
        ax.set_ylabel("fraction of utterances")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)


def stage_bars(runs: list[dict[str, Any]], path: Path) -> None:
    shown = [r for r in runs if r["mode"] == "realtime"] or runs
    with _figure(path, (max(6, 1.6 * len(shown)), 4)) as ax:
        bottom = np.zeros(len(shown))
        for stage in STAGES:
            values = np.array([max(0.0, r["stages"][stage].get("median") or 0.0) for r in shown])
            ax.bar(range(len(shown)), values, bottom=bottom, label=stage[:-2])
            bottom += values
        ax.set_xticks(range(len(shown)), [f"{r['graph']}\n{r['mode']}" for r in shown], fontsize=8)
        ax.set_ylabel("median seconds per utterance")
        ax.legend(fontsize=8)


def quality_vs_latency(runs: list[dict[str, Any]], path: Path) -> None:
    with _figure(path, (6, 4)) as ax:
        for run in runs:
            bleu, p95 = run["quality"].get("bleu"), run["latency"]["ttfs_s"].get("p95")
            if bleu is not None and p95 is not None and run["mode"] == "realtime":
                ax.scatter([p95], [bleu])
                ax.annotate(run["graph"], (p95, bleu), fontsize=8)
        ax.set_xlabel("p95 end of speech -> final English (s)")
        ax.set_ylabel("BLEU")
        ax.grid(alpha=0.3)


def rss_per_node(runs: list[dict[str, Any]], path: Path) -> None:
    with _figure(path, (7, 2.2 * len(runs)), nrows=len(runs), ncols=1, squeeze=False) as axes:
        for ax, run in zip(axes[:, 0], runs, strict=True):
            for node, usage in sorted(run["nodes"].items()):
                if usage["rss_mb"]:
                    t, rss = zip(*usage["rss_mb"], strict=True)
                    ax.plot(t, rss, label=node)
            ax.set_title(f"{run['graph']} ({run['mode']})", fontsize=9)
            ax.set_ylabel("RSS MB")
            ax.legend(fontsize=7, loc="upper left")
        axes[-1, 0].set_xlabel("seconds since dora run started")


def write_all(runs: list[dict[str, Any]], folder: Path) -> list[str]:
    plots = {
        "latency_cdf.png": latency_cdf,
        "stages.png": stage_bars,
        "quality_vs_latency.png": quality_vs_latency,
        "rss.png": rss_per_node,
    }
    for name, draw in plots.items():
        draw(runs, folder / name)
    return sorted(plots)
