"""Export a model for serving without Keras: TF Serving, onnxruntime, phones.

Goes through Keras' own `model.export`, so the artifact holds the whole
forward pass (rescaling included: raw 0-255 grey (N, 48, 48, 1) in, logits
out). Which formats Keras can write depends on the backend; TensorFlow writes
all three, and a `.keras` file loads under any backend, so `export.py` uses it
unless told otherwise.

Each format is one `ExportFormat` in `EXPORT_FORMATS`: a new format is one
new entry there (and a runner in `fer_keras.runtimes`).
"""

import dataclasses
import importlib.util
import json
import os
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

import keras

from fer_keras import loading, runtimes
from fer_keras.errors import install_extra
from fer_keras.models import inference_zoom
from fer_keras.run_record import write_json

MAX_ABS_DIFF = 1e-4
# int8 weights move logits by a few hundredths; a broken export moves them by units.
MAX_ABS_DIFF_QUANTIZED = 0.25

Runner = Callable[[np.ndarray], np.ndarray]


@dataclasses.dataclass(frozen=True)
class ExportFormat:
    """Everything about one export format, so that it is written in one place.

    Attributes:
        name: the name `export.py --format` takes.
        description: what it is, in a few words, for messages.
        keras_format: the `format` of `keras.Model.export` writing it.
        suffix: the file suffix; "" for a folder, named `<stem>_<name>`.
        suffix_required: whether Keras refuses a path without that suffix.
        needs: for each backend Keras exports it from, the packages needed
            beyond the backend itself, as (module, pip name) pairs.
        runtime: the (module, pip name) that runs the artifact.
        load_fn: `load_fn(path, num_threads)` gives a runner: raw 0-255 grey
            float32 (N, H, W, 1) -> logits, with `input_shape` and `output_shape`.
        quantize_backends: the backends it can be quantized (int8) under.
        export_options: `export_options(quantize)`, extra keyword arguments
            of `keras.Model.export`.
    """

    name: str
    description: str
    keras_format: str
    suffix: str
    needs: Mapping[str, tuple[tuple[str, str], ...]]
    runtime: tuple[str, str]
    load_fn: Callable[[Path, int | None], Runner]
    suffix_required: bool = False
    quantize_backends: tuple[str, ...] = ()
    export_options: Callable[[bool], dict] = lambda quantize: {}

    def matches(self, path: Path) -> bool:
        """Whether `path` looks like an artifact of this format."""
        if not self.suffix:
            return runtimes.is_saved_model(path)
        return path.suffix.lower() == self.suffix


def _litert_options(quantize: bool) -> dict:
    if not quantize:
        return {}
    import tensorflow as tf

    return {"optimizations": [tf.lite.Optimize.DEFAULT]}


EXPORT_FORMATS: dict[str, ExportFormat] = {
    spec.name: spec
    for spec in (
        ExportFormat(
            name="saved_model", description="TensorFlow SavedModel",
            keras_format="tf_saved_model", suffix="",
            needs={"tensorflow": (), "jax": (("tensorflow", "tensorflow"),)},
            runtime=("tensorflow", "tensorflow"), load_fn=runtimes.SavedModelRunner,
        ),
        ExportFormat(
            name="onnx", description="ONNX", keras_format="onnx", suffix=".onnx",
            needs={"tensorflow": (("tf2onnx", "tf2onnx"), ("onnx", "onnx")),
                   "torch": (("onnx", "onnx"),), "jax": (("jax2onnx", "jax2onnx"),)},
            runtime=("onnxruntime", "onnxruntime"), load_fn=runtimes.OnnxRunner,
        ),
        ExportFormat(
            name="tflite", description="LiteRT (.tflite)", keras_format="litert",
            suffix=".tflite", suffix_required=True,
            needs={"tensorflow": (), "torch": (("litert_torch", "litert-torch"),)},
            runtime=("tensorflow", "tensorflow"), load_fn=runtimes.LiteRTRunner,
            quantize_backends=("tensorflow",), export_options=_litert_options,
        ),
    )
}
# The views older code reads.
FORMATS = tuple(EXPORT_FORMATS)
KERAS_FORMATS = {name: spec.keras_format for name, spec in EXPORT_FORMATS.items()}
SUFFIXES = {name: spec.suffix for name, spec in EXPORT_FORMATS.items()}


def get_format(format: str) -> ExportFormat:
    """The `ExportFormat` named `format`, or a ValueError listing the names."""
    if format not in EXPORT_FORMATS:
        raise ValueError(
            f"Unknown export format. Expected one of {FORMATS}. Received: format={format!r}"
        )
    return EXPORT_FORMATS[format]


def format_of(path: str | os.PathLike) -> ExportFormat | None:
    """The format of the exported artifact at `path`; None for anything else."""
    path = Path(path)
    return next((spec for spec in EXPORT_FORMATS.values() if spec.matches(path)), None)


def check_format(format: str, backend: str | None = None) -> None:
    """Raises a clear error if `format` cannot be exported under `backend`."""
    spec = get_format(format)
    backend = backend or keras.backend.backend()
    if backend not in spec.needs:
        raise ValueError(
            f"Keras {keras.__version__} cannot export {format} under the {backend} "
            f"backend; it can under: {', '.join(spec.needs)}. The .keras file loads under "
            "any backend: run export.py with --backend tensorflow."
        )
    missing = [pip for module, pip in spec.needs[backend] if not installed(module)]
    if missing:
        raise ImportError(
            f"Exporting {format} under the {backend} backend needs: "
            f"pip install {' '.join(missing)} (or {install_extra('export')})"
        )


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def default_path(model_path: str | os.PathLike, format: str,
                 folder: str | os.PathLike | None = None) -> Path:
    """Where `export.py` writes: model.keras -> model.onnx, model.tflite or
    model_saved_model/, beside the model or in `folder`."""
    model_path = Path(model_path)
    name = model_path.stem + (get_format(format).suffix or f"_{format}")
    return (model_path.parent if folder is None else Path(folder)) / name


def check_quantize(format: str, backend: str | None = None) -> None:
    """Raises a clear error unless `format` can be quantized under `backend`."""
    backend = backend or keras.backend.backend()
    if backend not in get_format(format).quantize_backends:
        pairs = [(spec.name, b) for spec in EXPORT_FORMATS.values()
                 for b in spec.quantize_backends]
        where = " or ".join(f"{name} exports under the {b} backend" for name, b in pairs)
        use = " or ".join(f"--format {name} --backend {b}" for name, b in pairs)
        raise ValueError(
            f"Quantizing (int8 weights) is done for {where}. Received: "
            f"format={format!r}, backend={backend!r}. Use {use}."
        )


def export_model(model: keras.Model | str | os.PathLike, path: str | os.PathLike,
                 format: str = "saved_model", quantize: bool = False) -> Path:
    """Writes `model` (a keras.Model or `.keras` path) to `path` as `format`.

    The batch size stays free in every format, so the artifact classifies any
    number of faces in one call. `quantize` (tflite only) stores the weights
    as int8 and computes with int8 kernels where LiteRT has them (dynamic-range
    quantization): a quarter of the size and several times faster on a CPU,
    for a change in accuracy of a few tenths of a point (benchmarks/README.md).
    """
    check_format(format)
    spec = get_format(format)
    if quantize:
        check_quantize(format)
    if isinstance(model, (str, os.PathLike)):
        model = loading.load_model(model)
    path = Path(path)
    if spec.suffix_required and path.suffix != spec.suffix:
        raise ValueError(f"A {format} file must end in {spec.suffix}. Received: path={path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    # A freshly loaded model has never been called, which the ONNX exporter
    # refuses; one call on a blank face fixes its input signature.
    shape = tuple(int(d or 48) for d in model.inputs[0].shape[1:])
    model(np.zeros((1, *shape), dtype="float32"), training=False)
    model.export(str(path), format=spec.keras_format, verbose=False,
                 **spec.export_options(quantize))
    # What test-time views need to know and the artifact cannot say itself.
    zoom = inference_zoom(model)
    notes = metadata_path(path)
    if zoom is not None:
        write_json(notes, {"inference_zoom": zoom})
    elif notes.exists():
        notes.unlink()
    return path


def metadata_path(path: str | os.PathLike) -> Path:
    """The JSON file beside an export (inside a SavedModel folder) in which
    `export_model` notes the model's `InferenceZoom`, if it has one."""
    path = Path(path)
    return path / "fer_keras.json" if path.is_dir() else path.with_name(f"{path.name}.json")


def exported_zoom(path: str | os.PathLike) -> float | None:
    """The `InferenceZoom` fraction of the model exported to `path` (None if
    it has none): the ten-crop views of `fer_keras.tta` depend on it."""
    notes = metadata_path(path)
    if not notes.exists():
        return None
    return json.loads(notes.read_text()).get("inference_zoom")


def load_exported(path: str | os.PathLike, format: str | None = None,
                  num_threads: int | None = None) -> Runner:
    """A function running the exported artifact: float32 (N, H, W, 1) -> logits.

    `format` defaults to the one `path` looks like (`format_of`).
    `num_threads` defaults to one per CPU core for tflite, to onnxruntime's
    choice for onnx, and is unused for saved_model.
    """
    spec = get_format(format) if format is not None else format_of(path)
    if spec is None:
        raise ValueError(
            f"Not an exported model: expected a folder holding saved_model.pb or a file "
            f"ending in {', '.join(s.suffix for s in EXPORT_FORMATS.values() if s.suffix)}. "
            f"Received: path={path}"
        )
    module, pip = spec.runtime
    if not installed(module):
        raise ImportError(f"Running a {spec.name} export needs: pip install {pip}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No exported model at {path}.")
    return spec.load_fn(path, num_threads)


def compare(model: keras.Model, path: str | os.PathLike, format: str, num_images: int = 8,
            seed: int = 0) -> float:
    """Max absolute difference between the export's and Keras' logits on random faces."""
    shape = tuple(int(d or 48) for d in model.inputs[0].shape[1:])
    images = np.random.default_rng(seed).uniform(0, 255, (num_images, *shape)).astype("float32")
    expected = keras.ops.convert_to_numpy(model(images, training=False))
    return float(np.max(np.abs(load_exported(path, format)(images) - expected)))
