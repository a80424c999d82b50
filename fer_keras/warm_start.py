"""Starting a run from saved weights (`--init-from`): fine-tuning, a second
learning-rate cycle, or the weights a lost run committed (`--checkpoint`).

The optimizer always starts fresh; what is checked is that the weights fit
the model and that the validation split stays the one they were chosen on.
"""

from pathlib import Path

import keras

from fer_keras.errors import TrainingError
from fer_keras.loading import ModelFileError, load_model, pretrained_path, source_run


def init_source(init_from: str, model_name: str) -> Path:
    """The `.keras` file `init_from` names: a path, or "pretrained" for the shipped one."""
    if init_from == "pretrained":
        return pretrained_path(model_name)
    return Path(init_from)


def check_same_split(path: Path, seed: int, val_split: float) -> None:
    """Refuses to validate a started model on images it was trained on.

    The seed and the fraction draw the validation split; another draw would
    put the source model's training images into this run's validation set
    and inflate its accuracy.
    """
    run = source_run(path)
    if not run or "seed" not in run:
        return
    if run.get("fold"):
        raise TrainingError(
            f"--init-from {path} is fold {run['fold']} of a {run['folds']}-fold "
            "cross-validation: it trained on images that any validation split of "
            "this run would hold. Start from a model trained with --folds 1."
        )
    trained_with = (run["seed"], run.get("val_split", 0.1))
    source = "--seed {} --val-split {}".format(*trained_with)
    if trained_with != (seed, val_split):
        raise TrainingError(
            f"--init-from {path} was trained with {source}; this run has --seed {seed} "
            f"--val-split {val_split}, so its validation images would include images "
            f"that model trained on. Pass {source}."
        )


def init_weights(model: keras.Model, path: Path, model_name: str) -> None:
    """Starts `model` from the weights of the saved `model_name` model at `path`.

    Fine-tuning and a second learning-rate cycle (warm restart) both start here;
    the optimizer starts fresh. A resumed run still continues from its backup.
    """
    try:
        source = load_model(path, num_classes=model.outputs[0].shape[-1])
    except ModelFileError as err:
        raise ModelFileError(
            f"--init-from {path}: {err} Pass a model.keras of the same --model, "
            "or 'pretrained'."
        ) from err
    expected = [tuple(w.shape) for w in model.weights]
    received = [tuple(w.shape) for w in source.weights]
    if expected != received:
        raise TrainingError(
            f"--init-from {path} is not a {model_name!r} model: its weights have "
            f"shapes {received[:3]}... ({len(received)} in all), expected "
            f"{expected[:3]}... ({len(expected)}). Pass a model.keras trained "
            f"with --model {model_name}."
        )
    model.set_weights(source.get_weights())
