"""Training curves: loss and validation metric per epoch (WMH thesis Figure 8). No torch."""

from __future__ import annotations

from pathlib import Path

from lesionseg.io import atomic_output


def plot_training_curves(history: list[dict], path: str | Path, title: str = "") -> Path:
    """Train and validation loss (left axis) and validation Dice (right axis) against the epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=110)
    ax.plot(epochs, [h["train_loss"] for h in history], "o-", label="training loss", color="#1f77b4")
    ax.plot(epochs, [h["val_loss"] for h in history], "s--", label="validation loss", color="#ff7f0e")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    right = ax.twinx()
    right.plot(epochs, [h["val_dice"] for h in history], "^-", label="validation Dice", color="#2ca02c")
    right.set_ylabel("Dice")
    right.set_ylim(0, 1)
    lines = ax.get_lines() + right.get_lines()
    ax.legend(lines, [ln.get_label() for ln in lines], loc="center right", fontsize=8)
    ax.set_title(title or "training")
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(path)
