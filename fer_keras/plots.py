"""The pictures people look at: training curves, confusion matrix, per-class bars.

Matplotlib runs headless (Agg), so these work on servers and in CI.
"""

from pathlib import Path
from typing import Sequence

import numpy as np


def pyplot():
    """Matplotlib's pyplot on the headless Agg backend (imported on first use)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(history: Sequence[dict], path, title: str = "") -> Path:
    """Training and validation loss and accuracy by epoch, side by side."""
    plt = pyplot()
    epochs = [int(r["epoch"]) + 1 for r in history]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for prefix, style in (("", "-o"), ("val_", "-s")):
            key = prefix + metric
            if history and key in history[0]:
                ax.plot(epochs, [float(r[key]) for r in history], style,
                        label="validation" if prefix else "training", markersize=3)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_confusion_matrix(matrix, class_names: Sequence[str], path, title: str = "") -> Path:
    """The confusion matrix normalised by row (each true class sums to 1)."""
    plt = pyplot()
    matrix = np.asarray(matrix, dtype="float64")
    totals = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)
    fig, ax = plt.subplots(figsize=(7, 6))
    image = ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    ticks = np.arange(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=45, ha="right")
    ax.set_yticks(ticks, class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(class_names)):
        for j in range(len(class_names)):
            value = normalised[i, j]
            ax.text(j, i, f"{value:.2f}", ha="center", va="center",
                    color="white" if value > 0.5 else "black", fontsize=8)
    fig.colorbar(image, ax=ax, fraction=0.046)
    ax.set_title(title or "Confusion matrix (rows normalised)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_per_class(per_class: dict, path, title: str = "") -> Path:
    """Per-class accuracy (recall), precision and F1 as grouped bars."""
    plt = pyplot()
    names = list(per_class)
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(9, 4))
    for k, metric in enumerate(("recall", "precision", "f1")):
        ax.bar(x + (k - 1) * 0.27, [per_class[n][metric] for n in names], 0.27,
               label="accuracy (recall)" if metric == "recall" else metric)
    ax.set_xticks(x, names)
    ax.set_ylim(0, 1)
    ax.set_ylabel("score")
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    ax.set_title(title or "Per-class scores")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
