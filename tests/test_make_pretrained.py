"""tools/make_pretrained.py: a run started from another is described with it."""

import csv
import json

import pytest

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


def test_a_single_run_has_no_chain(tool, tmp_path):
    _run(tmp_path / "only", 2, [0.4, 0.5], init_from="/elsewhere/model.keras")
    assert [h.parent.name for h, _ in tool.run_chain(tmp_path / "only")] == ["only"]


def test_a_run_started_from_the_pretrained_model_continues_its_card(tool, tmp_path):
    from fer_keras import loading

    shipped = loading.pretrained_path("cbam")
    earlier = json.loads(shipped.with_suffix(".json").read_text())["runs"]
    _run(tmp_path / "more", 2, [0.6, 0.63], init_from=str(shipped))
    chain = tool.run_chain(tmp_path / "more")
    runs = [r for _, r in chain]
    assert runs[:-1] == earlier and runs[-1]["init_from"] == str(shipped)
    history = tool.joined_history(chain)
    assert len(history) == sum(r["epochs"] for r in earlier) + 2
    assert [int(r["epoch"]) for r in history] == list(range(len(history)))
    assert [float(r["val_accuracy"]) for r in history[-2:]] == [0.6, 0.63]
    best_before = max(float(r["val_accuracy"]) for r in history[:-2])
    assert best_before == pytest.approx(earlier[-1]["best_val_accuracy"], abs=1e-6)
