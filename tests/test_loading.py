import os
from pathlib import Path

import numpy as np
import pytest

import keras

import fer_keras
from fer_keras import loading, models


def test_round_trip_checks_and_loads(tmp_path):
    model = fer_keras.build_model("baseline")
    model.save(tmp_path / "m.keras")
    loaded = loading.load_model(tmp_path / "m.keras")
    x = np.random.default_rng(0).integers(0, 256, (2, 48, 48, 1)).astype("float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def test_missing_file(tmp_path):
    # The command to run is named as installed, and as a clone has it.
    with pytest.raises(loading.ModelFileError, match=r"nope.keras. Train one with "
                       r"`fer-keras train` \(in a clone, `python train.py`\)"):
        loading.load_model(tmp_path / "nope.keras")


def test_a_missing_pretrained_model_names_the_command_that_trains_it(monkeypatch, tmp_path):
    monkeypatch.setattr(loading, "PRETRAINED_DIR", tmp_path)
    with pytest.raises(loading.ModelFileError, match=r"'vgg'.*Available: none yet.*"
                       r"`fer-keras train --model vgg` \(in a clone, "
                       r"`python train.py --model vgg`\)"):
        loading.pretrained_path("vgg")


def test_not_a_keras_file(tmp_path):
    path = tmp_path / "m.keras"
    path.write_text("hello")
    with pytest.raises(loading.ModelFileError, match="not a Keras model file"):
        loading.load_model(path)


def test_corrupt_archive(tmp_path):
    import zipfile

    path = tmp_path / "m.keras"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", "{not json")
    with pytest.raises(loading.ModelFileError, match="Could not load"):
        loading.load_model(path)


def test_wrong_number_of_classes(tmp_path):
    fer_keras.build_model("baseline", num_classes=3).save(tmp_path / "m.keras")
    with pytest.raises(loading.ModelFileError, match="3 outputs; expected 7"):
        loading.load_model(tmp_path / "m.keras")


def test_wrong_input_shape(tmp_path):
    inputs = keras.Input((48, 48, 3))
    outputs = keras.layers.Dense(7)(keras.layers.GlobalAveragePooling2D()(inputs))
    keras.Model(inputs, outputs).save(tmp_path / "m.keras")
    with pytest.raises(loading.ModelFileError, match="grey images"):
        loading.load_model(tmp_path / "m.keras")


def test_find_latest_model(tmp_path):
    import os
    import time

    for i, name in enumerate(("old", "new")):
        run = tmp_path / name
        run.mkdir()
        (run / "model.keras").write_bytes(b"x")
        os.utime(run / "model.keras", (time.time() + i, time.time() + i))
    assert loading.find_latest_model(tmp_path) == tmp_path / "new" / "model.keras"


def test_unknown_pretrained_lists_what_ships():
    with pytest.raises(loading.ModelFileError, match="No pretrained model named 'nope'"):
        loading.pretrained_path("nope")


# The pretrained models that ship in the package.

SHIPPED = sorted(path.stem for path in loading.PRETRAINED_DIR.glob("*.keras"))


def _card(name):
    import json

    return json.loads(loading.pretrained_path(name).with_suffix(".json").read_text())


def test_the_default_is_shipped_and_is_what_load_pretrained_gives_without_a_name():
    assert loading.DEFAULT_PRETRAINED in SHIPPED and "cbam" in SHIPPED
    assert loading.pretrained_path() == loading.pretrained_path(loading.DEFAULT_PRETRAINED)
    assert loading.find_latest_model(Path("/nonexistent-runs")) == loading.pretrained_path()
    assert fer_keras.load_pretrained().name == loading.DEFAULT_PRETRAINED


def test_the_default_is_the_most_accurate_on_validation():
    accuracy = {name: _card(name)["val"]["accuracy"] for name in SHIPPED}
    assert max(accuracy, key=accuracy.get) == loading.DEFAULT_PRETRAINED, accuracy


@pytest.mark.parametrize("name", SHIPPED)
def test_pretrained_ships_and_maps_raw_pixels_to_logits(name):
    path = loading.pretrained_path(name)
    assert path.stat().st_size < 16 * 2**20, "keep the shipped file small (float16 weights)"
    model = fer_keras.load_pretrained(name)
    assert tuple(model.inputs[0].shape) == (None, 48, 48, 1)
    assert {w.dtype for w in model.weights} == {"float32"}
    x = np.random.default_rng(0).integers(0, 256, (3, 48, 48, 1)).astype("float32")
    logits = np.asarray(model.predict(x, verbose=0))
    assert logits.shape == (3, len(fer_keras.CLASS_NAMES)) and np.isfinite(logits).all()


@pytest.mark.parametrize("name", SHIPPED)
def test_pretrained_card_matches_the_file(name):
    from fer_keras import ensemble

    info = _card(name)
    card = loading.pretrained_path(name).with_suffix(".md").read_text()
    model = fer_keras.load_pretrained(name)
    if "members" in info:
        architectures = [m["run"]["model"] for m in info["members"]]
        assert architectures == name.split("_")
        # Each member is the architecture its card names (Grad-CAM finds its layer).
        layers = [models.gradcam_layer_name(m) for m in ensemble.members(model)]
        assert [layer.split("_")[0] for layer in layers] == architectures
    else:
        assert info["run"]["model"] == name and not ensemble.is_ensemble(model)
    assert info["file_bytes"] == loading.pretrained_path(name).stat().st_size
    # The card's zoom is the file's: crop44 trained them on 44-pixel crops.
    assert info["inference_zoom"] == models.inference_zoom(model) == pytest.approx(44 / 48)
    assert f"{info['test']['accuracy']:.2%}" in card
    assert f"{info['val']['accuracy']:.2%}" in card


@pytest.mark.skipif(not os.environ.get("FER2013_DIR")
                    or not Path(os.environ["FER2013_DIR"]).is_dir(),
                    reason="needs the real FER2013 (set FER2013_DIR)")
@pytest.mark.parametrize("name", SHIPPED)
def test_pretrained_scores_what_its_card_says(name):
    from fer_keras import data

    info = _card(name)
    images, labels = data.load_split(data.locate_data(os.environ["FER2013_DIR"]), "test")
    if len(labels) != info["test"]["num_samples"]:
        pytest.skip(f"test split has {len(labels)} images, the card {info['test']['num_samples']}")
    stored = np.array(info["test_predictions"])
    assert (stored == labels).mean() == pytest.approx(info["test"]["accuracy"], abs=1e-9)
    # The file under this backend gives the card's predictions, on a sample.
    sample = np.random.default_rng(0).choice(len(labels), 600, replace=False)
    logits = fer_keras.load_pretrained(name).predict(images[sample], verbose=0)
    changed = int((np.argmax(logits, axis=-1) != stored[sample]).sum())
    # Another backend may round a near-tie the other way; a few images at most.
    assert changed <= 3, changed
