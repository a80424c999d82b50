import numpy as np
import pytest

import keras

import fer_keras
from fer_keras import loading


def test_round_trip_checks_and_loads(tmp_path):
    model = fer_keras.build_model("baseline")
    model.save(tmp_path / "m.keras")
    loaded = loading.load_model(tmp_path / "m.keras")
    x = np.random.default_rng(0).integers(0, 256, (2, 48, 48, 1)).astype("float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def test_missing_file(tmp_path):
    with pytest.raises(loading.ModelFileError, match="not found"):
        loading.load_model(tmp_path / "nope.keras")


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
