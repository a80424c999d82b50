"""The benchmark scripts run end to end with tiny settings and write their figures.

Not a speed test: the numbers depend on the machine and its load, so only
their presence and sign are checked.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import keras

ROOT = Path(__file__).resolve().parents[1]
BACKEND = keras.backend.backend()

pytestmark = pytest.mark.slow


def run_benchmark(script, *args):
    env = dict(os.environ, KERAS_BACKEND=BACKEND)
    cmd = [sys.executable, str(ROOT / "benchmarks" / script), *args]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT,
                            timeout=900)
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout}\n{result.stderr[-3000:]}"
    return result


def test_bench_train(tmp_path):
    out = tmp_path / "train.json"
    result = run_benchmark(
        "bench_train.py", "--models", "baseline", "--backends", BACKEND, "--steps", "1",
        "--rounds", "1", "--warmup-steps", "0", "--batch-size", "8",
        "--reference-batch-size", "8", "--json", str(out),
        # "auto" is channels_first under torch (two layouts, two processes)
        # and channels_last elsewhere (the same configuration, counted once).
        "--data-format", "auto,channels_last",
        # Each batch norm and reference variant is one more process: both
        # batch norms where they differ, both references in one pass.
        *(["--batch-norm", "fused,keras"] if BACKEND == "tensorflow" else
          ["--references", "reference"]),
    )
    report = json.loads(out.read_text())
    rows = [r for r in report["rows"] if r["backend"] == BACKEND]
    norms = [r["batch_norm"] for r in rows]
    assert sorted(norms) == (["fused", "keras"] if BACKEND == "tensorflow" else
                             ["fused"] * (2 if BACKEND == "torch" else 1))
    layouts = {r["layout"] for r in rows}
    assert layouts == ({"channels_first", "channels_last"} if BACKEND == "torch" else
                       {"channels_last"})
    figures = report["results"]["baseline"]
    references = {"reference", "reference_omp_passive"} if BACKEND == "tensorflow" else {
        "reference"}
    assert set(figures) == {BACKEND, *references}
    for backend, row in figures.items():
        assert row["images_per_s"] > 0, backend
        assert row["ratio_vs_reference"] > 0, backend
        assert row["first_step_s"] >= 0 and row["warmup_s"] >= 0, backend
    assert figures["reference"]["ratio_vs_reference"] == pytest.approx(1.0)
    assert figures[BACKEND]["batch_size"] == 8
    assert report["hardware"]["cores"] >= 1
    assert "| baseline | reference |" in result.stdout


def test_bench_predict_in_process(tmp_path):
    out = tmp_path / "predict.json"
    run_benchmark(
        "bench_predict.py", "--model", "baseline", "--runs", "4", "--model-predict-runs",
        "1", "--batch-images", "5", "--batch-size", "4", "--rounds", "1", "--json", str(out),
    )
    report = json.loads(out.read_text())
    assert report["fastest_backend"] == BACKEND
    for key in ("p50_ms", "p99_ms", "batch_images_per_s"):
        assert report[key] > 0, key
        assert report["results"][BACKEND][key] > 0, key
    assert report["p99_ms"] >= report["p50_ms"]


def test_bench_predict_model_file_in_subprocesses_and_litert(tmp_path):
    from fer_keras.models import build_model

    path = tmp_path / "model.keras"
    build_model("baseline").save(path)
    out = tmp_path / "predict.json"
    # The LiteRT export and interpreter are TensorFlow's whatever the backend: one pass.
    litert = BACKEND == "tensorflow"
    run_benchmark(
        "bench_predict.py", "--model-path", str(path), "--backends", BACKEND,
        *(["--litert"] if litert else []),
        "--runs", "3", "--model-predict-runs", "1", "--batch-images", "3", "--rounds", "1",
        "--json", str(out),
    )
    report = json.loads(out.read_text())
    assert report["model"] == str(path)
    assert set(report["results"]) == ({BACKEND, "litert int8"} if litert else {BACKEND})
    assert report["results"][BACKEND]["model_predict_p50_ms"] > 0
    if litert:
        figures = report["results"]["litert int8"]
        assert figures["p50_ms"] > 0 and figures["batch_images_per_s"] > 0
        assert figures["model_predict_p50_ms"] is None


def test_bench_train_swaps_in_the_keras_batch_norm(load_script):
    from fer_keras.layers import FusedBatchNormalization
    from fer_keras.models import build_model

    bench_train = load_script("benchmarks/bench_train.py")
    model = build_model("cbam")
    swapped = bench_train._with_keras_batch_norm(model)
    norms = [layer for layer in swapped.layers
             if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(norms) == 5
    assert not any(isinstance(layer, FusedBatchNormalization) for layer in norms)
    assert [layer.name for layer in swapped.layers] == [layer.name for layer in model.layers]


@pytest.mark.only_backend("tensorflow", reason="argument checks, backend-independent: "
                          "checked in the tensorflow pass")
def test_bench_train_rejects_bad_options():
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_train.py"), "--backends", "numpy"],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )
    assert result.returncode == 2
    assert "Received: 'numpy'" in result.stderr


@pytest.mark.only_backend("tensorflow", reason="a .tflite file runs without the "
                          "Keras backend: checked in the tensorflow pass")
def test_bench_faces_with_a_litert_export(litert_files, tmp_path):
    pytest.importorskip("cv2")
    out = tmp_path / "faces.json"
    run_benchmark("bench_faces.py", "--model-path", str(litert_files["int8"]), "--frames", "2",
                  "--video-batch", "2", "--crops", "2", "--json", str(out))
    report = json.loads(out.read_text())
    assert report["model"] == str(litert_files["int8"])
    assert report["faces_found_per_frame"] == [1]
    assert report["frames_per_s"] > 0 and report["frames_per_s_batched"] > 0
    assert report["frames_per_s_tracked"] > 0 and report["frames_per_s_batched_tracked"] > 0
    assert report["tracking_ms_per_frame"] > 0


def test_bench_train_skips_a_layout_the_cpu_cannot_compute(load_script, monkeypatch, capsys):
    from fer_keras import backends

    bench = load_script("benchmarks/bench_train.py")
    monkeypatch.setattr(backends.get("tensorflow"), "_runs_channels_first", lambda: False)
    args = bench.parse_args(["--models", "cbam", "--backends", "tensorflow,torch",
                             "--data-format", "channels_last,channels_first"])
    layouts = [(c["backend"], c["data_format"]) for c in bench.configurations(args)
               if c["backend"] in ("tensorflow", "torch")]
    assert layouts == [("tensorflow", "channels_last"), ("torch", "channels_last"),
                       ("torch", "channels_first")]
    assert "Skipped tensorflow channels_first: TensorFlow has no channels-first" in \
        capsys.readouterr().err


def _write_run(folder, val_accuracy, model="cbam", recipe="crop44", steps_per_epoch=None):
    """A run folder as train.py leaves it: history.csv, and run.json if its epochs
    were shortened (25,837 training images, batch 64: 403 steps to a full epoch)."""
    folder.mkdir(parents=True)
    rows = "".join(f"{i},{acc}\n" for i, acc in enumerate(val_accuracy))
    (folder / "history.csv").write_text("epoch,val_accuracy\n" + rows)
    if steps_per_epoch:
        (folder / "run.json").write_text(json.dumps({
            "model": model, "recipe_name": recipe, "steps_per_epoch": steps_per_epoch,
            "recipe": {"batch_size": 64}, "data": {"train": {"total": 25837}},
        }))
    return folder / "history.csv"


def test_bench_time_to_accuracy_epochs_and_times_from_histories(load_script, tmp_path):
    from types import SimpleNamespace

    bench = load_script("benchmarks/bench_time_to_accuracy.py")
    assert bench.epochs_to_threshold([0.40, 0.588, 0.70], 0.588) == 2
    assert bench.epochs_to_threshold([0.40, 0.58], 0.588) is None

    full = bench.read_history("cbam/crop44", _write_run(tmp_path / "full", [0.5, 0.6, 0.66]))
    short = bench.read_history("cbam/crop44/tensorflow", _write_run(
        tmp_path / "short", [0.3, 0.5, 0.59, 0.62, 0.65], steps_per_epoch=150))
    assert (full["steps_per_epoch"], short["steps_per_epoch"], short["batch_size"]) == (
        None, 150, 64)
    measured = {"kind": "project", "name": "cbam crop44: tensorflow", "model": "cbam",
                "recipe": "crop44", "backend": "tensorflow", "steps_per_epoch": 403,
                "batch_size": 64, "train_s_per_epoch": 300.0, "val_s_per_pass": 10.0,
                "load_s_once": 2.0, "s_per_epoch": 310.0}
    # Full epochs: k epochs of training and validation, the JPEGs decoded once.
    assert bench.time_to(3, full, measured) == {
        "history_epochs": 3, "full_epochs": 3.0, "seconds": 3 * 310.0 + 2.0}
    # Shortened epochs count by images seen; each of them validated once.
    reached = bench.time_to(3, short, measured)
    assert reached["full_epochs"] == pytest.approx(3 * 150 / 403)
    assert reached["seconds"] == pytest.approx(3 * 150 / 403 * 300.0 + 3 * 10.0 + 2.0)

    original = {"kind": "original", "name": "original cbam", "s_per_epoch": 100.0}
    other_backend = {**measured, "name": "cbam crop44: torch", "backend": "torch"}
    args = SimpleNamespace(original_accuracy=0.588, target_accuracy=0.65, original_epochs=20)
    table, target = bench.results([original, measured, other_backend], [full, short], args)
    by_history = {(e["configuration"], e["history"] and Path(e["history"]).parent.name): e
                  for e in table}
    assert by_history[("original cbam", None)]["a"]["seconds"] == 2000.0
    assert by_history[("original cbam", None)]["b_note"] == "never"
    # An unpinned history pairs with every backend measured, a pinned one with its own.
    assert {k for k in by_history if k[1] == "full"} == {
        ("cbam crop44: tensorflow", "full"), ("cbam crop44: torch", "full")}
    assert ("cbam crop44: torch", "short") not in by_history
    assert by_history[("cbam crop44: tensorflow", "full")]["speedup_vs_original"] == (
        pytest.approx(2000.0 / 622.0))
    assert by_history[("cbam crop44: tensorflow", "full")]["b"]["history_epochs"] == 3
    assert target["best_speedup"] == pytest.approx(2000.0 / reached["seconds"])
    assert target["met"] and target["against"] == "original cbam"
    text = bench.format_table(table, (0.588, 0.65))
    assert "| original cbam | 100 | 20 | 33 min | 1.00x | never | never |" in text
    assert "1.1 (3 short epochs)" in text

    with pytest.raises(ValueError, match="Name it cbam/crop44"):
        bench.read_history("vgg/crop44", tmp_path / "short" / "history.csv")
    (tmp_path / "bad.csv").write_text("epoch,accuracy\n0,0.5\n")
    with pytest.raises(ValueError, match="no val_accuracy column"):
        bench.read_history("cbam/seed", tmp_path / "bad.csv")
    with pytest.raises(SystemExit):
        bench.parse_args(["--history", "cbam=history.csv"])
    with pytest.raises(SystemExit):  # a history of a pair that is not measured
        bench.parse_args(["--history", "cbam/seed=h.csv", "--recipes", "crop44"])
    args = bench.parse_args(["--history", "cbam/crop44=a.csv", "--history", "vgg/crop44=b.csv"])
    assert args.pairs == [("cbam", "crop44"), ("vgg", "crop44")]


def test_bench_time_to_accuracy_runs_on_tiny_data(tmp_path):
    from tiny_data import write_kaggle_folders

    data = write_kaggle_folders(tmp_path / "data")
    history = _write_run(tmp_path / "baseline_seed", [0.3, 0.6, 0.7], "baseline", "seed")
    out = tmp_path / "time_to_accuracy.json"
    result = run_benchmark(
        "bench_time_to_accuracy.py", "--data-dir", str(data), "--original-model", "baseline",
        "--history", f"baseline/seed={history}", "--backends", BACKEND,
        "--references", "reference", "--steps", "2", "--rounds", "1", "--warmup-steps", "0",
        "--val-images", "8", "--json", str(out),
    )
    report = json.loads(out.read_text())
    original, project = report["configurations"]
    assert (original["kind"], project["kind"], project["backend"]) == (
        "original", "project", BACKEND)
    # 98 training images: 4 steps of the original's 32 (the last one partial), 1 of 64.
    assert (original["steps_per_epoch"], project["steps_per_epoch"]) == (4, 1)
    assert project["val_images"] == 14 and project["folder_images"] == 112
    assert project["inference_zoom"] is None  # seed does not crop
    for row in report["configurations"]:
        assert row["s_per_epoch"] > 0 and row["train_s_per_epoch"] > 0, row["name"]
    assert project["load_s_once"] > 0 and original["load_s_once"] == 0
    entry = next(e for e in report["table"] if e["history"])
    assert entry["a"]["history_epochs"] == 2 and entry["b"]["history_epochs"] == 3
    assert entry["speedup_vs_original"] > 0
    assert report["hardware"]["cores"] >= 1 and report["versions"]["keras"]
    assert report["command"][0] == "bench_time_to_accuracy.py"
    assert "| original baseline: its recipe, plain PyTorch |" in result.stdout
    assert "s/epoch = train window s" in result.stdout
