"""`--distribute` and `--multi-host` on simulated devices: a few steps on two
devices train as one device with the same global batch, the model they save
loads under every backend, run.json records the devices, and the processes
of a multi-host run train as one device while only process 0 writes.

jax simulates two host devices with XLA_FLAGS; tensorflow splits the CPU
into two logical devices (tests/trajectory_run.py); a multi-host jax run is
two local processes joined by jax.distributed on the CPU (gloo collectives).
"""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from parity import BACKENDS, logits_under_each
from tiny_data import write_kaggle_folders

import keras

from fer_keras.history import read_history

ROOT = Path(__file__).resolve().parents[1]
BACKEND = keras.backend.backend()
TRAJECTORY = str(ROOT / "tests" / "trajectory_run.py")

pytestmark = pytest.mark.slow
jax_only = pytest.mark.only_backend(
    "jax", reason="simulated host devices and jax.distributed are jax features")
# What run.json says about the two devices of each backend.
TWO_DEVICES = {
    "jax": ("keras.distribution.DataParallel", "cpu"),
    "tensorflow": ("tf.distribute.MirroredStrategy", "CPU"),
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_kaggle_folders(tmp_path_factory.mktemp("fer"))


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory):
    """(folder, stdout) of one process that trains on one device, then on two."""
    if BACKEND not in TWO_DEVICES:
        pytest.skip(f"--distribute runs under jax and tensorflow, not {BACKEND}")
    out = tmp_path_factory.mktemp("trajectory")
    env = {**os.environ, "KERAS_BACKEND": BACKEND}
    if BACKEND == "jax":
        env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    result = subprocess.run(
        [sys.executable, TRAJECTORY, str(data_dir), str(out), "one", "two"],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out, result.stdout


def _assert_same_run(want_path: Path, got_path: Path) -> None:
    """Same per-step losses, validation results and weights, to 1e-4 relative."""
    with np.load(want_path) as want, np.load(got_path) as got:
        assert len(want["losses"]) == 4 and np.ptp(want["losses"]) > 1e-3
        np.testing.assert_allclose(got["losses"], want["losses"], rtol=1e-4)
        np.testing.assert_allclose(got["validation"], want["validation"], rtol=1e-4)
        weights = [k for k in want.files if k.startswith("w")]
        assert len(weights) == 10 and sorted(got.files) == sorted(want.files)
        for key in weights:
            drift = np.linalg.norm(got[key] - want[key]) / np.linalg.norm(want[key])
            assert drift < 1e-4, f"weight {key}: relative difference {drift:.2e}"


def test_two_devices_train_as_one_with_the_same_global_batch(trained):
    out, stdout = trained
    # 21 validation images: jax pads them to 22 for the two devices, and
    # the validation loss and accuracy are still those of the 21.
    _assert_same_run(out / "one.npz", out / "two.npz")
    strategy, kind = TWO_DEVICES[BACKEND]
    assert f"Training on 2 {kind} devices ({strategy}), batch 16 = 2 x 8." in stdout
    run = json.loads((out / "two" / "run.json").read_text())
    assert run["distribution"] == {
        "strategy": strategy, "devices": 2, "device_kind": kind, "processes": 1,
        "global_batch": 16, "per_device_batch": 8,
    }
    one = json.loads((out / "one" / "run.json").read_text())
    assert one["distribution"]["strategy"] == "single device"


def test_a_model_trained_on_two_devices_predicts_the_same_under_every_backend(
        trained, tmp_path):
    out, _ = trained
    shutil.copy(out / "two" / "model.keras", tmp_path / "two.keras")
    x = np.random.default_rng(3).uniform(0, 255, (4, 48, 48, 1)).astype("float32")
    model = keras.saving.load_model(tmp_path / "two.keras")
    want = keras.ops.convert_to_numpy(model(x, training=False))
    others = [b for b in BACKENDS if b != BACKEND]
    for backend, logits in logits_under_each(others, tmp_path, x).items():
        np.testing.assert_allclose(logits["two"], want, atol=1e-4, rtol=0, err_msg=backend)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_hosts(data_dir, out: Path) -> list[subprocess.CompletedProcess]:
    """Runs the two processes of a multi-host jax run, both told to write `out`.

    That hosts which do not share the folder stop is tested in test_devices.py
    on made-up answers of the processes: two more processes take half a minute.
    """
    import jax

    if "jax_cpu_collectives_implementation" not in jax.config.values:
        pytest.skip("this jax build has no CPU collectives for jax.distributed")
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(KERAS_BACKEND="jax", JAX_CPU_COLLECTIVES_IMPLEMENTATION="gloo",
               KERAS_DISTRIBUTION_JOB_ADDRESSES=f"127.0.0.1:{_free_port()}",
               KERAS_DISTRIBUTION_NUM_PROCESSES="2")
    logs = [(out / f"process{i}.out", out / f"process{i}.err") for i in range(2)]
    processes = []
    for index, (stdout, stderr) in enumerate(logs):
        with open(stdout, "w") as o, open(stderr, "w") as e:
            processes.append(subprocess.Popen(
                [sys.executable, TRAJECTORY, str(data_dir), str(out), "hosts"],
                stdout=o, stderr=e, cwd=ROOT,
                env={**env, "KERAS_DISTRIBUTION_PROCESS_ID": str(index)},
            ))
    try:
        codes = [process.wait(timeout=600) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    return [subprocess.CompletedProcess(p.args, code, o.read_text(), e.read_text())
            for p, code, (o, e) in zip(processes, codes, logs)]


@jax_only
def test_two_processes_train_as_one_device_and_only_process_0_writes(
        data_dir, trained, tmp_path):
    results = _run_hosts(data_dir, tmp_path)
    for result in results:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert "Training on 2 cpu devices in 2 processes" in result.stdout
    one, _ = trained
    for index in (0, 1):
        _assert_same_run(one / "one.npz", tmp_path / f"hosts{index}.npz")
    run = json.loads((tmp_path / "hosts" / "run.json").read_text())
    assert run["status"] == "completed"
    assert run["distribution"]["processes"] == 2 and run["distribution"]["devices"] == 2
    # Both processes were given the same folder: a second writer would have
    # appended its own row for the epoch.
    assert [row["epoch"] for row in read_history(tmp_path / "hosts" / "history.csv")] == ["0"]
    assert "model saved to" in results[0].stdout and "model saved to" not in results[1].stdout
    assert keras.saving.load_model(tmp_path / "hosts" / "model.keras").output.shape[-1] == 7


def _train(data_dir, out, *args, backend="jax"):
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    return subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "--backend", backend,
         "--model", "baseline", "--data-dir", str(data_dir), "--output-dir", str(out),
         "--epochs", "1", "--steps-per-epoch", "2", "--pipeline", "device", "--quiet", *args],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=600,
    )


@jax_only
def test_a_batch_the_devices_cannot_share_is_refused_before_loading(tmp_path):
    out = tmp_path / "run"
    result = _train(tmp_path / "absent", out, "--distribute", "--batch-size", "15")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "--batch-size 15 does not split evenly over 2 cpu devices" in result.stderr
    assert "such as 14 or 16" in result.stderr
    assert not out.exists()


@pytest.mark.only_backend("torch", reason="the torch pass checks it: the refusal is the "
                          "same for tensorflow, and a train.py start costs seconds")
def test_multi_host_is_refused_under_other_backends_before_loading(tmp_path):
    out = tmp_path / "run"
    result = _train(tmp_path / "absent", out, "--multi-host", backend=BACKEND)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"--multi-host runs under the jax backend. Received: --backend {BACKEND}" \
        in result.stderr
    assert not out.exists()
