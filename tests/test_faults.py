"""Kill -9 at awkward moments, then the same command again: the run must
finish with every epoch once in history.csv and a model.keras that loads.

Each kill costs two script runs, so this runs in one backend's pass only
(jax); the backup and resume code it covers is the same under every backend
and is checked per backend in test_backup.py and test_training.py."""

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_data import write_kaggle_folders

import keras

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.only_backend("jax", reason="the runs are subprocesses under jax, whatever "
                             "the suite's backend: one pass checks them"),
]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_kaggle_folders(tmp_path_factory.mktemp("fer"))


def _run(data_dir, out, moment=None):
    args = ["--backend", "jax", "--model", "baseline", "--data-dir", str(data_dir),
            "--output-dir", str(out), "--epochs", "3", "--batch-size", "16",
            "--steps-per-epoch", "3", "--pipeline", "device", "--quiet"]
    script = [str(ROOT / "tests" / "fault_run.py"), moment] if moment else [str(ROOT / "train.py")]
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    return subprocess.run([sys.executable, *script, *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=600)


@pytest.mark.parametrize("moment", ["step", "backup", "best"])
def test_a_kill_at_any_moment_resumes_with_the_same_command(data_dir, tmp_path, moment):
    out = tmp_path / "run"
    killed = _run(data_dir, out, moment)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr

    rerun = _run(data_dir, out)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "Traceback" not in rerun.stderr
    with open(out / "history.csv", newline="") as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == [0, 1, 2]
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "completed" and run["epochs"] == 3
    assert keras.saving.load_model(out / "model.keras").output.shape[-1] == 7
    assert not (out / "backup").exists()
