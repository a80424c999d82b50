"""Precision and distribution: what a run picks for its devices, that it
puts the global state back, and how batches are shared out over devices and
hosts (the runs themselves: test_devices_distributed.py)."""

import numpy as np
import pytest

import keras

from fer_keras import devices
from fer_keras.data import ArrayBatches
from fer_keras.errors import TrainingError
from fer_keras.models import build_model


def test_auto_precision_uses_bfloat16_only_where_the_chip_has_it():
    from fer_keras.runinfo import cpu_has_bfloat16

    assert devices.auto_precision(["NVIDIA H200"], cpu_bfloat16=False) == "mixed_float16"
    assert devices.auto_precision(["TPU v5 lite"], cpu_bfloat16=False) == "mixed_bfloat16"
    assert devices.auto_precision([], cpu_bfloat16=True) == "mixed_bfloat16"
    assert devices.auto_precision([], cpu_bfloat16=False) == "float32"
    assert cpu_has_bfloat16({"avx512f", "avx512_bf16"})
    assert cpu_has_bfloat16({"amx_bf16", "amx_tile"})
    assert not cpu_has_bfloat16({"avx512f", "avx512_vnni"})


def test_global_policy_and_distribution_are_put_back_even_on_error():
    before = keras.config.dtype_policy().name
    try:
        with devices.preserved_global_state():
            devices.set_precision("bfloat16")
            assert keras.config.dtype_policy().name == "mixed_bfloat16"
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert keras.config.dtype_policy().name == before
    assert build_model("baseline").layers[1].dtype_policy.name == before
    assert keras.distribution.distribution() is None


def test_a_single_device_run_records_where_it_trained():
    placement = devices.Placement(False, 64)
    assert placement.to_dict() == {
        "strategy": "single device", "devices": 1, "device_kind": "CPU",
        "processes": 1, "global_batch": 64, "per_device_batch": 64,
    }
    assert placement.describe() == "one CPU device, batch 64"


def test_padding_for_the_devices_leaves_the_loss_and_accuracy_of_the_real_images():
    x = np.random.default_rng(0).normal(size=(7, 7)).astype("float32")
    # The model's logits are x itself: the first 3 of the 7 answers are right.
    labels = np.argmax(x, axis=1)
    labels[3:] = (labels[3:] + 1) % 7
    model = keras.Sequential([keras.Input((7,)), keras.layers.Dense(7)])
    model.set_weights([np.eye(7, dtype="float32"), np.zeros(7, "float32")])
    model.compile(
        loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1),
        metrics=[devices.LabelledAccuracy(name="accuracy")])

    def one_hot(ids):
        return (ids[:, None] == np.arange(7)).astype("float32")

    want = model.evaluate(x, one_hot(labels), batch_size=3, verbose=0, return_dict=True)
    padded_x, padded_labels, weights = devices.pad_evaluation(x, labels, 4)
    assert len(padded_x) == 8 and padded_labels[-1] == -1 and weights[-1] == 0
    got = model.evaluate(padded_x, one_hot(padded_labels), sample_weight=weights,
                         batch_size=4, verbose=0, return_dict=True)
    assert want["accuracy"] == pytest.approx(3 / 7)
    assert got["accuracy"] == pytest.approx(want["accuracy"], rel=1e-6)
    assert got["loss"] == pytest.approx(want["loss"], rel=1e-5)
    assert devices.pad_evaluation(x[:4], labels[:4], 4)[2] is None


def test_each_process_feeds_its_own_share_of_every_batch():
    # 22 rows in batches of 8 over 2 processes: 4 + 4, 4 + 4, then 3 + 3.
    shares = [devices.process_rows(22, 8, index, 2) for index in (0, 1)]
    assert shares[0].tolist() == [0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18]
    assert shares[1].tolist() == [4, 5, 6, 7, 12, 13, 14, 15, 19, 20, 21]

    images = np.arange(12, dtype=np.uint8).reshape(12, 1, 1, 1) * np.ones((1, 48, 48, 1),
                                                                           np.uint8)
    labels = np.arange(12) % 7
    whole = ArrayBatches(images, labels, batch_size=4, seed=5)
    parts = [devices.ProcessShare(ArrayBatches(images, labels, batch_size=4, seed=5), i, 2)
             for i in (0, 1)]
    for _ in range(2):  # two epochs: each share follows the new order
        assert len(parts[0]) == len(whole) == 3
        for i in range(len(whole)):
            for k in (0, 1):
                joined = np.concatenate([parts[0][i][k], parts[1][i][k]])
                np.testing.assert_array_equal(joined, whole[i][k])
        whole.on_epoch_end()
        for part in parts:
            part.on_epoch_end()


def test_processes_that_see_another_run_folder_are_stopped(monkeypatch):
    from jax.experimental import multihost_utils

    placement = devices.Placement(False, 8)
    placement.agree("anything", [1, 3])  # one process: nothing to compare
    placement.processes = 2
    monkeypatch.setattr(multihost_utils, "process_allgather",
                        lambda values: np.stack([values, [0, 3]]))
    with pytest.raises(TrainingError, match=r"The 2 processes disagree on where the run "
                       r"stands\. .* Received: process 0: \[1, 3\]; process 1: \[0, 3\]"):
        placement.agree("where the run stands", [1, 3])
    placement.agree("where the run stands", [0, 3])


@pytest.mark.only_backend("tensorflow", "torch",
                          reason="jax trains on several hosts; the others refuse to")
def test_several_hosts_are_refused_outside_jax():
    with pytest.raises(TrainingError, match="several hosts is supported under the jax "
                       "backend. Received: backend="):
        devices.Placement(True, 8, multi_host=True)
