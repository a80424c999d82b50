"""The callbacks every training run has: its statistics, curves, best model
and NaN guard. Backups are `fer_keras.backup`; committed checkpoints
`fer_keras.checkpoint`.
"""

import math
import os
import time
import warnings
from pathlib import Path

import numpy as np

import keras

from fer_keras.history import read_history
from fer_keras.models import copy_weights
from fer_keras.plots import plot_curves


class EpochStats(keras.callbacks.Callback):
    """Adds the epoch's wall time and learning rate to the logs, for the CSV."""

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["epoch_time_s"] = time.perf_counter() - self._start
            logs["learning_rate"] = float(
                keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)
            )


class CurvesPlot(keras.callbacks.Callback):
    """Redraws curves.png from history.csv after each epoch, so a long run
    (or an interrupted one) shows its progress, not only a finished one."""

    def __init__(self, history_path: Path, title: str):
        super().__init__()
        self.history_path = Path(history_path)
        self.title = title

    def on_epoch_end(self, epoch, logs=None):
        history = read_history(self.history_path)
        if history:
            draw_curves(history, self.history_path.parent / "curves.png", self.title)


def draw_curves(history: list[dict], path: Path, title: str) -> None:
    """Draws curves.png where matplotlib is installed, else warns and goes on.

    The curves only picture history.csv, which every run writes, so a machine
    without matplotlib (a bare GPU image) trains all the same.
    """
    try:
        plot_curves(history, path, title=title)
    except ModuleNotFoundError as err:
        if (err.name or "").partition(".")[0] != "matplotlib":
            raise
        warnings.warn(
            f"matplotlib is not installed, so {path.name} is not drawn; the "
            f"curves are in {path.with_name('history.csv')}. pip install "
            "matplotlib to get the picture.",
            stacklevel=2,
        )


class SaveBestModel(keras.callbacks.Callback):
    """Saves `model` whenever `monitor` beats its best value so far.

    Epochs with a non-finite loss or non-finite weights are never saved.

    The model to save is named, not taken from `fit`, so a training harness
    (`AugmentedModel`) never lands in the file; the file is written beside
    the old one and renamed over it, so an interrupt leaves no half file.
    `save_as`, a model of the same zoo entry in another layout, receives the
    weights and is saved instead: files stay channels-last whatever layout
    trained them.
    """

    def __init__(self, path: Path, model: keras.Model, monitor: str = "val_accuracy",
                 best: float | None = None, save_as: keras.Model | None = None):
        super().__init__()
        self.path = Path(path)
        self.saved_model = model
        self.monitor = monitor
        self.best = best
        self.save_as = save_as

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None or (self.best is not None and not float(value) > self.best):
            return
        if not all(math.isfinite(float(v)) for k, v in logs.items() if "loss" in k) \
                or not _finite_weights(self.saved_model):
            # A diverged model can still "beat" the best accuracy by chance.
            return
        partial = self.path.with_name(f"{self.path.stem}.partial.keras")
        if self.save_as is None:
            self.saved_model.save(partial)
        else:
            copy_weights(self.saved_model, self.save_as)
            self.save_as.save(partial)
        os.replace(partial, self.path)
        self.best = float(value)


def _finite_weights(model: keras.Model) -> bool:
    return all(
        np.isfinite(keras.ops.convert_to_numpy(w)).all() for w in model.weights
    )


class StopOnNaN(keras.callbacks.TerminateOnNaN):
    """Stops at the first non-finite loss and remembers where, to say so."""

    nan_at = None

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.nan_at = batch
        super().on_batch_end(batch, logs)


