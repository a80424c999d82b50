"""Backups of a run in progress: written whole or not at all, damaged ones set
aside, Keras' own backup folders still read."""

import json

import numpy as np
import pytest

import keras

from fer_keras import backup


def _trainer(seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="mse")
    return model


def _data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(16, 4)).astype("float32"), rng.normal(size=(16, 2)).astype("float32")


def _weights(model):
    return [np.array(keras.ops.convert_to_numpy(v)) for v in model.variables]


def test_each_epoch_leaves_a_named_backup_and_only_the_last_two_stay(tmp_path):
    model = _trainer()
    x, y = _data()
    model.fit(x, y, epochs=3, batch_size=8, verbose=0,
              callbacks=[backup.RunBackup(tmp_path / "backup")])
    names = sorted(p.name for p in (tmp_path / "backup").iterdir())
    assert names == [backup.backup_name(2), backup.backup_name(3)]
    assert [b.epochs for b in backup.list_backups(tmp_path / "backup")] == [3, 2]


def test_steps_backups_record_the_steps_of_the_epoch_in_progress(tmp_path):
    model = _trainer()
    x, y = _data()
    model.fit(x, y, epochs=1, batch_size=4, verbose=0,
              callbacks=[backup.RunBackup(tmp_path, save_freq=3, keep=5)])
    assert [(b.epochs, b.batch) for b in backup.list_backups(tmp_path)] == [(0, 3)]


def test_restore_loads_weights_and_optimizer_state(tmp_path):
    model = _trainer()
    x, y = _data()
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[backup.RunBackup(tmp_path)])
    fresh = _trainer(seed=1)
    loaded = backup.restore(fresh, tmp_path)
    assert loaded.epochs == 2
    assert int(keras.ops.convert_to_numpy(fresh.optimizer.iterations)) == 4
    for a, b in zip(_weights(fresh), _weights(model)):
        np.testing.assert_array_equal(a, b)


def test_a_backup_cut_short_is_set_aside_and_the_previous_one_loaded(tmp_path, capsys):
    model = _trainer()
    x, y = _data()
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[backup.RunBackup(tmp_path)])
    newest = tmp_path / backup.backup_name(2)
    newest.write_bytes(newest.read_bytes()[:500])
    fresh = _trainer(seed=1)
    assert backup.restore(fresh, tmp_path).epochs == 1
    assert "Set aside the backup" in capsys.readouterr().out
    assert (tmp_path / (newest.name + ".damaged")).exists() and not newest.exists()
    assert int(keras.ops.convert_to_numpy(fresh.optimizer.iterations)) == 2


def test_when_no_backup_loads_the_model_is_left_as_it_was(tmp_path):
    (tmp_path / backup.backup_name(1)).write_bytes(b"not hdf5 at all")
    model = _trainer()
    before = _weights(model)
    assert backup.restore(model, tmp_path) is None
    for a, b in zip(_weights(model), before):
        np.testing.assert_array_equal(a, b)
    assert backup.list_backups(tmp_path) == []


def test_a_folder_written_by_keras_backup_and_restore_is_resumed(tmp_path):
    model = _trainer()
    x, y = _data()
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[
        keras.callbacks.BackupAndRestore(str(tmp_path), delete_checkpoint=False)
    ])
    assert json.loads((tmp_path / "training_metadata.json").read_text())["epoch"] == 2
    fresh = _trainer(seed=1)
    assert backup.restore(fresh, tmp_path).epochs == 2
    for a, b in zip(_weights(fresh), _weights(model)):
        np.testing.assert_array_equal(a, b)
    # Its next backup replaces Keras' files once two of its own exist.
    fresh.fit(x, y, initial_epoch=2, epochs=4, batch_size=8, verbose=0,
              callbacks=[backup.RunBackup(tmp_path)])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        backup.backup_name(3), backup.backup_name(4)
    ]


def test_a_non_finite_loss_is_not_backed_up(tmp_path):
    model = _trainer()
    callback = backup.RunBackup(tmp_path)
    callback.set_model(model)
    callback.on_epoch_end(0, {"loss": float("nan")})
    assert backup.list_backups(tmp_path) == []
    callback.on_epoch_end(0, {"loss": 0.5})
    assert [b.epochs for b in backup.list_backups(tmp_path)] == [1]


@pytest.mark.parametrize("kwargs", [{"save_freq": 0}, {"save_freq": "batch"}, {"keep": 0}])
def test_bad_settings_are_refused(tmp_path, kwargs):
    with pytest.raises(ValueError, match="Received"):
        backup.RunBackup(tmp_path, **kwargs)
