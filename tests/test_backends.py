"""Each backend module answers the same questions, and answers them right
for the backend the suite runs under."""

import sys

import numpy as np
import pytest

import keras

from fer_keras import backends

BACKEND = keras.backend.backend()
INTERFACE = ("PREFERRED_DATA_FORMAT", "runs_data_format", "FUSED_BATCH_NORM_FORMAT",
             "fused_batch_norm", "COMPILES_AFFINE_WARP", "accelerators",
             "compile_forward", "MULTI_HOST", "data_parallel")


@pytest.mark.parametrize("name", [*backends.NAMES, "numpy"])
def test_every_backend_module_has_the_whole_interface(name):
    module = backends.get(name)
    missing = [attr for attr in INTERFACE if not hasattr(module, attr)]
    assert not missing, f"{module.__name__} lacks {missing}"
    assert module.PREFERRED_DATA_FORMAT in ("channels_last", "channels_first")
    assert (module.FUSED_BATCH_NORM_FORMAT is None) == (module.fused_batch_norm is None)
    assert module.runs_data_format("channels_last")


def test_get_defaults_to_the_current_backend_and_others_to_generic():
    assert backends.get() is backends.get(BACKEND)
    assert backends.get().__name__ == f"fer_keras.backends.{BACKEND}"
    assert backends.get("openvino").__name__ == "fer_keras.backends.generic"


def test_a_missing_framework_says_what_to_install(monkeypatch):
    other = next(name for name in backends.NAMES if name != BACKEND)
    monkeypatch.delitem(sys.modules, f"fer_keras.backends.{other}", raising=False)
    monkeypatch.setitem(sys.modules, other, None)
    with pytest.raises(ImportError, match=rf'pip install "fer-keras\[{other}\]".*'
                                          rf"Received: backend='{other}'"):
        backends.get(other)


def _model():
    inputs = keras.Input((6, 6, 1))
    x = keras.layers.Conv2D(3, 3, name="conv")(inputs)
    outputs = keras.layers.Dense(7)(keras.layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize("count", [1, 3, 5, 8])
def test_compile_forward_gives_the_model_softmax_for_any_batch_size(count):
    model = _model()
    x = np.random.default_rng(count).uniform(0, 255, (count, 6, 6, 1)).astype("float32")
    expected = keras.ops.convert_to_numpy(keras.ops.softmax(model(x), axis=-1))
    probs = np.asarray(backends.get().compile_forward(model)(x))
    assert probs.shape == (count, 7)
    np.testing.assert_allclose(probs, expected, rtol=1e-5, atol=1e-6)


def test_compile_forward_sees_weights_changed_after_compiling():
    model = _model()
    forward = backends.get().compile_forward(model)
    x = np.ones((2, 6, 6, 1), "float32")
    before = np.asarray(forward(x))
    dense = model.layers[-1]
    dense.bias.assign(np.arange(7, dtype="float32"))
    after = np.asarray(forward(x))
    assert not np.allclose(before, after)
    np.testing.assert_allclose(after, keras.ops.convert_to_numpy(
        keras.ops.softmax(model(x), axis=-1)), rtol=1e-5, atol=1e-6)


def test_jax_pads_batches_to_a_power_of_two():
    pytest.importorskip("jax")
    padded = [backends.get("jax").padded_size(n) for n in (1, 2, 3, 5, 64, 65, 200, 256)]
    assert padded == [1, 2, 4, 8, 64, 128, 256, 256]


@pytest.mark.skipif(backends.get(BACKEND).fused_batch_norm is None,
                    reason="this backend has no fused batch-norm kernel")
def test_fused_batch_norm_returns_the_batch_moments():
    module = backends.get()
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, (4, 5, 5, 3)).astype("float32")
    axes = (0, 1, 2)
    if module.FUSED_BATCH_NORM_FORMAT == "channels_first":
        x, axes = x.transpose(0, 3, 1, 2), (0, 2, 3)
    gamma, beta = np.array([1.0, 2.0, 0.5], "float32"), np.array([0.0, 1.0, -1.0], "float32")
    outputs, mean, variance = (keras.ops.convert_to_numpy(t) for t in module.fused_batch_norm(
        keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(gamma),
        keras.ops.convert_to_tensor(beta), 1e-3))
    np.testing.assert_allclose(mean, x.mean(axis=axes), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(variance, x.var(axis=axes, ddof=1), rtol=1e-4)
    shape = [1, 1, 1, 1]
    shape[1 if module.FUSED_BATCH_NORM_FORMAT == "channels_first" else 3] = 3
    reference = ((x - x.mean(axis=axes, keepdims=True))
                 / np.sqrt(x.var(axis=axes, keepdims=True) + 1e-3)
                 * gamma.reshape(shape) + beta.reshape(shape))
    np.testing.assert_allclose(outputs, reference, rtol=1e-4, atol=1e-4)


def test_data_parallel_finds_the_devices_or_is_absent():
    module = backends.get()
    if module.data_parallel is None:
        assert BACKEND not in ("jax", "tensorflow")
        return
    layout = module.data_parallel(False)
    assert layout.devices >= 1 and layout.processes == 1 and layout.process_index == 0
    assert layout.strategy.startswith("keras.distribution" if BACKEND == "jax" else "tf.distribute")
    assert (layout.tf_strategy is not None) == (BACKEND == "tensorflow")


def test_accelerators_is_empty_on_a_cpu_only_machine():
    names = backends.get().accelerators()
    assert isinstance(names, list)
    if BACKEND == "jax":
        import jax

        assert len(names) == sum(d.platform != "cpu" for d in jax.devices())
