import json

import numpy as np
import pytest
from tiny_data import write_kaggle_folders

from fer_keras import CLASS_NAMES, build_model, data, evaluation, tta
from fer_keras.inference import Predictor


def test_metrics_against_hand_computed_values():
    labels = np.array([0, 0, 1, 1, 1, 2])
    preds = np.array([0, 1, 1, 1, 2, 2])
    m = evaluation.classification_metrics(labels, preds, class_names=("a", "b", "c"))
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 1], [0, 0, 1]]
    assert m["per_class"]["a"]["recall"] == pytest.approx(0.5)
    assert m["per_class"]["b"]["precision"] == pytest.approx(2 / 3)
    assert m["per_class"]["b"]["recall"] == pytest.approx(2 / 3)
    assert m["per_class"]["c"]["precision"] == pytest.approx(0.5)
    f1 = [2 * 1 * 0.5 / 1.5, 2 / 3, 2 * 0.5 / 1.5]
    assert m["macro_f1"] == pytest.approx(np.mean(f1))


def test_absent_class_does_not_divide_by_zero():
    m = evaluation.classification_metrics(np.array([0, 0]), np.array([0, 1]))
    assert m["per_class"]["disgust"]["precision"] == 0.0
    assert m["per_class"]["fear"]["support"] == 0
    assert m["macro_f1"] == pytest.approx(2 / 3)


def test_tta_averages_image_and_mirror():
    model = build_model("baseline")
    images = np.random.default_rng(0).integers(0, 256, (4, 48, 48, 1)).astype("float32")
    plain = evaluation.predict_proba(model, images)
    mirror = evaluation.predict_proba(model, images[:, :, ::-1])
    tta = evaluation.predict_proba(model, images, tta=True)
    np.testing.assert_allclose(tta, (plain + mirror) / 2, atol=1e-5)
    np.testing.assert_allclose(tta.sum(axis=1), 1.0, atol=1e-5)


def test_ten_crop_averages_the_ten_views():
    model = build_model("baseline")
    images = np.random.default_rng(2).integers(0, 256, (3, 48, 48, 1)).astype("float32")
    views = tta.tta_views(images, "ten_crop")
    expected = np.mean([evaluation.predict_proba(model, v) for v in views], axis=0)
    probs = evaluation.predict_proba(model, images, tta="ten_crop")
    np.testing.assert_allclose(probs, expected, atol=1e-5)
    assert not np.allclose(probs, evaluation.predict_proba(model, images, tta="mirror"))


def test_a_predictor_gives_the_model_probabilities():
    model = build_model("baseline")
    images = np.random.default_rng(1).integers(0, 256, (5, 48, 48, 1)).astype("float32")
    for mode in (False, True, "ten_crop"):
        np.testing.assert_allclose(
            evaluation.predict_proba(Predictor(model, batch_size=2), images, tta=mode),
            evaluation.predict_proba(model, images, tta=mode), atol=1e-5,
        )
    # A predictor also takes faces without the channel axis.
    np.testing.assert_allclose(
        evaluation.predict_proba(Predictor(model), images[..., 0], tta="ten_crop"),
        evaluation.predict_proba(model, images, tta="ten_crop"), atol=1e-5,
    )


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_kaggle_folders(tmp_path_factory.mktemp("fer"), train_per_class=10)


def _model_with_run(folder, **run):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.keras").write_bytes(b"")
    (folder / "run.json").write_text(json.dumps(run))
    return folder / "model.keras"


def test_validation_split_is_the_one_the_run_held_out(data_dir, tmp_path):
    images, labels = data.load_split(data_dir, "train")
    _, val_idx = data.train_val_split(labels, 0.2, seed=3)
    path = _model_with_run(tmp_path, seed=3, val_split=0.2,
                           data={"val": {"total": len(val_idx)}})
    val_images, val_labels = evaluation.validation_split(data_dir, path)
    np.testing.assert_array_equal(val_images, images[val_idx])
    np.testing.assert_array_equal(val_labels, labels[val_idx])


def test_validation_split_of_a_cross_validation_fold(data_dir, tmp_path):
    images, labels = data.load_split(data_dir, "train")
    _, val_idx = data.kfold_splits(labels, 3, seed=0)[1]
    path = _model_with_run(tmp_path, seed=0, val_split=0.1, folds=3, fold=2)
    val_images, _ = evaluation.validation_split(data_dir, path)
    np.testing.assert_array_equal(val_images, images[val_idx])


def _aged_model(folder, age_s, status=None):
    import os
    import time

    folder.mkdir(parents=True)
    (folder / "model.keras").write_bytes(b"x")
    if status is not None:
        (folder / "run.json").write_text(json.dumps({"status": status}))
    stamp = time.time() - age_s
    os.utime(folder / "model.keras", (stamp, stamp))
    return folder / "model.keras"


def test_newest_model_passes_over_runs_that_failed(tmp_path):
    older = _aged_model(tmp_path / "older", 30, "completed")
    running = _aged_model(tmp_path / "running", 20, "running")
    failed = _aged_model(tmp_path / "nan", 10, "failed: non-finite loss")
    assert evaluation.newest_model(tmp_path) == (
        running, [(failed, "failed: non-finite loss")]
    )
    (running.parent / "run.json").write_text("{not json")  # unreadable: not judged
    assert evaluation.newest_model(tmp_path)[0] == running
    running.unlink()
    assert evaluation.newest_model(tmp_path)[0] == older


def test_newest_model_falls_back_to_the_pretrained_one(tmp_path):
    from fer_keras import loading

    failed = _aged_model(tmp_path / "nan", 0, "failed: non-finite loss")
    path, skipped = evaluation.newest_model(tmp_path)
    assert path == loading.pretrained_path() and skipped == [(failed, "failed: non-finite loss")]


def test_validation_split_needs_the_run_record(data_dir, tmp_path):
    (tmp_path / "model.keras").write_bytes(b"")
    with pytest.raises(ValueError, match="no run.json beside it.*--split test"):
        evaluation.validation_split(data_dir, tmp_path / "model.keras")


def test_validation_split_of_other_data_is_refused(data_dir, tmp_path):
    path = _model_with_run(tmp_path, seed=1, val_split=0.1, data_dir="/elsewhere",
                           data={"val": {"total": 2872}})
    with pytest.raises(ValueError, match="validated on 2872 images of /elsewhere.*has 7"):
        evaluation.validation_split(data_dir, path)


def test_evaluate_writes_metrics_and_plots(tmp_path):
    model = build_model("baseline")
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (21, 48, 48, 1)).astype("uint8")
    labels = np.arange(21) % 7
    metrics = evaluation.evaluate(model, images, labels, output_dir=tmp_path, extra={"x": 1})
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["accuracy"] == metrics["accuracy"] and saved["num_samples"] == 21
    assert list(saved["per_class"]) == list(CLASS_NAMES)
    assert saved["x"] == 1
    for png in ("confusion_matrix.png", "per_class.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_scores_probabilities_computed_already(tmp_path):
    model = build_model("baseline")
    images = np.zeros((14, 48, 48, 1), "uint8")
    labels = np.arange(14) % 7
    computed = evaluation.predict_proba(model, images, tta="mirror")
    metrics = evaluation.evaluate(model, images, labels, tta="mirror", probabilities=computed)
    assert metrics == evaluation.evaluate(model, images, labels, tta="mirror")
    # They are scored as given, not predicted again.
    assert evaluation.evaluate(model, images, labels, probabilities=np.eye(7)[labels])[
        "accuracy"] == 1.0
    with pytest.raises(ValueError, match=r"Received: shape \(13, 7\) for 14 images"):
        evaluation.evaluate(model, images, labels, probabilities=np.eye(7)[labels][:13])


def test_comparison_table_has_a_row_per_model():
    m = evaluation.classification_metrics(np.arange(7), np.arange(7))
    table = evaluation.comparison_table({"a/model.keras": m, "b/model.keras": m})
    assert table.count("model.keras") == 2 and "1.0000" in table
