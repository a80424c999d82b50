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


# What Keras logs as "loss" is the loss the optimiser minimised: on augmented
# batches, with the run's label smoothing, times its class weights (the seed
# recipe weighs "happy" a sixteenth of "disgust"). "val_loss" is the plain
# loss on the held-out images. On FER2013 the first is near 0.25 when the
# second is near 2, so they get a panel each.
TRAIN_LOSS_LABEL = ("training loss, as minimised\n"
                    "(with the run's class weights, augmentation, label smoothing)")
VAL_LOSS_LABEL = "validation loss\n(unweighted, plain images)"


def plot_curves(history: Sequence[dict], path, title: str = "") -> Path:
    """Training loss, validation loss and both accuracies by epoch, side by side.

    The two losses are on separate panels: they measure different things
    (`TRAIN_LOSS_LABEL`, `VAL_LOSS_LABEL`), so one scale would mislead.
    """
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    epochs = [int(r["epoch"]) + 1 for r in history]

    def column(key):
        return [float(r[key]) for r in history] if history and key in history[0] else None

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    panels = (
        (axes[0], "loss", [("loss", TRAIN_LOSS_LABEL, "-o", "C0")]),
        (axes[1], "loss", [("val_loss", VAL_LOSS_LABEL, "-s", "C1")]),
        (axes[2], "accuracy", [("accuracy", "training (augmented batches)", "-o", "C0"),
                               ("val_accuracy", "validation", "-s", "C1")]),
    )
    for ax, ylabel, lines in panels:
        for key, label, style, color in lines:
            values = column(key)
            if values is not None:
                ax.plot(epochs, values, style, color=color, label=label, markersize=3)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        # A whole number of epochs; after the first one, just that tick.
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if len(set(epochs)) == 1:
            ax.set_xticks(epochs[:1])
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    axes[0].set_title("Training loss", fontsize=10)
    axes[1].set_title("Validation loss", fontsize=10)
    axes[2].set_title("Accuracy", fontsize=10)
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
