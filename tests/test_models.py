"""Tests of the model zoo: shapes, training, saving and cross-backend parity."""

import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from parity import BACKENDS, logits_under
from torch_reference import ORIGINAL_MODELS, REFERENCES

import keras
from keras import ops

import fer_keras
from fer_keras import models
from fer_keras.models import (
    MODEL_REGISTRY,
    copy_weights,
    gradcam_layer_name,
    preferred_data_format,
    resolve_data_format,
)

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
BANK_MODELS = ("kernels", "resnet", "cbam")


def _numpy(x):
    return ops.convert_to_numpy(x)


def _images(n, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, 48, 48, 1)).astype("float32")


def _randomize_batch_norm(model, seed):
    """Random BN weights and moving statistics, so a lost statistic shows."""
    rng = np.random.default_rng(seed)
    ranges = {
        "gamma": (0.5, 1.5),
        "beta": (-0.5, 0.5),
        "moving_mean": (-0.5, 0.5),
        "moving_variance": (0.5, 2.0),
    }
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            for attribute, (low, high) in ranges.items():
                variable = getattr(layer, attribute)
                values = rng.uniform(low, high, variable.shape)
                variable.assign(values.astype("float32"))


def test_registry_lists_the_zoo():
    assert set(fer_keras.MODELS) == {"baseline", "kernels", "resnet", "cbam", "resnet18", "vgg"}
    assert tuple(MODEL_REGISTRY) == fer_keras.MODELS
    assert tuple(REFERENCES) == ORIGINAL_MODELS


_LATE_MODEL = textwrap.dedent(
    """
    import keras
    from fer_keras import models

    @models.register_model("late", gradcam_layer="block1_conv", description="test")
    def late(num_classes=7, input_shape=models.INPUT_SHAPE, name="late",
             data_format="channels_last"):
        inputs = keras.Input(input_shape)
        x = keras.layers.Flatten()(inputs)
        return keras.Model(inputs, keras.layers.Dense(num_classes)(x), name=name)
    """
)


def test_models_registered_after_import_are_listed():
    from fer_keras import models

    before = fer_keras.MODELS
    namespace = {}
    exec(_LATE_MODEL, namespace)
    try:
        assert "late" not in before
        assert fer_keras.MODELS == models.MODELS == (*before, "late")
        assert fer_keras.available_models() == models.available_models() == (*before, "late")
        from fer_keras import MODELS
        from fer_keras.models import MODELS as models_models

        assert MODELS == models_models == (*before, "late")
        assert "MODELS" in dir(fer_keras)
        assert fer_keras.build_model("late").name == "late"
    finally:
        del MODEL_REGISTRY["late"]
    assert fer_keras.MODELS == before
    with pytest.raises(AttributeError, match="has no attribute 'MODLES'"):
        fer_keras.MODLES  # noqa: B018


def test_train_offers_models_registered_after_import():
    """`train.py --model` takes its choices from the registry when it runs."""
    code = _LATE_MODEL + textwrap.dedent(
        """
        import sys
        sys.path.insert(0, ".")
        import train
        train.main(["--model", "late", "--help"])
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env={**os.environ, "KERAS_BACKEND": keras.backend.backend()},
        capture_output=True,
        text=True,
        timeout=300,
    )
    # --help exits with 0 only if "late" passed argparse's choices first.
    assert result.returncode == 0, result.stderr[-3000:]
    assert "late" in result.stdout


@pytest.mark.parametrize("name", fer_keras.MODELS)
def test_predicts_logits_from_raw_pixels(name):
    model = fer_keras.build_model(name)
    assert model.name == name
    assert tuple(model.input.shape) == (None, 48, 48, 1)

    logits = _numpy(model(_images(3), training=False))
    assert logits.shape == (3, 7)
    assert np.all(np.isfinite(logits))

    rescale = keras.Model(model.input, model.get_layer(f"{name}_rescale").output)
    pixels = np.stack([np.zeros((48, 48, 1)), np.full((48, 48, 1), 255.0)])
    scaled = _numpy(rescale(pixels.astype("float32")))
    np.testing.assert_allclose(scaled[0], -1.0, atol=1e-6)
    np.testing.assert_allclose(scaled[1], 1.0, atol=1e-6)


def test_num_classes_sets_the_logits():
    model = fer_keras.build_model("baseline", num_classes=3)
    assert _numpy(model(_images(2), training=False)).shape == (2, 3)


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="Received: name='alexnet'") as info:
        fer_keras.build_model("alexnet")
    for name in fer_keras.MODELS:
        assert name in str(info.value)


@pytest.mark.parametrize(
    "kwargs",
    [{"num_classes": 1}, {"input_shape": (48, 48, 3)}, {"input_shape": (48, 48)},
     {"data_format": "NHWC"}],
)
def test_invalid_build_arguments(kwargs):
    with pytest.raises(ValueError, match="Received:"):
        fer_keras.build_model("baseline", **kwargs)


@pytest.mark.parametrize("name", fer_keras.MODELS)
def test_layer_names_are_deterministic(name):
    names = [layer.name for layer in fer_keras.build_model(name).layers]
    assert names == [layer.name for layer in fer_keras.build_model(name).layers]
    assert len(set(names)) == len(names)
    for suffix in ("input", "rescale", "logits", "block1", "block3"):
        assert any(n.startswith(f"{name}_{suffix}") for n in names), suffix
    assert f"{name}_{MODEL_REGISTRY[name].gradcam_layer}" in names
    assert (f"{name}_fixed_kernels" in names) == (name in BANK_MODELS)


@pytest.mark.parametrize("name", fer_keras.MODELS)
def test_gradcam_looks_at_the_registered_layer(name):
    # "resnet18" starts with "resnet" and has a "resnet18_block3_out" too.
    model = fer_keras.build_model(name)
    assert gradcam_layer_name(model) == f"{name}_{MODEL_REGISTRY[name].gradcam_layer}"
    renamed = fer_keras.build_model(name, model_name=f"{name}_tuned")
    assert gradcam_layer_name(renamed) == f"{name}_tuned_{MODEL_REGISTRY[name].gradcam_layer}"
    # An ensemble's member: a model of another name around the zoo model's layers.
    member = keras.Model(model.inputs, model.outputs, name="ensemble_member1")
    assert gradcam_layer_name(member) == f"{name}_{MODEL_REGISTRY[name].gradcam_layer}"


@pytest.mark.parametrize("name", ORIGINAL_MODELS)
def test_parameter_counts_match_the_reference(name):
    # The PyTorch reference is written from the original's description, so
    # equal counts mean the same layer sizes; BN moving statistics and the
    # fixed bank are Keras's non-trainable weights.
    model = fer_keras.build_model(name)
    reference = REFERENCES[name]()
    trainable = sum(p.numel() for p in reference.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in reference.parameters() if not p.requires_grad)
    bn_stats = sum(
        b.numel() for n, b in reference.named_buffers() if n.endswith(("_mean", "_var"))
    )
    trainable_keras = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable_keras == trainable
    assert model.count_params() == trainable + frozen + bn_stats

    if name in BANK_MODELS:
        bank = model.get_layer(f"{name}_fixed_kernels")
        assert not bank.trainable
        assert frozen == 45
        assert all(w is not bank.kernel for w in model.trainable_weights)


def _conv_bn(cin, cout, k=3):
    """(weights, BN statistics) of a bias-free conv and its batch norm."""
    return k * k * cin * cout + 4 * cout, 2 * cout


def _resnet18_size(width=32):
    parts, cin = [_conv_bn(1, width)], width
    for stage in range(4):
        filters = width * 2**stage
        for block in range(2):
            parts += [_conv_bn(cin, filters), _conv_bn(filters, filters)]
            if cin != filters or (stage and not block):
                parts.append(_conv_bn(cin, filters, k=1))
            cin = filters
    weights, stats = map(sum, zip(*parts))
    return weights + cin * 7 + 7, stats


def _vgg_size(width=64):
    parts, cin = [], 1
    for stage in range(4):
        for _ in range(2):
            parts.append(_conv_bn(cin, width * 2**stage))
            cin = width * 2**stage
    weights, stats = map(sum, zip(*parts))
    flat = 3 * 3 * cin  # four 2x2 pools: 48 -> 3
    return weights + flat * 512 + 512 + 512 * 7 + 7, stats


@pytest.mark.parametrize(
    "name, size, last_map",
    [("resnet18", _resnet18_size(), ("resnet18_block4_out", (6, 6, 256))),
     ("vgg", _vgg_size(), ("vgg_block4_relu2", (6, 6, 512)))],
)
def test_new_models_have_the_described_layers(name, size, last_map):
    # Counted from the descriptions: resnet18 is ResNet-18 at half width
    # (32-256, a 1x1 projection where a block changes shape), vgg four stages
    # of two conv-BN-ReLU layers (64-512) and a dense layer of 512; neither
    # has the filter bank.
    model = fer_keras.build_model(name)
    total, bn_stats = size
    assert model.count_params() == total
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == total - bn_stats
    layer, shape = last_map
    assert tuple(model.get_layer(layer).output.shape[1:]) == shape


def _separable_set(n=8, seed=0):
    """Two classes told apart by which half of the face is bright."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 60, (n, 48, 48, 1))
    y = np.arange(n) % 2
    x[y == 0, :24] += 150
    x[y == 1, 24:] += 150
    return x.astype("float32"), y


@pytest.mark.parametrize("name", fer_keras.MODELS)
def test_a_few_steps_lower_the_loss(name):
    keras.utils.set_random_seed(0)
    model = fer_keras.build_model(name)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    x, y = _separable_set()
    # One batch, so each epoch's loss is one step's loss on the same images.
    losses = model.fit(x, y, batch_size=len(x), epochs=8, verbose=0).history["loss"]
    assert np.all(np.isfinite(losses))
    assert np.mean(losses[-2:]) < 0.6 * losses[0], losses


@pytest.mark.channels_first
@pytest.mark.parametrize("name", fer_keras.MODELS)
def test_channels_first_model_computes_the_same_with_the_same_weights(name):
    last = fer_keras.build_model(name)
    _randomize_batch_norm(last, seed=2)
    first = fer_keras.build_model(name, data_format="channels_first")
    copy_weights(last, first)
    assert first.get_layer(f"{name}_channels_first").output.shape[1] == 1
    assert first.count_params() == last.count_params()
    x = _images(3, seed=4)
    np.testing.assert_allclose(
        _numpy(first(x, training=False)), _numpy(last(x, training=False)), atol=1e-4
    )
    # And back: weights of a channels-first model land in the channels-last one.
    keras.utils.set_random_seed(5)
    again = fer_keras.build_model(name)
    copy_weights(first, again)
    for a, b in zip(again.weights, last.weights):
        np.testing.assert_array_equal(_numpy(a), _numpy(b))


@pytest.mark.channels_first
def test_channels_first_trains_like_channels_last():
    # resnet has no dropout, so a step is deterministic: batch statistics,
    # gradients and the update must agree in both layouts.
    built = {}
    for data_format in ("channels_last", "channels_first"):
        keras.utils.set_random_seed(0)
        built[data_format] = fer_keras.build_model("resnet", data_format=data_format)
    copy_weights(built["channels_last"], built["channels_first"])
    x, y = _separable_set(n=8)
    for model in built.values():
        model.compile(keras.optimizers.SGD(0.1),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False)
    for a, b in zip(built["channels_last"].weights, built["channels_first"].weights):
        np.testing.assert_allclose(_numpy(a), _numpy(b), atol=2e-4, err_msg=a.path)


def test_copy_weights_refuses_another_architecture():
    with pytest.raises(ValueError, match="baseline_fc"):
        copy_weights(fer_keras.build_model("baseline"), fer_keras.build_model("cbam"))


def test_channels_first_is_refused_where_tensorflow_has_no_kernels(monkeypatch):
    from fer_keras import backends, models

    monkeypatch.setattr(backends.get("tensorflow"), "_runs_channels_first", lambda: False)
    with pytest.raises(ValueError, match=r"no channels-first convolution.*Use channels_last"
                       r".*Received: data_format='channels_first'"):
        resolve_data_format("channels_first", "tensorflow")
    assert resolve_data_format("auto", "tensorflow") == "channels_last"
    assert resolve_data_format("channels_first", "torch") == "channels_first"
    assert models.data_format_supported("channels_last", "tensorflow")
    if keras.backend.backend() == "tensorflow":
        with pytest.raises(ValueError, match="no channels-first convolution"):
            fer_keras.build_model("baseline", data_format="channels_first")


def test_preferred_data_format_is_channels_first_for_torch_only():
    assert preferred_data_format("torch") == "channels_first"
    assert preferred_data_format("jax") == preferred_data_format("tensorflow") == "channels_last"
    assert resolve_data_format("auto") == preferred_data_format(keras.backend.backend())
    assert resolve_data_format("channels_first", "jax") == "channels_first"
    with pytest.raises(ValueError, match="Received: data_format='NCHW'"):
        resolve_data_format("NCHW")


@pytest.mark.parametrize("name", fer_keras.MODELS)
def test_keras_file_round_trip(name, tmp_path):
    model = fer_keras.build_model(name)
    _randomize_batch_norm(model, seed=1)
    x = _images(2)
    want = _numpy(model(x, training=False))

    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert [layer.name for layer in loaded.layers] == [
        layer.name for layer in model.layers
    ]
    np.testing.assert_allclose(_numpy(loaded(x, training=False)), want, atol=1e-6)
    for a, b in zip(loaded.weights, model.weights):
        np.testing.assert_array_equal(_numpy(a), _numpy(b))


@pytest.fixture(scope="module")
def saved_zoo(tmp_path_factory):
    """Every zoo model, with random weights and BN statistics, saved once."""
    folder = tmp_path_factory.mktemp("zoo")
    x = _images(4, seed=7)
    logits = {}
    for seed, name in enumerate(fer_keras.MODELS):
        keras.utils.set_random_seed(seed)
        model = fer_keras.build_model(name)
        _randomize_batch_norm(model, seed)
        logits[name] = _numpy(model(x, training=False))
        model.save(folder / f"{name}.keras")
    return folder, x, logits


@pytest.mark.parametrize(
    "backend", [b for b in BACKENDS if b != keras.backend.backend()]
)
def test_keras_files_load_under_every_backend(saved_zoo, backend):
    # A fresh process under another backend that only imports fer_keras (no
    # custom_objects) loads every model and gives the same logits. The suite
    # runs once per backend, so every ordered pair of backends is checked.
    folder, x, want = saved_zoo
    got = logits_under(backend, folder, x)
    for name in fer_keras.MODELS:
        assert got[name].shape == (4, 7)
        np.testing.assert_allclose(
            got[name], want[name], atol=1e-4, rtol=0, err_msg=name
        )


def test_float32_copy_computes_in_float32_with_the_same_weights():
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        mixed = fer_keras.build_model("baseline")
    finally:
        keras.config.set_dtype_policy("float32")
    assert "mixed_bfloat16" in {layer.dtype_policy.name for layer in mixed.layers}
    copy = models.float32_copy(mixed)
    assert {layer.dtype_policy.name for layer in copy.layers} == {"float32"}
    assert [layer.name for layer in copy.layers] == [layer.name for layer in mixed.layers]
    for a, b in zip(copy.get_weights(), mixed.get_weights()):
        np.testing.assert_array_equal(a, b)
    x = np.random.default_rng(0).integers(0, 256, (2, 48, 48, 1)).astype("float32")
    logits = keras.ops.convert_to_numpy(copy(x))
    assert logits.dtype == np.float32
    np.testing.assert_allclose(
        logits, keras.ops.convert_to_numpy(keras.ops.cast(mixed(x), "float32")), atol=0.5
    )


# The inference zoom of models trained on crops.


def test_with_inference_zoom_puts_one_layer_in_front_and_keeps_the_weights(tmp_path):
    from fer_keras import tta

    keras.utils.set_random_seed(0)
    model = fer_keras.build_model("cbam")
    zoomed = models.with_inference_zoom(model, 44 / 48)
    assert zoomed.name == "cbam" and zoomed.layers[1].name == "cbam_inference_zoom"
    assert [layer.name for layer in zoomed.layers[2:]] == [layer.name for layer in model.layers[1:]]
    assert models.inference_zoom(zoomed) == 44 / 48 and models.inference_zoom(model) is None
    x = np.random.default_rng(0).uniform(0, 255, (2, 48, 48, 1)).astype("float32")
    centre = tta.tta_views(x, "ten_crop")[4]
    np.testing.assert_allclose(ops.convert_to_numpy(zoomed(x)),
                               ops.convert_to_numpy(model(centre)), atol=1e-4)
    zoomed.save(tmp_path / "zoomed.keras")
    again = keras.saving.load_model(tmp_path / "zoomed.keras")
    np.testing.assert_allclose(ops.convert_to_numpy(again(x)),
                               ops.convert_to_numpy(zoomed(x)), atol=1e-6)
    with pytest.raises(ValueError, match="zooms in at inference already"):
        models.with_inference_zoom(zoomed, 44 / 48)


def test_inference_zoom_of_an_ensemble_is_its_members_or_an_error():
    zoomed = [models.with_inference_zoom(fer_keras.build_model("baseline"), 44 / 48)
              for _ in range(2)]
    assert models.inference_zoom(fer_keras.build_ensemble(zoomed)) == 44 / 48
    mixed = fer_keras.build_ensemble([zoomed[0], fer_keras.build_model("baseline")])
    with pytest.raises(ValueError, match="zoom in differently"):
        models.inference_zoom(mixed)
