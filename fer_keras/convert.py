"""Loads weights of the original PyTorch models into the Keras models.

Owners of checkpoints of the original course project can move them to
`.keras` files that run under JAX, TensorFlow and PyTorch:

```python
from fer_keras.convert import convert_checkpoint

convert_checkpoint("cbam.pth", "cbam", "cbam.keras")
```

A state dict is a mapping from parameter name to a torch tensor or a NumPy
array (or the path of a `.pt`/`.pth` file holding one). The expected names,
with `{name}` the Keras model's name (the zoo name by default):

baseline, kernels (the plain CNN):
    fixed_conv.weight          (5, 1, 3, 3), kernels only, optional
    conv{i}.weight, .bias      -> {name}_block{i}_conv, i = 1..3
    fc1.weight, .bias          -> {name}_fc
    fc2.weight, .bias          -> {name}_logits

resnet (SimpleResNet):
    fixed_conv.weight          optional
    conv1.weight, bn1.*        -> {name}_stem_conv1, {name}_stem_bn1
    layer{i}.conv1.weight, layer{i}.bn1.*, layer{i}.conv2.weight,
    layer{i}.bn2.*             -> {name}_block{i}_conv1, _bn1, _conv2, _bn2
    layer{i}.shortcut.0.weight, layer{i}.shortcut.1.*
                               -> {name}_block{i}_proj_conv, _proj_bn
    fc.weight, .bias           -> {name}_logits

cbam (CNN + CBAM + kernels):
    fixed_conv.weight          optional
    conv{k}.weight, bn{k}.*    -> {name}_block{b}_conv{j}, _bn{j}, with
                                  k = 1..5 for (b, j) = (1, 1), (1, 2),
                                  (2, 1), (2, 2), (3, 1)
    cbam{b}.channel_attention.fc1.weight   (C/16, C, 1, 1)
    cbam{b}.channel_attention.fc2.weight   (C, C/16, 1, 1)
    cbam{b}.spatial_attention.conv.weight  (1, 2, 7, 7)
                               -> {name}_block{b}_cbam
    fc1.weight, .bias          -> {name}_fc
    fc2.weight, .bias          -> {name}_logits

`bn*.*` stands for `weight`, `bias`, `running_mean` and `running_var`;
`num_batches_tracked` is ignored. A conv followed by batch norm may carry a
`.bias` (PyTorch's default `bias=True`): the Keras conv has none, so it is
folded into the batch norm's moving mean, which gives the same output.

Layouts are converted: conv kernels (out, in, kh, kw) -> (kh, kw, in, out),
dense kernels (out, in) -> (in, out), and the rows of the first dense layer
are permuted because PyTorch flattens (C, H, W) while Keras flattens
(H, W, C). The fixed filter bank is not learned: if the checkpoint has it,
it must equal `fer_keras.layers.fixed_kernel_bank()`.

The original never applied its filter bank, so the first conv of its
checkpoints takes 1 channel. `convert_checkpoint` sees that and builds
`resnet` and `cbam` with `fixed_kernels=False`, the model as it really ran;
a `kernels` checkpoint of it is a `baseline` one.
"""

import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

import keras

from fer_keras.layers import fixed_kernel_bank
from fer_keras.models import build_model

_IGNORED_SUFFIXES = (".num_batches_tracked",)
_WRAPPER_KEYS = ("state_dict", "model_state_dict")


def _conv_to_keras(weight):
    return np.transpose(weight, (2, 3, 1, 0))


def _conv_shape(kernel_shape):
    kh, kw, cin, cout = kernel_shape
    return (cout, cin, kh, kw)


def _mlp_to_keras(weight):
    # A 1x1 conv (out, in, 1, 1) used as a dense layer -> (in, out).
    return np.transpose(weight[:, :, 0, 0])


class _Plan:
    """What a model expects from a state dict and how to assign it.

    `required` and `optional` map each torch key to its expected shape;
    `assignments` turn the validated state dict into Keras arrays, so
    nothing is assigned before every key and shape has been checked.
    """

    def __init__(self, model: keras.Model):
        self.model = model
        self.required: dict[str, tuple] = {}
        self.optional: dict[str, tuple] = {}
        self.hints: dict[str, str] = {}
        self.assignments: list[tuple[Any, Callable[[dict], np.ndarray]]] = []
        self.checks: list[Callable[[dict], str | None]] = []

    def layer(self, name):
        try:
            return self.model.get_layer(name)
        except ValueError:
            raise ValueError(
                f"Model {self.model.name!r} has no layer {name!r}, so it is not "
                "the fer_keras architecture the weights were asked to load into. "
                f"Received: model.name={self.model.name!r}"
            ) from None

    def has_layer(self, name):
        return any(layer.name == name for layer in self.model.layers)

    def _assign(self, variable, key, torch_shape=None, to_keras=None):
        self.required[key] = tuple(torch_shape or variable.shape)
        to_keras = to_keras or (lambda weight: weight)
        self.assignments.append((variable, lambda state: to_keras(state[key])))

    def fixed_bank(self, layer_name, key):
        self.layer(layer_name)
        self.optional[key] = _conv_shape(fixed_kernel_bank().shape)

        def check(state):
            if key in state and not np.allclose(
                _conv_to_keras(state[key]), fixed_kernel_bank()
            ):
                return (
                    f"{key!r} is not the fixed filter bank of fer_keras "
                    "(fer_keras.layers.FIXED_KERNELS), which is not learned"
                )
            return None

        self.checks.append(check)

    def conv(self, layer_name, key, first_after_bank=False):
        layer = self.layer(layer_name)
        kernel = layer.kernel
        self._assign(kernel, f"{key}.weight", _conv_shape(kernel.shape), _conv_to_keras)
        if layer.use_bias:
            self._assign(layer.bias, f"{key}.bias")
        if first_after_bank:
            self.hints[f"{key}.weight"] = (
                "the original project never applied the fixed filter bank, so "
                "its first conv takes 1 channel; a plain CNN checkpoint of it "
                "loads into 'baseline'"
            )

    def conv_bn(self, conv_name, bn_name, conv_key, bn_key, first_after_bank=False):
        """A conv and its batch norm; a torch conv bias is folded into the mean."""
        self.conv(conv_name, conv_key, first_after_bank)
        bn = self.layer(bn_name)
        self._assign(bn.gamma, f"{bn_key}.weight")
        self._assign(bn.beta, f"{bn_key}.bias")
        self._assign(bn.moving_variance, f"{bn_key}.running_var")
        mean_key = f"{bn_key}.running_mean"
        bias_key = f"{conv_key}.bias"
        if self.layer(conv_name).use_bias:
            self._assign(bn.moving_mean, mean_key)
            return
        # BN(conv(x) + b) = BN'(conv(x)) with the moving mean lowered by b.
        self.required[mean_key] = tuple(bn.moving_mean.shape)
        self.optional[bias_key] = tuple(bn.moving_mean.shape)
        self.assignments.append(
            (bn.moving_mean, lambda state: state[mean_key] - state.get(bias_key, 0.0))
        )

    def dense(self, layer_name, key, flatten_layer=None):
        layer = self.layer(layer_name)
        to_keras = np.transpose
        if flatten_layer is not None:
            height, width, channels = self.layer(flatten_layer).input.shape[1:]

            def to_keras(weight):
                # Torch rows run over (C, H, W), Keras rows over (H, W, C).
                units = weight.shape[0]
                weight = weight.T.reshape(channels, height, width, units)
                return weight.transpose(1, 2, 0, 3).reshape(-1, units)

        torch_shape = tuple(reversed(layer.kernel.shape))
        self._assign(layer.kernel, f"{key}.weight", torch_shape, to_keras)
        self._assign(layer.bias, f"{key}.bias")

    def cbam(self, layer_name, key):
        layer = self.layer(layer_name)
        for variable, torch_key in (
            (layer.channel_squeeze, "channel_attention.fc1"),
            (layer.channel_excite, "channel_attention.fc2"),
        ):
            units_in, units_out = variable.shape
            self._assign(
                variable,
                f"{key}.{torch_key}.weight",
                (units_out, units_in, 1, 1),
                _mlp_to_keras,
            )
        kernel = layer.spatial_kernel
        self._assign(
            kernel,
            f"{key}.spatial_attention.conv.weight",
            _conv_shape(kernel.shape),
            _conv_to_keras,
        )


def _plain_cnn_plan(plan, prefix, fixed_kernels):
    if fixed_kernels:
        plan.fixed_bank(f"{prefix}_fixed_kernels", "fixed_conv.weight")
    for i in range(1, 4):
        plan.conv(f"{prefix}_block{i}_conv", f"conv{i}", fixed_kernels and i == 1)
    plan.dense(f"{prefix}_fc", "fc1", flatten_layer=f"{prefix}_flatten")
    plan.dense(f"{prefix}_logits", "fc2")


def _bank_plan(plan, prefix):
    """Plans the filter bank where the model has one; True if it does."""
    if not plan.has_layer(f"{prefix}_fixed_kernels"):
        return False
    plan.fixed_bank(f"{prefix}_fixed_kernels", "fixed_conv.weight")
    return True


def _resnet_plan(plan, prefix):
    bank = _bank_plan(plan, prefix)
    plan.conv_bn(f"{prefix}_stem_conv1", f"{prefix}_stem_bn1", "conv1", "bn1", bank)
    for i in range(1, 4):
        block, key = f"{prefix}_block{i}", f"layer{i}"
        for j in (1, 2):
            plan.conv_bn(
                f"{block}_conv{j}", f"{block}_bn{j}", f"{key}.conv{j}", f"{key}.bn{j}"
            )
        if plan.has_layer(f"{block}_proj_conv"):
            plan.conv_bn(
                f"{block}_proj_conv",
                f"{block}_proj_bn",
                f"{key}.shortcut.0",
                f"{key}.shortcut.1",
            )
    plan.dense(f"{prefix}_logits", "fc")


def _cbam_plan(plan, prefix):
    bank = _bank_plan(plan, prefix)
    k = 0
    for block, convs in ((1, 2), (2, 2), (3, 1)):
        for j in range(1, convs + 1):
            k += 1
            plan.conv_bn(
                f"{prefix}_block{block}_conv{j}",
                f"{prefix}_block{block}_bn{j}",
                f"conv{k}",
                f"bn{k}",
                first_after_bank=bank and k == 1,
            )
        plan.cbam(f"{prefix}_block{block}_cbam", f"cbam{block}")
    plan.dense(f"{prefix}_fc", "fc1", flatten_layer=f"{prefix}_flatten")
    plan.dense(f"{prefix}_logits", "fc2")


_PLANS = {
    "baseline": lambda plan, prefix: _plain_cnn_plan(plan, prefix, False),
    "kernels": lambda plan, prefix: _plain_cnn_plan(plan, prefix, True),
    "resnet": _resnet_plan,
    "cbam": _cbam_plan,
}


def _load_file(path):
    import torch

    try:
        return torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(
            f"Could not read a state dict from {os.fspath(path)!r} with "
            "torch.load(weights_only=True); save `model.state_dict()`, not the "
            f"whole module. Received: {type(error).__name__}: {error}"
        ) from None


def _to_numpy(value):
    if hasattr(value, "detach"):
        value = value.detach().cpu()
        if value.is_floating_point():
            value = value.float()
        return value.numpy()
    return np.asarray(value)


def _as_state_dict(state_dict):
    """A name -> NumPy array dict from a mapping, a module or a file path."""
    if isinstance(state_dict, (str, os.PathLike)):
        state_dict = _load_file(state_dict)
    if callable(getattr(state_dict, "state_dict", None)):
        state_dict = state_dict.state_dict()
    if not isinstance(state_dict, Mapping):
        raise ValueError(
            "Expected a state dict (a mapping from parameter name to tensor), "
            f"a torch module or a checkpoint path. Received: {type(state_dict)}"
        )
    for wrapper in _WRAPPER_KEYS:
        if isinstance(state_dict.get(wrapper), Mapping):
            state_dict = state_dict[wrapper]
            break
    state = {str(k): v for k, v in state_dict.items()}
    # Checkpoints saved from nn.DataParallel prefix every name with "module.".
    if state and all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return {
        k: _to_numpy(v) for k, v in state.items() if not k.endswith(_IGNORED_SUFFIXES)
    }


def _architecture(model, model_name):
    name = model.name if model_name is None else model_name
    if name not in _PLANS:
        hint = (
            " Pass `model_name` when the model was built under another name."
            if model_name is None
            else ""
        )
        raise ValueError(
            f"Unknown model {name!r} to convert. Expected one of: {', '.join(_PLANS)} "
            "(the original's PyTorch models)."
            f"{hint} Received: model_name={model_name!r}, model.name={model.name!r}"
        )
    return name


def _validate(plan, state):
    problems = []
    expected = {**plan.optional, **plan.required}
    missing = sorted(set(plan.required) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing:
        problems.append(f"missing keys: {missing}")
    if unexpected:
        problems.append(f"unexpected keys: {unexpected}")
    mismatched = []
    for key in sorted(set(state) & set(expected)):
        got = tuple(state[key].shape)
        if got != expected[key]:
            hint = f" ({plan.hints[key]})" if key in plan.hints else ""
            mismatched.append(f"{key}: expected {expected[key]}, got {got}{hint}")
    if mismatched:
        problems.append("shape mismatches: " + "; ".join(mismatched))
    if not problems:
        problems.extend(p for p in (check(state) for check in plan.checks) if p)
    if problems:
        raise ValueError(
            f"The state dict does not fit the {plan.model.name!r} model. "
            f"Received: {' | '.join(problems)}"
        )


def load_torch_state_dict(
    model: keras.Model, state_dict: Any, model_name: str | None = None
) -> keras.Model:
    """Assigns a PyTorch state dict of the original models to `model`.

    Every key and shape is checked first, and all problems are reported in
    one `ValueError`, so a failed load leaves `model` untouched.

    Args:
        model: a model of the zoo, e.g. from `fer_keras.build_model`.
        state_dict: a mapping from parameter name to torch tensor or NumPy
            array, a torch module, or the path of a `.pt`/`.pth` file.
        model_name: the zoo architecture of `model` (`fer_keras.MODELS`);
            defaults to `model.name`.

    Returns:
        `model`, with the weights assigned in place.
    """
    architecture = _architecture(model, model_name)
    plan = _Plan(model)
    _PLANS[architecture](plan, model.name)
    state = _as_state_dict(state_dict)
    _validate(plan, state)
    values = [(variable, compute(state)) for variable, compute in plan.assignments]
    for variable, value in values:
        variable.assign(np.asarray(value, dtype="float32"))
    return model


def convert_checkpoint(
    checkpoint_path: str | os.PathLike,
    model_name: str,
    output_path: str | os.PathLike,
) -> keras.Model:
    """Converts an original PyTorch checkpoint to a `.keras` file.

    The file loads under any backend after `import fer_keras`, with no
    custom objects.

    Args:
        checkpoint_path: a `.pt`/`.pth` file holding a state dict.
        model_name: the zoo architecture of the checkpoint (`fer_keras.MODELS`).
        output_path: where to write the model; must end in `.keras`.

    Returns:
        The converted Keras model.
    """
    if not os.fspath(output_path).endswith(".keras"):
        raise ValueError(
            f"`output_path` must end in '.keras'. Received: output_path={output_path!r}"
        )
    state = _as_state_dict(checkpoint_path)
    first_conv = state.get("conv1.weight")
    without_bank = (
        model_name in ("resnet", "cbam")
        and first_conv is not None
        and first_conv.ndim == 4
        and first_conv.shape[1] == 1
    )
    if without_bank:
        print(
            f"{os.fspath(checkpoint_path)}: the first conv takes 1 channel, so "
            "the filter bank was not applied; building the model without it, "
            "as the original ran."
        )
    model = build_model(model_name, **({"fixed_kernels": False} if without_bank else {}))
    load_torch_state_dict(model, state, model_name)
    parent = os.path.dirname(os.path.abspath(os.fspath(output_path)))
    os.makedirs(parent, exist_ok=True)
    model.save(output_path)
    return model
