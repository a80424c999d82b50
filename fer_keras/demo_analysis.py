"""What the web demo answers for one uploaded photo, computed in memory.

The photo's bytes are decoded, its faces classified by an
`EmotionRecognizer` and drawn on a copy scaled down for the page. Grad-CAM
maps come from a second call: predictions take tens of milliseconds, maps
seconds (under jax and torch a TensorFlow process computes them, see
`fer_keras.gradcam`), so the page shows the labels first. Each call detects
the faces again, in the same order, rather than keeping the photo between
calls. Nothing of a photo is written to disk, except under jax and torch the
48x48 face crops that Grad-CAM's TensorFlow process reads from a temporary
file, deleted before the answer.
"""

import base64
import io
import os
import threading
from pathlib import Path

import numpy as np
from PIL import Image

import keras

from fer_keras.classes import CLASS_NAMES
from fer_keras.export import format_of
from fer_keras.faces import CLASS_COLORS, EmotionRecognizer, annotate
from fer_keras.gradcam import check_installed, gradcam_maps, overlay, runs_in_process
from fer_keras.loading import pretrained_path
from fer_keras.media import ImageFileError, load_image
from fer_keras.prediction import IMAGE_DETECTION_SIZE

# The largest photo decoded: 50 megapixels (an 8192 x 6144 camera photo);
# its RGB pixels take 150 MB, so larger uploads are refused before decoding.
MAX_PIXELS = 50_000_000
# Long side of the annotated photo sent back: the page shows it at most
# about this wide, and a full-size copy of a camera photo would be megabytes.
DISPLAY_SIZE = 1024
# Side of the face crops and Grad-CAM maps sent back (the model sees 48).
MAP_SIZE = 144


class DemoAnalyzer:
    """Answers the demo's requests with one model, loaded once.

    Args:
        model_path: a `.keras` file, or an export of one (`.tflite`, `.onnx`,
            SavedModel folder) as `EmotionRecognizer` takes; Grad-CAM needs
            the `.keras` file. Default: the pretrained model
            (`fer_keras.loading.pretrained_path`).
        detector: "haar" or "mtcnn" (`fer_keras.detectors.DETECTORS`).
        max_pixels: larger photos are refused with a message.
    """

    def __init__(self, model_path: str | os.PathLike | None = None, detector: str = "haar",
                 max_pixels: int = MAX_PIXELS):
        self.model_path = Path(model_path or pretrained_path())
        self.recognizer = EmotionRecognizer(
            self.model_path, detector=detector, detection_size=IMAGE_DETECTION_SIZE)
        self.max_pixels = int(max_pixels)
        self.gradcam_note = gradcam_unavailable(self.model_path)
        # One request at a time per model: OpenCV's cascade is not meant to be
        # shared between threads, and a TensorFlow process per map is enough.
        self._lock = threading.Lock()
        self._gradcam_lock = threading.Lock()

    def info(self) -> dict:
        """What the page shows before any photo: the model and what it offers."""
        return {
            "model": self.model_path.name,
            "backend": keras.backend.backend(),
            "classes": list(CLASS_NAMES),
            "colors": {name: "#%02x%02x%02x" % CLASS_COLORS[name] for name in CLASS_NAMES},
            "gradcam": self.gradcam_note is None,
            "gradcam_note": self.gradcam_note,
        }

    def predict(self, data: bytes) -> dict:
        """The annotated photo (a JPEG data URL) and each face's box and
        probabilities; a `message` when no face was found."""
        rgb = self._decode(data)
        with self._lock:
            found = self.recognizer.predict(rgb)
        height, width = rgb.shape[:2]
        return {
            "width": width,
            "height": height,
            "image": _data_url(_fit(annotate(rgb, found), DISPLAY_SIZE), "JPEG"),
            "faces": [face.to_dict() for face in found],
            "message": None if found else (
                "No face found in this photo. The detector finds frontal faces of "
                "about 50 pixels and more: try a photo taken from the front, closer "
                "or better lit."
            ),
        }

    def gradcam(self, data: bytes) -> dict:
        """Each face's crop and the Grad-CAM map of its predicted class, as PNG
        data URLs, in the order of `predict`."""
        if self.gradcam_note is not None:
            raise ValueError(self.gradcam_note)
        rgb = self._decode(data)
        with self._lock:
            found = self.recognizer.predict(rgb)
            crops = [self.recognizer.crop(rgb, face.detection) for face in found]
        if not found:
            return {"faces": []}
        classes = [int(np.argmax(face.probabilities)) for face in found]
        with self._gradcam_lock:
            maps = gradcam_maps(self._gradcam_model(), np.stack(crops), classes)
        return {"faces": [
            {"label": face.label, "box": list(face.box),
             "face": _data_url(_enlarge(np.repeat(crop[..., None], 3, axis=-1)), "PNG"),
             "gradcam": _data_url(_enlarge(overlay(crop, cam)), "PNG")}
            for face, crop, cam in zip(found, crops, maps)
        ]}

    def _gradcam_model(self):
        # The loaded model where Grad-CAM runs in process, else its file.
        if runs_in_process():
            return self.recognizer.model
        return self.model_path

    def _decode(self, data: bytes) -> np.ndarray:
        if not data:
            raise ImageFileError("The upload is empty: choose a photo (JPEG, PNG, ...).")
        return load_image(io.BytesIO(data), max_pixels=self.max_pixels)


def gradcam_unavailable(model_path: str | os.PathLike) -> str | None:
    """Why Grad-CAM maps cannot be drawn for this model, or None if they can.

    An export is told from a `.keras` file as `Predictor` tells it
    (`fer_keras.export.format_of`), not by the name alone: a SavedModel
    folder may be named `model.keras`.
    """
    if format_of(model_path) is not None:
        return (f"Grad-CAM maps need a .keras model; {Path(model_path).name} is an export "
                "that only predicts.")
    try:
        check_installed()
    except ImportError as err:
        return str(err)
    return None


def _fit(rgb: np.ndarray, size: int) -> np.ndarray:
    """`rgb` scaled down to `size` pixels on its long side, if larger."""
    scale = size / max(rgb.shape[:2])
    if scale >= 1:
        return rgb
    shape = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
    return np.asarray(Image.fromarray(rgb).resize(shape, Image.Resampling.BOX))


def _enlarge(rgb: np.ndarray) -> np.ndarray:
    """A 48x48 crop or map at `MAP_SIZE`, smoothly: the page shows it large."""
    return np.asarray(Image.fromarray(rgb).resize((MAP_SIZE, MAP_SIZE),
                                                  Image.Resampling.BICUBIC))


def _data_url(rgb: np.ndarray, image_format: str) -> str:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, image_format, **({"quality": 90}
                                                       if image_format == "JPEG" else {}))
    mime = "image/jpeg" if image_format == "JPEG" else "image/png"
    return f"data:{mime};base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"
