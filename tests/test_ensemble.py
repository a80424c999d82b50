"""Ensembles: the mean of the members' logits, as one model that saves,
loads under every backend and goes where a single model goes."""

import json

import numpy as np
import pytest
from parity import logits_under
from tiny_data import write_kaggle_folders

import keras

import fer_keras
from fer_keras import data, ensemble, evaluation, loading
from fer_keras.commands import evaluate
from fer_keras.inference import Predictor


def _member(seed: int, name: str = "baseline") -> keras.Model:
    keras.utils.set_random_seed(seed)
    return fer_keras.build_model(name)


def _logits(model, x):
    return keras.ops.convert_to_numpy(model(x, training=False))


@pytest.fixture(scope="module")
def pixels():
    return np.random.default_rng(0).integers(0, 256, (5, 48, 48, 1)).astype("float32")


@pytest.fixture(scope="module")
def pair():
    return _member(1), _member(2)


def test_logits_are_the_mean_of_the_members(pair, pixels):
    a, b = pair
    model = ensemble.build_ensemble([a, b])
    want = (_logits(a, pixels) + _logits(b, pixels)) / 2
    np.testing.assert_allclose(_logits(model, pixels), want, atol=1e-5)
    # The members differ, so the mean is neither of them.
    assert np.abs(_logits(a, pixels) - _logits(b, pixels)).max() > 1e-3


def test_three_members_and_layer_names(pixels):
    models = [_member(seed) for seed in (3, 4, 5)]
    model = ensemble.build_ensemble(models, name="trio")
    assert [layer.name for layer in model.layers] == [
        "trio_input", "trio_member1", "trio_member2", "trio_member3", "trio_logits"]
    want = sum(_logits(m, pixels) for m in models) / 3
    np.testing.assert_allclose(_logits(model, pixels), want, atol=1e-5)


def test_the_callers_models_are_shared_not_renamed(pair):
    a, b = pair
    model = ensemble.build_ensemble([a, b])
    assert (a.name, b.name) == ("baseline", "baseline")
    member = ensemble.members(model)[0]
    assert member.layers[-1] is a.layers[-1]
    assert ensemble.is_ensemble(model) and not ensemble.is_ensemble(a)


def test_save_and_load_round_trip(pair, pixels, tmp_path):
    model = ensemble.build_ensemble(pair)
    model.save(tmp_path / "ensemble.keras")
    loaded = loading.load_model(tmp_path / "ensemble.keras")
    np.testing.assert_allclose(_logits(loaded, pixels), _logits(model, pixels), atol=1e-6)
    assert len(ensemble.members(loaded)) == 2


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "tensorflow", "torch"])
def test_the_same_file_gives_the_same_logits_under_every_backend(pixels, tmp_path, backend):
    # Members from the zoo's custom layers (CBAM, the filter bank) as well.
    model = ensemble.build_ensemble([_member(6, "cbam"), _member(7, "kernels")])
    model.save(tmp_path / "ensemble.keras")
    got = logits_under(backend, tmp_path, pixels[:4])
    np.testing.assert_allclose(got["ensemble"], _logits(model, pixels[:4]), atol=1e-4, rtol=0)


def test_paths_are_loaded(pair, pixels, tmp_path):
    for index, member in enumerate(pair):
        member.save(tmp_path / f"m{index}.keras")
    model = ensemble.build_ensemble([tmp_path / "m0.keras", str(tmp_path / "m1.keras")])
    want = (_logits(pair[0], pixels) + _logits(pair[1], pixels)) / 2
    np.testing.assert_allclose(_logits(model, pixels), want, atol=1e-5)


def test_fewer_than_two_models_are_refused(pair):
    with pytest.raises(ValueError, match="at least two models. Received: 1 model\\."):
        ensemble.build_ensemble([pair[0]])
    with pytest.raises(ValueError, match="at least two models. Received: 1 model\\."):
        ensemble.build_ensemble(pair[0])
    with pytest.raises(ValueError, match="Received: 0 models"):
        ensemble.build_ensemble([])


def test_members_must_take_the_same_input_shape(pair):
    other = fer_keras.build_model("baseline", input_shape=(40, 40, 1))
    with pytest.raises(ValueError, match=r"same input shape.*\(48, 48, 1\), \(40, 40, 1\)"):
        ensemble.build_ensemble([pair[0], other])


def test_a_model_for_another_task_is_refused(pair):
    three = fer_keras.build_model("baseline", num_classes=3)
    with pytest.raises(loading.ModelFileError, match="Member 2 .* 3 outputs; expected 7"):
        ensemble.build_ensemble([pair[0], three])


def test_an_export_or_another_object_is_refused(pair, tmp_path):
    with pytest.raises(ValueError, match=r"member 2, .*m\.tflite, is an export "
                       r"\(LiteRT \(\.tflite\)\)\. Ensemble the \.keras files"):
        ensemble.build_ensemble([pair[0], tmp_path / "m.tflite"])
    with pytest.raises(TypeError, match="Received: int as member 2"):
        ensemble.build_ensemble([pair[0], 3])
    with pytest.raises(loading.ModelFileError, match="not found"):
        ensemble.build_ensemble([pair[0], tmp_path / "missing.keras"])


def test_a_predictor_takes_a_list_as_its_ensemble(pair, pixels):
    a, b = pair
    got = Predictor([a, b]).predict_proba(pixels)
    want = keras.ops.convert_to_numpy(
        keras.ops.softmax((_logits(a, pixels) + _logits(b, pixels)) / 2))
    np.testing.assert_allclose(got, want, atol=1e-5)


def _saved_with_run(folder, model, **run):
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / "model.keras")
    (folder / "run.json").write_text(json.dumps({"status": "completed", **run}))
    return folder / "model.keras"


def test_shared_split_needs_the_same_held_out_images(pair, tmp_path):
    a = _saved_with_run(tmp_path / "a", pair[0], seed=1, val_split=0.1)
    b = _saved_with_run(tmp_path / "b", pair[1], seed=1, val_split=0.1)
    c = _saved_with_run(tmp_path / "c", pair[1], seed=2, val_split=0.1)
    record = ensemble.ensemble_record([a, b])
    assert record["ensemble"] == [str(a), str(b)]
    assert (record["seed"], record["val_split"], record["fold"]) == (1, 0.1, None)
    with pytest.raises(ValueError, match=f"{a} and {c} held out different training images"):
        ensemble.ensemble_record([a, c])
    (tmp_path / "b" / "run.json").unlink()
    with pytest.raises(ValueError, match=f"{b} has no run.json"):
        ensemble.ensemble_record([a, b])


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_kaggle_folders(tmp_path_factory.mktemp("fer"), train_per_class=10,
                                test_per_class=4)


def _members_with_runs(pair, data_dir, folder, seeds=(3, 3)):
    labels = data.load_split(data_dir, "train")[1]
    total = len(data.train_val_split(labels, 0.2, seeds[0])[1])
    return [_saved_with_run(folder / f"m{i}", model, seed=seed, val_split=0.2,
                            data={"val": {"total": total}})
            for i, (model, seed) in enumerate(zip(pair, seeds))]


def test_a_saved_ensemble_keeps_its_members_validation_split(pair, data_dir, tmp_path):
    paths = _members_with_runs(pair, data_dir, tmp_path)
    path = ensemble.save_ensemble(paths, tmp_path / "ensemble")
    assert path == tmp_path / "ensemble" / "model.keras"
    assert not list((tmp_path / "ensemble").glob("*partial*"))
    images, labels = evaluation.validation_split(data_dir, path)
    want_images, want_labels = evaluation.validation_split(data_dir, paths[0])
    np.testing.assert_array_equal(images, want_images)
    np.testing.assert_array_equal(labels, want_labels)
    assert json.loads((tmp_path / "ensemble" / "run.json").read_text())["ensemble"] == \
        [str(p) for p in paths]


@pytest.mark.parametrize("split", ["test", "val"])
def test_evaluate_scores_the_ensemble(pair, data_dir, tmp_path, split, capsys):
    paths = _members_with_runs(pair, data_dir, tmp_path)
    out = tmp_path / "eval"
    evaluate.main(["--model-path", *map(str, paths), "--ensemble", "--split", split,
                   "--data-dir", str(data_dir), "--output-dir", str(out)])
    printed = capsys.readouterr().out
    assert f"the ensemble of {paths[0]}, {paths[1]}" in printed
    assert ("validation images they all held out" in printed) == (split == "val")
    metrics = json.loads((out / "metrics.json").read_text())
    if split == "test":
        images, labels = data.load_split(data_dir, "test")
    else:
        images, labels = evaluation.validation_split(data_dir, paths[0])
    logits = sum(_logits(m, images.astype("float32")) for m in pair) / 2
    assert metrics["accuracy"] == pytest.approx(float(np.mean(logits.argmax(1) == labels)))
    assert metrics["model_path"] == [str(p) for p in paths]
    assert (out / "confusion_matrix.png").exists()


def test_evaluate_refuses_an_ensemble_of_other_validation_splits(pair, data_dir, tmp_path):
    paths = _members_with_runs(pair, data_dir, tmp_path, seeds=(3, 4))
    with pytest.raises(ValueError, match="held out different training images"):
        evaluate.main(["--model-path", *map(str, paths), "--ensemble", "--split", "val",
                       "--data-dir", str(data_dir), "--output-dir", str(tmp_path / "eval")])
    assert not (tmp_path / "eval" / "metrics.json").exists()


def test_evaluate_refuses_an_ensemble_of_one_model(pair, tmp_path, capsys):
    pair[0].save(tmp_path / "a.keras")
    with pytest.raises(SystemExit) as exit_info:
        evaluate.main(["--model-path", str(tmp_path / "a.keras"), "--ensemble",
                       "--data-dir", str(tmp_path / "absent")])
    assert exit_info.value.code == 2
    assert "--ensemble averages two or more .keras models" in capsys.readouterr().err


def test_evaluate_draws_the_grad_cam_of_an_ensemble(pair, data_dir, tmp_path, capsys):
    paths = _members_with_runs(pair, data_dir, tmp_path)
    out = tmp_path / "eval"
    evaluate.main(["--model-path", *map(str, paths), "--ensemble", "--gradcam", "1",
                   "--data-dir", str(data_dir), "--output-dir", str(out)])
    assert f"Grad-CAM grid: {out / 'gradcam.png'}" in capsys.readouterr().out
    assert (out / "gradcam.png").stat().st_size > 0


def test_members_of_one_architecture_keep_weights_of_their_own():
    keras.utils.set_random_seed(3)
    first, second = fer_keras.build_model("baseline"), fer_keras.build_model("baseline")
    names = [layer.name for layer in second.layers]
    model = fer_keras.build_ensemble([first, second])
    # Every weight under a name of its own: the torch backend keys parameters by it.
    paths = [v.path for v in model.trainable_variables]
    assert len(paths) == len(set(paths)) == 2 * len(first.trainable_variables)
    assert [layer.name for layer in second.layers] == names
    x = np.random.default_rng(0).uniform(0, 255, (3, 48, 48, 1)).astype("float32")
    expected = (keras.ops.convert_to_numpy(first(x)) + keras.ops.convert_to_numpy(second(x))) / 2
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x)), expected, atol=1e-5)
