"""The callbacks of every run: best model, curves."""

import numpy as np
import pytest

import keras

from fer_keras import callbacks
from fer_keras.models import build_model


def test_curves_are_skipped_where_matplotlib_is_missing(monkeypatch, tmp_path):
    def no_matplotlib(*args, **kwargs):
        raise ModuleNotFoundError("No module named 'matplotlib'", name="matplotlib")

    monkeypatch.setattr(callbacks, "plot_curves", no_matplotlib)
    rows = [{"epoch": "0", "loss": "1.0", "accuracy": "0.5"}]
    with pytest.warns(UserWarning, match="matplotlib is not installed.*history.csv"):
        callbacks.draw_curves(rows, tmp_path / "curves.png", "title")
    assert not (tmp_path / "curves.png").exists()

    def other_missing(*args, **kwargs):
        raise ModuleNotFoundError("No module named 'PIL'", name="PIL")

    monkeypatch.setattr(callbacks, "plot_curves", other_missing)
    with pytest.raises(ModuleNotFoundError, match="PIL"):
        callbacks.draw_curves(rows, tmp_path / "curves.png", "title")


def test_best_model_is_saved_whole_and_only_when_better(tmp_path):
    path = tmp_path / "model.keras"
    model = build_model("baseline")
    saver = callbacks.SaveBestModel(path, model, best=0.5)
    saver.set_model(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]))
    saver.on_epoch_end(0, {"val_accuracy": 0.4})
    assert not path.exists()
    saver.on_epoch_end(1, {"val_accuracy": 0.6})
    assert keras.saving.load_model(path).name == model.name  # not the model being fit
    path.unlink()
    saver.on_epoch_end(2, {"val_accuracy": 0.6})
    saver.on_epoch_end(3, {"loss": 0.1})
    assert not path.exists()
    saver.on_epoch_end(4, {"val_accuracy": 0.7})
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]


def test_a_non_finite_epoch_is_never_saved_as_the_best_model(tmp_path):
    path = tmp_path / "model.keras"
    model = build_model("baseline")
    saver = callbacks.SaveBestModel(path, model)
    saver.on_epoch_end(0, {"val_accuracy": 0.9, "loss": float("nan")})
    assert not path.exists()
    model.weights[0].assign(np.full(model.weights[0].shape, np.nan))
    saver.on_epoch_end(1, {"val_accuracy": 0.9, "loss": 1.0, "val_loss": 1.0})
    assert not path.exists()
