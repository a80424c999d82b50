"""The model zoo: one builder per architecture and a registry from name to builder.

Every model takes raw 0-255 grey pixels of shape (N, 48, 48, 1): the first
layer rescales them to [-1, 1] (the original's mean 0.5, std 0.5 after
scaling to [0, 1]), so a saved model needs no preprocessing step. Every
model returns `num_classes` logits. Layer names are deterministic,
`f"{name}_block{i}_..."`, so Grad-CAM and tests can address them.
`MODELS` (also `fer_keras.MODELS`) is the tuple of names in the zoo at the
moment it is read, as `available_models()` returns it.

`data_format="channels_first"` lays the feature maps out channels first
behind the input (which stays (N, 48, 48, 1)): PyTorch trains that layout
faster, TensorFlow and JAX the default channels-last one. The weights are
the same in both, so `copy_weights` moves them from one layout to the other.
"""

import dataclasses
from typing import Callable

import keras
from keras import layers

from fer_keras import backends
from fer_keras.errors import unknown
from fer_keras.layers import (
    CBAM,
    DATA_FORMATS,
    FixedKernels,
    FusedBatchNormalization,
    InferenceZoom,
)

INPUT_SHAPE = (48, 48, 1)
DEFAULT_DATA_FORMAT = "channels_last"
# What `train.py --data-format` and `bench_train.py` accept: "auto" is the
# backend's preferred layout (`resolve_data_format`).
DATA_FORMAT_CHOICES = ("auto", *DATA_FORMATS)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A registry entry: the builder and the layer Grad-CAM looks at."""

    name: str
    builder: Callable[..., keras.Model]
    gradcam_layer: str
    description: str


MODEL_REGISTRY: dict[str, ModelSpec] = {}


def register_model(name: str, gradcam_layer: str, description: str):
    """Adds a builder to the zoo under `name` (used by `--model` and tests)."""

    def decorator(builder):
        MODEL_REGISTRY[name] = ModelSpec(name, builder, gradcam_layer, description)
        return builder

    return decorator


def _channel_axis(data_format):
    return -1 if data_format == "channels_last" else 1


def _stem(input_shape, name, fixed_kernels, data_format):
    inputs = keras.Input(shape=input_shape, name=f"{name}_input")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name=f"{name}_rescale")(inputs)
    if data_format == "channels_first":
        x = layers.Permute((3, 1, 2), name=f"{name}_channels_first")(x)
    if fixed_kernels:
        x = layers.Conv2D(
            5,
            3,
            padding="same",
            use_bias=False,
            kernel_initializer=FixedKernels(),
            trainable=False,
            data_format=data_format,
            name=f"{name}_fixed_kernels",
        )(x)
    return inputs, x


def _classifier(x, num_classes, name):
    # Logits stay float32 under mixed precision so the loss is computed stably.
    return layers.Dense(num_classes, dtype="float32", name=f"{name}_logits")(x)


def _plain_cnn(num_classes, input_shape, name, fixed_kernels, data_format):
    inputs, x = _stem(input_shape, name, fixed_kernels, data_format)
    for i, filters in enumerate((32, 64, 128), start=1):
        prefix = f"{name}_block{i}"
        x = layers.Conv2D(
            filters, 3, padding="same", activation="relu", data_format=data_format,
            name=f"{prefix}_conv",
        )(x)
        x = layers.MaxPooling2D(2, data_format=data_format, name=f"{prefix}_pool")(x)
        x = layers.Dropout(0.25, name=f"{prefix}_dropout")(x)
    # Flatten reads channels-last order in both layouts, so `fc` has one kernel.
    x = layers.Flatten(data_format=data_format, name=f"{name}_flatten")(x)
    x = layers.Dense(256, activation="relu", name=f"{name}_fc")(x)
    x = layers.Dropout(0.5, name=f"{name}_fc_dropout")(x)
    return keras.Model(inputs, _classifier(x, num_classes, name), name=name)


@register_model(
    "baseline",
    gradcam_layer="block3_conv",
    description="3 conv layers (32, 64, 128), max-pool and dropout, 2 dense layers",
)
def baseline(
    num_classes: int = 7,
    input_shape=INPUT_SHAPE,
    name: str = "baseline",
    data_format: str = DEFAULT_DATA_FORMAT,
) -> keras.Model:
    """The original's baseline CNN."""
    return _plain_cnn(num_classes, input_shape, name, False, data_format)


@register_model(
    "kernels",
    gradcam_layer="block3_conv",
    description="the baseline behind the fixed 5-kernel edge filter bank",
)
def kernels(
    num_classes: int = 7,
    input_shape=INPUT_SHAPE,
    name: str = "kernels",
    data_format: str = DEFAULT_DATA_FORMAT,
) -> keras.Model:
    """The baseline with the fixed filter bank in front, really applied."""
    return _plain_cnn(num_classes, input_shape, name, True, data_format)


def _batch_norm(name, data_format):
    # PyTorch's defaults (eps 1e-5, momentum 0.1, i.e. Keras momentum 0.9), as
    # the original trained with; they also make converted checkpoints exact.
    # The fused subclass only changes how TensorFlow and PyTorch compute a
    # training step.
    return FusedBatchNormalization(
        axis=_channel_axis(data_format), epsilon=1e-5, momentum=0.9, name=name
    )


def _conv_bn_relu(x, filters, prefix, index, data_format, strides=1):
    if strides > 1:
        # PyTorch's `padding=1` pads both sides; Keras "same" would pad only
        # the bottom and right for a stride of 2 on an even size.
        x = layers.ZeroPadding2D(1, data_format=data_format, name=f"{prefix}_pad{index}")(x)
    x = layers.Conv2D(
        filters,
        3,
        strides=strides,
        padding="same" if strides == 1 else "valid",
        use_bias=False,
        data_format=data_format,
        name=f"{prefix}_conv{index}",
    )(x)
    x = _batch_norm(f"{prefix}_bn{index}", data_format)(x)
    return layers.ReLU(name=f"{prefix}_relu{index}")(x)


def _residual_block(x, filters, strides, prefix, data_format):
    shortcut = x
    if strides != 1 or x.shape[_channel_axis(data_format)] != filters:
        shortcut = layers.Conv2D(
            filters, 1, strides=strides, use_bias=False, data_format=data_format,
            name=f"{prefix}_proj_conv",
        )(x)
        shortcut = _batch_norm(f"{prefix}_proj_bn", data_format)(shortcut)
    x = _conv_bn_relu(x, filters, prefix, 1, data_format, strides=strides)
    x = layers.Conv2D(
        filters, 3, padding="same", use_bias=False, data_format=data_format,
        name=f"{prefix}_conv2",
    )(x)
    x = _batch_norm(f"{prefix}_bn2", data_format)(x)
    x = layers.Add(name=f"{prefix}_add")([x, shortcut])
    return layers.ReLU(name=f"{prefix}_out")(x)


@register_model(
    "resnet",
    gradcam_layer="block3_out",
    description="filter bank, 32-filter stem, 3 residual blocks (64, 128, 256), GAP",
)
def resnet(
    num_classes: int = 7,
    input_shape=INPUT_SHAPE,
    name: str = "resnet",
    fixed_kernels: bool = True,
    data_format: str = DEFAULT_DATA_FORMAT,
) -> keras.Model:
    """The original's SimpleResNet; blocks 2 and 3 halve the resolution.

    `fixed_kernels=False` drops the filter bank, as the original really ran
    (it never applied it), to load its checkpoints.
    """
    inputs, x = _stem(input_shape, name, fixed_kernels, data_format)
    x = _conv_bn_relu(x, 32, f"{name}_stem", 1, data_format)
    for i, (filters, strides) in enumerate(((64, 1), (128, 2), (256, 2)), start=1):
        x = _residual_block(x, filters, strides, f"{name}_block{i}", data_format)
    x = layers.GlobalAveragePooling2D(data_format=data_format, name=f"{name}_gap")(x)
    return keras.Model(inputs, _classifier(x, num_classes, name), name=name)


@register_model(
    "cbam",
    gradcam_layer="block3_cbam",
    description="filter bank, 3 conv blocks (64, 128, 256) with CBAM, dense 512",
)
def cbam(
    num_classes: int = 7,
    input_shape=INPUT_SHAPE,
    name: str = "cbam",
    use_max_pool: bool = False,
    fixed_kernels: bool = True,
    data_format: str = DEFAULT_DATA_FORMAT,
) -> keras.Model:
    """The original's best model: conv blocks with CBAM behind the filter bank.

    `use_max_pool` adds the paper's max-pooled channel path to CBAM;
    `fixed_kernels=False` drops the bank, as the original really ran.
    """
    inputs, x = _stem(input_shape, name, fixed_kernels, data_format)
    for i, (filters, convs) in enumerate(((64, 2), (128, 2), (256, 1)), start=1):
        prefix = f"{name}_block{i}"
        for j in range(1, convs + 1):
            x = _conv_bn_relu(x, filters, prefix, j, data_format)
        x = CBAM(reduction=16, spatial_kernel_size=7, use_max_pool=use_max_pool,
                 data_format=data_format, name=f"{prefix}_cbam")(x)
        x = layers.MaxPooling2D(2, data_format=data_format, name=f"{prefix}_pool")(x)
    x = layers.Flatten(data_format=data_format, name=f"{name}_flatten")(x)
    x = layers.Dense(512, activation="relu", name=f"{name}_fc")(x)
    x = layers.Dropout(0.5, name=f"{name}_fc_dropout")(x)
    return keras.Model(inputs, _classifier(x, num_classes, name), name=name)


@register_model(
    "resnet18",
    gradcam_layer="block4_out",
    description="ResNet-18 at half width: 4 stages of 2 residual blocks (32-256), GAP",
)
def resnet18(
    num_classes: int = 7,
    input_shape=INPUT_SHAPE,
    name: str = "resnet18",
    width: int = 32,
    data_format: str = DEFAULT_DATA_FORMAT,
) -> keras.Model:
    """ResNet-18 for 48-pixel faces: a 3x3 stem without pooling, four stages
    of two basic blocks, each stage after the first halving the resolution.

    `width` is the first stage's filters (64 is the full ResNet-18); the
    half-width default costs about as much per image as `cbam`.
    """
    inputs, x = _stem(input_shape, name, False, data_format)
    x = _conv_bn_relu(x, width, f"{name}_stem", 1, data_format)
    for stage in range(4):
        filters = width * 2**stage
        for block in range(2):
            strides = 2 if stage > 0 and block == 0 else 1
            prefix = f"{name}_block{stage + 1}" + ("" if block == 1 else "a")
            x = _residual_block(x, filters, strides, prefix, data_format)
    x = layers.GlobalAveragePooling2D(data_format=data_format, name=f"{name}_gap")(x)
    x = layers.Dropout(0.2, name=f"{name}_dropout")(x)
    return keras.Model(inputs, _classifier(x, num_classes, name), name=name)


@register_model(
    "vgg",
    gradcam_layer="block4_relu2",
    description="VGG-style: 4 stages of 2 conv layers (64-512) with batch norm, dense 512",
)
def vgg(
    num_classes: int = 7,
    input_shape=INPUT_SHAPE,
    name: str = "vgg",
    width: int = 64,
    data_format: str = DEFAULT_DATA_FORMAT,
) -> keras.Model:
    """The VGG-style net with which Khaireddin & Chen (2021) report 73.3% on
    FER2013: four stages of two 3x3 conv-BN-ReLU layers, each followed by
    max-pooling, then one dense layer of 512 with dropout.
    """
    inputs, x = _stem(input_shape, name, False, data_format)
    for stage in range(4):
        prefix = f"{name}_block{stage + 1}"
        for j in (1, 2):
            x = _conv_bn_relu(x, width * 2**stage, prefix, j, data_format)
        x = layers.MaxPooling2D(2, data_format=data_format, name=f"{prefix}_pool")(x)
    x = layers.Flatten(data_format=data_format, name=f"{name}_flatten")(x)
    x = layers.Dense(512, activation="relu", name=f"{name}_fc")(x)
    x = layers.Dropout(0.5, name=f"{name}_fc_dropout")(x)
    return keras.Model(inputs, _classifier(x, num_classes, name), name=name)


def available_models() -> tuple[str, ...]:
    """The names in the zoo now, in registration order.

    Read at each call, so models registered after import (`register_model`)
    are listed, and offered by `train.py --model`, like the built-in ones.
    """
    return tuple(MODEL_REGISTRY)


def __getattr__(name: str):
    # `MODELS` is `available_models()` at each access: a constant taken at
    # import would miss every model registered later.
    if name == "MODELS":
        return available_models()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def get_spec(name: str) -> ModelSpec:
    """The registry entry for `name`, or a `ValueError` listing valid names."""
    if name not in MODEL_REGISTRY:
        raise unknown("model", name, MODEL_REGISTRY, "name")
    return MODEL_REGISTRY[name]


def build_model(
    name: str,
    num_classes: int = 7,
    input_shape=INPUT_SHAPE,
    model_name: str | None = None,
    data_format: str = DEFAULT_DATA_FORMAT,
    **kwargs,
) -> keras.Model:
    """Builds the uncompiled model `name` of the zoo (see `available_models`).

    `model_name` names the Keras model and prefixes its layers (default:
    `name`); `data_format` lays out its feature maps (see `preferred_data_format`);
    other keyword arguments go to the builder (e.g. `use_max_pool`).
    """
    spec = get_spec(name)
    if data_format not in DATA_FORMATS:
        raise unknown("data_format", data_format, DATA_FORMATS, "data_format")
    check_data_format(data_format)
    if int(num_classes) < 2:
        raise ValueError(
            f"`num_classes` must be at least 2. Received: num_classes={num_classes}"
        )
    input_shape = tuple(input_shape)
    if len(input_shape) != 3 or input_shape[-1] != 1:
        raise ValueError(
            "The models take grey images of shape (height, width, 1). "
            f"Received: input_shape={input_shape}"
        )
    return spec.builder(
        num_classes=int(num_classes),
        input_shape=input_shape,
        name=model_name or name,
        data_format=data_format,
        **kwargs,
    )


def preferred_data_format(backend: str | None = None) -> str:
    """The layout the backend trains fastest: channels-first for torch only,
    whose batch-norm kernel applies there (benchmarks/README.md, "Training
    throughput under torch: layout and batch norm")."""
    return backends.get(backend).PREFERRED_DATA_FORMAT


def resolve_data_format(data_format: str | None, backend: str | None = None) -> str:
    """`data_format` itself, or the backend's preferred one for None or "auto"."""
    if data_format in (None, "auto"):
        return preferred_data_format(backend)
    if data_format not in DATA_FORMATS:
        raise unknown("data_format", data_format, DATA_FORMAT_CHOICES, "data_format")
    check_data_format(data_format, backend)
    return data_format


def data_format_supported(data_format: str, backend: str | None = None) -> bool:
    """Whether `backend` computes the zoo in `data_format` on this machine
    (TensorFlow runs channels-first on some CPUs only)."""
    return backends.get(backend).runs_data_format(data_format)


def check_data_format(data_format: str, backend: str | None = None) -> None:
    """Raises a `ValueError` saying what to do if `data_format_supported` is False."""
    if not data_format_supported(data_format, backend):
        raise ValueError(
            "TensorFlow has no channels-first convolution and pooling kernels on "
            "this CPU (they come with oneDNN, which TensorFlow enables on some "
            "x86 CPUs only). Use channels_last, what 'auto' picks under "
            f"tensorflow. Received: data_format={data_format!r}"
        )


def float32_copy(model: keras.Model) -> keras.Model:
    """A copy of `model` that computes in float32, with the same weights.

    A model trained under mixed precision saves its layers' policy
    (`mixed_bfloat16`); a file people run on any CPU, or export to LiteRT,
    should compute in float32.
    """

    return reconfigured_copy(model, lambda layer: {"dtype": "float32"})


def reconfigured_copy(model: keras.Model,
                      change: Callable[[keras.layers.Layer], dict]) -> keras.Model:
    """A copy of `model` with the same weights, each layer rebuilt from its
    config updated with `change(layer)` (another dtype, another name)."""

    def clone(layer):
        return layer.__class__.from_config({**layer.get_config(), **change(layer)})

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


def with_inference_zoom(model: keras.Model, fraction: float) -> keras.Model:
    """A copy of `model` with the same weights behind an `InferenceZoom(fraction)`
    layer named `f"{model.name}_inference_zoom"`: at inference it sees the centre
    `fraction` of each image at the scale that crop-trained models learned.

    The copy is flat (the zoom is one more layer, not a nested model), so its
    layers keep their names for Grad-CAM and `copy_weights`.
    """
    present = _zoom_layer(model)
    if present is not None:
        raise ValueError(
            f"Model {model.name!r} zooms in at inference already; use it as it is. "
            f"Received: a model with the layer {present.name!r}"
        )
    source = model.inputs[0]
    inputs = keras.Input(shape=tuple(source.shape[1:]), dtype=source.dtype,
                         name=f"{model.name}_input")
    zoomed = InferenceZoom(fraction, name=f"{model.name}_inference_zoom")(inputs)

    def call(layer, *args, **kwargs):
        # The layers that took the model's input now take the zoomed images.
        args, kwargs = keras.tree.map_structure(
            lambda x: zoomed if x is inputs else x, (args, kwargs))
        return layer(*args, **kwargs)

    copy = keras.models.clone_model(model, input_tensors=inputs, call_function=call)
    copy_weights(model, copy)
    return copy


def _zoom_layer(model: keras.Model) -> InferenceZoom | None:
    return next((layer for layer in model.layers if isinstance(layer, InferenceZoom)), None)


def inference_zoom(model: keras.Model) -> float | None:
    """The `InferenceZoom` fraction of `model` (or of all members of an
    ensemble), None if it has none: test-time views depend on it
    (`fer_keras.tta`). Raises a `ValueError` if members zoom differently."""
    def zooms(model):
        nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
        if nested:
            return {zoom for inner in nested for zoom in zooms(inner)}
        layer = _zoom_layer(model)
        return {layer.fraction if layer is not None else None}

    fractions = zooms(model)
    if len(fractions) > 1:
        raise ValueError(
            f"The members of {model.name!r} zoom in differently at inference, so no "
            "test-time view suits them all; ensemble models trained on crops of one size. "
            f"Received: zoom fractions {sorted(fractions, key=str)}"
        )
    return fractions.pop() if fractions else None


def copy_weights(source: keras.Model, target: keras.Model) -> None:
    """Copies every weight of `source` into `target`, matched by layer name.

    The two may differ in layout (`data_format`): zoo weights do not depend
    on it. Raises `ValueError` naming the first layer that does not match.
    """
    source_layers = {layer.name: layer for layer in source.layers if layer.weights}
    target_layers = [layer for layer in target.layers if layer.weights]
    if sorted(source_layers) != sorted(layer.name for layer in target_layers):
        missing = sorted(set(source_layers) ^ {layer.name for layer in target_layers})
        raise ValueError(
            f"Models {source.name!r} and {target.name!r} do not have the same "
            f"layers with weights; these are in one only: {missing[:5]}. "
            "Copy between models built from the same zoo entry."
        )
    for layer in target_layers:
        weights = source_layers[layer.name].get_weights()
        shapes = [w.shape for w in weights]
        expected = [tuple(w.shape) for w in layer.weights]
        if shapes != expected:
            raise ValueError(
                f"Layer {layer.name!r} has weights of shapes {expected}. "
                f"Received: {shapes} from {source.name!r}."
            )
        layer.set_weights(weights)


def gradcam_layer_name(model: keras.Model) -> str:
    """Name of the last conv block's output in a zoo model, or in a model
    made of one, as an ensemble's member (Grad-CAM's default)."""
    # Longest names first: "resnet18" also starts with "resnet", and has a
    # layer "resnet18_block3_out" too, one stage before its last.
    specs = sorted(MODEL_REGISTRY.values(), key=lambda s: len(s.name), reverse=True)
    for spec in specs:
        candidate = f"{model.name}_{spec.gradcam_layer}"
        if model.name.startswith(spec.name) and _has_layer(model, candidate):
            return candidate
    # A model renamed around zoo layers, as an ensemble's member: its layers
    # keep the zoo model's names ("cbam_block3_cbam", or prefixed).
    for spec in specs:
        named = [layer.name for layer in model.layers
                 if layer.name.endswith(f"_{spec.gradcam_layer}") and spec.name in layer.name]
        if len(named) == 1:
            return named[0]
    four_d = [layer.name for layer in model.layers if len(layer.output.shape) == 4]
    if not four_d:
        raise ValueError(
            f"Model {model.name!r} has no 4-D feature map to compute Grad-CAM on."
        )
    return four_d[-1]


def _has_layer(model, name):
    return any(layer.name == name for layer in model.layers)
