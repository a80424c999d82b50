"""Loading saved models with errors that say what is wrong and what to do."""

import json
import zipfile
from pathlib import Path

import keras

# Imported for its registrations: the package's layers and initializer must be
# known to Keras before a `.keras` file that uses them is read.
import fer_keras.layers  # noqa: F401
from fer_keras.classes import CLASS_NAMES
from fer_keras.errors import run_command

PRETRAINED_DIR = Path(__file__).parent / "pretrained"

# The shipped model that `load_pretrained()`, `predict.py`, `EmotionRecognizer`
# and `evaluate.py`'s fallback use when no model is named: the most accurate
# on the validation split (its card says by how much). An ensemble of two,
# so each face costs two forward passes; "resnet18" is the best single model.
DEFAULT_PRETRAINED = "cbam_resnet18"


class ModelFileError(ValueError):
    """A model file that is missing, not a Keras model, or the wrong model."""


def load_model(path, num_classes: int | None = len(CLASS_NAMES)) -> keras.Model:
    """Loads a `.keras` file saved under any backend, checking it fits FER2013.

    Args:
        path: the `.keras` file.
        num_classes: the number of logits expected, or None to skip the check.
    """
    path = Path(path)
    if not path.exists():
        raise ModelFileError(
            f"Model file not found: {path}. Train one with {run_command('train')} "
            "or pass the path of a `.keras` file with --model-path."
        )
    if path.is_dir() or not zipfile.is_zipfile(path):
        raise ModelFileError(
            f"{path} is not a Keras model file: expected a `.keras` archive as "
            "written by `model.save()` or `fer-keras train` (legacy .h5 files and "
            "SavedModel folders are not supported; re-save the model as .keras)."
        )
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as err:
        raise ModelFileError(
            f"Could not load {path} as a Keras model ({type(err).__name__}: {err}). "
            "If it uses custom layers, import the package that defines them first."
        ) from err
    if not isinstance(model, keras.Model):
        raise ModelFileError(
            f"{path} holds a {type(model).__name__}, not a keras.Model."
        )
    check_model(model, num_classes, source=str(path))
    return model


def check_model(model: keras.Model, num_classes: int | None, source: str = "the model") -> None:
    """Raises `ModelFileError` unless `model` maps (N, H, W, 1) to `num_classes` logits."""
    input_shape = tuple(model.inputs[0].shape) if model.inputs else None
    if input_shape is None or len(input_shape) != 4 or input_shape[-1] != 1:
        raise ModelFileError(
            f"{source} takes inputs of shape {input_shape}; expected grey images "
            "of shape (batch, height, width, 1)."
        )
    outputs = model.outputs[0].shape[-1] if model.outputs else None
    if num_classes is not None and outputs != num_classes:
        raise ModelFileError(
            f"{source} has {outputs} outputs; expected {num_classes}, one per "
            f"class of {', '.join(CLASS_NAMES)}. Received a model for another task."
        )


def pretrained_path(name: str | None = None) -> Path:
    """Path of the shipped pretrained model `name` (default: `DEFAULT_PRETRAINED`)."""
    name = name or DEFAULT_PRETRAINED
    path = PRETRAINED_DIR / f"{name}.keras"
    if not path.exists():
        available = sorted(p.stem for p in PRETRAINED_DIR.glob("*.keras"))
        raise ModelFileError(
            f"No pretrained model named {name!r} ships with this install. "
            f"Available: {available or 'none yet'}. Train one with "
            f"{run_command('train', f'--model {name}')}."
        )
    return path


def is_pretrained(path) -> bool:
    """Whether `path` is one of the models shipped inside the package."""
    return Path(path).resolve().parent == PRETRAINED_DIR.resolve()


def source_run(path) -> dict | None:
    """The run.json record of a saved model (the card's record for a pretrained one)."""
    path = Path(path)
    if is_pretrained(path):
        card = path.with_suffix(".json")
        return json.loads(card.read_text()).get("run") if card.exists() else None
    run = path.parent / "run.json"
    return json.loads(run.read_text()) if run.exists() else None


def load_pretrained(name: str | None = None) -> keras.Model:
    """The shipped pretrained model `name` (default: `DEFAULT_PRETRAINED`): raw
    0-255 grey (N, 48, 48, 1) in, logits out."""
    return load_model(pretrained_path(name))


def find_latest_model(runs_dir="runs") -> Path:
    """The newest `model.keras` under `runs_dir`, else the default pretrained model."""
    candidates = sorted(Path(runs_dir).glob("**/model.keras"), key=lambda p: p.stat().st_mtime)
    if candidates:
        return candidates[-1]
    try:
        return pretrained_path()
    except ModelFileError:
        raise ModelFileError(
            f"No model to evaluate: no model.keras under {Path(runs_dir).resolve()} "
            f"and no pretrained model installed. Train one with {run_command('train')} "
            "or pass --model-path."
        ) from None
