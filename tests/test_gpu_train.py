"""The GPU run's two tools on tiny data: the pack gives back what `load_split`
gives, and `gpu_train.py` trains from it into a run folder the machine can send
back, with neither TensorFlow nor matplotlib installed."""

import json
import os
import subprocess
import sys
import types
import zipfile

import h5py
import numpy as np
import pytest
from tiny_data import write_kaggle_folders

import keras

from fer_keras import data as fer_data
from fer_keras.loading import load_model
from fer_keras.models import inference_zoom

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def tools(load_script):
    return types.SimpleNamespace(pack=load_script("tools/pack_data.py"),
                                 train=load_script("tools/gpu_train.py"))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_kaggle_folders(tmp_path_factory.mktemp("fer"))


@pytest.fixture(scope="module")
def pack(tools, data_dir, tmp_path_factory):
    return tools.pack.pack_split(data_dir, tmp_path_factory.mktemp("pack") / "train.npz")


def test_pack_reads_back_as_load_split_reads_the_folder(tools, data_dir, pack):
    images, labels = tools.pack.read_pack(pack, workers=2)
    expected_images, expected_labels = fer_data.load_split(data_dir, "train")
    np.testing.assert_array_equal(images, expected_images)
    np.testing.assert_array_equal(labels, expected_labels)
    assert labels.dtype == np.int32 and len(labels) == 7 * 16  # the train split alone
    jpeg_bytes = sum(p.stat().st_size for p in (data_dir / "train").rglob("*.jpg"))
    with np.load(pack) as arrays:
        assert arrays["data"].size == jpeg_bytes  # every file, byte for byte


def test_read_pack_refuses_what_is_not_a_pack(tools, tmp_path):
    with pytest.raises(fer_data.DataError, match="not found.*pack_data.py"):
        tools.pack.read_pack(tmp_path / "missing.npz")
    np.savez(tmp_path / "other.npz", images=np.zeros(3))
    with pytest.raises(fer_data.DataError, match="not a FER2013 pack.*Found: images"):
        tools.pack.read_pack(tmp_path / "other.npz")


def test_read_pack_names_the_image_that_does_not_decode(tools, pack, tmp_path):
    with np.load(pack) as arrays:
        damaged = dict(arrays)
    damaged["data"] = damaged["data"].copy()
    damaged["data"][damaged["offsets"][5]:damaged["offsets"][6]] = 0
    np.savez(tmp_path / "damaged.npz", **damaged)
    with pytest.raises(fer_data.DataError, match="Image 5 of .*damaged.npz"):
        tools.pack.read_pack(tmp_path / "damaged.npz")


def test_pack_refuses_a_csv(tools, tmp_path):
    csv = tmp_path / "fer2013.csv"
    csv.write_text("emotion,pixels,Usage\n")
    with pytest.raises(fer_data.DataError, match="not image files"):
        tools.pack.pack_split(csv, tmp_path / "train.npz")


def test_learning_rate_scales_with_the_batch(tools):
    assert tools.train.scaled_lr(0.01, 256, 64) == pytest.approx(0.04)


def test_a_run_told_to_see_the_whole_image_stores_a_model_without_the_zoom(
        tools, pack, tmp_path):
    out = tmp_path / "whole"
    tools.train.main(["--pack", str(pack), "--output-dir", str(out), "--model", "baseline",
                      "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "16",
                      "--mixed-precision", "off", "--inference-zoom", "none",
                      "--backend", keras.backend.backend()])
    assert json.loads((out / "run.json").read_text())["inference_zoom"] is None
    assert inference_zoom(load_model(out / "model.keras")) is None


def test_time_limit_stops_after_the_last_epoch_that_fits(tools, capsys):
    now = [0.0]
    limit = tools.train.make_time_limit(100.0, start=0.0, clock=lambda: now[0])
    limit.set_model(types.SimpleNamespace(stop_training=False))
    limit.set_params({"epochs": 10})
    limit.on_train_begin()
    for epoch, end in enumerate((50.0, 70.0, 90.0)):
        now[0] = end
        limit.on_epoch_end(epoch)
        if limit.model.stop_training:
            break
    # Epoch 3 ended at 90 s; another 20 s one would end past 100 s.
    assert limit.stopped_after == 3
    assert "all 10 epochs end at about 230 s" in capsys.readouterr().out


# What the GPU machine lacks, hidden from every finder: `import` then fails and
# `importlib.util.find_spec` answers None, as where the package is not installed.
HIDE_PACKAGES = """import sys

class _Hidden:
    def __init__(self, finder):
        self._finder = finder

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("tensorflow", "matplotlib"):
            return None
        return self._finder.find_spec(name, path, target)

    def __getattr__(self, attr):
        return getattr(self._finder, attr)

sys.meta_path[:] = [_Hidden(finder) for finder in sys.meta_path]
"""


@pytest.mark.slow
@pytest.mark.only_backend("jax", reason="the GPU run is a jax run; the jax pass checks it")
def test_gpu_train_needs_neither_tensorflow_nor_matplotlib(pack, tmp_path):
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    (hidden / "sitecustomize.py").write_text(HIDE_PACKAGES)
    out = tmp_path / "run"
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(hidden)}
    result = subprocess.run(
        [sys.executable, "tools/gpu_train.py", "--pack", str(pack), "--output-dir", str(out),
         "--model", "baseline", "--epochs", "2", "--steps-per-epoch", "2",
         "--batch-size", "16", "--mixed-precision", "off", "--time-limit", "600"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "matplotlib is not installed" in result.stderr
    assert not (out / "curves.png").exists()
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "completed" and run["epochs"] == 2
    assert run["backend"] == "jax"
    assert run["pipeline"] == "device" and run["data_dir"] == str(pack)
    assert run["pack"]["images"] == 7 * 16 and run["recipe"]["batch_size"] == 16
    assert run["recipe"]["lr"] == pytest.approx(0.01 * 16 / 64)
    assert not (out / "backup").exists()
    assert len((out / "history.csv").read_text().splitlines()) == 3
    with zipfile.ZipFile(out / "model.keras") as archive:
        with h5py.File(archive.open("model.weights.h5")) as weights:
            dtypes = set()
            weights.visititems(lambda _, item: dtypes.add(getattr(item, "dtype", None)))
    assert np.dtype("float16") in dtypes and np.dtype("float32") not in dtypes
    model = load_model(out / "model.keras")
    assert model.name == "baseline"
    assert {layer.dtype_policy.name for layer in model.layers} == {"float32"}
    # crop44 trains on zoomed-in crops: the stored model keeps its inference zoom.
    assert run["inference_zoom"] == pytest.approx(44 / 48)
    assert inference_zoom(model) == pytest.approx(44 / 48)
