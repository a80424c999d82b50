"""Tests of fer_keras.checkpoint: the small float16 checkpoint a lost run continues from."""

import os
import zipfile

import numpy as np
import pytest

import keras

import fer_keras
from fer_keras import checkpoint, compact
from fer_keras.checkpoint import CommittedCheckpoint, read_checkpoint_state, save_checkpoint

STATE = {"model": "baseline", "seed": 3, "history": [{"epoch": "0", "loss": "1.5"}]}


def _numpy(weights):
    return [keras.ops.convert_to_numpy(w) for w in weights]


def _random_model(seed, **kwargs):
    """A baseline whose weights differ from any other seed's."""
    keras.utils.set_random_seed(seed)
    return fer_keras.build_model("baseline", **kwargs)


def _as_float16(weights):
    return [np.asarray(w).astype("float16").astype("float32") for w in weights]


def _images(n=3):
    return np.random.default_rng(0).uniform(0, 255, (n, 48, 48, 1)).astype("float32")


def test_round_trip_keeps_weights_to_float16_and_the_state(tmp_path):
    model = _random_model(0)
    path = save_checkpoint(model, tmp_path / "sub" / "run.keras", STATE)
    assert path == tmp_path / "sub" / "run.keras"
    assert read_checkpoint_state(path) == STATE

    # An ordinary model file: fer_keras.load_model reads it, float32 weights
    # that are the originals rounded to float16 (not the float32 originals).
    loaded = fer_keras.load_model(path)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    assert {w.dtype for w in loaded.weights} == {"float32"}
    original = _numpy(model.weights)
    for got, want in zip(_numpy(loaded.weights), _as_float16(original)):
        np.testing.assert_array_equal(got, want)
    assert any(not np.array_equal(a, b) for a, b in zip(_as_float16(original), original))
    x = _images()
    want = keras.ops.convert_to_numpy(model(x, training=False))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x, training=False)), want,
                               atol=1e-2 * np.abs(want).max())


def test_checkpoint_is_about_half_a_full_save(tmp_path):
    """Float16 is what makes the file small enough to commit."""
    model = _random_model(0)
    model.save(tmp_path / "full.keras")
    save_checkpoint(model, tmp_path / "half.keras", STATE)
    ratio = (tmp_path / "half.keras").stat().st_size / (tmp_path / "full.keras").stat().st_size
    assert 0.35 < ratio < 0.6


def test_failed_save_keeps_the_previous_checkpoint_and_leaves_no_temp_files(
        tmp_path, monkeypatch):
    """A crash half-way through writing must not cost the last good checkpoint."""
    path = tmp_path / "run.keras"
    first = _random_model(1)
    save_checkpoint(first, path, {**STATE, "epoch": 1})
    before = path.read_bytes()

    real = compact.save_float16

    def crash_half_way(source, target):
        real(source, target)
        with open(target, "r+b") as f:
            f.truncate(os.path.getsize(target) // 2)
        raise OSError("disk full")

    monkeypatch.setattr(compact, "save_float16", crash_half_way)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(_random_model(2), path, {**STATE, "epoch": 2})
    assert path.read_bytes() == before
    assert read_checkpoint_state(path)["epoch"] == 1
    for got, want in zip(_numpy(fer_keras.load_model(path).weights),
                         _as_float16(_numpy(first.weights))):
        np.testing.assert_array_equal(got, want)
    assert [p.name for p in tmp_path.iterdir()] == ["run.keras"]


def test_new_checkpoint_is_renamed_over_the_old_from_the_same_folder(tmp_path, monkeypatch):
    """Only a rename within one file system is atomic, so the new archive is
    built beside the target, not in the system's temporary folder."""
    path = tmp_path / "run.keras"
    save_checkpoint(_random_model(1), path, {**STATE, "epoch": 1})
    renames = []
    real = os.replace

    def recording_replace(source, target):
        renames.append((os.path.abspath(source), os.path.abspath(target)))
        real(source, target)

    monkeypatch.setattr(checkpoint.os, "replace", recording_replace)
    save_checkpoint(_random_model(2), path, {**STATE, "epoch": 2})
    (source, target), = renames
    assert target == str(path)
    assert os.path.dirname(os.path.dirname(source)) == str(tmp_path)
    assert read_checkpoint_state(path)["epoch"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["run.keras"]


def test_random_file_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "run.keras"
    path.write_bytes(np.random.default_rng(0).bytes(1000))
    with pytest.raises(ValueError, match=r"run.keras is not a training checkpoint.*"
                       r"BadZipFile.*another --checkpoint path"):
        read_checkpoint_state(path)


def test_plain_model_file_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "model.keras"
    _random_model(0).save(path)
    with pytest.raises(ValueError, match=r"model.keras is not a training checkpoint.*KeyError"):
        read_checkpoint_state(path)


def test_state_that_is_not_json_and_a_missing_file_are_refused(tmp_path):
    path = tmp_path / "run.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(checkpoint.STATE_FILE, "{epoch: 1")
    with pytest.raises(ValueError, match="not a training checkpoint.*JSONDecodeError"):
        read_checkpoint_state(path)
    with pytest.raises(ValueError, match="absent.keras is not a training checkpoint"):
        read_checkpoint_state(tmp_path / "absent.keras")


@pytest.mark.parametrize("every", [0, -2])
def test_every_must_be_a_positive_number_of_epochs(tmp_path, every):
    with pytest.raises(ValueError, match=f"positive number of epochs. Received: every={every}"):
        CommittedCheckpoint(tmp_path / "run.keras", _random_model(0), dict, every=every)


def test_callback_writes_every_n_epochs_with_the_epochs_done(tmp_path):
    path = tmp_path / "run.keras"
    model = _random_model(0)
    calls = []

    def state():
        calls.append(len(calls))
        return {"model": "baseline", "call": len(calls)}

    callback = CommittedCheckpoint(path, model, state, every=2)
    # The model being fit (a harness) is not what lands in the file.
    callback.set_model(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]))
    callback.on_epoch_end(0)
    assert not path.exists() and not calls
    callback.on_epoch_end(1)
    assert read_checkpoint_state(path) == {"model": "baseline", "call": 1, "epoch": 2}
    callback.on_epoch_end(2)
    assert read_checkpoint_state(path)["epoch"] == 2
    model.get_layer("baseline_logits").bias.assign(np.full(7, 0.5, "float32"))
    callback.on_epoch_end(3)
    assert read_checkpoint_state(path) == {"model": "baseline", "call": 2, "epoch": 4}
    loaded = fer_keras.load_model(path)
    assert loaded.name == "baseline"
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(loaded.get_layer("baseline_logits").bias), 0.5)


@pytest.mark.channels_first
def test_channels_first_model_is_saved_channels_last(tmp_path):
    """The file is channels-last whatever layout trained, like every saved model."""
    path = tmp_path / "run.keras"
    first = _random_model(0, data_format="channels_first")
    last = _random_model(1)
    callback = CommittedCheckpoint(path, first, lambda: {}, save_as=last)
    callback.on_epoch_end(0)
    loaded = fer_keras.load_model(path)
    names = [layer.name for layer in loaded.layers]
    assert names == [layer.name for layer in fer_keras.build_model("baseline").layers]
    assert "baseline_channels_first" not in names
    assert loaded.get_layer("baseline_block1_conv").data_format == "channels_last"
    for got, want in zip(_numpy(loaded.weights), _as_float16(_numpy(first.weights))):
        np.testing.assert_array_equal(got, want)
    x = _images()
    want = keras.ops.convert_to_numpy(first(x, training=False))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x, training=False)), want,
                               atol=1e-2 * np.abs(want).max())
