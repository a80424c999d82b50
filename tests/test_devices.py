"""Precision and distribution: what a run picks for its devices, and that it
puts the global state back."""

import keras

from fer_keras import devices
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
        "global_batch": 64, "per_device_batch": 64,
    }
    assert placement.describe() == "one CPU device, batch 64"
