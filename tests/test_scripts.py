"""End to end through the real scripts, in subprocesses, on tiny data."""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_data import write_kaggle_folders

import keras

import fer_keras

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ("jax", "tensorflow", "torch")
BACKEND = keras.backend.backend()
OTHER = BACKENDS[(BACKENDS.index(BACKEND) + 1) % 3]

pytestmark = pytest.mark.slow
# Argument and error handling does not depend on the backend: checked in one pass.
once = pytest.mark.only_backend("tensorflow", reason="backend-independent; "
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


@pytest.fixture
def as_a_user(monkeypatch):
    """The environment of a user's shell: importing jax here set
    TF_CPP_MIN_LOG_LEVEL=1, which the scripts would take as the user's choice."""
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)


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


@pytest.mark.only_backend("jax", "torch", reason="jax and torch train without TensorFlow")
def test_device_pipeline_trains_without_tensorflow(data_dir, tmp_path):
    def train(pipeline):
        cmd = [sys.executable, "-c", _WITHOUT_TENSORFLOW, "--model", "baseline",
               "--data-dir", str(data_dir), "--output-dir", str(tmp_path / (pipeline or "default")),
               "--epochs", "1", "--batch-size", "16", "--augment", "strong", "--quiet"]
        if pipeline:
            cmd += ["--pipeline", pipeline]
        return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600,
                              env={**os.environ, "KERAS_BACKEND": BACKEND})

    result = train("device")
    assert result.returncode == 0, result.stderr[-3000:]
    run = json.loads((tmp_path / "device" / "run.json").read_text())
    assert run["status"] == "completed" and run["pipeline"] == "device"
    assert "tensorflow modules: []" in result.stdout
    result = train("tfdata")
    assert result.returncode == 2
    assert "needs TensorFlow" in result.stderr and "--pipeline device" in result.stderr
    assert 'pip install "fer-keras[tensorflow]"' in result.stderr
    assert "Traceback" not in result.stderr
    result = train(None)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count("training with --pipeline device") == 1
    run = json.loads((tmp_path / "default" / "run.json").read_text())
    assert run["pipeline"] == "device"


@pytest.mark.parametrize("backend", [BACKEND, OTHER])
def test_evaluate_under_each_backend(trained, data_dir, tmp_path, backend, as_a_user):
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
    for noise in ("cuInit", "absl::InitializeLog", "oneDNN"):
        assert noise not in result.stderr, result.stderr


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
    default = loading.DEFAULT_PRETRAINED
    metrics_path = tmp_path / "runs" / f"pretrained_{default}" / "eval" / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    assert metrics["model_path"] == str(loading.pretrained_path(default))
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
def test_evaluate_an_onnx_export_like_its_keras_model(served_files, data_dir, tmp_path):
    pytest.importorskip("onnxruntime")
    run_script("evaluate.py", "--model-path", str(served_files["keras"]),
               str(served_files["onnx"]), "--data-dir", str(data_dir),
               "--output-dir", str(tmp_path))
    keras_metrics, onnx_metrics = (
        json.loads(next(tmp_path.glob(f"model{i}_*/metrics.json")).read_text())
        for i in (1, 2)
    )
    assert onnx_metrics["model_path"] == str(served_files["onnx"])
    assert onnx_metrics["confusion_matrix"] == keras_metrics["confusion_matrix"]


@once
def test_evaluate_draws_the_grad_cam_of_what_it_got_wrong(data_dir, tmp_path):
    keras.utils.set_random_seed(0)
    untrained = tmp_path / "untrained.keras"
    fer_keras.build_model("baseline").save(untrained)
    result = run_script("evaluate.py", "--model-path", str(untrained), "--tta",
                        "mirror", "--gradcam-errors", "2", "--data-dir", str(data_dir),
                        "--output-dir", str(tmp_path))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["accuracy"] < 1  # untrained: errors to draw
    assert (tmp_path / "gradcam_errors.png").read_bytes()[:4] == b"\x89PNG"
    assert f"Grad-CAM grid of errors: {tmp_path / 'gradcam_errors.png'}" in result.stdout
    assert not (tmp_path / "gradcam.png").exists()


@once
def test_gradcam_of_a_litert_export_is_refused(litert_files, data_dir):
    result = run_script("evaluate.py", "--model-path", str(litert_files["float"]),
                        "--gradcam", "2", "--data-dir", str(data_dir), check=False)
    assert result.returncode == 2 and "an export has none" in result.stderr
    result = run_script("evaluate.py", "--model-path", str(litert_files["float"]),
                        "--gradcam-errors", "2", "--data-dir", str(data_dir), check=False)
    assert result.returncode == 2 and "--gradcam-errors needs the gradients" in result.stderr


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


# Refusals a user meets: one line, before anything loads or is written -------


@pytest.fixture
def script(load_script, monkeypatch):
    """Runs a script's main() in this process, for what it refuses up front."""
    monkeypatch.syspath_prepend(str(ROOT))
    # select_backend sets these; they go back as they were after the test.
    monkeypatch.setenv("KERAS_BACKEND", BACKEND)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3"))

    def main(name, *args):
        return load_script(name).main([*args, "--backend", BACKEND])

    return main


@pytest.mark.parametrize("option, value", [
    ("--epochs", "0"), ("--epochs", "-3"), ("--lr", "0"), ("--lr", "-1e-3"),
    ("--lr", "nan"), ("--folds", "0"), ("--val-split", "1.5"), ("--val-split", "0"),
    ("--weight-decay", "-1e-4"), ("--label-smoothing", "1"),
    ("--label-smoothing", "-0.1"), ("--warmup-epochs", "-1"), ("--momentum", "1"),
    ("--seed", "-1"), ("--inference-zoom", "0"), ("--inference-zoom", "1.1"),
    ("--inference-zoom", "half"),
])
def test_train_refuses_a_bad_value_naming_the_option(script, capsys, tmp_path, option,
                                                     value):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        script("train.py", "--data-dir", str(tmp_path / "absent"), "--output-dir", str(out),
               f"{option}={value}")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}: expected" in err and f"Received: '{value}'" in err
    assert not out.exists()


def test_option_types_take_the_edges_they_allow(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    from fer_keras import cli

    assert cli.open_fraction("0.5") == 0.5 and cli.unit_fraction("0") == 0.0
    assert cli.non_negative_int("0") == 0 and cli.non_negative_float("0") == 0.0
    assert cli.positive_float("1e-4") == 1e-4 and cli.positive_int("+3") == 3
    for check, text in ((cli.open_fraction, "1"), (cli.unit_fraction, "1.0"),
                        (cli.positive_float, "inf"), (cli.non_negative_int, "1.5"),
                        (cli.positive_int, "two")):
        with pytest.raises(argparse.ArgumentTypeError, match=f"Received: '{text}'"):
            check(text)
    assert cli.zoom_choice("Recipe") == "recipe" and cli.zoom_choice("none") is None
    assert cli.zoom_choice("0.9") == 0.9 and cli.zoom_choice("1") is None


def test_evaluate_refuses_a_negative_gradcam_before_evaluating(script, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        script("evaluate.py", "--gradcam", "-1", "--data-dir", str(tmp_path / "absent"))
    assert exit_info.value.code == 2
    assert "argument --gradcam: expected a whole number of at least 0" in capsys.readouterr().err


def test_a_missing_init_from_is_refused_before_the_run_folder(script, capsys, data_dir,
                                                               tmp_path):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        script("train.py", "--data-dir", str(data_dir), "--output-dir", str(out),
               "--init-from", str(tmp_path / "missing.keras"))
    message = str(exit_info.value.code)
    assert message.startswith(f"error: {tmp_path / 'missing.keras'}: No such file")
    assert "--init-from" in message and "--model-path" not in message
    assert not out.exists()


def test_more_folds_than_the_rarest_class_has_images_are_refused(script, data_dir, tmp_path):
    out = tmp_path / "cv"
    # 16 images of each class in the tiny data: 17 folds would leave one empty.
    with pytest.raises(ValueError, match="at most 16, the number of images of the rarest "
                       r"class \(angry\).*Received: k=17"):
        script("train.py", "--model", "baseline", "--data-dir", str(data_dir),
               "--output-dir", str(out), "--folds", "17", "--epochs", "1",
               "--steps-per-epoch", "1")
    assert not out.exists()


def test_evaluate_without_a_model_passes_over_a_failed_run(script, capsys, data_dir, tmp_path):
    import shutil

    from fer_keras.models import build_model

    runs = tmp_path / "runs"
    for age, name, status in ((60, "good", "completed"), (0, "nan", "failed: non-finite loss")):
        (runs / name).mkdir(parents=True)
        (runs / name / "run.json").write_text(json.dumps({"status": status}))
        if name == "good":
            build_model("baseline").save(runs / name / "model.keras")
        else:
            shutil.copy(runs / "good" / "model.keras", runs / name / "model.keras")
        stamp = (runs / name / "model.keras").stat().st_mtime - age
        os.utime(runs / name / "model.keras", (stamp, stamp))
    script("evaluate.py", "--runs-dir", str(runs), "--data-dir", str(data_dir))
    out = capsys.readouterr().out
    assert f"Skipping {runs / 'nan' / 'model.keras'}: its run.json says " \
           "'failed: non-finite loss'" in out
    assert f"Using {runs / 'good' / 'model.keras'}, the newest model" in out
    assert (runs / "good" / "eval" / "metrics.json").exists()
    assert not (runs / "nan" / "eval").exists()


def _one_line_error(result):
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1, result.stderr
    return lines[0]


@once
def test_an_output_dir_below_a_file_is_one_line(as_a_user, tmp_path):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a folder")
    for output_dir in (blocker / "run", blocker):
        result = run_script("train.py", "--output-dir", str(output_dir),
                            "--data-dir", str(tmp_path / "absent"), check=False)
        line = _one_line_error(result)
        assert line.startswith(f"error: {output_dir}: ") and str(blocker) in line
        assert "--output-dir" in line


@once
def test_an_export_below_a_file_is_one_line(as_a_user, tmp_path):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a folder")
    result = run_script("export.py", "--format", "onnx", "--output",
                        str(blocker / "model.onnx"), check=False)
    assert _one_line_error(result) == (f"error: {blocker}: is a file, where a folder is "
                                       "needed. Choose another path, or move the file away.")


@once
def test_library_noise_stays_out_of_export(as_a_user, tmp_path):
    result = run_script("export.py", "--format", "onnx", "--output",
                        str(tmp_path / "model.onnx"))
    assert "Checked: max" in result.stdout
    for noise in ("cuInit", "absl::InitializeLog", "oneDNN", "FutureWarning", "np.object"):
        assert noise not in result.stderr, result.stderr


def test_an_os_error_anywhere_is_one_line_and_a_bug_keeps_its_traceback(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(ROOT))
    from fer_keras import cli

    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file")

    def write_below_a_file():
        (blocker / "sub" / "x.json").parent.mkdir(parents=True, exist_ok=True)

    with pytest.raises(SystemExit) as exit_info:
        cli.run(write_below_a_file)
    assert str(exit_info.value.code) == (
        f"error: {blocker / 'sub'}: Not a directory. A part of the path is a file, "
        "not a folder: choose another path."
    )

    def bug():
        return len(3)

    with pytest.raises(TypeError):
        cli.run(bug)


@pytest.mark.only_backend("torch", reason="jax and tensorflow run --distribute")
def test_distribute_is_refused_at_start_where_the_backend_has_no_engine(script, capsys,
                                                                        tmp_path):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        # The data folder does not exist: the refusal must come before loading.
        script("train.py", "--distribute", "--data-dir", str(tmp_path / "absent"),
               "--output-dir", str(out))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--distribute runs under the jax and tensorflow backends" in err
    assert "Received: --backend torch" in err and not out.exists()
