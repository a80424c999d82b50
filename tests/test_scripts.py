"""End to end through the real scripts, in subprocesses, on tiny data."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import keras

from tiny_data import write_kaggle_folders

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ("jax", "tensorflow", "torch")
BACKEND = keras.backend.backend()
OTHER = BACKENDS[(BACKENDS.index(BACKEND) + 1) % 3]

pytestmark = pytest.mark.slow
# Argument and error handling does not depend on the backend: checked in one pass.
once = pytest.mark.skipif(BACKEND != "tensorflow", reason="backend-independent; "
                          "runs in the tensorflow pass of the suite")


def run_script(script, *args, backend=BACKEND, env_backend=None, check=True):
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    if env_backend:
        env["KERAS_BACKEND"] = env_backend
    cmd = [sys.executable, str(ROOT / script), *args]
    if backend:
        cmd += ["--backend", backend]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"{cmd} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_kaggle_folders(tmp_path_factory.mktemp("fer"))


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "cbam"
    result = run_script("train.py", "--model", "cbam", "--data-dir", str(data_dir),
                        "--output-dir", str(out), "--epochs", "2", "--batch-size", "16",
                        "--quiet")
    return out, result


def test_train_two_epochs(trained):
    out, result = trained
    run = json.loads((out / "run.json").read_text())
    assert run["backend"] == BACKEND and run["epochs"] == 2 and run["model"] == "cbam"
    assert run["command"][0] == "train.py" and "--epochs" in run["command"]
    assert "Epoch 2/2" in result.stdout
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"


# Imports of TensorFlow fail, as on a machine (a GPU box, say) without it.
# Only the import: torch probes for it with find_spec, which must not raise.
_WITHOUT_TENSORFLOW = """
import importlib.abc, importlib.machinery, runpy, sys

class NoTensorFlow(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "tensorflow":
            return importlib.machinery.ModuleSpec(name, self)

    def create_module(self, spec):
        raise ModuleNotFoundError(f"No module named {spec.name!r} (hidden by the test)")

sys.meta_path.insert(0, NoTensorFlow())
sys.argv = ["train.py", *sys.argv[1:]]
runpy.run_path("train.py", run_name="__main__")
print("tensorflow modules:", [m for m in sys.modules if m.split(".")[0] == "tensorflow"])
"""


@pytest.mark.skipif(BACKEND == "tensorflow", reason="jax and torch train without TensorFlow")
def test_device_pipeline_trains_without_tensorflow(data_dir, tmp_path):
    def train(pipeline):
        cmd = [sys.executable, "-c", _WITHOUT_TENSORFLOW, "--model", "baseline",
               "--data-dir", str(data_dir), "--output-dir", str(tmp_path / pipeline),
               "--epochs", "1", "--batch-size", "16", "--augment", "strong",
               "--pipeline", pipeline, "--quiet"]
        return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600,
                              env={**os.environ, "KERAS_BACKEND": BACKEND})

    result = train("device")
    assert result.returncode == 0, result.stderr[-3000:]
    run = json.loads((tmp_path / "device" / "run.json").read_text())
    assert run["status"] == "completed" and run["pipeline"] == "device"
    assert "tensorflow modules: []" in result.stdout
    result = train("tfdata")
    assert result.returncode == 1
    assert "needs TensorFlow" in result.stderr and "--pipeline device" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("backend", [BACKEND, OTHER])
def test_evaluate_under_each_backend(trained, data_dir, tmp_path, backend):
    out, _ = trained
    result = run_script("evaluate.py", "--model-path", str(out / "model.keras"),
                        "--data-dir", str(data_dir), "--output-dir", str(tmp_path),
                        backend=backend)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["backend"] == backend
    assert metrics["num_samples"] == 7 * 6
    assert set(metrics["per_class"]) == {"angry", "disgust", "fear", "happy", "sad",
                                         "surprise", "neutral"}
    assert f"{metrics['accuracy']:.4f}" in result.stdout
    for png in ("confusion_matrix.png", "per_class.png"):
        assert (tmp_path / png).exists()


@once
def test_evaluate_compares_several_models(trained, data_dir, tmp_path):
    out, _ = trained
    model = str(out / "model.keras")
    result = run_script("evaluate.py", "--model-path", model, model, "--tta",
                        "--data-dir", str(data_dir), "--output-dir", str(tmp_path))
    assert (tmp_path / "comparison.txt").exists()
    assert result.stdout.count("model.keras") >= 2


@once
def test_evaluate_on_the_validation_split_with_ten_crops(trained, data_dir):
    out, _ = trained
    result = run_script("evaluate.py", "--model-path", str(out / "model.keras"),
                        "--split", "val", "--tta", "ten_crop", "--data-dir", str(data_dir))
    run = json.loads((out / "run.json").read_text())
    metrics = json.loads((out / "eval_val" / "metrics.json").read_text())
    assert metrics["num_samples"] == run["data"]["val"]["total"]
    assert metrics["tta"] == "ten_crop" and metrics["split"] == "val"
    assert "validation images it held out" in result.stdout


@once
def test_evaluate_refuses_an_unknown_tta():
    result = run_script("evaluate.py", "--tta", "tencrop", check=False)
    assert result.returncode == 2
    assert "invalid choice: 'tencrop'" in result.stderr and "ten_crop" in result.stderr


@once
def test_evaluate_without_runs_uses_the_pretrained_model(data_dir, tmp_path):
    from fer_keras import loading

    result = run_script("evaluate.py", "--data-dir", str(data_dir),
                        "--runs-dir", str(tmp_path / "runs"))
    metrics = json.loads((tmp_path / "runs" / "pretrained_cbam" / "eval" / "metrics.json").read_text())
    assert metrics["model_path"] == str(loading.pretrained_path("cbam"))
    assert metrics["num_samples"] == 7 * 6
    assert f"{metrics['accuracy']:.4f}" in result.stdout
    assert not (loading.PRETRAINED_DIR / "eval").exists()


@once
def test_evaluate_a_litert_export_like_its_keras_model(litert_files, data_dir, tmp_path):
    run_script("evaluate.py", "--model-path", str(litert_files["keras"]),
               str(litert_files["float"]), "--data-dir", str(data_dir),
               "--output-dir", str(tmp_path))
    keras_metrics, litert_metrics = (
        json.loads(next(tmp_path.glob(f"model{i}_*/metrics.json")).read_text())
        for i in (1, 2)
    )
    assert litert_metrics["model_path"] == str(litert_files["float"])
    assert litert_metrics["confusion_matrix"] == keras_metrics["confusion_matrix"]
    assert (next(tmp_path.glob("model2_*")) / "confusion_matrix.png").exists()


@once
def test_gradcam_of_a_litert_export_is_refused(litert_files, data_dir):
    result = run_script("evaluate.py", "--model-path", str(litert_files["float"]),
                        "--gradcam", "2", "--data-dir", str(data_dir), check=False)
    assert result.returncode == 2 and "a .tflite export has none" in result.stderr


@once
def test_backend_disagreement_is_an_error():
    result = run_script("train.py", backend=OTHER, env_backend=BACKEND, check=False)
    assert result.returncode != 0
    assert f"KERAS_BACKEND={BACKEND} disagrees with --backend {OTHER}" in result.stderr


@once
def test_missing_data_folder_is_one_clear_line(tmp_path):
    result = run_script("train.py", "--data-dir", str(tmp_path / "missing"), check=False)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert str(tmp_path / "missing") in result.stderr


@once
def test_unknown_model_lists_choices():
    result = run_script("train.py", "--model", "alexnet", check=False)
    assert result.returncode == 2 and "cbam" in result.stderr


@once
def test_evaluate_rejects_a_file_that_is_not_a_model(tmp_path, data_dir):
    bad = tmp_path / "model.keras"
    bad.write_text("not a model")
    result = run_script("evaluate.py", "--model-path", str(bad), "--data-dir", str(data_dir),
                        check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "not a Keras model file" in result.stderr
