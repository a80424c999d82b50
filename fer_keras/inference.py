"""Fast predictions on raw grey faces: load a model once, then call it many times.

`model.predict` builds a data adapter, an iterator and callbacks on every
call: right for a data set, slow for one face from a webcam. `Predictor`
compiles the bare forward pass once per backend and calls it directly:

- jax: `jax.jit` of a stateless call, the weights passed in each call;
- tensorflow: `tf.function` (graph mode, oneDNN kernels; on CPU faster
  than XLA for these convolutions, see `benchmarks/README.md`);
- torch: the eager call under `torch.inference_mode()`.

It also runs what `python export.py` writes, without any Keras backend: a
LiteRT file (`--format tflite --quantize`, int8 weights: the fastest way to
classify one face on a CPU, benchmarks/README.md), an ONNX file (with
onnxruntime) or a SavedModel folder (with TensorFlow).

Batches are cut into chunks of at most `batch_size` images. Under jax, a
chunk is padded to a power of two (or to `batch_size`), so jax compiles a few
shapes once instead of one per batch length.

One rule for pixels, here and in `fer_keras.faces`: raw 0-255 values, as
uint8 or as floats in 0-255. Floats that all lie in [0, 1] are refused
(`check_pixel_scale`): the models rescale inputs themselves, so such an image
would be read as nearly black and classified confidently wrong.
"""

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

import keras

from fer_keras import backends, export
from fer_keras.classes import CLASS_NAMES
from fer_keras.ensemble import build_ensemble
from fer_keras.errors import run_command
from fer_keras.loading import ModelFileError, check_model, load_model
from fer_keras.models import inference_zoom
from fer_keras.tta import num_views, resolve_mode, tta_views


def check_pixel_scale(pixels: np.ndarray, name: str = "images") -> None:
    """Raises a ValueError if `pixels` are floats that all lie in [0, 1].

    The models take raw 0-255 pixels and rescale them themselves; [0, 1]
    floats would pass every shape check and give confident, wrong answers.
    An all-zero (black) image is the same on both scales, so it passes.
    """
    pixels = np.asarray(pixels)
    if pixels.size == 0 or not np.issubdtype(pixels.dtype, np.floating):
        return
    low, high = pixels.min(), pixels.max()
    if low >= 0 and 0 < high <= 1:
        raise ValueError(
            f"`{name}` must be raw 0-255 pixels, as uint8 or as floats in 0-255: the "
            "models rescale them themselves, so [0, 1] floats read as a nearly black "
            f"image. Multiply them by 255 first. Received: float pixels in [0, 1] "
            f"(dtype={pixels.dtype}, max={float(high):.4g})"
        )


def check_model_path(path: str | os.PathLike, runner: str = "Predictor") -> None:
    """Raises an ImportError naming what to pip install, for an export whose
    runtime is missing (onnxruntime for ONNX, TensorFlow for a SavedModel).

    Checked before any work, so that a long run does not end on it; other
    paths are left to the loader.
    """
    spec = export.format_of(path)
    if spec is None:
        return
    module, pip = spec.runtime
    if not export.installed(module):
        raise ImportError(
            f"{runner} runs {Path(path)} ({spec.description} export) with {module}, "
            f"which is not installed: pip install {pip}"
        )


class Predictor:
    """Emotion probabilities of raw 0-255 grey face images.

    Accepts one face of shape `(height, width)` or `(height, width, 1)`, or a
    batch of shape `(N, height, width)` or `(N, height, width, 1)`, with the
    model's height and width (48 x 48 for the zoo) and pixel values 0-255:
    the models rescale inputs themselves (floats in [0, 1] are refused, see
    `check_pixel_scale`).

    Args:
        model: a `keras.Model` mapping `(N, H, W, 1)` to the 7 FER2013 logits,
            the path of a `.keras` file (loaded once, with
            `fer_keras.load_model`), or the path of an export of one: a
            `.tflite` or `.onnx` file or a SavedModel folder (`export.py`).
            A list of `keras.Model`s or `.keras` paths is their ensemble
            (`fer_keras.ensemble.build_ensemble`).
        batch_size: the largest number of images computed at once.
        num_threads: CPU threads for a `.tflite` file (default: one per core)
            or an `.onnx` one (default: onnxruntime's choice).
        tta: test-time augmentation, one of `fer_keras.tta.TTA_MODES`:
            "mirror" averages each face's and its mirror image's probabilities,
            "ten_crop" those of ten crops (ten times the work); True means
            "mirror", False "none".

    Example:

    >>> predictor = Predictor("runs/cbam_seed_jax/model.keras")
    >>> predictor.predict_labels(face)  # face: (48, 48) uint8
    ['happy']
    """

    def __init__(
        self,
        model: "keras.Model | str | os.PathLike | Sequence[keras.Model | str | os.PathLike]",
        batch_size: int = 256,
        num_threads: int | None = None,
        tta: bool | str = "none",
    ):
        self.tta = tta  # checked before a model loads
        if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(
                f"`batch_size` must be a positive integer. Received: batch_size={batch_size!r}"
            )
        self.batch_size = int(batch_size)
        if isinstance(model, (list, tuple)):
            model = build_ensemble(model)
        if isinstance(model, (str, os.PathLike)):
            spec = export.format_of(model)
            if spec is not None:
                self._init_exported(Path(model), spec, num_threads)
                return
            model = load_model(model)
        elif isinstance(model, keras.Model):
            check_model(model, len(CLASS_NAMES))
        else:
            raise TypeError(
                "`model` must be a keras.Model or the path of a `.keras` file or of an "
                "export of one (.tflite, .onnx, SavedModel folder). "
                f"Received: model={model!r} of type {type(model).__name__}"
            )
        input_shape = tuple(model.inputs[0].shape)
        if None in input_shape[1:3]:
            raise ValueError(
                "The predictor needs a model with a fixed image size, to check "
                f"and batch its inputs. Received: a model with input shape {input_shape}"
            )
        self.model = model
        self.name = model.name
        self.image_shape = (int(input_shape[1]), int(input_shape[2]))
        self._forward = backends.get().compile_forward(model)

    def _init_exported(self, path: Path, spec: export.ExportFormat,
                       num_threads: int | None) -> None:
        """Runs an export through its format's runtime, without Keras."""
        if not path.exists():
            raise ModelFileError(
                f"Model file not found: {path}. Write one with "
                f"{run_command('export', f'--format {spec.name}')}."
            )
        check_model_path(path)
        run = export.load_exported(path, spec.name, num_threads=num_threads)
        shape = run.input_shape
        if len(shape) != 4 or shape[-1] != 1 or min(shape[1:3]) < 1:
            raise ModelFileError(
                f"{path} takes inputs of shape {shape}; expected grey images of "
                "a fixed size, (batch, height, width, 1)."
            )
        if run.output_shape[-1] != len(CLASS_NAMES):
            raise ModelFileError(
                f"{path} has {run.output_shape[-1]} outputs; expected "
                f"{len(CLASS_NAMES)}, one per class of {', '.join(CLASS_NAMES)}."
            )
        self.model = None
        self._exported_zoom = export.exported_zoom(path)
        self.name = path.stem
        self.image_shape = (int(shape[1]), int(shape[2]))

        def forward(x):
            logits = np.asarray(run(x), dtype="float32")
            z = np.exp(logits - logits.max(axis=-1, keepdims=True))
            return z / z.sum(axis=-1, keepdims=True)

        self._forward = forward

    @property
    def inference_zoom(self) -> float | None:
        """The fraction of each face's centre the model zooms in on itself
        (`fer_keras.layers.InferenceZoom`), None if it sees the whole face."""
        if self.model is None:
            return self._exported_zoom
        return inference_zoom(self.model)

    @property
    def tta(self) -> str:
        """The test-time augmentation, one of `fer_keras.tta.TTA_MODES`."""
        return self._tta

    @tta.setter
    def tta(self, value: bool | str) -> None:
        self._tta = resolve_mode(value)

    def predict_proba(self, images) -> np.ndarray:
        """Probabilities of shape `(N, 7)`, columns in `CLASS_NAMES` order (N=1 for one face)."""
        x = self._as_batch(images)
        if len(x) == 0:
            return np.zeros((0, len(CLASS_NAMES)), dtype="float32")
        # All views of a chunk in one forward pass of at most batch_size images.
        step = max(1, self.batch_size // num_views(self.tta))
        chunks = [self._averaged(x[start : start + step]) for start in range(0, len(x), step)]
        return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)

    def _averaged(self, x):
        """Probabilities of a checked batch, averaged over its test-time views."""
        if self.tta == "none":
            views = x
        else:
            views = np.concatenate(tta_views(x, self.tta, zoom=self.inference_zoom))
        probs = [
            np.asarray(self._forward(views[start : start + self.batch_size]))
            for start in range(0, len(views), self.batch_size)
        ]
        probs = probs[0] if len(probs) == 1 else np.concatenate(probs)
        if self.tta == "none":
            return probs
        return probs.reshape(-1, len(x), probs.shape[-1]).mean(axis=0, dtype="float32")

    def predict_labels(self, images) -> list[str]:
        """The most probable class name of each image (one name for one face)."""
        return [CLASS_NAMES[i] for i in np.argmax(self.predict_proba(images), axis=-1)]

    def _as_batch(self, images) -> np.ndarray:
        """`images` as a float32 (N, H, W, 1) array, or a ValueError saying what is wrong."""
        x = np.asarray(images)
        h, w = self.image_shape
        expected = (
            f"Expected raw 0-255 grey images: one face of shape ({h}, {w}) or "
            f"({h}, {w}, 1), or a batch of shape (N, {h}, {w}) or (N, {h}, {w}, 1)."
        )
        if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool) or np.iscomplexobj(x):
            raise ValueError(f"{expected} Received: an array of dtype {x.dtype}")
        if x.ndim == 2 and x.shape == (h, w):
            x = x[None, :, :, None]
        elif x.ndim == 3 and x.shape == (h, w, 1):
            x = x[None]
        elif x.ndim == 3 and x.shape[1:] == (h, w):
            x = x[..., None]
        elif x.ndim == 4 and x.shape[1:] == (h, w, 1):
            pass
        else:
            raise ValueError(f"{expected}{_shape_hint(x.shape, h, w)} "
                             f"Received: images.shape={x.shape}")
        check_pixel_scale(x)
        return np.ascontiguousarray(x, dtype="float32")


def _shape_hint(shape, height, width) -> str:
    """What to do about the two usual mistakes: colour images, other sizes."""
    if len(shape) in (3, 4) and shape[-1] in (3, 4):
        return " Convert colour images to grey first."
    if len(shape) >= 2 and (height, width) not in (tuple(shape[-2:]), tuple(shape[-3:-1])):
        return f" Resize faces to {height}x{width} first."
    return ""
