"""Running exported models without Keras: LiteRT, onnxruntime, TensorFlow.

Each runner maps float32 raw 0-255 grey (N, H, W, 1) images to logits, with
N free per call, and tells its `input_shape` and `output_shape` (-1 for a
free size) so that `fer_keras.inference.Predictor` can check a file before
its first call. `fer_keras.export.load_exported` picks the runner of a format.
"""

import importlib.util
import os
from pathlib import Path

import numpy as np

from fer_keras.loading import ModelFileError


def _shape(dims) -> tuple[int, ...]:
    """A shape with -1 for the free sizes (None, or a name as ONNX gives them)."""
    return tuple(int(d) if isinstance(d, (int, np.integer)) and d >= 0 else -1 for d in dims)


class LiteRTRunner:
    """Runs a `.tflite` file; `num_threads` defaults to one per CPU core."""

    def __init__(self, path: str | os.PathLike, num_threads: int | None = None):
        if importlib.util.find_spec("ai_edge_litert") is not None:
            from ai_edge_litert.interpreter import Interpreter
        else:
            import tensorflow as tf

            Interpreter = tf.lite.Interpreter
        try:
            self.interpreter = Interpreter(model_path=str(path),
                                           num_threads=num_threads or os.cpu_count())
        except ValueError as err:
            raise ModelFileError(f"{path} is not a LiteRT (.tflite) model: {err}") from err
        details = self.interpreter.get_input_details()[0]
        self.input_shape = _shape(details["shape_signature"])
        self._input = details["index"]
        output = self.interpreter.get_output_details()[0]
        self.output_shape = _shape(output["shape_signature"])
        self._output = output["index"]
        self._allocated_for = None

    def __call__(self, x) -> np.ndarray:
        x = np.asarray(x, dtype="float32")
        if x.shape != self._allocated_for:
            # The batch size is free in the file; size the tensors when it changes.
            self.interpreter.resize_tensor_input(self._input, x.shape)
            self.interpreter.allocate_tensors()
            self._allocated_for = x.shape
        self.interpreter.set_tensor(self._input, x)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._output).copy()


class OnnxRunner:
    """Runs a `.onnx` file with onnxruntime on the CPU."""

    def __init__(self, path: str | os.PathLike, num_threads: int | None = None):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = num_threads
        try:
            self.session = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime's errors have no common base but this
            raise ModelFileError(f"{path} is not an ONNX model: {err}") from err
        inputs, outputs = self.session.get_inputs()[0], self.session.get_outputs()[0]
        self._input = inputs.name
        self.input_shape = _shape(inputs.shape)
        self.output_shape = _shape(outputs.shape)

    def __call__(self, x) -> np.ndarray:
        return self.session.run(None, {self._input: np.asarray(x, dtype="float32")})[0]


class SavedModelRunner:
    """Runs a TensorFlow SavedModel folder through its `serve` endpoint."""

    def __init__(self, path: str | os.PathLike, num_threads: int | None = None):
        import tensorflow as tf

        try:
            self.served = tf.saved_model.load(str(path))
            signature = self.served.signatures["serving_default"]
        except (ValueError, OSError, KeyError) as err:
            raise ModelFileError(f"{path} is not a TensorFlow SavedModel: {err}") from err
        spec = next(iter(signature.structured_input_signature[1].values()))
        self.input_shape = _shape(spec.shape)
        self.output_shape = _shape(next(iter(signature.structured_outputs.values())).shape)
        self._tf = tf

    def __call__(self, x) -> np.ndarray:
        return self.served.serve(self._tf.constant(x, dtype="float32")).numpy()


def is_saved_model(path: Path) -> bool:
    """True for a SavedModel folder: the one format that is not a single file."""
    return path.is_dir() and (path / "saved_model.pb").exists()
