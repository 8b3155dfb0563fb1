"""curves.png: training and validation loss by step, and the validation CER / BLEU, from a run's history."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_curves(history: dict[str, list[dict[str, Any]]], path: str | Path) -> Path:
    """matplotlib (the `train` extra), drawn off-screen."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train, val = history.get("train", []), history.get("val", [])
    fig, (losses, scores) = plt.subplots(1, 2, figsize=(10, 4))
    losses.plot([r["step"] for r in train], [r["loss"] for r in train], label="train")
    with_loss = [r for r in val if "val_loss" in r]
    losses.plot([r["step"] for r in with_loss], [r["val_loss"] for r in with_loss], "o-", label="validation")
    losses.set_xlabel("step")
    losses.set_ylabel("cross-entropy per target token")
    losses.set_yscale("log")
    losses.legend()
    for key, label in (("cer", "CER (transcribe)"), ("bleu", "BLEU / 100 (translate)")):
        rows = [r for r in val if key in r]
        scale = 0.01 if key == "bleu" else 1.0
        scores.plot([r["step"] for r in rows], [r[key] * scale for r in rows], "o-", label=label)
    scores.set_xlabel("step")
    scores.set_title("held-out rows, greedy decoding")
    scores.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
