import json

import numpy as np
import pytest

import keras

from fer_keras import CLASS_NAMES, build_model, evaluation
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


def test_a_predictor_gives_the_model_probabilities():
    model = build_model("baseline")
    images = np.random.default_rng(1).integers(0, 256, (5, 48, 48, 1)).astype("float32")
    for tta in (False, True):
        np.testing.assert_allclose(
            evaluation.predict_proba(Predictor(model, batch_size=2), images, tta=tta),
            evaluation.predict_proba(model, images, tta=tta), atol=1e-5,
        )


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


def test_comparison_table_has_a_row_per_model():
    m = evaluation.classification_metrics(np.arange(7), np.arange(7))
    table = evaluation.comparison_table({"a/model.keras": m, "b/model.keras": m})
    assert table.count("model.keras") == 2 and "1.0000" in table
