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
    norms = [l for l in swapped.layers if isinstance(l, keras.layers.BatchNormalization)]
    assert len(norms) == 5
    assert not any(isinstance(l, FusedBatchNormalization) for l in norms)
    assert [l.name for l in swapped.layers] == [l.name for l in model.layers]


@pytest.mark.skipif(BACKEND != "tensorflow", reason="argument checks, backend-independent: "
                    "checked in the tensorflow pass")
def test_bench_train_rejects_bad_options():
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_train.py"), "--backends", "numpy"],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )
    assert result.returncode == 2
    assert "Received: 'numpy'" in result.stderr


@pytest.mark.skipif(BACKEND != "tensorflow", reason="a .tflite file runs without the "
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


def test_bench_train_skips_a_layout_the_cpu_cannot_compute(load_script, monkeypatch, capsys):
    from fer_keras import models

    bench = load_script("benchmarks/bench_train.py")
    monkeypatch.setattr(models, "_tensorflow_runs_channels_first", lambda: False)
    args = bench.parse_args(["--models", "cbam", "--backends", "tensorflow,torch",
                             "--data-format", "channels_last,channels_first"])
    layouts = [(c["backend"], c["data_format"]) for c in bench.configurations(args)
               if c["backend"] in ("tensorflow", "torch")]
    assert layouts == [("tensorflow", "channels_last"), ("torch", "channels_last"),
                       ("torch", "channels_first")]
    assert "Skipped tensorflow channels_first: TensorFlow has no channels-first" in \
        capsys.readouterr().err
