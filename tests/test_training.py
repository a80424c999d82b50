"""Training runs on tiny data: outputs, resume without gap or repeat (from the
run folder or, when it is lost, from a --checkpoint), NaN stop."""

import csv
import json
import math
import shutil
import zipfile

import h5py
import numpy as np
import pytest
from tiny_data import write_kaggle_folders

import keras

from fer_keras import backup, compact, evaluation, recipes, training
from fer_keras import data as fer_data
from fer_keras.loading import ModelFileError
from fer_keras.models import build_model, preferred_data_format


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_kaggle_folders(tmp_path_factory.mktemp("fer"))


def _config(data_dir, out, **overrides):
    recipe = recipes.get_recipe("seed").replace(epochs=overrides.pop("epochs", 2),
                                                batch_size=16)
    return training.TrainConfig(
        model=overrides.pop("model", "baseline"), recipe=recipe, data_dir=str(data_dir),
        output_dir=str(out), val_split=0.25, verbose=0, **overrides,
    )


def _history(out):
    with open(out / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_train_writes_run_folder(data_dir, tmp_path):
    out = tmp_path / "run"
    summary = training.train(_config(data_dir, out, epochs=2))
    for name in ("model.keras", "history.csv", "curves.png", "run.json"):
        assert (out / name).exists(), name
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "completed"
    assert run["backend"] == keras.backend.backend()
    assert run["epochs"] == 2 and len(run["epoch_time_s"]) == 2
    assert run["data"]["train"]["total"] + run["data"]["val"]["total"] == 7 * 16
    assert run["versions"]["keras"] == keras.__version__
    assert run["distribution"]["devices"] == 1 and run["distribution"]["global_batch"] == 16
    assert summary["best_val_accuracy"] == max(float(r["val_accuracy"]) for r in _history(out))
    assert not (out / "backup").exists()
    model = keras.saving.load_model(out / "model.keras")
    assert model.output.shape[-1] == 7


class _Interrupt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            raise KeyboardInterrupt


def test_interrupted_run_resumes_without_gap_or_repeat(data_dir, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        training.train(_config(data_dir, out, epochs=3, callbacks=[_Interrupt()]))
    assert [r["epoch"] for r in _history(out)] == ["0"]
    assert (out / "curves.png").stat().st_size > 0
    assert [b.epochs for b in backup.list_backups(out / "backup")] == [1]

    summary = training.train(_config(data_dir, out, epochs=3))
    assert [int(r["epoch"]) for r in _history(out)] == [0, 1, 2]
    assert summary["epochs"] == 3 and summary["status"] == "completed"

    again = training.train(_config(data_dir, out, epochs=3))
    assert [int(r["epoch"]) for r in _history(out)] == [0, 1, 2]
    assert again["status"] == "completed"


def test_device_pipeline_trains_the_plain_model_and_resumes(data_dir, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        training.train(_config(data_dir, out, epochs=2, pipeline="device",
                               callbacks=[_Interrupt()]))
    summary = training.train(_config(data_dir, out, epochs=2, pipeline="device"))
    assert [int(r["epoch"]) for r in _history(out)] == [0, 1]
    assert summary["status"] == "completed" and summary["pipeline"] == "device"
    assert summary["steps_per_epoch"] == 84 // 16
    saved = keras.saving.load_model(out / "model.keras")
    names = [layer.name for layer in build_model("baseline").layers]
    assert [layer.name for layer in saved.layers] == names
    assert sorted(p.name for p in out.glob("*.keras")) == ["model.keras"]


class _KeepTrainedModel(keras.callbacks.Callback):
    def on_train_end(self, logs=None):
        self.trained = self.model


@pytest.mark.channels_first
def test_channels_first_training_saves_a_channels_last_model(data_dir, tmp_path):
    out = tmp_path / "run"
    keep = _KeepTrainedModel()
    summary = training.train(_config(data_dir, out, epochs=1, model="cbam",
                                     data_format="channels_first", callbacks=[keep]))
    assert summary["data_format"] == "channels_first"
    assert keep.trained.get_layer("cbam_block1_cbam").data_format == "channels_first"
    saved = keras.saving.load_model(out / "model.keras")
    names = [layer.name for layer in build_model("cbam").layers]
    assert [layer.name for layer in saved.layers] == names
    assert saved.get_layer("cbam_block1_cbam").data_format == "channels_last"
    x = np.random.default_rng(0).uniform(0, 255, (4, 48, 48, 1)).astype("float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(saved(x, training=False)),
        keras.ops.convert_to_numpy(keep.trained(x, training=False)), atol=1e-4,
    )


class _WeightsAt(keras.callbacks.Callback):
    """The model's weights when training starts (after a restore) or at an epoch's end."""

    def __init__(self, stop_after_first_epoch=False):
        super().__init__()
        self.stop = stop_after_first_epoch

    def on_train_begin(self, logs=None):
        self.at_begin = self.model.get_weights()

    def on_epoch_end(self, epoch, logs=None):
        self.at_epoch_end = self.model.get_weights()
        if self.stop:
            raise KeyboardInterrupt


@pytest.mark.channels_first
def test_run_interrupted_in_one_layout_resumes_in_the_other(data_dir, tmp_path):
    out = tmp_path / "run"
    first = _WeightsAt(stop_after_first_epoch=True)
    with pytest.raises(KeyboardInterrupt):
        training.train(_config(data_dir, out, epochs=2, model="cbam",
                               data_format="channels_last", callbacks=[first]))
    resumed = _WeightsAt()
    summary = training.train(_config(data_dir, out, epochs=2, model="cbam",
                                     data_format="channels_first", callbacks=[resumed]))
    assert summary["data_format"] == "channels_first"
    assert [int(r["epoch"]) for r in _history(out)] == [0, 1]
    for restored, saved in zip(resumed.at_begin, first.at_epoch_end):
        np.testing.assert_array_equal(restored, saved)


def test_auto_data_format_is_the_backends_choice_and_bad_ones_fail_early(data_dir, tmp_path):
    summary = training.train(_config(data_dir, tmp_path / "run", epochs=1))
    assert summary["data_format"] == preferred_data_format()
    with pytest.raises(ValueError, match="Received: data_format='NHWC'"):
        training.train(_config(tmp_path / "absent", tmp_path / "bad", data_format="NHWC"))


def test_unknown_pipeline_is_refused_before_loading(tmp_path):
    config = _config(tmp_path / "absent", tmp_path / "run", pipeline="gpu")
    with pytest.raises(ValueError,
                       match="Unknown pipeline 'gpu'. Expected one of: tfdata, device."):
        training.train(config)


def test_train_arrays_must_be_what_load_split_returns(tmp_path):
    images = np.zeros((8, 48, 48, 1), np.float32)
    config = _config(tmp_path / "absent", tmp_path / "run",
                     train_arrays=(images, np.zeros(8, np.int32)))
    with pytest.raises(ValueError, match=r"uint8 images of shape \(N, 48, 48, 1\).*"
                       r"Received: images of shape \(8, 48, 48, 1\) and dtype float32"):
        training.train(config)
    assert not (tmp_path / "run").exists()


def test_history_rows_beyond_the_backup_are_dropped(data_dir, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        training.train(_config(data_dir, out, epochs=2, callbacks=[_Interrupt()]))
    rows = _history(out)
    with open(out / "history.csv", "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writerow({**rows[0], "epoch": "1"})
    training.train(_config(data_dir, out, epochs=2))
    assert [int(r["epoch"]) for r in _history(out)] == [0, 1]


class _Epochs(keras.callbacks.Callback):
    """What fit ran: the epochs, the optimizer's step and rate as each began,
    the weights at the start and after the last epoch; raises after `stop_after`."""

    def __init__(self, stop_after=None):
        super().__init__()
        self.stop_after = stop_after
        self.epochs, self.steps, self.rates = [], {}, {}

    def on_train_begin(self, logs=None):
        self.at_begin = [np.array(w) for w in self.model.get_weights()]

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        self.epochs.append(epoch)
        self.steps[epoch] = int(keras.ops.convert_to_numpy(optimizer.iterations))
        self.rates[epoch] = float(keras.ops.convert_to_numpy(optimizer.learning_rate))

    def on_epoch_end(self, epoch, logs=None):
        self.at_end = [np.array(w) for w in self.model.get_weights()]
        if epoch == self.stop_after:
            raise KeyboardInterrupt


STEPS = 2


def _checkpointed_config(data_dir, out, checkpoint, **overrides):
    """4 epochs of 2 steps, cosine decay after a warm-up epoch: the rate tells a
    schedule that goes on from one that starts again."""
    config = _config(data_dir, out, epochs=4, steps_per_epoch=STEPS,
                     checkpoint=str(checkpoint), **overrides)
    config.recipe = config.recipe.replace(schedule="cosine", warmup_epochs=1)
    return config


def _cosine_rate(recipe, step):
    """The rate after `step` steps of 4 epochs of STEPS, past the warm-up epoch."""
    progress = (step - STEPS) / (4 * STEPS - STEPS)
    return recipe.lr * 0.5 * (1 + math.cos(math.pi * progress))


@pytest.fixture(scope="module")
def lost_run(data_dir, tmp_path_factory):
    """A run stopped after 2 of 4 epochs whose folder was then lost, and its
    checkpoint, kept elsewhere."""
    root = tmp_path_factory.mktemp("lost")
    out, checkpoint = root / "run", root / "kept" / "checkpoint.keras"
    first = _Epochs(stop_after=1)
    with pytest.raises(KeyboardInterrupt):
        training.train(_checkpointed_config(data_dir, out, checkpoint, callbacks=[first]))
    rows = _history(out)
    shutil.rmtree(out)
    return checkpoint, rows, first


def test_lost_run_folder_continues_from_the_checkpoint(data_dir, lost_run, tmp_path):
    kept, first_rows, first = lost_run
    checkpoint = tmp_path / "checkpoint.keras"
    shutil.copy(kept, checkpoint)
    assert [int(r["epoch"]) for r in first_rows] == [0, 1]
    # Another folder, as under another backend (runs/MODEL_RECIPE_BACKEND):
    # the checkpoint's path alone carries the run.
    out = tmp_path / "elsewhere"
    config = _checkpointed_config(data_dir, out, checkpoint, callbacks=[then := _Epochs()])
    summary = training.train(config)

    assert then.epochs == [2, 3]
    assert summary["status"] == "completed" and summary["epochs"] == 4
    assert summary["continued_from_checkpoint_after_epoch"] == 2
    rows = _history(out)
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3]
    assert rows[:2] == first_rows
    # The weights it goes on from are the interrupted run's, as float16.
    for got, saved in zip(then.at_begin, first.at_end):
        np.testing.assert_array_equal(got, saved.astype("float16").astype("float32"))
    # The schedule goes on at step 2 * STEPS, past the warm-up, where the
    # interrupted run left it; a restart would begin its warm-up at 0.
    recipe = config.recipe
    assert then.steps[2] == 2 * STEPS
    assert then.rates[2] == pytest.approx(_cosine_rate(recipe, 2 * STEPS), rel=1e-5)
    assert then.rates[2] == pytest.approx(0.75 * recipe.lr, rel=1e-5)
    assert float(first_rows[1]["learning_rate"]) == pytest.approx(then.rates[2], rel=1e-5)
    assert float(rows[2]["learning_rate"]) == pytest.approx(
        _cosine_rate(recipe, 3 * STEPS), rel=1e-5)
    assert (out / "model.keras").exists() and not (out / "backup").exists()
    # Weights alone: the optimizer's state would double the file, and the
    # continued run starts a fresh optimizer anyway.
    with zipfile.ZipFile(checkpoint) as archive, archive.open(compact.WEIGHTS_FILE) as raw:
        with h5py.File(raw, "r") as weights:
            assert "layers" in weights and "optimizer" not in weights
    state = training.read_checkpoint_state(checkpoint)
    assert state["epoch"] == 4 and [r["epoch"] for r in state["history"]] == ["0", "1", "2", "3"]


@pytest.mark.parametrize(
    "overrides, written, given",
    [
        ({"seed": 1}, "seed=0", "seed=1"),
        ({"recipe_name": "strong"}, "recipe_name='seed'", "recipe_name='strong'"),
        ({"lr": 0.002}, "recipe.lr=0.001", "recipe.lr=0.002"),
        ({"model": "kernels"}, "model='baseline'", "model='kernels'"),
    ],
    ids=["seed", "recipe_name", "recipe_field", "model"],
)
def test_checkpoint_of_another_run_is_refused(data_dir, lost_run, tmp_path, overrides,
                                              written, given):
    checkpoint = tmp_path / "checkpoint.keras"
    shutil.copy(lost_run[0], checkpoint)
    before = checkpoint.read_bytes()
    lr = overrides.pop("lr", None)
    config = _checkpointed_config(data_dir, tmp_path / "run", checkpoint, **overrides)
    config.recipe = config.recipe.replace(lr=lr)
    with pytest.raises(training.TrainingError,
                       match=rf"belongs to another run: it was written with {written}; "
                             rf"this run has {given}\. Pass the options"):
        training.train(config)
    assert checkpoint.read_bytes() == before
    assert not (tmp_path / "run" / "history.csv").exists()


def test_checkpoint_with_cross_validation_is_refused_before_loading(tmp_path):
    config = _config(tmp_path / "absent", tmp_path / "cv", folds=3,
                     checkpoint=str(tmp_path / "checkpoint.keras"))
    with pytest.raises(training.TrainingError, match="trains 3 models. Drop --checkpoint"):
        training.train(config)


class _WeightsAtStart(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.weights = [np.array(w) for w in self.model.get_weights()]


def _saved_model(path, name, seed):
    keras.utils.set_random_seed(seed)
    model = build_model(name)
    model.save(path)
    return [np.array(w) for w in model.get_weights()]


def test_init_from_starts_training_from_the_saved_weights(data_dir, tmp_path):
    source = _saved_model(tmp_path / "source.keras", "baseline", seed=123)
    (tmp_path / "run.json").write_text(json.dumps({"seed": 0, "val_split": 0.25}))
    start = _WeightsAtStart()
    training.train(_config(data_dir, tmp_path / "run", epochs=1, steps_per_epoch=1,
                           init_from=str(tmp_path / "source.keras"), callbacks=[start]))
    assert len(start.weights) == len(source)
    for got, expected in zip(start.weights, source):
        np.testing.assert_array_equal(got, expected)
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["init_from"] == str(tmp_path / "source.keras")


def test_init_from_refuses_another_validation_split(data_dir, tmp_path):
    _saved_model(tmp_path / "model.keras", "baseline", seed=0)
    (tmp_path / "run.json").write_text(json.dumps({"seed": 3, "val_split": 0.25}))
    config = _config(data_dir, tmp_path / "other", init_from=str(tmp_path / "model.keras"),
                     seed=4)
    with pytest.raises(training.TrainingError, match="Pass --seed 3 --val-split 0.25"):
        training.train(config)
    assert not (tmp_path / "other" / "model.keras").exists()


def test_init_from_another_architecture_is_refused(data_dir, tmp_path):
    _saved_model(tmp_path / "baseline.keras", "baseline", seed=0)
    config = _config(data_dir, tmp_path / "run", model="kernels",
                     init_from=str(tmp_path / "baseline.keras"))
    with pytest.raises(training.TrainingError, match="not a 'kernels' model.*--model kernels"):
        training.train(config)


def test_init_from_pretrained_keeps_its_validation_split(data_dir, tmp_path):
    config = _config(data_dir, tmp_path / "run", model="cbam", init_from="pretrained")
    with pytest.raises(training.TrainingError, match="cbam.keras was trained with --seed 1"):
        training.train(config)


def test_init_from_pretrained_needs_a_shipped_model(data_dir, tmp_path):
    config = _config(data_dir, tmp_path / "run", init_from="pretrained")
    with pytest.raises(ModelFileError, match="No pretrained model named 'baseline'"):
        training.train(config)


def test_nan_loss_stops_with_clear_error_and_saves_no_model(data_dir, tmp_path):
    out = tmp_path / "run"
    config = _config(data_dir, out, epochs=2)
    config.recipe = config.recipe.replace(lr=1e30, weight_decay=0.0)
    with pytest.raises(training.TrainingError, match="NaN"):
        training.train(config)
    assert json.loads((out / "run.json").read_text())["status"].startswith("failed")
    # Neither a best model nor a backup holds the diverged weights.
    assert not (out / "model.keras").exists()
    for kept in backup.list_backups(out / "backup"):
        with h5py.File(kept.path) as f:
            arrays = []
            f.visititems(lambda _, obj, arrays=arrays: arrays.append(obj[()])
                         if isinstance(obj, h5py.Dataset) else None)
        assert all(np.isfinite(np.asarray(a, dtype=float)).all() for a in arrays)


def test_training_puts_back_the_global_dtype_policy(data_dir, tmp_path):
    before = keras.config.dtype_policy().name
    training.train(_config(data_dir, tmp_path / "ok", epochs=1, mixed_precision="bfloat16"))
    assert keras.config.dtype_policy().name == before
    # The saved model computes in float32, whatever precision trained it.
    saved = keras.saving.load_model(tmp_path / "ok" / "model.keras")
    assert {layer.dtype_policy.name for layer in saved.layers} == {"float32"}
    config = _config(data_dir, tmp_path / "nan", epochs=1, mixed_precision="bfloat16")
    config.recipe = config.recipe.replace(lr=1e30, weight_decay=0.0)
    with pytest.raises(training.TrainingError):
        training.train(config)
    assert keras.config.dtype_policy().name == before
    assert build_model("baseline").layers[1].dtype_policy.name == before


def test_a_damaged_newest_backup_is_set_aside_and_the_one_before_used(data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        training.train(_config(data_dir, out, epochs=4, callbacks=[_Epochs(stop_after=1)]))
    newest, previous = backup.list_backups(out / "backup")
    assert (newest.epochs, previous.epochs) == (2, 1)
    newest.path.write_bytes(newest.path.read_bytes()[:1000])  # cut short, however
    summary = training.train(_config(data_dir, out, epochs=4))
    assert "Set aside the backup" in capsys.readouterr().out
    assert [int(r["epoch"]) for r in _history(out)] == [0, 1, 2, 3]
    assert summary["status"] == "completed" and summary["epochs"] == 4
    keras.saving.load_model(out / "model.keras")


def test_cross_validation_reports_mean_and_spread(data_dir, tmp_path):
    out = tmp_path / "cv"
    summary = training.train(_config(data_dir, out, epochs=1, folds=2, steps_per_epoch=2))
    assert len(summary["val_accuracy_per_fold"]) == 2
    assert math.isclose(summary["val_accuracy_mean"], np.mean(summary["val_accuracy_per_fold"]))
    assert (out / "fold1" / "model.keras").exists() and (out / "fold2" / "model.keras").exists()
    assert json.loads((out / "cv.json").read_text())["folds"] == 2
    # Each fold records which images it held out, for `evaluate.py --split val`.
    images, labels = fer_data.load_split(data_dir, "train")
    for fold in (1, 2):
        run = json.loads((out / f"fold{fold}" / "run.json").read_text())
        assert (run["folds"], run["fold"]) == (2, fold)
        val_images, _ = evaluation.validation_split(data_dir, out / f"fold{fold}" / "model.keras")
        _, val_idx = fer_data.kfold_splits(labels, 2, 0)[fold - 1]
        np.testing.assert_array_equal(val_images, images[val_idx])


def test_init_from_a_cross_validation_fold_is_refused(data_dir, tmp_path):
    _saved_model(tmp_path / "model.keras", "baseline", seed=0)
    (tmp_path / "run.json").write_text(json.dumps({"seed": 0, "val_split": 0.1,
                                                   "folds": 5, "fold": 2}))
    config = _config(data_dir, tmp_path / "other", init_from=str(tmp_path / "model.keras"))
    with pytest.raises(training.TrainingError, match="fold 2 of a 5-fold.*--folds 1"):
        training.train(config)


# The inference zoom of a recipe that crops (fer_keras.augment.INFERENCE_ZOOM).


def _crop_config(data_dir, out, **overrides):
    recipe = recipes.get_recipe("crop44").replace(epochs=overrides.pop("epochs", 1),
                                                  batch_size=16, warmup_epochs=0)
    return training.TrainConfig(model="baseline", recipe=recipe, recipe_name="crop44",
                                data_dir=str(data_dir), output_dir=str(out), val_split=0.25,
                                verbose=0, **overrides)


def test_a_run_of_a_cropping_recipe_trains_validates_and_saves_behind_the_zoom(
        data_dir, tmp_path):
    from fer_keras.checkpoint import read_checkpoint_state
    from fer_keras.models import inference_zoom

    out, checkpoint = tmp_path / "run", tmp_path / "checkpoint.keras"
    summary = training.train(_crop_config(data_dir, out, checkpoint=str(checkpoint)))
    assert summary["inference_zoom"] == pytest.approx(44 / 48)
    saved = keras.saving.load_model(out / "model.keras")
    assert inference_zoom(saved) == pytest.approx(44 / 48)
    assert saved.layers[1].name == "baseline_inference_zoom"
    assert read_checkpoint_state(checkpoint)["inference_zoom"] == pytest.approx(44 / 48)
    # Its validation accuracy is that of the saved model, zoom included.
    images, labels = evaluation.validation_split(data_dir, out / "model.keras")
    accuracy = float(np.mean(evaluation.predict_proba(saved, images).argmax(-1) == labels))
    assert accuracy == pytest.approx(summary["best_val_accuracy"], abs=1e-6)


def test_the_zoom_is_the_recipes_unless_the_run_started_without_it(data_dir, tmp_path):
    config = _crop_config(data_dir, tmp_path)
    assert training._inference_zoom(config, tmp_path, None) == pytest.approx(44 / 48)
    plain = _config(data_dir, tmp_path)
    assert training._inference_zoom(plain, tmp_path, None) is None
    # A run (or a committed checkpoint) from before the zoom continues without it.
    assert training._inference_zoom(config, tmp_path, {"epoch": 3}) is None
    (tmp_path / "run.json").write_text(json.dumps({"status": "running"}))
    assert training._inference_zoom(config, tmp_path, {"inference_zoom": 0.5}) is None
    (tmp_path / "run.json").write_text(json.dumps({"inference_zoom": 0.9}))
    assert training._inference_zoom(plain, tmp_path, None) == 0.9


def test_a_zoom_asked_for_replaces_the_recipes_and_a_run_keeps_its_own(data_dir, tmp_path):
    whole = _crop_config(data_dir, tmp_path, inference_zoom=None)
    assert training._inference_zoom(whole, tmp_path, None) is None
    assert training._inference_zoom(_config(data_dir, tmp_path, inference_zoom=0.8),
                                     tmp_path, None) == 0.8
    # Asking a recorded run for what it has is fine; for another zoom, refused.
    assert training._inference_zoom(whole, tmp_path, {"epoch": 3}) is None
    with pytest.raises(training.TrainingError,
                       match=r"started with no zoom.*Received: a zoom of 0\.8"):
        training._inference_zoom(_config(data_dir, tmp_path, inference_zoom=0.8),
                                 tmp_path, {"epoch": 3, "inference_zoom": None})
    (tmp_path / "run.json").write_text(json.dumps({"inference_zoom": 44 / 48}))
    with pytest.raises(training.TrainingError, match=r"run\.json started with a zoom of "
                       r"0\.9167.*Received: no zoom.*new --output-dir"):
        training._inference_zoom(whole, tmp_path, None)
    with pytest.raises(training.TrainingError, match="Received: inference_zoom='wide'"):
        training._inference_zoom(_config(data_dir, tmp_path / "new", inference_zoom="wide"),
                                 tmp_path / "new", None)


def test_a_cropping_run_told_to_see_the_whole_image_trains_without_the_zoom(
        data_dir, tmp_path):
    from fer_keras.models import inference_zoom

    out = tmp_path / "run"
    summary = training.train(_crop_config(data_dir, out, inference_zoom=None))
    assert summary["inference_zoom"] is None
    assert inference_zoom(keras.saving.load_model(out / "model.keras")) is None
    # Its record keeps it so: the recipe's default no longer applies to it.
    assert training._inference_zoom(_crop_config(data_dir, out), out, None) is None
