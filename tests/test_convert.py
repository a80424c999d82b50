"""Tests of loading the original PyTorch weights into the Keras models."""

import re

import numpy as np
import pytest
import torch
from torch_reference import ORIGINAL_MODELS, random_reference

import keras
from keras import ops

import fer_keras
from fer_keras.convert import convert_checkpoint, load_torch_state_dict
from fer_keras.models import MODEL_REGISTRY

ATOL = 1e-4


def _images(n=4, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, 48, 48, 1)).astype("float32")


def _keras_logits(model, x):
    return ops.convert_to_numpy(model(x, training=False))


def _torch_logits(reference, x):
    with torch.no_grad():
        return reference(torch.from_numpy(x)).numpy()


def _weights(model):
    return [ops.convert_to_numpy(w).copy() for w in model.weights]


@pytest.fixture(scope="module")
def references():
    return {name: random_reference(name, seed=i) for i, name in enumerate(ORIGINAL_MODELS)}


@pytest.fixture(scope="module")
def keras_models():
    """One Keras model per original architecture; each test loads the weights it needs."""
    return {name: fer_keras.build_model(name) for name in ORIGINAL_MODELS}


@pytest.mark.parametrize("name", ORIGINAL_MODELS)
def test_converted_logits_match_pytorch(name, references, keras_models):
    x = _images()
    want = _torch_logits(references[name], x)
    # Logits that barely vary would make the tolerance meaningless.
    assert np.ptp(want) > 100 * ATOL

    model = load_torch_state_dict(keras_models[name], references[name].state_dict())
    assert model is keras_models[name]
    np.testing.assert_allclose(_keras_logits(model, x), want, atol=ATOL, rtol=0)


def test_numpy_values_and_model_name(references):
    # A model built under another name needs `model_name`; values may be NumPy.
    state = {k: v.numpy() for k, v in references["kernels"].state_dict().items()}
    model = MODEL_REGISTRY["kernels"].builder(name="mine")
    with pytest.raises(ValueError, match="model.name='mine'"):
        load_torch_state_dict(model, state)
    load_torch_state_dict(model, state, model_name="kernels")
    x = _images()
    np.testing.assert_allclose(
        _keras_logits(model, x), _torch_logits(references["kernels"], x), atol=ATOL
    )


def test_unknown_model_name_lists_the_convertible_ones(keras_models):
    with pytest.raises(ValueError, match="Received: model_name='alexnet'") as info:
        load_torch_state_dict(keras_models["cbam"], {}, model_name="alexnet")
    assert f"Expected one of: {', '.join(ORIGINAL_MODELS)} (the original's" in str(info.value)


@pytest.mark.parametrize("name", [n for n in fer_keras.MODELS if n not in ORIGINAL_MODELS])
def test_models_the_original_never_had_are_refused(name):
    # No PyTorch checkpoint of them exists, so the message lists only the
    # original's models, not the whole zoo.
    with pytest.raises(ValueError, match=rf"Unknown model '{name}' to convert\. Expected one "
                       rf"of: {', '.join(ORIGINAL_MODELS)} \(the original's"):
        load_torch_state_dict(fer_keras.build_model(name), {})


def test_wrong_architecture_is_reported(references, keras_models):
    with pytest.raises(ValueError, match="has no layer 'cbam_block1_conv'"):
        load_torch_state_dict(
            keras_models["cbam"], references["baseline"].state_dict(), "baseline"
        )


@pytest.mark.parametrize("name", ["resnet", "cbam"])
def test_conv_bias_is_folded_into_batch_norm(name, references, keras_models):
    # The original may have kept PyTorch's default conv bias before BN:
    # BN(conv(x) + b) with running mean m + b is the same function.
    reference = references[name]
    state = dict(reference.state_dict())
    rng = np.random.default_rng(3)
    for key in [k for k in state if k.endswith("running_mean")]:
        conv = key.replace("bn", "conv").replace("shortcut.1", "shortcut.0")
        conv = conv.removesuffix("running_mean") + "bias"
        bias = torch.from_numpy(rng.normal(size=state[key].shape).astype("float32"))
        state[conv] = bias
        state[key] = state[key] + bias

    load_torch_state_dict(keras_models[name], state)
    x = _images()
    np.testing.assert_allclose(
        _keras_logits(keras_models[name], x), _torch_logits(reference, x), atol=ATOL
    )


@pytest.mark.parametrize("name", ["kernels", "cbam"])
def test_fixed_bank_is_optional_but_checked(name, references, keras_models):
    state = dict(references[name].state_dict())
    bank = state.pop("fixed_conv.weight")
    load_torch_state_dict(keras_models[name], state)
    x = _images()
    np.testing.assert_allclose(
        _keras_logits(keras_models[name], x),
        _torch_logits(references[name], x),
        atol=ATOL,
    )

    state["fixed_conv.weight"] = bank * 2
    with pytest.raises(ValueError, match="'fixed_conv.weight' is not the fixed filter"):
        load_torch_state_dict(keras_models[name], state)


def test_num_batches_tracked_and_wrappers(references, keras_models, tmp_path):
    # Checkpoints saved from nn.DataParallel inside a {"state_dict": ...} dict.
    state = references["resnet"].state_dict()
    assert any(k.endswith("num_batches_tracked") for k in state)
    path = tmp_path / "wrapped.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)

    load_torch_state_dict(keras_models["resnet"], str(path))
    x = _images()
    np.testing.assert_allclose(
        _keras_logits(keras_models["resnet"], x),
        _torch_logits(references["resnet"], x),
        atol=ATOL,
    )


def test_missing_key(references, keras_models):
    state = dict(references["cbam"].state_dict())
    del state["cbam2.channel_attention.fc1.weight"]
    with pytest.raises(ValueError, match=r"missing keys: \['cbam2.channel_attention"):
        load_torch_state_dict(keras_models["cbam"], state)


def test_unexpected_key(references, keras_models):
    state = dict(references["baseline"].state_dict())
    state["conv4.weight"] = torch.zeros(3, 3)
    with pytest.raises(ValueError, match=r"unexpected keys: \['conv4.weight'\]"):
        load_torch_state_dict(keras_models["baseline"], state)


def test_shape_mismatch(references, keras_models):
    state = dict(references["resnet"].state_dict())
    state["layer2.bn1.running_var"] = torch.ones(64)
    message = "layer2.bn1.running_var: expected (128,), got (64,)"
    with pytest.raises(ValueError, match=re.escape(message)):
        load_torch_state_dict(keras_models["resnet"], state)


def test_all_problems_in_one_error_and_model_untouched(references, keras_models):
    model = keras_models["cbam"]
    state = dict(references["cbam"].state_dict())
    del state["fc2.bias"]
    state["extra.weight"] = torch.zeros(1)
    state["fc1.weight"] = state["fc1.weight"][:, :10]
    before = _weights(model)

    with pytest.raises(ValueError, match="Received:") as info:
        load_torch_state_dict(model, state)
    message = str(info.value)
    for key in ("fc2.bias", "extra.weight", "fc1.weight"):
        assert key in message
    for a, b in zip(before, _weights(model)):
        np.testing.assert_array_equal(a, b)


def test_original_checkpoint_without_bank_gets_a_hint(keras_models):
    # The original never applied the bank, so its first conv saw 1 channel.
    state = random_reference("baseline").state_dict()
    with pytest.raises(ValueError, match="loads into 'baseline'"):
        load_torch_state_dict(keras_models["kernels"], state)


def test_rejects_what_is_not_a_state_dict(tmp_path, keras_models):
    with pytest.raises(ValueError, match="Received: <class 'list'>"):
        load_torch_state_dict(keras_models["baseline"], [1, 2])
    path = tmp_path / "module.pth"
    torch.save(random_reference("baseline"), path)
    with pytest.raises(ValueError, match="weights_only"):
        load_torch_state_dict(keras_models["baseline"], path)


@pytest.mark.parametrize("name", ORIGINAL_MODELS)
def test_convert_checkpoint_writes_a_keras_file(name, references, tmp_path):
    checkpoint = tmp_path / f"{name}.pth"
    torch.save(references[name].state_dict(), checkpoint)
    output = tmp_path / "out" / f"{name}.keras"

    model = convert_checkpoint(checkpoint, name, output)
    loaded = keras.saving.load_model(output)
    x = _images()
    want = _torch_logits(references[name], x)
    np.testing.assert_allclose(_keras_logits(model, x), want, atol=ATOL)
    np.testing.assert_allclose(_keras_logits(loaded, x), want, atol=ATOL)


def test_convert_checkpoint_needs_a_keras_path(tmp_path):
    with pytest.raises(ValueError, match="Received: output_path="):
        convert_checkpoint(tmp_path / "x.pth", "cbam", tmp_path / "x.h5")


@pytest.mark.parametrize("name", ["resnet", "cbam"])
def test_original_checkpoint_as_it_ran_converts_without_the_bank(name, tmp_path):
    # The original's resnet and cbam never applied the bank: their first conv
    # takes the grey image directly.
    reference = random_reference(name, seed=3, fixed_kernels=False)
    checkpoint = tmp_path / f"{name}.pth"
    torch.save(reference.state_dict(), checkpoint)
    model = convert_checkpoint(checkpoint, name, tmp_path / f"{name}.keras")
    assert f"{name}_fixed_kernels" not in [layer.name for layer in model.layers]
    x = _images()
    np.testing.assert_allclose(_keras_logits(model, x), _torch_logits(reference, x), atol=ATOL)
