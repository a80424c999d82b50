import zipfile

import h5py
import numpy as np
import pytest

import keras

import fer_keras
from fer_keras import compact, loading


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("compact")
    model = fer_keras.build_model("cbam")
    # Non-trivial batch-norm statistics, so they are part of the check.
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(np.full(layer.moving_mean.shape, 0.3, "float32"))
            layer.moving_variance.assign(np.full(layer.moving_variance.shape, 2.5, "float32"))
    model.save(folder / "full.keras")
    compact.save_float16(folder / "full.keras", folder / "half.keras")
    return model, folder


def test_weights_are_float16_and_the_file_half_the_size(saved):
    _, folder = saved
    with zipfile.ZipFile(folder / "half.keras") as archive:
        with archive.open(compact.WEIGHTS_FILE) as raw, h5py.File(raw, "r") as weights:
            dtypes = set()
            weights.visititems(
                lambda name, item: dtypes.add(item.dtype)
                if isinstance(item, h5py.Dataset) else None
            )
    assert dtypes == {np.dtype("float16")}
    ratio = (folder / "half.keras").stat().st_size / (folder / "full.keras").stat().st_size
    assert 0.35 < ratio < 0.55


def test_loads_as_float32_with_the_same_logits(saved):
    model, folder = saved
    loaded = loading.load_model(folder / "half.keras")
    assert {w.dtype for w in loaded.weights} == {"float32"}
    for original, halved in zip(model.weights, loaded.weights):
        expected = np.asarray(original).astype("float16").astype("float32")
        np.testing.assert_array_equal(np.asarray(halved), expected, err_msg=original.path)
    x = np.random.default_rng(0).integers(0, 256, (4, 48, 48, 1)).astype("float32")
    reference = model.predict(x, verbose=0)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), reference,
                               atol=1e-3 * np.abs(reference).max() + 1e-5)


def test_rejects_what_is_not_a_keras_archive(tmp_path):
    (tmp_path / "m.keras").write_text("hello")
    with pytest.raises(ValueError, match="not a `.keras` archive"):
        compact.save_float16(tmp_path / "m.keras", tmp_path / "out.keras")
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as archive:
        archive.writestr("readme.txt", "hi")
    with pytest.raises(ValueError, match="has no model.weights.h5"):
        compact.save_float16(tmp_path / "other.zip", tmp_path / "out.keras")
