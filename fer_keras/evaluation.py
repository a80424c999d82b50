"""Metrics of a trained model: accuracy, per-class scores, confusion matrix."""

import json
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

import keras

from fer_keras import data
from fer_keras.classes import CLASS_NAMES
from fer_keras.errors import run_command
from fer_keras.inference import Predictor, check_pixel_scale
from fer_keras.loading import ModelFileError, pretrained_path, source_run
from fer_keras.models import inference_zoom
from fer_keras.plots import plot_confusion_matrix, plot_per_class
from fer_keras.tta import resolve_mode, tta_views


def predict_proba(
    model: "keras.Model | Predictor", images: np.ndarray, batch_size: int = 256,
    tta: bool | str = False,
) -> np.ndarray:
    """Class probabilities of raw 0-255 grey images (N, 48, 48, 1).

    `model` is a Keras model, or a `Predictor` (which also runs `.tflite`
    exports). `tta` averages the probabilities over views of each image: one
    of `fer_keras.tta.TTA_MODES` ("mirror", the image and its mirror image;
    "ten_crop", ten crops, as a model that zooms in itself sees them), True
    meaning "mirror".
    """
    check_pixel_scale(images)
    images = np.asarray(images, dtype="float32")
    zoom = None
    if resolve_mode(tta) == "ten_crop":
        zoom = model.inference_zoom if isinstance(model, Predictor) else inference_zoom(model)
    views = tta_views(images[..., None] if images.ndim == 3 else images, tta, zoom=zoom)
    total = None
    for view in views:
        if isinstance(model, Predictor):
            probs = model.predict_proba(view)
        else:
            logits = model.predict(view, batch_size=batch_size, verbose=0)
            probs = keras.ops.convert_to_numpy(keras.ops.softmax(logits, axis=-1))
        total = probs if total is None else total + probs
    return total / len(views)


def validation_split(data_dir, model_path, run: dict | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """The images and labels a trained model was validated on.

    They are the training images its run held out (its seed and
    `--val-split`, or its cross-validation fold), as recorded in the
    run.json beside the model (the card of a pretrained one): the split to
    compare models and test-time augmentation on without touching the test
    split. `run` gives the record instead: an ensemble's, from
    `fer_keras.ensemble.ensemble_record`.
    """
    run = source_run(model_path) if run is None else run
    if not run or "seed" not in run:
        raise ValueError(
            f"{model_path} has no run.json beside it saying which training images "
            "it held out for validation (train.py writes one). Evaluate it on "
            "--split test instead."
        )
    images, labels = data.load_split(data_dir, "train")
    if run.get("fold"):
        _, val_idx = data.kfold_splits(labels, run["folds"], run["seed"])[run["fold"] - 1]
    else:
        _, val_idx = data.train_val_split(labels, run.get("val_split", 0.1), run["seed"])
    expected = run.get("data", {}).get("val", {}).get("total")
    if expected is not None and expected != len(val_idx):
        raise ValueError(
            f"{model_path} was validated on {expected} images of {run.get('data_dir')}, "
            f"but the same split of {data_dir} has {len(val_idx)}: another copy of the "
            "data. Point --data-dir at the data it trained on."
        )
    return images[val_idx], labels[val_idx]


def newest_model(runs_dir="runs") -> tuple[Path, list[tuple[Path, str]]]:
    """The model `evaluate.py` takes when none is named, and the newer ones it
    passed over, each with its run's status.

    That is the newest `model.keras` under `runs_dir` whose run.json does not
    say its run failed (one stopped by a NaN loss may have saved a model
    before: not the one to evaluate unasked), else the default pretrained model.
    """
    candidates = sorted(Path(runs_dir).glob("**/model.keras"),
                        key=lambda p: p.stat().st_mtime, reverse=True)
    skipped = []
    for path in candidates:
        status = _run_status(path)
        if not status.startswith("failed"):
            return path, skipped
        skipped.append((path, status))
    try:
        return pretrained_path(), skipped
    except ModelFileError:
        found = (f"the {len(skipped)} model.keras under {Path(runs_dir).resolve()} "
                 "are from failed runs" if skipped
                 else f"no model.keras under {Path(runs_dir).resolve()}")
        raise ModelFileError(
            f"No model to evaluate: {found} and no pretrained model is installed. "
            f"Train one with {run_command('train')} or pass --model-path."
        ) from None


def _run_status(model_path: Path) -> str:
    """The status in the run.json beside a model ("" when there is none to read)."""
    try:
        status = json.loads((model_path.parent / "run.json").read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        return ""
    return status if isinstance(status, str) else ""


def classification_metrics(
    labels: np.ndarray, predictions: np.ndarray, class_names: Sequence[str] = CLASS_NAMES
) -> dict:
    """Accuracy, macro F1, per-class precision/recall/F1 and the confusion matrix."""
    labels = np.asarray(labels).astype("int64")
    predictions = np.asarray(predictions).astype("int64")
    k = len(class_names)
    matrix = np.zeros((k, k), dtype="int64")
    np.add.at(matrix, (labels, predictions), 1)
    true_pos = np.diag(matrix).astype("float64")
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    recall = np.divide(true_pos, support, out=np.zeros(k), where=support > 0)
    precision = np.divide(true_pos, predicted, out=np.zeros(k), where=predicted > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(k), where=denom > 0)
    per_class = {
        name: {
            "accuracy": float(recall[i]),
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(class_names)
    }
    present = support > 0
    return {
        "accuracy": float(true_pos.sum() / max(1, len(labels))),
        "num_samples": int(len(labels)),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "per_class": per_class,
        "confusion_matrix": matrix.tolist(),
        "class_names": list(class_names),
    }


def format_report(metrics: Mapping) -> str:
    """The metrics as a text table, one row per class."""
    lines = [
        f"accuracy {metrics['accuracy']:.4f} on {metrics['num_samples']} images, "
        f"macro F1 {metrics['macro_f1']:.4f}",
        f"{'class':<10}{'accuracy':>10}{'precision':>11}{'recall':>8}{'f1':>8}{'support':>9}",
    ]
    for name, row in metrics["per_class"].items():
        lines.append(
            f"{name:<10}{row['accuracy']:>10.4f}{row['precision']:>11.4f}"
            f"{row['recall']:>8.4f}{row['f1']:>8.4f}{row['support']:>9d}"
        )
    return "\n".join(lines)


def comparison_table(results: Mapping[str, Mapping]) -> str:
    """One row per model: accuracy, macro F1 and per-class accuracy."""
    names = list(CLASS_NAMES)
    header = f"{'model':<40}{'acc':>8}{'macroF1':>9}" + "".join(f"{n[:7]:>9}" for n in names)
    rows = [header]
    for label, m in results.items():
        rows.append(
            f"{label[-40:]:<40}{m['accuracy']:>8.4f}{m['macro_f1']:>9.4f}"
            + "".join(f"{m['per_class'][n]['accuracy']:>9.4f}" for n in names)
        )
    return "\n".join(rows)


def evaluate(
    model: "keras.Model | Predictor",
    images: np.ndarray,
    labels: np.ndarray,
    output_dir=None,
    tta: bool | str = False,
    batch_size: int = 256,
    extra: Mapping | None = None,
    probabilities: np.ndarray | None = None,
) -> dict:
    """Evaluates `model`; with `output_dir`, writes metrics.json and the two PNGs.

    `probabilities` are the model's, (N, classes), computed already with
    `predict_proba(model, images, tta=tta)`: they are scored instead of
    predicted again (evaluate.py draws its errors from the same ones).
    """
    probs = (predict_proba(model, images, batch_size=batch_size, tta=tta)
             if probabilities is None else np.asarray(probabilities))
    if probs.ndim != 2 or len(probs) != len(labels):
        raise ValueError(
            "`probabilities` must hold one row per image, (N, classes). Received: "
            f"shape {probs.shape} for {len(labels)} images"
        )
    metrics = classification_metrics(labels, probs.argmax(axis=-1))
    metrics["tta"] = resolve_mode(tta)
    metrics.update(extra or {})
    if output_dir is not None:
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
        title = f"{model.name}: accuracy {metrics['accuracy']:.2%}"
        if metrics["tta"] != "none":
            title += f" ({metrics['tta'].replace('_', '-')} TTA)"
        plot_confusion_matrix(metrics["confusion_matrix"], CLASS_NAMES,
                              out / "confusion_matrix.png", title=title)
        plot_per_class(metrics["per_class"], out / "per_class.png", title=title)
    return metrics
