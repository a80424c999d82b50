"""Custom layers and initializers of the fer_keras models.

Everything here is registered with `package="fer_keras"`, so a `.keras` file
that uses it loads after `import fer_keras` with no `custom_objects`, and computes
with `keras.ops`, so the same file runs under JAX, TensorFlow and PyTorch.
The one exception is `FusedBatchNormalization`'s training step under
TensorFlow and PyTorch, which calls their fused kernels and falls back to
Keras' own code everywhere else.
"""

import numpy as np

import keras
from keras import ops

from fer_keras import backends
from fer_keras.tta import crop_size

DATA_FORMATS = ("channels_last", "channels_first")

# The five hand-made 3x3 kernels of the original project, rows top to bottom.
FIXED_KERNELS = {
    "sobel_vertical": [[-1, -2, -1], [0, 0, 0], [1, 2, 1]],
    "sobel_horizontal": [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
    "laplacian": [[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]],
    "sharpen": [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],
    "diagonal": [[-1, 0, 1], [0, 0, 0], [1, 0, -1]],
}


def fixed_kernel_bank() -> np.ndarray:
    """The filter bank as a Keras conv kernel of shape (3, 3, 1, 5)."""
    bank = np.stack([np.asarray(k, "float32") for k in FIXED_KERNELS.values()])
    return np.transpose(bank, (1, 2, 0))[:, :, None, :]


@keras.saving.register_keras_serializable(package="fer_keras")
class FixedKernels(keras.initializers.Initializer):
    """Initializer holding the original's hand-made edge filters.

    Used with a non-trainable `Conv2D(5, 3)` on the grey input, it stresses
    the edges of eyes, brows, nose, mouth and jaw before any learning.
    """

    shape = (3, 3, 1, 5)

    def __call__(self, shape, dtype=None):
        if tuple(shape) != self.shape:
            raise ValueError(
                "FixedKernels holds 5 kernels of size 3x3 for a 1-channel "
                f"input, so the kernel shape must be {self.shape}. "
                f"Received: shape={tuple(shape)}"
            )
        return ops.convert_to_tensor(fixed_kernel_bank(), dtype=dtype)

    def get_config(self):
        return {}


@keras.saving.register_keras_serializable(package="fer_keras")
class CBAM(keras.layers.Layer):
    """Convolutional Block Attention Module (Woo et al., ECCV 2018).

    Channel attention, then spatial attention, each multiplied onto the
    features. The channel branch is a bias-free MLP (a pair of 1x1 convs)
    over the global average pool; `use_max_pool=True` adds the paper's
    max-pooled path through the same MLP, which the original left out. The
    spatial branch convolves the channel-wise [max, mean] maps.

    Args:
        reduction: channel reduction of the MLP's hidden layer.
        spatial_kernel_size: size of the spatial attention convolution.
        use_max_pool: add the paper's max-pooled channel path.
        data_format: "channels_last" (the default, whatever the global Keras
            setting, so older files load unchanged) or "channels_first". The
            weights are the same in both.
    """

    def __init__(
        self,
        reduction: int = 16,
        spatial_kernel_size: int = 7,
        use_max_pool: bool = False,
        data_format: str = "channels_last",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if data_format not in DATA_FORMATS:
            raise ValueError(
                f"`data_format` must be one of {DATA_FORMATS}. "
                f"Received: data_format={data_format!r}"
            )
        if int(reduction) < 1:
            raise ValueError(
                f"`reduction` must be a positive integer. Received: reduction={reduction}"
            )
        if int(spatial_kernel_size) < 1 or int(spatial_kernel_size) % 2 == 0:
            raise ValueError(
                "`spatial_kernel_size` must be a positive odd integer. "
                f"Received: spatial_kernel_size={spatial_kernel_size}"
            )
        self.reduction = int(reduction)
        self.spatial_kernel_size = int(spatial_kernel_size)
        self.use_max_pool = bool(use_max_pool)
        self.data_format = data_format
        self._channel_axis = -1 if data_format == "channels_last" else 1
        self._spatial_axes = (1, 2) if data_format == "channels_last" else (2, 3)

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[self._channel_axis] is None:
            layout = ("(batch, height, width, channels)" if self.data_format == "channels_last"
                      else "(batch, channels, height, width)")
            raise ValueError(
                f"CBAM with data_format={self.data_format!r} expects feature maps of "
                f"shape {layout}. Received: input_shape={input_shape}"
            )
        channels = int(input_shape[self._channel_axis])
        hidden = max(1, channels // self.reduction)
        self.channel_squeeze = self.add_weight(
            name="channel_squeeze",
            shape=(channels, hidden),
            initializer="he_normal",
        )
        self.channel_excite = self.add_weight(
            name="channel_excite",
            shape=(hidden, channels),
            initializer="glorot_uniform",
        )
        k = self.spatial_kernel_size
        self.spatial_kernel = self.add_weight(
            name="spatial_kernel",
            shape=(k, k, 2, 1),
            initializer="glorot_uniform",
        )

    def _channel_mlp(self, pooled):
        hidden = ops.relu(ops.matmul(pooled, self.channel_squeeze))
        return ops.matmul(hidden, self.channel_excite)

    def call(self, inputs):
        spatial, channel = self._spatial_axes, self._channel_axis
        logits = self._channel_mlp(ops.mean(inputs, axis=spatial))
        if self.use_max_pool:
            logits = logits + self._channel_mlp(ops.max(inputs, axis=spatial))
        scale = ops.sigmoid(logits)
        scale = scale[:, None, None, :] if channel == -1 else scale[:, :, None, None]
        x = inputs * scale
        pooled = ops.concatenate(
            [ops.max(x, axis=channel, keepdims=True),
             ops.mean(x, axis=channel, keepdims=True)],
            axis=channel,
        )
        attention = ops.conv(
            pooled, self.spatial_kernel, strides=1, padding="same",
            data_format=self.data_format,
        )
        return x * ops.sigmoid(attention)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "reduction": self.reduction,
                "spatial_kernel_size": self.spatial_kernel_size,
                "use_max_pool": self.use_max_pool,
                "data_format": self.data_format,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="fer_keras")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """`BatchNormalization` that trains with the backend's fused kernel.

    Keras 3 normalizes with separate moment, normalization and update ops on
    every backend; on a CPU those cost several times one fused kernel per
    layer (benchmarks/README.md, "What was tried for `cbam` training").
    This layer takes the fused kernel for the training step of 4-D inputs in
    the layout the kernel is native to -- channels-last under
    TensorFlow (`fused_batch_norm`), channels-first under PyTorch
    (`torch.nn.functional.batch_norm`) -- and keeps the moving statistics
    exactly as Keras does (the biased batch variance). TensorFlow raises an
    `epsilon` below 1.001e-5 to that value in the kernel, which changes a
    channel's scale by at most 0.05% for the zoo's 1e-5. Everything else --
    inference, JAX (whose XLA fuses the ops anyway), other layouts, masks,
    renorm -- is Keras' own code, so weights, saved files and predictions are
    those of `keras.layers.BatchNormalization`.
    """

    def _fused_kernel(self, inputs, training, mask):
        """The backend's single-kernel batch norm where it applies, else None."""
        if not (bool(training) and self.trainable and mask is None and not self.renorm
                and not self.synchronized and len(inputs.shape) == 4):
            return None
        backend = backends.get()
        channel_axis = {"channels_last": 3, "channels_first": 1}.get(
            backend.FUSED_BATCH_NORM_FORMAT)
        if channel_axis is None or self.axis % 4 != channel_axis:
            return None
        return backend.fused_batch_norm

    def call(self, inputs, training=None, mask=None):
        kernel = self._fused_kernel(inputs, training, mask)
        if kernel is None:
            return super().call(inputs, training=training, mask=mask)
        x = ops.cast(inputs, "float32")
        channels = x.shape[self.axis]
        gamma = ops.cast(self.gamma, "float32") if self.scale else ops.ones((channels,))
        beta = ops.cast(self.beta, "float32") if self.center else ops.zeros((channels,))
        outputs, mean, variance = kernel(x, gamma, beta, self.epsilon)
        # Both kernels return the unbiased variance; Keras keeps the biased one.
        count = ops.cast(ops.size(x), "float32") / channels
        variance = variance * (count - 1.0) / count
        momentum = self.momentum
        self.moving_mean.assign(
            ops.cast(self.moving_mean, "float32") * momentum + mean * (1.0 - momentum)
        )
        self.moving_variance.assign(
            ops.cast(self.moving_variance, "float32") * momentum
            + variance * (1.0 - momentum)
        )
        return ops.cast(outputs, self.compute_dtype)


@keras.saving.register_keras_serializable(package="fer_keras")
class InferenceZoom(keras.layers.Layer):
    """At inference, the centre `fraction` of each image resized back to its size.

    A model trained on random crops of a fraction of the face, each resized
    back to the input size (the crop44 recipe), sees faces larger than the
    whole image shows them. In front of such a model, this layer shows it at
    inference the scale it trained on, in one forward pass: the centre crop,
    resized bilinearly as `fer_keras.tta` resizes its views. In training it
    passes images through, since the training pipeline crops them already.

    Args:
        fraction: the side of the crop as a fraction of the image side, in (0, 1].
    """

    def __init__(self, fraction: float, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 < float(fraction) <= 1.0:
            raise ValueError(f"`fraction` must be in (0, 1]. Received: fraction={fraction}")
        self.fraction = float(fraction)

    def build(self, input_shape):
        if len(input_shape) != 4 or None in tuple(input_shape[1:3]):
            raise ValueError(
                "InferenceZoom takes images of a fixed size, (N, height, width, channels). "
                f"Received: input_shape={tuple(input_shape)}"
            )
        # Python ints: traced shapes (torch's ONNX export) are tensors.
        self._image_size = (int(input_shape[1]), int(input_shape[2]))

    def call(self, inputs, training=None):
        if training:
            return inputs
        height, width = self._image_size
        crop_h, crop_w = crop_size(height, width, self.fraction)
        top, left = (height - crop_h) // 2, (width - crop_w) // 2
        crop = inputs[:, top : top + crop_h, left : left + crop_w, :]
        return ops.image.resize(crop, (height, width), interpolation="bilinear",
                                antialias=False, data_format="channels_last")

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "fraction": self.fraction}
