"""Predictor: the probabilities of model.predict, for every accepted input shape."""

import numpy as np
import pytest

import keras

from fer_keras import export, inference, tta
from fer_keras.classes import CLASS_NAMES
from fer_keras.inference import Predictor
from fer_keras.loading import ModelFileError
from fer_keras.models import build_model


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return build_model("baseline")


@pytest.fixture(scope="module")
def predictor(model):
    return Predictor(model, batch_size=4)


def _faces(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 48, 48), dtype=np.uint8)


def _expected(model, faces):
    logits = model.predict(faces.reshape(-1, 48, 48, 1).astype("float32"), verbose=0)
    return keras.ops.convert_to_numpy(keras.ops.softmax(logits, axis=-1))


@pytest.mark.parametrize(
    "shape", [(48, 48), (48, 48, 1), (1, 48, 48), (1, 48, 48, 1), (3, 48, 48),
              (3, 48, 48, 1), (7, 48, 48, 1), (9, 48, 48)],
)
def test_same_probabilities_as_predict(model, predictor, shape):
    n = shape[0] if len(shape) in (3, 4) and shape[0] != 48 else 1
    faces = _faces(n)
    images = faces.reshape(shape)
    proba = predictor.predict_proba(images)
    assert proba.shape == (n, len(CLASS_NAMES)) and proba.dtype == np.float32
    np.testing.assert_allclose(proba, _expected(model, faces), atol=1e-5)
    np.testing.assert_allclose(proba.sum(axis=-1), 1.0, atol=1e-5)


def test_cbam_same_probabilities_as_predict():
    keras.utils.set_random_seed(1)
    cbam = build_model("cbam")
    faces = _faces(3, seed=4)
    proba = Predictor(cbam).predict_proba(faces)
    np.testing.assert_allclose(proba, _expected(cbam, faces), atol=1e-5)


def test_accepts_floats_and_lists(model, predictor):
    faces = _faces(2, seed=1)
    expected = _expected(model, faces)
    np.testing.assert_allclose(predictor.predict_proba(faces.astype("float64")), expected,
                               atol=1e-5)
    np.testing.assert_allclose(predictor.predict_proba(faces[0].tolist()), expected[:1],
                               atol=1e-5)


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_refuses_floats_in_0_1(predictor, dtype):
    """[0, 1] floats used to pass and be classified as a nearly black face."""
    faces = (_faces(2, seed=5) / 255.0).astype(dtype)
    with pytest.raises(ValueError, match=r"0-255 pixels.*Multiply them by 255.*"
                       rf"Received: float pixels in \[0, 1\] \(dtype={dtype}"):
        predictor.predict_proba(faces)
    with pytest.raises(ValueError, match=r"Received: float pixels in \[0, 1\]"):
        predictor.predict_labels(faces[0])


def test_dark_and_black_images_on_the_0_255_scale_are_accepted(model, predictor):
    """Only floats in [0, 1] are ambiguous: uint8 0s and 1s, and all-zero floats, are not."""
    dark = np.random.default_rng(6).integers(0, 2, (2, 48, 48)).astype("uint8")
    black = np.zeros((2, 48, 48), "float32")
    for images in (dark, black, dark.astype("int64")):
        np.testing.assert_allclose(predictor.predict_proba(images), _expected(model, images),
                                   atol=1e-5)


def test_check_pixel_scale():
    inference.check_pixel_scale(np.full((4, 4), 0.5, "uint8"))
    inference.check_pixel_scale(np.array([0.0, 0.5, 254.0]))
    inference.check_pixel_scale(np.array([-0.5, 0.5]))  # not [0, 1]: e.g. standardized
    inference.check_pixel_scale(np.zeros((0, 48, 48), "float32"))
    with pytest.raises(ValueError, match=r"`crops` must be .*Received: float pixels in "
                       r"\[0, 1\] \(dtype=float64, max=0.5\)"):
        inference.check_pixel_scale(np.array([0.0, 0.5]), name="crops")


@pytest.mark.parametrize("mode, given", [("mirror", "mirror"), ("mirror", True),
                                         ("ten_crop", "ten_crop")])
def test_tta_averages_the_views(model, mode, given):
    """As evaluate.py --tta: the mean of the probabilities of each view, chunks of
    views never over batch_size (4 here: ten crops of one image span three calls)."""
    faces = _faces(5, seed=7)
    predictor = Predictor(model, batch_size=4, tta=given)
    assert predictor.tta == mode
    views = tta.tta_views(faces[..., None], mode)
    expected = np.mean([_expected(model, view) for view in views], axis=0)
    sizes = []
    forward = predictor._forward
    predictor._forward = lambda x: sizes.append(len(x)) or forward(x)
    np.testing.assert_allclose(predictor.predict_proba(faces), expected, atol=1e-5)
    assert max(sizes) <= 4
    np.testing.assert_allclose(predictor.predict_proba(faces[0]), expected[:1], atol=1e-5)


def test_tta_of_dark_uint8_faces_is_not_refused(model):
    """The views of uint8 faces are floats; a dark face's lie in [0, 1], and pass."""
    dark = np.random.default_rng(8).integers(0, 2, (48, 48)).astype("uint8")
    proba = Predictor(model, tta="ten_crop").predict_proba(dark)
    assert proba.shape == (1, len(CLASS_NAMES))


def test_tta_is_checked_before_the_model_loads(model):
    with pytest.raises(ValueError, match=r"none, mirror, ten_crop.*Received: tta='tencrop'"):
        Predictor("no/such/model.keras", tta="tencrop")
    predictor = Predictor(model, tta=False)
    assert predictor.tta == "none"
    predictor.tta = True
    assert predictor.tta == "mirror"


@pytest.mark.slow
@pytest.mark.parametrize("format", ["onnx", "saved_model"])
def test_onnx_and_saved_model_exports_give_the_keras_probabilities(served_files, format):
    """They used to be refused with a note on how to run them elsewhere."""
    pytest.importorskip(export.EXPORT_FORMATS[format].runtime[0])
    model = keras.saving.load_model(served_files["keras"])
    predictor = Predictor(served_files[format], batch_size=4, tta="mirror")
    assert predictor.model is None and predictor.image_shape == (48, 48)
    faces = _faces(6, seed=5)
    expected = np.mean([_expected(model, view)
                        for view in tta.tta_views(faces[..., None], "mirror")], axis=0)
    np.testing.assert_allclose(predictor.predict_proba(faces), expected, atol=1e-5)
    assert predictor.predict_proba(faces[:0]).shape == (0, len(CLASS_NAMES))


def test_exports_without_their_runtime_say_what_to_install(tmp_path, exports_without_runtime):
    onnx, saved = exports_without_runtime
    with pytest.raises(ImportError, match=r"^Predictor runs .*model.onnx \(ONNX export\) "
                       r"with onnxruntime, which is not installed: pip install onnxruntime$"):
        Predictor(onnx)
    with pytest.raises(ImportError, match=r"^predict.py runs .*model_saved_model \(TensorFlow "
                       r"SavedModel export\) with tensorflow.*pip install tensorflow$"):
        inference.check_model_path(saved, runner="predict.py")
    inference.check_model_path(tmp_path / "model.keras")  # not an export: left to the loader


def test_broken_or_missing_exports_are_named(tmp_path):
    pytest.importorskip("onnxruntime")
    (tmp_path / "model.onnx").write_bytes(b"onnx")
    with pytest.raises(ModelFileError, match=r"model.onnx is not an ONNX model"):
        Predictor(tmp_path / "model.onnx")
    with pytest.raises(ModelFileError, match=r"not found: .*gone.onnx.*--format onnx"):
        Predictor(tmp_path / "gone.onnx")


def test_predict_labels(model, predictor):
    faces = _faces(5, seed=2)
    labels = predictor.predict_labels(faces)
    expected = [CLASS_NAMES[i] for i in np.argmax(_expected(model, faces), axis=-1)]
    assert labels == expected
    assert predictor.predict_labels(faces[0]) == expected[:1]


def test_empty_batch(predictor):
    assert predictor.predict_proba(np.zeros((0, 48, 48), np.uint8)).shape == (0, 7)
    assert predictor.predict_labels(np.zeros((0, 48, 48, 1))) == []


def test_loads_a_keras_file_once(model, tmp_path):
    path = tmp_path / "model.keras"
    model.save(path)
    faces = _faces(3, seed=3)
    from_file = Predictor(path)
    np.testing.assert_allclose(from_file.predict_proba(faces), _expected(model, faces),
                               atol=1e-5)
    assert Predictor(str(path)).predict_labels(faces) == from_file.predict_labels(faces)


@pytest.mark.parametrize(
    "shape, hint",
    [((48, 48, 3), "grey"), ((2, 48, 48, 3), "grey"), ((2, 48, 48, 2), ""),
     ((47, 48), "Resize"), ((2, 64, 64), "Resize"), ((48,), ""), ((1, 1, 48, 48, 1), "")],
)
def test_rejects_wrong_shapes(predictor, shape, hint):
    with pytest.raises(ValueError, match=r"Received: images.shape=") as info:
        predictor.predict_proba(np.zeros(shape, np.uint8))
    assert hint in str(info.value)
    assert str(shape).replace(" ", "") in str(info.value).replace(" ", "")


def test_rejects_non_numeric(predictor):
    with pytest.raises(ValueError, match="Received: an array of dtype"):
        predictor.predict_proba(np.full((48, 48), "x"))


def test_rejects_wrong_model_and_batch_size(model):
    with pytest.raises(TypeError, match="Received: model="):
        Predictor(42)
    with pytest.raises(ValueError, match="Received: batch_size=0"):
        Predictor(model, batch_size=0)
    with pytest.raises(ModelFileError, match="Model file not found"):
        Predictor("no/such/model.keras")
    two_classes = build_model("baseline", num_classes=2)
    with pytest.raises(ValueError, match="expected 7"):
        Predictor(two_classes)
    inputs = keras.Input((None, None, 1))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    any_size = keras.Model(inputs, keras.layers.Dense(7)(pooled))
    with pytest.raises(ValueError, match=r"fixed image size.*Received: .*\(None, None, None, 1\)"):
        Predictor(any_size)


@pytest.mark.slow
def test_litert_file_gives_the_keras_probabilities(litert_files):
    model = keras.saving.load_model(litert_files["keras"])
    predictor = Predictor(litert_files["float"], batch_size=4)
    assert predictor.model is None and predictor.image_shape == (48, 48)
    faces = _faces(9, seed=3)
    np.testing.assert_allclose(predictor.predict_proba(faces), _expected(model, faces),
                               atol=1e-5)
    np.testing.assert_allclose(predictor.predict_proba(faces[0]),
                               _expected(model, faces[:1]), atol=1e-5)
    assert predictor.predict_proba(faces[:0]).shape == (0, len(CLASS_NAMES))


@pytest.mark.slow
def test_quantized_litert_file_is_small_and_close(litert_files):
    model = keras.saving.load_model(litert_files["keras"])
    assert litert_files["int8"].stat().st_size < 0.35 * litert_files["float"].stat().st_size
    predictor = Predictor(litert_files["int8"], num_threads=1)
    faces = _faces(32, seed=4)
    got, expected = predictor.predict_proba(faces), _expected(model, faces)
    assert np.max(np.abs(got - expected)) < 0.05
    np.testing.assert_allclose(got.sum(axis=-1), 1.0, rtol=1e-5)


def test_litert_files_that_are_missing_or_broken(tmp_path):
    with pytest.raises(ModelFileError, match="not found.*export.py --format tflite"):
        Predictor(tmp_path / "missing.tflite")
    (tmp_path / "broken.tflite").write_bytes(b"not a flatbuffer" * 8)
    with pytest.raises(ModelFileError, match="broken.tflite is not a LiteRT"):
        Predictor(tmp_path / "broken.tflite")
