"""The web demo's answers for one upload, without the server: the same faces
as the library finds in the decoded photo, a copy scaled for the page, the
limits on photos, and when Grad-CAM is offered."""

import base64
import importlib.util
import io

import numpy as np
import pytest
from PIL import Image

from fer_keras import CLASS_NAMES
from fer_keras.demo_analysis import DemoAnalyzer, gradcam_unavailable
from fer_keras.media import ImageFileError

skimage_data = pytest.importorskip("skimage.data")


@pytest.fixture(scope="module")
def analyzer(baseline_path):
    return DemoAnalyzer(baseline_path)


def encoded(pixels: np.ndarray, image_format: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, image_format)
    return buffer.getvalue()


def shown(data_url: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))))


def test_an_upload_gets_the_faces_the_library_finds(analyzer):
    astronaut = skimage_data.astronaut()
    answer = analyzer.predict(encoded(astronaut))
    expected = analyzer.recognizer.predict(astronaut)
    assert [face["box"] for face in answer["faces"]] == [list(f.box) for f in expected]
    np.testing.assert_allclose([list(face["probabilities"].values()) for face in answer["faces"]],
                               [f.probabilities for f in expected], atol=1e-6)
    assert list(answer["faces"][0]["probabilities"]) == list(CLASS_NAMES)


def test_a_large_photo_comes_back_scaled_for_the_page(analyzer):
    large = np.asarray(Image.fromarray(skimage_data.astronaut()).resize((2048, 2048)))
    answer = analyzer.predict(encoded(large, "JPEG"))
    assert (answer["width"], answer["height"]) == (2048, 2048)
    assert shown(answer["image"]).shape == (1024, 1024, 3)
    # Boxes are in the photo's own pixels: one is around the astronaut's face.
    assert any(x < 225 * 4 < x + w and y < 112 * 4 < y + h
               for x, y, w, h in (face["box"] for face in answer["faces"]))


def test_photos_over_the_pixel_limit_and_empty_uploads_are_refused(analyzer, monkeypatch):
    monkeypatch.setattr(analyzer, "max_pixels", 512 * 512 - 1)
    with pytest.raises(ImageFileError, match=r"The upload is too large.*262,143 pixels"):
        analyzer.predict(encoded(skimage_data.astronaut()))
    with pytest.raises(ImageFileError, match="The upload is empty"):
        analyzer.predict(b"")


def test_gradcam_is_offered_for_keras_files_with_its_dependencies(monkeypatch):
    assert "need a .keras model; cbam_int8.tflite is an export" in gradcam_unavailable(
        "cbam_int8.tflite")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None
                        if name == "tf_keras_vis" else real_find_spec(name, *args))
    assert "pip install tf-keras-vis" in gradcam_unavailable("cbam.keras")
    monkeypatch.undo()
    installed = all(importlib.util.find_spec(m) for m in ("tensorflow", "tf_keras_vis"))
    assert (gradcam_unavailable("cbam.keras") is None) == installed


def test_an_export_named_like_a_keras_file_offers_no_gradcam(tmp_path):
    """The file's name used to decide: a SavedModel folder named model.keras,
    which `Predictor` runs as the export it is, was offered Grad-CAM."""
    saved_model = tmp_path / "model.keras"
    saved_model.mkdir()
    (saved_model / "saved_model.pb").write_bytes(b"")
    assert gradcam_unavailable(saved_model) == (
        "Grad-CAM maps need a .keras model; model.keras is an export that only predicts.")


def test_a_litert_model_predicts_and_offers_no_gradcam(litert_files):
    analyzer = DemoAnalyzer(litert_files["float"])
    info = analyzer.info()
    assert info["model"] == "model.tflite" and not info["gradcam"]
    assert ".keras model" in info["gradcam_note"]
    answer = analyzer.predict(encoded(skimage_data.astronaut()))
    assert len(answer["faces"]) == 1
    assert sum(answer["faces"][0]["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match=".keras model"):
        analyzer.gradcam(encoded(skimage_data.astronaut()))

