"""`--distribute` on simulated devices: what run.json records, and a batch the
devices cannot share refused before anything loads (jax pass only: the
devices are simulated with XLA_FLAGS in a subprocess)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import keras

from tiny_data import write_kaggle_folders

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(keras.backend.backend() != "jax",
                       reason="simulated host devices are a jax feature (XLA_FLAGS)"),
]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_kaggle_folders(tmp_path_factory.mktemp("fer"))


def _train(data_dir, out, *args):
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    return subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "--backend", "jax", "--distribute",
         "--model", "baseline", "--data-dir", str(data_dir), "--output-dir", str(out),
         "--epochs", "1", "--steps-per-epoch", "2", "--pipeline", "device", "--quiet", *args],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=600,
    )


def test_a_distributed_run_records_its_devices_and_batch_split(data_dir, tmp_path):
    out = tmp_path / "run"
    result = _train(data_dir, out, "--batch-size", "16")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Training on 2 cpu devices (keras.distribution.DataParallel), batch 16 = 2 x 8" \
        in result.stdout
    run = json.loads((out / "run.json").read_text())
    assert run["distribution"] == {
        "strategy": "keras.distribution.DataParallel", "devices": 2, "device_kind": "cpu",
        "global_batch": 16, "per_device_batch": 8,
    }
    assert keras.saving.load_model(out / "model.keras").output.shape[-1] == 7


def test_a_batch_the_devices_cannot_share_is_refused_before_loading(tmp_path):
    out = tmp_path / "run"
    result = _train(tmp_path / "absent", out, "--batch-size", "15")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "--batch-size 15 does not split evenly over 2 cpu devices" in result.stderr
    assert "such as 14 or 16" in result.stderr
    assert not out.exists()
