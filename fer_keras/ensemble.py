"""Several trained models as one: the mean of their logits.

An ensemble is the cheapest accuracy there is once models are trained: no
training, one forward pass per member. Here it is a plain functional model,
raw 0-255 grey (N, H, W, 1) in and one logit per class out, built from stock
Keras layers (the members nested, `keras.layers.Average` on top). So it saves
as one `.keras` file, loads under any backend, and goes where a single model
goes: `Predictor`, `EmotionRecognizer`, `evaluate.py`.

The mean of logits is the normalized geometric mean of the members'
probabilities. On FER2013's validation split it scored as the mean of
probabilities does (README, "Ensembles"), and it needs no custom layer.
"""

import os
from collections.abc import Sequence
from pathlib import Path

import keras

from fer_keras import export, loading
from fer_keras.classes import CLASS_NAMES
from fer_keras.models import reconfigured_copy
from fer_keras.run_record import write_json

# The fields of a run record that say which training images it held out for
# validation: members must agree on them for the ensemble's validation
# accuracy to be measured on images none of them trained on.
SPLIT_FIELDS = ("seed", "val_split", "folds", "fold")

ModelLike = "keras.Model | str | os.PathLike"


def build_ensemble(models: Sequence[ModelLike], name: str = "ensemble") -> keras.Model:
    """One model whose logits are the mean of the logits of `models`.

    Args:
        models: two or more `keras.Model`s or `.keras` paths, each mapping raw
            0-255 grey (N, H, W, 1) to one logit per class of `CLASS_NAMES`,
            all with the same input shape.
        name: the ensemble's name; its members are named
            `f"{name}_member{i}"` (from 1), its output layer `f"{name}_logits"`.

    The members' layers are shared, not copied: a `keras.Model` passed in is
    not changed. A member whose weights have the names of an earlier one's
    (two runs of one architecture) is copied with its layers renamed
    `f"{name}_member{i}_..."`: the torch backend keys a model's parameters
    by those names, and would otherwise lose all but one member's.
    """
    if isinstance(models, (str, os.PathLike, keras.Model)):
        models = [models]
    if len(models) < 2:
        raise ValueError(
            "An ensemble needs at least two models. "
            f"Received: {len(models)} model{'s' if len(models) != 1 else ''}."
        )
    loaded = [_as_model(m, index) for index, m in enumerate(models, start=1)]
    shapes = [tuple(m.inputs[0].shape[1:]) for m in loaded]
    if len(set(shapes)) > 1:
        raise ValueError(
            "The members of an ensemble must take the same input shape; resize "
            f"the inputs of the others to one of them. Received: input shapes {shapes}"
        )
    inputs = keras.Input(shape=shapes[0], name=f"{name}_input")
    logits, seen = [], set()
    for index, member in enumerate(loaded, start=1):
        paths = {v.path for v in member.trainable_variables}
        if paths & seen:
            prefix = f"{name}_member{index}_"
            member = reconfigured_copy(member, lambda layer, p=prefix: {"name": p + layer.name})
            paths = {v.path for v in member.trainable_variables}
        seen |= paths
        # A new functional view of the member's layers under a unique name:
        # nested models must be named apart, and the caller's model is not renamed.
        view = keras.Model(member.inputs[0], member.outputs[0], name=f"{name}_member{index}")
        logits.append(view(inputs))
    outputs = keras.layers.Average(name=f"{name}_logits", dtype="float32")(logits)
    return keras.Model(inputs, outputs, name=name)


def members(model: keras.Model) -> list[keras.Model]:
    """The member models of an ensemble from `build_ensemble`; [] for any other model."""
    if not model.name or not model.layers:
        return []
    head = model.layers[-1]
    if not isinstance(head, keras.layers.Average) or head.name != f"{model.name}_logits":
        return []
    return [layer for layer in model.layers if isinstance(layer, keras.Model)]


def is_ensemble(model: keras.Model) -> bool:
    """Whether `model` is an ensemble built by `build_ensemble`."""
    return bool(members(model))


def shared_split(records: Sequence[dict | None], sources: Sequence[str]) -> dict:
    """The validation split that the run records of all members share.

    Raises a `ValueError` naming the member that has no record or holds out
    other images than the first: an ensemble validated on images some member
    trained on would look better than it is.
    """
    for record, source in zip(records, sources):
        if not record or "seed" not in record:
            raise ValueError(
                f"{source} has no run.json beside it saying which training images it "
                "held out for validation, so the ensemble's validation accuracy cannot "
                "be measured on images none of its members trained on. Evaluate the "
                "ensemble on --split test instead."
            )
    first = {field: records[0].get(field) for field in SPLIT_FIELDS}
    for record, source in zip(records[1:], sources[1:]):
        other = {field: record.get(field) for field in SPLIT_FIELDS}
        if other != first:
            raise ValueError(
                f"{sources[0]} and {source} held out different training images for "
                "validation, so each has trained on part of the other's validation "
                "split. Evaluate the ensemble on --split test instead. "
                f"Received: {first} and {other}"
            )
    split = dict(first)
    data = records[0].get("data", {}).get("val")
    if data is not None:
        split["data"] = {"val": data}
    return split


def ensemble_record(paths: Sequence[str | os.PathLike]) -> dict:
    """The run record of an ensemble of the `.keras` files at `paths`: its
    members and their shared validation split (`evaluate.py --split val`
    reads it from the run.json beside a saved ensemble)."""
    sources = [str(p) for p in paths]
    split = shared_split([loading.source_run(p) for p in paths], sources)
    return {"status": "completed", "model": "ensemble", "ensemble": sources, **split}


def save_ensemble(paths: Sequence[str | os.PathLike], output_dir: str | os.PathLike,
                  name: str = "ensemble") -> Path:
    """Builds the ensemble of the `.keras` files at `paths` and writes it as
    `output_dir/model.keras`, with the run.json that names its members and
    their shared validation split. Returns the model's path.

    A folder of its own, as train.py writes one per run: `evaluate.py` and the
    other tools find a model's record in the run.json beside it.
    """
    output_dir = Path(output_dir)
    record = ensemble_record(paths)
    model = build_ensemble(paths, name=name)
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / "model.keras"
    partial = output_dir / "model.partial.keras"
    model.save(partial)
    os.replace(partial, path)
    write_json(output_dir / "run.json", {**record, "model_path": str(path)})
    return path


def _as_model(model: ModelLike, index: int) -> keras.Model:
    if isinstance(model, (str, os.PathLike)):
        spec = export.format_of(model)
        if spec is not None:
            raise ValueError(
                f"An ensemble is built from .keras models; member {index}, {model}, is "
                f"an export ({spec.description}). Ensemble the .keras files the exports "
                "came from, then export the ensemble with export.py."
            )
        return loading.load_model(Path(model))
    if isinstance(model, keras.Model):
        loading.check_model(model, len(CLASS_NAMES), source=f"Member {index} ({model.name!r})")
        return model
    raise TypeError(
        "The members of an ensemble must be keras.Models or paths of .keras files. "
        f"Received: {type(model).__name__} as member {index}"
    )
