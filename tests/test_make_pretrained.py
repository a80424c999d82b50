"""tools/make_pretrained.py: a run started from another is described with it."""

import csv
import json

import numpy as np
import pytest
from tiny_data import write_kaggle_folders

import keras

from fer_keras.classes import CLASS_NAMES


@pytest.fixture(scope="module")
def tool(load_script):
    return load_script("tools/make_pretrained.py")


def _run(folder, epochs, val_accuracy, init_from=None, recipe_name="strong"):
    folder.mkdir(parents=True)
    history = [{"epoch": str(e), "loss": "1.0", "accuracy": "0.5", "val_loss": "1.1",
                "val_accuracy": str(v)} for e, v in enumerate(val_accuracy)]
    with open(folder / "history.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
    run = {
        "status": "completed", "model": "cbam", "recipe_name": recipe_name,
        "recipe": {"optimizer": "sgd", "epochs": epochs},
        "command": ["train.py", "--output-dir", str(folder)], "seed": 1, "val_split": 0.1,
        "init_from": init_from, "epochs": epochs,
        "best_epoch": 1 + max(range(epochs), key=lambda e: val_accuracy[e]),
        "best_val_accuracy": max(val_accuracy), "epoch_time_s": [400.0] * epochs,
        "data": {"train": {"total": 100}, "val": {"total": 10}},
        "backend": "tensorflow", "versions": {"keras": "3"}, "device": "cpu",
    }
    (folder / "run.json").write_text(json.dumps(run))
    return run


def _metrics(accuracy, n=3589):
    per_class = {c: {"accuracy": accuracy} for c in CLASS_NAMES}
    return {"accuracy": accuracy, "macro_f1": 0.5, "num_samples": n, "per_class": per_class}


def test_a_restarted_run_is_described_with_the_run_it_started_from(tool, tmp_path):
    _run(tmp_path / "first", 2, [0.4, 0.5])
    _run(tmp_path / "second", 3, [0.55, 0.61, 0.6],
         init_from=str(tmp_path / "first" / "model.keras"))
    chain = tool.run_chain(tmp_path / "second")
    assert [h.parent.name for h, _ in chain] == ["first", "second"]
    history = tool.joined_history(chain)
    assert [int(r["epoch"]) for r in history] == [0, 1, 2, 3, 4]
    assert [float(r["val_accuracy"]) for r in history] == [0.4, 0.5, 0.55, 0.61, 0.6]

    runs = [r for _, r in chain]
    info = {"run": runs[-1], "runs": runs, "val": _metrics(0.61, 10), "test": _metrics(0.6),
            "test_tta": _metrics(0.62), "data_dir": "/data/fer2013", "file_bytes": 2**20,
            "float32_test_accuracy": 0.6, "changed_predictions": 0, "seconds_per_epoch": 400,
            "command": ["tools/make_pretrained.py", "second"],
            "litert_int8": {"file_bytes": 2**19, "val": _metrics(0.612, 10),
                            "test": _metrics(0.598)}}
    card = tool.model_card("cbam", info)
    for folder in ("first", "second"):
        assert f"--output-dir {tmp_path / folder}" in card
    assert "5 epochs in all" in card and "2 runs: each after the first" in card
    # 5 epochs of 400 s, across both runs.
    assert "0.6 hours of training in all" in card
    assert "| test, int8 LiteRT export | 3,589 | 59.80% |" in card
    assert "validation 61.20%, test 59.80%" in card


def test_the_history_of_a_run_started_from_another_leaves_out_what_came_after_its_best(
        tool, tmp_path):
    _run(tmp_path / "first", 3, [0.4, 0.5, 0.45])
    _run(tmp_path / "second", 2, [0.52, 0.55],
         init_from=str(tmp_path / "first" / "model.keras"))
    history = tool.joined_history(tool.run_chain(tmp_path / "second"))
    # The second run started from the first's epoch 2 (its best), not its last.
    assert [float(r["val_accuracy"]) for r in history] == [0.4, 0.5, 0.52, 0.55]
    assert [int(r["epoch"]) for r in history] == [0, 1, 2, 3]


def test_the_run_of_the_pretrained_model_ships_again_with_its_card(tool, tmp_path):
    from fer_keras import loading
    from fer_keras.history import read_history

    shipped = loading.pretrained_path("cbam")
    card = json.loads(shipped.with_suffix(".json").read_text())["runs"]
    again = tmp_path / "again"
    again.mkdir()
    (again / "run.json").write_text(json.dumps({**card[-1], "init_from": str(shipped)}))
    chain = tool.run_chain(again)
    assert [r for _, r in chain] == card
    history = read_history(shipped.parents[2] / "docs" / "pretrained_cbam" / "history.csv")
    assert tool.joined_history(chain) == history


def test_a_single_run_has_no_chain(tool, tmp_path):
    _run(tmp_path / "only", 2, [0.4, 0.5], init_from="/elsewhere/model.keras")
    assert [h.parent.name for h, _ in tool.run_chain(tmp_path / "only")] == ["only"]


def test_a_run_started_from_the_pretrained_model_continues_its_card(tool, tmp_path):
    from fer_keras import loading
    from fer_keras.history import read_history

    shipped = loading.pretrained_path("cbam")
    earlier = json.loads(shipped.with_suffix(".json").read_text())["runs"]
    _run(tmp_path / "more", 2, [0.6, 0.63], init_from=str(shipped))
    chain = tool.run_chain(tmp_path / "more")
    runs = [r for _, r in chain]
    assert runs[:-1] == earlier and runs[-1]["init_from"] == str(shipped)
    history = tool.joined_history(chain)
    # The card's history ends at the shipped (best) epoch of its last run.
    assert len(history) == (len(read_history(shipped.parents[2] / "docs" / "pretrained_cbam"
                                             / "history.csv"))
                            - (earlier[-1]["epochs"] - earlier[-1]["best_epoch"]) + 2)
    assert [int(r["epoch"]) for r in history] == list(range(len(history)))
    assert [float(r["val_accuracy"]) for r in history[-2:]] == [0.6, 0.63]
    best_before = max(float(r["val_accuracy"]) for r in history[:-2])
    assert best_before == pytest.approx(earlier[-1]["best_val_accuracy"], abs=1e-6)


# An ensemble of two runs, end to end on tiny data.


def _trained_run(folder, data_dir, seed, val_accuracy, model_name="baseline", recipe_name="strong"):
    """A run folder as train.py leaves it, with a random model of its own."""

    from fer_keras import data, recipes
    from fer_keras.models import build_model

    run = _run(folder, len(val_accuracy), val_accuracy, recipe_name=recipe_name)
    run["recipe"] = recipes.get_recipe(recipe_name).to_dict()
    _, labels = data.load_split(data_dir, "train")
    train_idx, val_idx = data.train_val_split(labels, 0.1, seed)
    keras.utils.set_random_seed(seed)
    build_model(model_name).save(folder / "model.keras")
    run.update(model=model_name, seed=seed, model_path=str(folder / "model.keras"),
               data={"train": {"total": len(train_idx)}, "val": {"total": len(val_idx)}})
    (folder / "run.json").write_text(json.dumps(run))
    return folder


@pytest.fixture()
def shipped_to(tool, tmp_path, monkeypatch):
    """Where the tool writes: a pretrained folder and docs/ of a throwaway root."""
    from fer_keras import loading

    monkeypatch.setattr(loading, "PRETRAINED_DIR", tmp_path / "pretrained")
    monkeypatch.setattr(tool, "ROOT", tmp_path)
    return tmp_path


def test_two_runs_ship_as_one_ensemble_with_a_card_of_both(tool, shipped_to, tmp_path):
    from fer_keras import data, ensemble, loading

    data_dir = write_kaggle_folders(tmp_path / "fer", train_per_class=12, test_per_class=4)
    first = _trained_run(tmp_path / "a", data_dir, 1, [0.3, 0.4])
    second = _trained_run(tmp_path / "b", data_dir, 1, [0.35, 0.3, 0.45])
    tool.main([str(first), str(second), "--data-dir", str(data_dir),
               "--backend", keras.backend.backend()])

    model = loading.load_pretrained("baseline_baseline")
    assert [m.name for m in ensemble.members(model)] == [
        "baseline_baseline_member1", "baseline_baseline_member2"]
    info = json.loads((shipped_to / "pretrained" / "baseline_baseline.json").read_text())
    images, labels = data.load_split(data_dir, "test")
    predicted = np.argmax(model.predict(images, verbose=0), axis=-1)
    assert info["test_predictions"] == predicted.tolist()
    assert info["test"]["accuracy"] == pytest.approx((predicted == labels).mean())
    # Each member is measured on its own, on the validation images both held out.
    assert [m["run"]["model_path"] for m in info["members"]] == [
        str(first / "model.keras"), str(second / "model.keras")]
    for member in info["members"]:
        assert member["val"]["num_samples"] == info["val"]["num_samples"]
    member_pred = np.argmax(ensemble.members(model)[1].predict(images, verbose=0), axis=-1)
    assert info["members"][1]["test"]["accuracy"] == pytest.approx((member_pred == labels).mean())
    assert info["cpu_hours"] == pytest.approx((2 + 3) * 400 / 3600)

    card = (shipped_to / "pretrained" / "baseline_baseline.md").read_text()
    assert "the mean of the logits of its 2 members (baseline, baseline)" in card
    assert "### Member 2: `baseline`" in card and f"--output-dir {second}" in card
    assert (f"| ensemble | | {info['val']['accuracy']:.2%} | "
            f"{info['val_ten_crop']['accuracy']:.2%} |") in card
    docs = shipped_to / "docs" / "pretrained_baseline_baseline"
    for name in ("member1_curves.png", "member2_curves.png", "member1_history.csv",
                 "member2_history.csv", "confusion_matrix.png"):
        assert (docs / name).stat().st_size > 0, name
    assert len((docs / "member2_history.csv").read_text().splitlines()) == 1 + 3


def test_runs_that_held_out_different_images_make_no_ensemble(tool, shipped_to, tmp_path):


    data_dir = write_kaggle_folders(tmp_path / "fer", train_per_class=12, test_per_class=4)
    first = _trained_run(tmp_path / "a", data_dir, 1, [0.3])
    second = _trained_run(tmp_path / "b", data_dir, 2, [0.3])
    with pytest.raises(ValueError, match="held out different training images"):
        tool.main([str(first), str(second), "--data-dir", str(data_dir),
                   "--backend", keras.backend.backend()])
    assert not (shipped_to / "pretrained").exists()


def test_a_run_marked_completed_by_hand_is_refused_before_anything_is_measured(
        tool, shipped_to, tmp_path, monkeypatch):
    from fer_keras import data

    run = _run(tmp_path / "a", 2, [0.3, 0.4])
    del run["epochs"], run["epoch_time_s"]
    (tmp_path / "a" / "run.json").write_text(json.dumps(run))
    monkeypatch.setattr(data, "locate_data", lambda _: pytest.fail("data looked for"))
    with pytest.raises(SystemExit, match="lacks epochs, epoch_time_s, which train.py writes"):
        tool.main([str(tmp_path / "a"), "--backend", keras.backend.backend()])
    assert not (shipped_to / "pretrained").exists()


def test_runs_of_a_cropping_recipe_get_the_zoom_that_validation_chooses(
        tool, shipped_to, tmp_path):
    from fer_keras import evaluation, loading, models

    data_dir = write_kaggle_folders(tmp_path / "fer", train_per_class=12, test_per_class=4)
    run = _trained_run(tmp_path / "a", data_dir, 1, [0.3], recipe_name="crop44")
    tool.main([str(run), "--data-dir", str(data_dir), "--backend", keras.backend.backend()])

    info = json.loads((shipped_to / "pretrained" / "baseline.json").read_text())
    choice = info["zoom_choice"]
    # Measured on the validation split, with and without the zoom, by the float32 model.
    images, labels = evaluation.validation_split(data_dir, run / "model.keras")
    plain = loading.load_model(run / "model.keras")
    for model, key in ((models.with_inference_zoom(plain, 44 / 48), "with"), (plain, "without")):
        accuracy = np.mean(evaluation.predict_proba(model, images).argmax(-1) == labels)
        assert choice[key] == pytest.approx(accuracy)
    assert choice["chosen"] == (choice["with"] > choice["without"])
    shipped = loading.load_pretrained("baseline")
    assert models.inference_zoom(shipped) == (44 / 48 if choice["chosen"] else None)
    card = (shipped_to / "pretrained" / "baseline.md").read_text()
    assert f"{choice['with']:.2%} with the zoom, {choice['without']:.2%} without" in card
