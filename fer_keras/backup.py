"""Backups of a run in progress that a kill at any moment leaves usable.

Each backup is one file of the trainer's weights and optimizer state, named
for how far the run had got: `epoch0007-batch000000.weights.h5` holds the
state after 7 finished epochs (`batch` counts the steps of the next epoch,
for `--backup-every`). It is written under a temporary name and renamed, so a
file with that name is whole; the one before it is kept until a newer one is
in place. The names are the record of finished epochs: nothing private to
Keras is read to resume.

A backup that fails to load anyway (a disk fault, a copy cut short) is set
aside as `*.damaged`, with a message, and the run continues from the backup
before it, or from the start. Folders that Keras' `BackupAndRestore` wrote
(`latest.weights.h5` with `training_metadata.json`), as runs started before
this module have, are read as one more backup.
"""

import dataclasses
import json
import math
import os
import re
import shutil
from pathlib import Path

import keras

_NAME = re.compile(r"^epoch(\d+)-batch(\d+)\.weights\.h5$")
_PARTIAL = "partial.weights.h5"
_KERAS_WEIGHTS = "latest.weights.h5"
_KERAS_METADATA = "training_metadata.json"


@dataclasses.dataclass(frozen=True)
class Backup:
    """One backup file: `epochs` finished, plus `batch` steps of the next."""

    path: Path
    epochs: int
    batch: int = 0


def backup_name(epochs: int, batch: int = 0) -> str:
    return f"epoch{epochs:04d}-batch{batch:06d}.weights.h5"


def list_backups(directory: str | os.PathLike) -> list[Backup]:
    """The backups in `directory`, newest first."""
    directory = Path(directory)
    found = []
    if directory.is_dir():
        for path in directory.iterdir():
            match = _NAME.match(path.name)
            if match:
                found.append(Backup(path, int(match[1]), int(match[2])))
    legacy = _keras_backup(directory)
    if legacy:
        found.append(legacy)
    return sorted(found, key=lambda b: (b.epochs, b.batch), reverse=True)


def _keras_backup(directory: Path) -> Backup | None:
    """The backup Keras' `BackupAndRestore` left, if there is one."""
    weights, metadata = directory / _KERAS_WEIGHTS, directory / _KERAS_METADATA
    if not weights.exists():
        return None
    try:
        state = json.loads(metadata.read_text())
        return Backup(weights, int(state["epoch"]), int(state.get("batch", 0)))
    except (OSError, ValueError, KeyError, TypeError):
        # Without its record the weights cannot be placed in the schedule.
        _set_aside(weights, "its training_metadata.json is missing or unreadable")
        return None


def _set_aside(path: Path, reason: str) -> None:
    damaged = path.with_name(path.name + ".damaged")
    os.replace(path, damaged)
    if path.name == _KERAS_WEIGHTS and (path.parent / _KERAS_METADATA).exists():
        os.replace(path.parent / _KERAS_METADATA,
                   path.parent / (_KERAS_METADATA + ".damaged"))
    print(f"Set aside the backup {path} ({reason}) as {damaged.name}.")


def _variables(model: keras.Model) -> list:
    optimizer = getattr(model, "optimizer", None)
    return list(model.variables) + (list(optimizer.variables) if optimizer else [])


def _build_optimizer(model: keras.Model) -> None:
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or optimizer.built:
        return
    strategy = getattr(model, "distribute_strategy", None)
    if strategy is not None and keras.backend.backend() == "tensorflow":
        with strategy.scope():
            optimizer.build(model.trainable_variables)
    else:
        optimizer.build(model.trainable_variables)


def restore(model: keras.Model, directory: str | os.PathLike,
            set_aside: bool = True) -> Backup | None:
    """Loads the newest backup in `directory` that loads whole into `model`.

    `model` must be compiled and built. Returns the backup loaded, or None
    when there is none (the model is then as it was). Backups that fail to
    load are set aside (skipped only, without `set_aside`: the processes of
    a multi-host run that do not write the folder), and the model is put
    back as it was before each try.
    """
    _build_optimizer(model)
    variables = _variables(model)
    for backup in list_backups(directory):
        before = [keras.ops.convert_to_numpy(v) for v in variables]
        try:
            model.load_weights(backup.path)
        except Exception as err:  # noqa: BLE001 - whatever the damage, go on
            for variable, value in zip(variables, before):
                variable.assign(value)
            if set_aside:
                reason = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
                _set_aside(backup.path, f"it does not load: {reason.strip(': ')}")
            continue
        return backup
    return None


class RunBackup(keras.callbacks.Callback):
    """Backs up the trainer after every epoch, or every `save_freq` steps.

    Unlike Keras' `BackupAndRestore`, the file is written beside the last
    one and renamed into place, the last one stays until then, and a
    non-finite loss is never backed up. Restoring is `restore`, called
    before `fit`, so the caller knows the epoch to start from.
    """

    def __init__(self, directory: str | os.PathLike, save_freq: int | str = "epoch",
                 keep: int = 2):
        super().__init__()
        if save_freq != "epoch" and not (isinstance(save_freq, int) and save_freq > 0):
            raise ValueError(
                "`save_freq` must be 'epoch' or a number of steps of at least 1. "
                f"Received: save_freq={save_freq!r}"
            )
        if keep < 1:
            raise ValueError(f"`keep` must be at least 1. Received: keep={keep!r}")
        self.directory = Path(directory)
        self.save_freq = save_freq
        self.keep = keep
        self._epoch = 0
        self._steps = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch":
            return
        self._steps += 1
        if self._steps >= self.save_freq and _finite(logs):
            self._steps = 0
            self.save(self._epoch, batch + 1)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch" and _finite(logs):
            self.save(epoch + 1)

    def save(self, epochs: int, batch: int = 0) -> Path:
        """Writes the backup for `epochs` finished (+ `batch` steps), then prunes."""
        self.directory.mkdir(parents=True, exist_ok=True)
        partial = self.directory / _PARTIAL
        self.model.save_weights(partial, overwrite=True)
        path = self.directory / backup_name(epochs, batch)
        os.replace(partial, path)
        for old in list_backups(self.directory)[self.keep:]:
            old.path.unlink(missing_ok=True)
            if old.path.name == _KERAS_WEIGHTS:
                (self.directory / _KERAS_METADATA).unlink(missing_ok=True)
        return path


def remove(directory: str | os.PathLike) -> None:
    """Deletes the backups of a finished run."""
    shutil.rmtree(directory, ignore_errors=True)


def _finite(logs) -> bool:
    loss = (logs or {}).get("loss")
    return loss is None or math.isfinite(float(loss))
