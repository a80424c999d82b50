"""Weights-only checkpoints small enough to commit, for runs that outlive their machine.

A long run's folder (`model.keras`, `backup/`, `history.csv`) resumes it
after any interrupt, as long as the folder survives. A machine that is lost
takes the folder with it. `CommittedCheckpoint` therefore also writes the
run's latest weights, as float16 (`fer_keras.compact`), into one `.keras`
file named by the user (`train.py --checkpoint PATH`), with the run's state
inside the archive: the finished epochs, their history rows, and what the
run was (model, recipe, seed, validation split). That file is small enough
to keep in version control or on a persistent disk; a run started with the
same command and a lost folder continues from it with a fresh optimizer,
its learning-rate schedule at the epoch the checkpoint holds.

The file is an ordinary `.keras` model (channels-last, float16 weights):
`fer_keras.load_model` reads it like any other.
"""

import json
import os
import tempfile
import zipfile
from pathlib import Path

import keras

from fer_keras import compact
from fer_keras.errors import TrainingError
from fer_keras.models import copy_weights

STATE_FILE = "fer_keras_checkpoint.json"


def save_checkpoint(model: keras.Model, path: str | os.PathLike, state: dict) -> Path:
    """Writes `model` with float16 weights and `state` to `path`, atomically.

    The archive is built beside `path` and renamed over it, so a kill at any
    moment leaves the previous checkpoint or the new one, never half a file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        full = Path(tmp) / "full.keras"
        half = Path(tmp) / "half.keras"
        model.save(full)
        compact.save_float16(full, half)
        with zipfile.ZipFile(half, "a", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(STATE_FILE, json.dumps(state, indent=1))
        os.replace(half, path)
    return path


def read_checkpoint_state(path: str | os.PathLike) -> dict:
    """The run state stored in the checkpoint at `path`.

    Raises:
        ValueError: `path` is not a checkpoint written by `save_checkpoint`.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read(STATE_FILE))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, OSError) as error:
        raise ValueError(
            f"{path} is not a training checkpoint written by `train.py --checkpoint` "
            f"({type(error).__name__}: {error}). Pass the checkpoint of this run, or "
            "another --checkpoint path to start a new one."
        ) from None


class CommittedCheckpoint(keras.callbacks.Callback):
    """Writes the run's weights and state to `path` every `every` epochs.

    `state()` returns what to store besides the weights; the callback adds
    `epoch`, the number of finished epochs. `save_as`, an uncompiled
    channels-last model of the same zoo entry, receives the weights and is
    saved instead: the file then holds no optimizer state (a compiled model
    saves its optimizer's, doubling the file) and is channels-last like
    every saved model, whatever layout trained.
    """

    def __init__(self, path, model: keras.Model, state, every: int = 1,
                 save_as: keras.Model | None = None):
        super().__init__()
        if int(every) < 1:
            raise ValueError(
                f"`every` must be a positive number of epochs. Received: every={every}"
            )
        self.path = Path(path)
        self.saved_model = model
        self.state = state
        self.every = int(every)
        self.save_as = save_as

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        model = self.saved_model
        if self.save_as is not None:
            copy_weights(model, self.save_as)
            model = self.save_as
        save_checkpoint(model, self.path, {**self.state(), "epoch": epoch + 1})


def _flat(identity: dict) -> dict:
    recipe = {f"recipe.{k}": v for k, v in (identity.get("recipe") or {}).items()}
    return {**{k: v for k, v in identity.items() if k != "recipe"}, **recipe}


def check_identity(path: Path, identity: dict) -> dict:
    """The state of the checkpoint at `path`, if it was written by the run
    `identity` describes (model, recipe, seed, validation split).

    A checkpoint continues only the run that wrote it: another model, recipe,
    seed or validation split would change what the schedule and the split
    mean, so each difference is refused with the value to pass.
    """
    state = read_checkpoint_state(path)
    expected = _flat(identity)
    held = _flat({k: state.get(k) for k in identity})
    different = [k for k in expected if held.get(k) != expected[k]]
    if different:
        raise TrainingError(
            f"--checkpoint {path} belongs to another run: it was written with "
            + ", ".join(f"{k}={held.get(k)!r}" for k in different)
            + "; this run has "
            + ", ".join(f"{k}={expected[k]!r}" for k in different)
            + ". Pass the options of the run that wrote it, or another --checkpoint path."
        )
    return state
