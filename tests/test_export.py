"""Export round trips: each artifact gives the Keras logits, for any batch size.

Each backend exports the formats Keras can write from it (tensorflow: all
three); export.py, which uses TensorFlow, is run once end to end."""

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import keras

import fer_keras
from fer_keras import export

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "model.keras"
    fer_keras.build_model("cbam").save(path)
    return path


@pytest.fixture(scope="module")
def model(model_path):
    return fer_keras.load_model(model_path)


def exported(model, folder, format):
    """`model` exported as `format` into `folder`; skips where this backend cannot."""
    reason = exportable(format)
    if reason:
        pytest.skip(reason)
    pytest.importorskip(export.EXPORT_FORMATS[format].runtime[0])
    return export.export_model(model, export.default_path(folder / "model.keras", format),
                               format)


def exportable(format):
    try:
        export.check_format(format)
    except (ValueError, ImportError) as err:
        return str(err)
    return None


@pytest.mark.parametrize("format", export.FORMATS)
def test_round_trip_gives_the_keras_logits(model, tmp_path, format):
    path = exported(model, tmp_path, format)
    run = export.load_exported(path, format)
    images = np.random.default_rng(1).uniform(0, 255, (5, 48, 48, 1)).astype("float32")
    for batch in (images[:1], images):
        expected = keras.ops.convert_to_numpy(model(batch, training=False))
        got = run(batch)
        assert got.shape == (len(batch), 7)
        assert np.max(np.abs(got - expected)) < export.MAX_ABS_DIFF
    assert export.compare(model, path, format) < export.MAX_ABS_DIFF


@pytest.mark.parametrize("format", export.FORMATS)
def test_an_ensemble_exports_as_one_model(tmp_path, format):
    keras.utils.set_random_seed(0)
    ensemble = fer_keras.build_ensemble([fer_keras.build_model("baseline") for _ in range(2)])
    path = exported(ensemble, tmp_path, format)
    assert export.compare(ensemble, path, format) < export.MAX_ABS_DIFF


@pytest.mark.parametrize("format", export.FORMATS)
def test_an_export_of_a_model_that_zooms_in_keeps_its_ten_crop_views(tmp_path, format):
    from fer_keras import models
    from fer_keras.inference import Predictor

    keras.utils.set_random_seed(0)
    zoomed = models.with_inference_zoom(fer_keras.build_model("baseline"), 44 / 48)
    path = exported(zoomed, tmp_path, format)
    assert export.exported_zoom(path) == pytest.approx(44 / 48)
    faces = np.random.default_rng(2).uniform(0, 255, (3, 48, 48, 1)).astype("float32")
    predictor = Predictor(path, tta="ten_crop")
    assert predictor.inference_zoom == pytest.approx(44 / 48)
    np.testing.assert_allclose(predictor.predict_proba(faces),
                               Predictor(zoomed, tta="ten_crop").predict_proba(faces), atol=1e-4)
    # Exported again without the zoom, over the same path: the note goes.
    export.export_model(fer_keras.build_model("baseline"), path, format)
    assert export.exported_zoom(path) is None


def test_unsupported_pairs_say_which_backend_works():
    with pytest.raises(ValueError, match="cannot export tflite under the jax backend"):
        export.check_format("tflite", backend="jax")
    with pytest.raises(ValueError, match="cannot export saved_model under the torch"):
        export.check_format("saved_model", backend="torch")
    with pytest.raises(ValueError, match="Received: format='pb'"):
        export.check_format("pb")


def test_missing_converter_says_what_to_install(monkeypatch):
    monkeypatch.setattr(export, "installed", lambda module: module != "tf2onnx")
    with pytest.raises(ImportError, match="pip install tf2onnx"):
        export.check_format("onnx", backend="tensorflow")
    monkeypatch.setattr(export, "installed", lambda module: module != "onnxruntime")
    with pytest.raises(ImportError, match="pip install onnxruntime"):
        export.load_exported("model.onnx", "onnx")


def test_tflite_path_must_end_in_tflite(model, tmp_path):
    if exportable("tflite"):
        pytest.skip(exportable("tflite"))
    with pytest.raises(ValueError, match=r"Received: path=.*model\.lite"):
        export.export_model(model, tmp_path / "model.lite", "tflite")


def test_default_paths():
    assert export.default_path("runs/a/model.keras", "onnx") == Path("runs/a/model.onnx")
    assert export.default_path("runs/a/model.keras", "tflite") == Path("runs/a/model.tflite")
    assert export.default_path("runs/a/model.keras", "saved_model", ".") == Path(
        "model_saved_model")


def test_quantize_is_for_tflite_under_tensorflow():
    export.check_quantize("tflite", backend="tensorflow")
    with pytest.raises(ValueError, match="Received: format='onnx', backend='tensorflow'"):
        export.check_quantize("onnx", backend="tensorflow")
    with pytest.raises(ValueError, match="backend='jax'. Use --format tflite --backend tensorflow"):
        export.check_quantize("tflite", backend="jax")


def test_each_format_is_one_spec():
    """The older per-format tables are views of EXPORT_FORMATS."""
    assert export.FORMATS == ("saved_model", "onnx", "tflite")
    for name, spec in export.EXPORT_FORMATS.items():
        assert spec.name == name
        assert export.KERAS_FORMATS[name] == spec.keras_format
        assert export.SUFFIXES[name] == spec.suffix
    with pytest.raises(dataclasses.FrozenInstanceError):
        export.EXPORT_FORMATS["onnx"].suffix = ".pb"


def test_format_of_a_path(tmp_path):
    saved = tmp_path / "m_saved_model"
    saved.mkdir()
    assert export.format_of(saved) is None
    (saved / "saved_model.pb").write_bytes(b"pb")
    assert export.format_of(saved).name == "saved_model"
    assert export.format_of("a/model.ONNX").name == "onnx"
    assert export.format_of("model.tflite").name == "tflite"
    assert export.format_of("model.keras") is None
    with pytest.raises(ValueError, match=r"Received: path=model.keras"):
        export.load_exported("model.keras")


@pytest.mark.slow
def test_export_script_checks_its_output(model_path):
    for module in ("tensorflow", "tf2onnx", "onnxruntime"):
        pytest.importorskip(module)
    format = "onnx"
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "export.py"), "--model-path", str(model_path),
         "--format", format],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    out = model_path.with_suffix(f".{format}")
    assert f"Wrote {format} to {out}" in result.stdout
    assert "Checked: max" in result.stdout
    assert out.stat().st_size > 1_000_000
