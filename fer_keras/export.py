"""Export a model for serving without Keras: TF Serving, onnxruntime, phones.

Goes through Keras' own `model.export`, so the artifact holds the whole
forward pass (rescaling included: raw 0-255 grey (N, 48, 48, 1) in, logits
out). Which formats Keras can write depends on the backend; TensorFlow writes
all three, and a `.keras` file loads under any backend, so `export.py` uses it
unless told otherwise.
"""

import importlib.util
import os
from pathlib import Path
from typing import Callable

import numpy as np

import keras

from fer_keras import loading

FORMATS = ("saved_model", "onnx", "tflite")
KERAS_FORMATS = {"saved_model": "tf_saved_model", "onnx": "onnx", "tflite": "litert"}
SUFFIXES = {"saved_model": "", "onnx": ".onnx", "tflite": ".tflite"}
MAX_ABS_DIFF = 1e-4
# int8 weights move logits by a few hundredths; a broken export moves them by units.
MAX_ABS_DIFF_QUANTIZED = 0.25

# For each format, the backends Keras 3 exports it from and the packages each
# needs beyond the backend itself (module name, pip name).
_SUPPORT = {
    "saved_model": {"tensorflow": [], "jax": [("tensorflow", "tensorflow")]},
    "onnx": {
        "tensorflow": [("tf2onnx", "tf2onnx"), ("onnx", "onnx")],
        "torch": [("onnx", "onnx")],
        "jax": [("jax2onnx", "jax2onnx")],
    },
    "tflite": {"tensorflow": [], "torch": [("litert_torch", "litert-torch")]},
}
_RUNTIMES = {
    "saved_model": ("tensorflow", "tensorflow"),
    "onnx": ("onnxruntime", "onnxruntime"),
    "tflite": ("tensorflow", "tensorflow"),
}


def check_format(format: str, backend: str | None = None) -> None:
    """Raises a clear error if `format` cannot be exported under `backend`."""
    if format not in FORMATS:
        raise ValueError(
            f"Unknown export format. Expected one of {FORMATS}. Received: format={format!r}"
        )
    backend = backend or keras.backend.backend()
    support = _SUPPORT[format]
    if backend not in support:
        raise ValueError(
            f"Keras {keras.__version__} cannot export {format} under the {backend} "
            f"backend; it can under: {', '.join(support)}. The .keras file loads under "
            "any backend: run export.py with --backend tensorflow."
        )
    missing = [pip for module, pip in support[backend] if not _installed(module)]
    if missing:
        raise ImportError(
            f"Exporting {format} under the {backend} backend needs: "
            f"pip install {' '.join(missing)}"
        )


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def default_path(model_path, format: str, folder=None) -> Path:
    """Where `export.py` writes: model.keras -> model.onnx, model.tflite or
    model_saved_model/, beside the model or in `folder`."""
    model_path = Path(model_path)
    name = model_path.stem + (SUFFIXES[format] or f"_{format}")
    return (model_path.parent if folder is None else Path(folder)) / name


def check_quantize(format: str, backend: str | None = None) -> None:
    """Raises a clear error unless `format` can be quantized under `backend`."""
    backend = backend or keras.backend.backend()
    if format != "tflite" or backend != "tensorflow":
        raise ValueError(
            "Quantizing (int8 weights) is done for tflite exports under the "
            "tensorflow backend. Received: "
            f"format={format!r}, backend={backend!r}. Use --format tflite --backend tensorflow."
        )


def export_model(model, path, format: str = "saved_model", quantize: bool = False) -> Path:
    """Writes `model` (a keras.Model or `.keras` path) to `path` as `format`.

    The batch size stays free in every format, so the artifact classifies any
    number of faces in one call. `quantize` (tflite only) stores the weights
    as int8 and computes with int8 kernels where LiteRT has them (dynamic-range
    quantization): a quarter of the size and several times faster on a CPU,
    for a change in accuracy of a few tenths of a point (benchmarks/README.md).
    """
    check_format(format)
    if quantize:
        check_quantize(format)
    if isinstance(model, (str, os.PathLike)):
        model = loading.load_model(model)
    path = Path(path)
    if format == "tflite" and path.suffix != ".tflite":
        raise ValueError(f"A tflite file must end in .tflite. Received: path={path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    # A freshly loaded model has never been called, which the ONNX exporter
    # refuses; one call on a blank face fixes its input signature.
    shape = tuple(int(d or 48) for d in model.inputs[0].shape[1:])
    model(np.zeros((1, *shape), dtype="float32"), training=False)
    options = {}
    if quantize:
        import tensorflow as tf

        options["optimizations"] = [tf.lite.Optimize.DEFAULT]
    model.export(str(path), format=KERAS_FORMATS[format], verbose=False, **options)
    return path


def load_exported(path, format: str, num_threads: int | None = None
                  ) -> Callable[[np.ndarray], np.ndarray]:
    """A function running the exported artifact: float32 (N, H, W, 1) -> logits.

    `num_threads` (tflite only) defaults to one per CPU core.
    """
    if format not in FORMATS:
        raise ValueError(
            f"Unknown export format. Expected one of {FORMATS}. Received: format={format!r}"
        )
    module, pip = _RUNTIMES[format]
    if not _installed(module):
        raise ImportError(f"Running a {format} export needs: pip install {pip}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No exported model at {path}.")
    if format == "tflite":
        return _LiteRTRunner(path, num_threads)
    return {"saved_model": _saved_model_runner, "onnx": _onnx_runner}[format](path)


def _saved_model_runner(path):
    import tensorflow as tf

    served = tf.saved_model.load(str(path))
    return lambda x: served.serve(tf.constant(x, dtype="float32")).numpy()


def _onnx_runner(path):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: np.asarray(x, dtype="float32")})[0]


class _LiteRTRunner:
    """Runs a `.tflite` file: float32 (N, H, W, 1) -> logits, N free per call."""

    def __init__(self, path, num_threads: int | None = None):
        if _installed("ai_edge_litert"):
            from ai_edge_litert.interpreter import Interpreter
        else:
            import tensorflow as tf

            Interpreter = tf.lite.Interpreter
        try:
            self.interpreter = Interpreter(model_path=str(path),
                                           num_threads=num_threads or os.cpu_count())
        except ValueError as err:
            raise loading.ModelFileError(
                f"{path} is not a LiteRT (.tflite) model: {err}"
            ) from err
        details = self.interpreter.get_input_details()[0]
        self.input_shape = tuple(int(d) for d in details["shape_signature"])
        self._input = details["index"]
        output = self.interpreter.get_output_details()[0]
        self.output_shape = tuple(int(d) for d in output["shape_signature"])
        self._output = output["index"]
        self._allocated_for = None

    def __call__(self, x):
        x = np.asarray(x, dtype="float32")
        if x.shape != self._allocated_for:
            # The batch size is free in the file; size the tensors when it changes.
            self.interpreter.resize_tensor_input(self._input, x.shape)
            self.interpreter.allocate_tensors()
            self._allocated_for = x.shape
        self.interpreter.set_tensor(self._input, x)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._output).copy()


def compare(model: keras.Model, path, format: str, num_images: int = 8, seed: int = 0) -> float:
    """Max absolute difference between the export's and Keras' logits on random faces."""
    shape = tuple(int(d or 48) for d in model.inputs[0].shape[1:])
    images = np.random.default_rng(seed).uniform(0, 255, (num_images, *shape)).astype("float32")
    expected = keras.ops.convert_to_numpy(model(images, training=False))
    return float(np.max(np.abs(load_exported(path, format)(images) - expected)))
