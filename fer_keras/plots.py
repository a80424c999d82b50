"""The pictures people look at: training curves, confusion matrix, per-class
bars, and the timeline of a video's faces.

Matplotlib runs headless (Agg), so these work on servers and in CI.
"""

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from fer_keras.classes import CLASS_COLORS, CLASS_NAMES


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


def plot_timeline(tracks: Mapping[int, tuple[np.ndarray, np.ndarray, np.ndarray]], path,
                  frame_interval: float, title: str = "", max_tracks: int = 6) -> Path:
    """Each track's smoothed class probabilities over time, one colour per
    class (`CLASS_COLORS`, as in annotated frames), above two bands: the
    raw label of each frame and the label shown (the smoothed one).

    `tracks` maps a track id to its times (N,), smoothed and raw
    probabilities (N, classes), as `FaceTimeline.series` gives them. Lines
    and bands break where a track went unseen for more than 1.5
    `frame_interval`s. The `max_tracks` tracks seen in most frames are drawn.
    """
    plt = pyplot()
    from matplotlib import patheffects
    from matplotlib.patches import Patch

    drawn = sorted(sorted(tracks, key=lambda t: -len(tracks[t][0]))[:max_tracks])
    colors = {name: np.array(CLASS_COLORS[name]) / 255 for name in CLASS_NAMES}
    end = max((times[-1] for times, _, _ in tracks.values()), default=0.0) + frame_interval
    fig = plt.figure(figsize=(11, 0.9 + 2.8 * max(1, len(drawn))))
    grid = fig.add_gridspec(max(1, len(drawn)), 1, hspace=0.3)
    # Light classes (neutral's grey) stay visible on white with a dark edge.
    edge = [patheffects.withStroke(linewidth=2.6, foreground="0.35")]
    for row, track in enumerate(drawn):
        times, smoothed, raw = tracks[track]
        cut = np.flatnonzero(np.diff(times) > 1.5 * frame_interval) + 1
        panel = grid[row].subgridspec(2, 1, height_ratios=[4, 1], hspace=0.08)
        ax = fig.add_subplot(panel[0])
        for k, name in enumerate(CLASS_NAMES):
            ax.plot(np.insert(times, cut, np.nan), np.insert(smoothed[:, k], cut, np.nan),
                    color=colors[name], linewidth=1.6, path_effects=edge)
        ax.set(xlim=(0, end), ylim=(0, 1.02), ylabel="probability (smoothed)")
        ax.tick_params(labelbottom=False)
        ax.grid(alpha=0.3)
        ax.set_title(f"track {track}: {times[0]:.1f}-{times[-1]:.1f} s, {len(times)} frames",
                     loc="left", fontsize=9)
        bands = fig.add_subplot(panel[1], sharex=ax)
        for y, probabilities in ((1, raw), (0, smoothed)):
            labels = np.argmax(probabilities, axis=1)
            for k, start, width in _runs(times, labels, frame_interval):
                bands.broken_barh([(start, width)], (y + 0.1, 0.8),
                                  color=colors[CLASS_NAMES[k]], linewidth=0)
        bands.set(ylim=(0, 2), yticks=[0.5, 1.5], yticklabels=["shown", "raw"])
        bands.tick_params(labelbottom=row == len(drawn) - 1, left=False)
    if drawn:
        fig.axes[-1].set_xlabel("time (s)")
    handles = [Patch(color=colors[name], label=name) for name in CLASS_NAMES]
    fig.legend(handles=handles, loc="upper center", ncol=len(handles), frameon=False,
               bbox_to_anchor=(0.5, 1.0), fontsize=9)
    heading, left_out = title or "Faces over time", len(tracks) - len(drawn)
    if not tracks:
        heading += ": no face found"
    elif left_out:
        heading += f" ({left_out} track{'s' * (left_out > 1)} seen in fewer frames not drawn)"
    fig.suptitle(heading, y=1 - 0.35 / fig.get_figheight(), fontsize=10)
    fig.subplots_adjust(top=1 - 0.75 / fig.get_figheight(), bottom=0.5 / fig.get_figheight(),
                        left=0.08, right=0.98)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def _runs(times: np.ndarray, labels: np.ndarray, frame_interval: float):
    """(label, start, width) of each stretch of one label without a gap,
    each frame lasting until the next one, or one `frame_interval` at most."""
    ends = np.minimum(np.append(times[1:], np.inf), times + frame_interval)
    breaks = np.flatnonzero((np.diff(labels) != 0) | (np.diff(times) > 1.5 * frame_interval))
    starts = np.concatenate([[0], breaks + 1])
    stops = np.concatenate([breaks, [len(times) - 1]])
    return [(int(labels[a]), float(times[a]), float(ends[b] - times[a]))
            for a, b in zip(starts, stops)]
