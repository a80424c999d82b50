"""Tests of the custom layers: the fixed filter bank, CBAM, the fused batch norm,
the inference zoom."""

import numpy as np
import pytest
from scipy import signal

import keras
from keras import ops

import fer_keras
from fer_keras import tta
from fer_keras.layers import (
    CBAM,
    FIXED_KERNELS,
    FixedKernels,
    FusedBatchNormalization,
    InferenceZoom,
    fixed_kernel_bank,
)

BANK_MODELS = ("kernels", "resnet", "cbam")


def _numpy(x):
    return ops.convert_to_numpy(x)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _cbam_reference(x, squeeze, excite, spatial, use_max_pool):
    """CBAM in plain NumPy/SciPy, written from the paper and SEED.md."""

    def mlp(pooled):
        return np.maximum(pooled @ squeeze, 0.0) @ excite

    logits = mlp(x.mean(axis=(1, 2)))
    if use_max_pool:
        logits = logits + mlp(x.max(axis=(1, 2)))
    x = x * _sigmoid(logits)[:, None, None, :]
    maps = np.stack([x.max(axis=-1), x.mean(axis=-1)], axis=-1)
    attention = np.stack(
        [
            sum(
                signal.correlate2d(image[..., c], spatial[..., c, 0], mode="same")
                for c in range(2)
            )
            for image in maps
        ]
    )
    return x * _sigmoid(attention)[..., None]


def test_fixed_kernels_returns_the_five_kernels():
    kernel = _numpy(FixedKernels()((3, 3, 1, 5), dtype="float32"))
    assert kernel.shape == (3, 3, 1, 5)
    np.testing.assert_array_equal(kernel, fixed_kernel_bank())
    for i, rows in enumerate(FIXED_KERNELS.values()):
        np.testing.assert_array_equal(kernel[:, :, 0, i], np.asarray(rows, "float32"))


@pytest.mark.parametrize("shape", [(3, 3, 3, 5), (5, 5, 1, 5), (3, 3, 1, 4), (3, 3, 5)])
def test_fixed_kernels_rejects_other_shapes(shape):
    with pytest.raises(ValueError, match=r"Received: shape="):
        FixedKernels()(shape)


def test_fixed_kernels_serializes():
    initializer = keras.initializers.deserialize(
        keras.initializers.serialize(FixedKernels())
    )
    assert isinstance(initializer, FixedKernels)


@pytest.mark.parametrize("name", BANK_MODELS)
def test_fixed_bank_is_a_cross_correlation(name):
    model = fer_keras.build_model(name)
    bank = keras.Model(model.input, model.get_layer(f"{name}_fixed_kernels").output)
    images = np.random.default_rng(0).uniform(0, 255, (2, 48, 48, 1))
    got = _numpy(bank(images.astype("float32")))

    scaled = images[..., 0] / 127.5 - 1.0
    want = np.stack(
        [
            np.stack(
                [
                    signal.correlate2d(image, np.asarray(k, float), mode="same")
                    for k in FIXED_KERNELS.values()
                ],
                axis=-1,
            )
            for image in scaled
        ]
    )
    assert got.shape == (2, 48, 48, 5)
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_baseline_has_no_fixed_bank():
    model = fer_keras.build_model("baseline")
    assert not any("fixed_kernels" in layer.name for layer in model.layers)


def test_fixed_bank_does_not_train():
    model = fer_keras.build_model("kernels")
    bank = model.get_layer("kernels_fixed_kernels")
    conv = model.get_layer("kernels_block1_conv")
    assert not bank.trainable
    assert all(w is not bank.kernel for w in model.trainable_weights)

    bank_before = _numpy(bank.kernel).copy()
    conv_before = _numpy(conv.kernel).copy()
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 255, (16, 48, 48, 1)).astype("float32")
    y = rng.integers(0, 7, 16)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)

    np.testing.assert_array_equal(_numpy(bank.kernel), bank_before)
    np.testing.assert_array_equal(_numpy(bank.kernel), fixed_kernel_bank())
    assert np.abs(_numpy(conv.kernel) - conv_before).max() > 1e-4


@pytest.mark.parametrize("shape", [(2, 8, 8, 32), (3, 5, 7, 16), (1, 6, 6, 3)])
def test_cbam_keeps_the_shape(shape):
    x = np.random.default_rng(0).normal(size=shape).astype("float32")
    layer = CBAM()
    assert tuple(_numpy(layer(x)).shape) == shape
    assert layer.compute_output_shape(shape) == shape
    hidden = max(1, shape[-1] // 16)
    assert tuple(layer.channel_squeeze.shape) == (shape[-1], hidden)
    assert tuple(layer.channel_excite.shape) == (hidden, shape[-1])
    assert tuple(layer.spatial_kernel.shape) == (7, 7, 2, 1)


@pytest.mark.parametrize("use_max_pool", [False, True])
def test_cbam_matches_numpy_reference(use_max_pool):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 9, 10, 32)).astype("float32")
    layer = CBAM(reduction=8, use_max_pool=use_max_pool)
    layer.build(x.shape)
    weights = [rng.normal(size=w.shape).astype("float32") for w in layer.weights]
    layer.set_weights(weights)
    want = _cbam_reference(x.astype(float), *weights, use_max_pool=use_max_pool)
    np.testing.assert_allclose(_numpy(layer(x)), want, atol=1e-5)


def test_cbam_config_round_trip():
    layer = CBAM(reduction=4, spatial_kernel_size=5, use_max_pool=True, name="att")
    x = np.random.default_rng(3).normal(size=(2, 8, 8, 16)).astype("float32")
    want = _numpy(layer(x))

    clone = CBAM.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    clone.build(x.shape)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(_numpy(clone(x)), want, atol=1e-6)


@pytest.mark.channels_first
@pytest.mark.parametrize("use_max_pool", [False, True])
def test_cbam_channels_first_computes_the_same_with_the_same_weights(use_max_pool):
    rng = np.random.default_rng(6)
    x = rng.normal(size=(2, 9, 10, 32)).astype("float32")
    last = CBAM(reduction=8, use_max_pool=use_max_pool)
    first = CBAM(reduction=8, use_max_pool=use_max_pool, data_format="channels_first")
    last.build(x.shape)
    first.build((2, 32, 9, 10))
    weights = [rng.normal(size=w.shape).astype("float32") for w in last.weights]
    first.set_weights(weights)
    last.set_weights(weights)
    got = _numpy(first(np.transpose(x, (0, 3, 1, 2))))
    np.testing.assert_allclose(np.transpose(got, (0, 2, 3, 1)), _numpy(last(x)), atol=1e-5)
    assert first.compute_output_shape((2, 32, 9, 10)) == (2, 32, 9, 10)
    clone = CBAM.from_config(first.get_config())
    assert clone.data_format == "channels_first"


def test_cbam_defaults_to_channels_last_whatever_the_global_setting():
    previous = keras.config.image_data_format()
    keras.config.set_image_data_format("channels_first")
    try:
        layer = CBAM()
    finally:
        keras.config.set_image_data_format(previous)
    assert layer.data_format == "channels_last"


def test_cbam_max_pool_path_changes_the_output():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 8, 8, 32)).astype("float32")
    plain = CBAM(reduction=4, use_max_pool=False)
    paper = CBAM(reduction=4, use_max_pool=True)
    plain.build(x.shape)
    paper.build(x.shape)
    # Seeded weights: with an unlucky init every hidden ReLU could be dead.
    weights = [rng.normal(size=w.shape).astype("float32") for w in plain.weights]
    plain.set_weights(weights)
    paper.set_weights(weights)
    assert np.abs(_numpy(plain(x)) - _numpy(paper(x))).max() > 1e-4


@pytest.mark.parametrize(
    "kwargs",
    [{"reduction": 0}, {"spatial_kernel_size": 4}, {"spatial_kernel_size": 0},
     {"data_format": "NCHW"}],
)
def test_cbam_rejects_invalid_arguments(kwargs):
    with pytest.raises(ValueError, match="Received:"):
        CBAM(**kwargs)


def test_cbam_rejects_non_image_input():
    with pytest.raises(ValueError, match="Received: input_shape"):
        CBAM().build((2, 16))
    with pytest.raises(ValueError, match=r"\(batch, channels, height, width\)"):
        CBAM(data_format="channels_first").build((2, None, 8, 8))


def test_cbam_survives_keras_file(tmp_path):
    inputs = keras.Input((12, 12, 32))
    x = CBAM(reduction=8, use_max_pool=True, name="attention")(inputs)
    outputs = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    data = np.random.default_rng(5).normal(size=(2, 12, 12, 32)).astype("float32")
    want = _numpy(model(data))

    path = tmp_path / "cbam.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.get_layer("attention"), CBAM)
    assert loaded.get_layer("attention").get_config() == model.get_layer(
        "attention"
    ).get_config()
    np.testing.assert_allclose(_numpy(loaded(data)), want, atol=1e-6)


def _bn_pair(shape, **kwargs):
    """A Keras and a fused batch norm with the same random weights and stats."""
    rng = np.random.default_rng(11)
    pair = []
    for cls in (keras.layers.BatchNormalization, FusedBatchNormalization):
        layer = cls(epsilon=1e-5, momentum=0.9, **kwargs)
        layer.build(shape)
        pair.append(layer)
    channels = shape[kwargs.get("axis", -1)]
    values = [
        rng.normal(1.0, 0.3, channels),
        rng.normal(0.0, 0.3, channels),
        rng.normal(0.5, 0.2, channels),
        rng.uniform(0.5, 2.0, channels),
    ]
    for layer in pair:
        layer.set_weights([v.astype("float32") for v in values])
    return pair


def _one_sgd_step(layer, x, target):
    """Weights and moving statistics after one SGD step on a squared error."""
    inputs = keras.Input(x.shape[1:])
    model = keras.Model(inputs, layer(inputs))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    model.train_on_batch(x, target)
    return [_numpy(w) for w in layer.weights]


@pytest.mark.parametrize(
    "shape, axis", [((8, 6, 6, 5), -1), ((8, 5, 6, 6), 1), ((16, 3), -1)]
)
def test_fused_batch_norm_trains_like_keras(shape, axis):
    # Channels-last takes TensorFlow's kernel, channels-first PyTorch's.
    rng = np.random.default_rng(2)
    x = rng.normal(2.0, 3.0, shape).astype("float32")
    target = rng.normal(size=shape).astype("float32")
    keras_bn, fused_bn = _bn_pair(shape, axis=axis)

    np.testing.assert_allclose(
        _numpy(fused_bn(x, training=True)), _numpy(keras_bn(x, training=True)), atol=1e-5
    )
    keras_bn, fused_bn = _bn_pair(shape, axis=axis)
    want = _one_sgd_step(keras_bn, x, target)
    got = _one_sgd_step(fused_bn, x, target)
    before = _bn_pair(shape, axis=axis)[0].get_weights()
    for g, w, b in zip(got, want, before):
        # Gamma, beta and both moving statistics all moved, and moved alike.
        assert np.abs(w - b).max() > 1e-3
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


def test_fused_batch_norm_predicts_like_keras():
    x = np.random.default_rng(3).normal(size=(4, 5, 5, 6)).astype("float32")
    keras_bn, fused_bn = _bn_pair(x.shape)
    np.testing.assert_array_equal(_numpy(fused_bn(x)), _numpy(keras_bn(x)))


@pytest.mark.only_backend("tensorflow", reason="the fused kernel is TensorFlow's")
def test_fused_batch_norm_uses_the_fused_kernel_under_tensorflow():
    import tensorflow as tf

    layer = FusedBatchNormalization()
    layer.build((None, 6, 6, 4))

    def op_types(training):
        fn = tf.function(lambda x: layer(x, training=training))
        graph = fn.get_concrete_function(tf.TensorSpec((None, 6, 6, 4), "float32")).graph
        return {op.type for op in graph.get_operations()}

    assert any(t.startswith("FusedBatchNorm") for t in op_types(True))
    assert not any(t.startswith("FusedBatchNorm") for t in op_types(False))


@pytest.mark.only_backend("torch", reason="the channels-first kernel is PyTorch's")
@pytest.mark.parametrize("axis, fused", [(1, True), (-1, False)])
def test_fused_batch_norm_uses_the_torch_kernel_channels_first(axis, fused, monkeypatch):
    import torch

    calls = []
    kernel = torch.nn.functional.batch_norm
    monkeypatch.setattr(torch.nn.functional, "batch_norm",
                        lambda *a, **k: calls.append(1) or kernel(*a, **k))
    layer = FusedBatchNormalization(axis=axis)
    x = np.random.default_rng(1).normal(size=(4, 3, 5, 5)).astype("float32")
    layer(x, training=True)
    layer(x, training=False)
    assert len(calls) == (1 if fused else 0)


def test_fused_batch_norm_survives_keras_file(tmp_path):
    inputs = keras.Input((5, 5, 3))
    layer = FusedBatchNormalization(epsilon=1e-3, momentum=0.8, center=False, name="bn")
    model = keras.Model(inputs, layer(inputs))
    model.get_layer("bn").set_weights(
        [np.full(3, 2.0, "float32"), np.full(3, 0.5, "float32"), np.full(3, 3.0, "float32")]
    )
    data = np.random.default_rng(4).normal(size=(2, 5, 5, 3)).astype("float32")

    path = tmp_path / "bn.keras"
    model.save(path)
    loaded = keras.saving.load_model(path).get_layer("bn")
    assert type(loaded) is FusedBatchNormalization
    assert loaded.get_config() == layer.get_config()
    np.testing.assert_allclose(_numpy(loaded(data)), _numpy(layer(data)), atol=1e-6)


@pytest.mark.parametrize("name", ["resnet", "cbam"])
def test_zoo_models_normalize_with_the_fused_batch_norm(name):
    model = fer_keras.build_model(name)
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and all(type(layer) is FusedBatchNormalization for layer in norms)


# InferenceZoom


def test_inference_zoom_shows_the_centre_crop_resized_at_inference_only():
    x = np.random.default_rng(0).uniform(0, 255, (2, 48, 48, 1)).astype("float32")
    layer = InferenceZoom(44 / 48)
    zoomed = _numpy(layer(x))
    # The centre 44-pixel crop resized as the ten-crop views are (fer_keras.tta).
    np.testing.assert_allclose(zoomed, tta.tta_views(x, "ten_crop")[4], atol=1e-3)
    np.testing.assert_array_equal(_numpy(layer(x, training=True)), x)
    assert layer.compute_output_shape((None, 48, 48, 1)) == (None, 48, 48, 1)


def test_inference_zoom_config_round_trip():
    layer = InferenceZoom(0.75, name="zoom")
    clone = InferenceZoom.from_config(layer.get_config())
    assert clone.fraction == 0.75 and clone.name == "zoom"
    x = np.random.default_rng(1).uniform(0, 255, (1, 48, 48, 1)).astype("float32")
    np.testing.assert_array_equal(_numpy(clone(x)), _numpy(layer(x)))


@pytest.mark.parametrize("fraction", [0.0, 1.5, -0.2])
def test_inference_zoom_refuses_fractions_outside_0_1(fraction):
    with pytest.raises(ValueError, match=f"Received: fraction={fraction}"):
        InferenceZoom(fraction)


def test_inference_zoom_needs_a_fixed_image_size():
    with pytest.raises(ValueError, match="fixed size"):
        InferenceZoom(0.9)(keras.Input(shape=(None, None, 1)))
