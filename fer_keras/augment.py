"""Training-time augmentation as Keras preprocessing layers.

`build_augmentation(name)` returns a `keras.layers.Pipeline` that takes a
batch of 0-255 grey images and returns float32 0-255 images of the same
shape. Every layer in it runs inside `tf.data` under any `KERAS_BACKEND`
and, outside it, on backend tensors: Keras' own image preprocessing layers,
and `RandomAffine`, written here on Keras' public API.

Geometric augmentation is one layer, `RandomAffine`: flip, rotation and
resized crop composed into a single affine warp. Keras ships them as
separate layers (`RandomFlip`, `RandomRotation`, `RandomZoom`), each its own
warp of the whole batch; each warp costs CPU time the input pipeline lacks
(benchmarks/README.md, "Data pipeline") and blurs the image once more.

`AugmentedModel` runs a pipeline inside the training step instead, on
whatever device trains, for `fit` on plain arrays (`train.py --pipeline
device`).
"""

import math
import random
import sys
from typing import Callable

import keras

from fer_keras import backends
from fer_keras.errors import unknown

FILL_MODES = ("reflect", "wrap", "constant", "nearest")
INTERPOLATIONS = ("bilinear", "nearest")


@keras.saving.register_keras_serializable(package="fer_keras")
class RandomAffine(keras.layers.Layer):
    """Random flip, rotation and resized crop of a batch, as one affine warp.

    The crop follows torchvision's `RandomResizedCrop`, which the original
    project described: it keeps a random `scale` fraction of the image area
    with a random aspect ratio in `ratio`, at a random position, resized
    back to the input size. The crop window is rotated by up to `rotation`
    degrees either way, may be moved by up to `translation` of the image
    size beyond the image (filled by `fill_mode`), and is mirrored left to
    right half of the time when `horizontal_flip` is set. Every image of a
    batch gets its own transform; images only (no labels, boxes or masks).

    It is written on Keras' public API (`keras.layers.Layer`, `keras.ops`,
    `keras.random`), not on the internals of Keras' preprocessing layers,
    which change from release to release. Inside a `tf.data` pipeline under
    another backend than TensorFlow, where `keras.ops` cannot run on the
    graph's tensors, it runs the same transform with TensorFlow's public ops
    (the warp op `keras.ops.image.affine_transform` uses under TensorFlow),
    drawing from a random stream of its own that starts at the same seed.

    Args:
        rotation: largest rotation in degrees, either way.
        scale: range of the kept area, as a fraction of the image area,
            within (0, 1].
        ratio: range of the crop's width / height.
        translation: how far the crop centre may move beyond the crop that
            still fits in the image, as a fraction of the image size.
        horizontal_flip: whether to mirror half of the images.
        fill_mode: how points outside the image are filled, one of
            "reflect", "wrap", "constant", "nearest".
        interpolation: "bilinear" or "nearest".
        fill_value: the value used with `fill_mode="constant"`.
        seed: integer seed of the layer's random stream.
        data_format: "channels_last" or "channels_first" (default: Keras'
            `image_data_format()`).
    """

    def __init__(
        self,
        rotation: float = 10.0,
        scale: tuple[float, float] = (0.8, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        translation: float = 0.0,
        horizontal_flip: bool = True,
        fill_mode: str = "reflect",
        interpolation: str = "bilinear",
        fill_value: float = 0.0,
        seed: int | None = None,
        data_format: str | None = None,
        **kwargs,
    ):
        if not 0.0 <= rotation <= 180.0:
            raise ValueError(
                "`rotation` must be in degrees, between 0 and 180. "
                f"Received: rotation={rotation}"
            )
        scale = tuple(float(s) for s in scale)
        if len(scale) != 2 or not 0.0 < scale[0] <= scale[1] <= 1.0:
            raise ValueError(
                "`scale` must be a pair (low, high) with 0 < low <= high <= 1. "
                f"Received: scale={scale}"
            )
        ratio = tuple(float(r) for r in ratio)
        if len(ratio) != 2 or not 0.0 < ratio[0] <= ratio[1]:
            raise ValueError(
                "`ratio` must be a pair (low, high) with 0 < low <= high. "
                f"Received: ratio={ratio}"
            )
        if not 0.0 <= translation < 1.0:
            raise ValueError(
                "`translation` must be a fraction in [0, 1). "
                f"Received: translation={translation}"
            )
        if fill_mode not in FILL_MODES:
            raise unknown("fill_mode", fill_mode, FILL_MODES, "fill_mode")
        if interpolation not in INTERPOLATIONS:
            raise unknown("interpolation", interpolation, INTERPOLATIONS, "interpolation")
        data_format = data_format or keras.config.image_data_format()
        if data_format not in ("channels_last", "channels_first"):
            raise ValueError(
                "`data_format` must be 'channels_last' or 'channels_first'. "
                f"Received: data_format={data_format!r}"
            )
        if seed is not None and not isinstance(seed, int):
            raise ValueError(f"`seed` must be an integer or None. Received: seed={seed!r}")
        super().__init__(**kwargs)
        self.rotation = float(rotation)
        self.scale = scale
        self.ratio = ratio
        self.translation = float(translation)
        self.horizontal_flip = bool(horizontal_flip)
        self.fill_mode = fill_mode
        self.interpolation = interpolation
        self.fill_value = float(fill_value)
        self.seed = seed
        self.data_format = data_format
        self.seed_generator = keras.random.SeedGenerator(seed)
        # The tf.data stream's state, a TensorFlow variable made on first use
        # (see `_call_in_tf_graph`); held in a plain object, out of Keras'
        # tracking of the layer's own variables.
        self._tf_stream = _TensorFlowStream(
            seed if seed is not None else random.randint(1, 10**9)
        )
        # Whether the model holding this layer (`AugmentedModel`) may be
        # compiled: see `backends`' COMPILES_AFFINE_WARP.
        self.supports_jit = backends.get().COMPILES_AFFINE_WARP
        # Built from the start: in tf.data under jax or torch, Keras' own
        # build-on-first-call never sees this layer (see `__call__`).
        self.build()

    def build(self, input_shape=None):
        """Nothing to make: the seed generator, its only state, exists already."""

    def __call__(self, inputs, *args, **kwargs):
        if keras.backend.backend() != "tensorflow" and _in_tf_graph(inputs):
            # A tf.data pipeline under jax or torch: TensorFlow tensors that
            # `keras.ops` (jax or torch) cannot take.
            return self._call_in_tf_graph(inputs, *args, **kwargs)
        return super().__call__(inputs, *args, **kwargs)

    def call(self, images, training=True):
        if not training:
            return images
        ops = keras.ops
        shape = ops.shape(images)
        batch_size = 1 if len(shape) == 3 else shape[0]
        height, width = self._height_width(shape)
        # One draw per image for all six parameters keeps the graph small.
        draws = keras.random.uniform((batch_size, 6), seed=self.seed_generator)
        matrix = self._matrix(ops, draws, height, width)
        if len(shape) == 3:
            matrix = matrix[0]
        return ops.image.affine_transform(
            images,
            matrix,
            interpolation=self.interpolation,
            fill_mode=self.fill_mode,
            fill_value=self.fill_value,
            data_format=self.data_format,
        )

    def _call_in_tf_graph(self, images, training=True):
        import tensorflow as tf

        images = tf.cast(images, self.compute_dtype)
        if not training:
            return images
        unbatched = images.shape.rank == 3
        if unbatched:
            images = images[None]
        if self.data_format == "channels_first":
            images = tf.transpose(images, (0, 2, 3, 1))
        shape = tf.shape(images)
        draws = tf.random.stateless_uniform(
            tf.stack([shape[0], 6]), seed=self._tf_stream.next_seed(), dtype=tf.float32
        )
        matrix = self._matrix(tf, draws, shape[1], shape[2])
        # The op `keras.ops.image.affine_transform` runs under TensorFlow.
        warped = tf.raw_ops.ImageProjectiveTransformV3(
            images=images,
            transforms=matrix,
            output_shape=shape[1:3],
            fill_value=self.fill_value,
            interpolation=self.interpolation.upper(),
            fill_mode=self.fill_mode.upper(),
        )
        warped = tf.ensure_shape(warped, images.shape)
        if self.data_format == "channels_first":
            warped = tf.transpose(warped, (0, 3, 1, 2))
        return warped[0] if unbatched else warped

    def _height_width(self, shape):
        if self.data_format == "channels_last":
            return shape[-3], shape[-2]
        return shape[-2], shape[-1]

    def _matrix(self, ops, draws, height, width):
        """The (N, 8) warp matrices for uniform `draws` (N, 6), in `ops`
        (`keras.ops` or `tensorflow`): each maps output pixels to input pixels."""
        u = [draws[:, i] for i in range(6)]
        angle = math.radians(self.rotation) * (2.0 * u[0] - 1.0)
        area = self.scale[0] + (self.scale[1] - self.scale[0]) * u[1]
        low, high = math.log(self.ratio[0]), math.log(self.ratio[1])
        aspect = ops.exp(low + (high - low) * u[2])
        crop_w = ops.minimum(ops.sqrt(area * aspect), 1.0)
        crop_h = ops.minimum(ops.sqrt(area / aspect), 1.0)
        shift_x = (u[3] - 0.5) * (1.0 - crop_w + 2.0 * self.translation)
        shift_y = (u[4] - 0.5) * (1.0 - crop_h + 2.0 * self.translation)
        if self.horizontal_flip:
            flip = 1.0 - 2.0 * ops.cast(u[5] < 0.5, "float32")
        else:
            flip = ops.ones_like(u[5])

        # Centre the output, flip and scale it to the crop size, rotate, then
        # move it to the crop centre.
        width = ops.cast(width, "float32")
        height = ops.cast(height, "float32")
        cx, cy = (width - 1.0) / 2.0, (height - 1.0) / 2.0
        cos, sin = ops.cos(angle), ops.sin(angle)
        a0 = cos * flip * crop_w
        a1 = -sin * crop_h
        b0 = sin * flip * crop_w
        b1 = cos * crop_h
        a2 = cx + shift_x * width - a0 * cx - a1 * cy
        b2 = cy + shift_y * height - b0 * cx - b1 * cy
        zeros = ops.zeros_like(a0)
        return ops.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "data_format": self.data_format,
                "fill_mode": self.fill_mode,
                "fill_value": self.fill_value,
                "interpolation": self.interpolation,
                "seed": self.seed,
                "rotation": self.rotation,
                "scale": self.scale,
                "ratio": self.ratio,
                "translation": self.translation,
                "horizontal_flip": self.horizontal_flip,
            }
        )
        return config


def _in_tf_graph(inputs) -> bool:
    """Whether `inputs` are tensors of a TensorFlow graph (a tf.data map)."""
    tf = sys.modules.get("tensorflow")
    return tf is not None and tf.is_tensor(inputs) and tf.inside_function()


class _TensorFlowStream:
    """The random stream of `RandomAffine` in tf.data under jax or torch.

    It draws the seeds `keras.random.SeedGenerator(seed)` draws under the
    TensorFlow backend ([seed, 0], [seed, 1], ...), from a TensorFlow
    variable, which a tf.data graph can update where a jax or torch one
    cannot live.
    """

    def __init__(self, seed: int):
        self.seed = int(seed)
        self.state = None

    def next_seed(self):
        import tensorflow as tf

        if self.state is None:
            # Made outside the graph being traced, so it outlives the trace.
            with tf.init_scope():
                self.state = tf.Variable(
                    [self.seed, 0], dtype=tf.int64, trainable=False,
                    name="random_affine_seed",
                )
        step = tf.constant([0, 1], tf.int64)
        drawn = self.state.assign_add(step) - step
        # As `keras.random` under TensorFlow: stateless ops take int32 seeds.
        return tf.cast(tf.math.floormod(drawn, tf.int32.max - 1), tf.int32)


def _none(seed: int) -> None:
    return None


def _seed(seed: int) -> keras.layers.Pipeline:
    """The original's described augmentation: flip, +/-10 degrees, crop 0.8-1.0.

    Only thin corners fall outside the image here; "nearest" fills them
    without black wedges and warps faster than "reflect" (benchmarks/README.md,
    "Data pipeline").
    """
    return keras.layers.Pipeline(
        [
            RandomAffine(
                rotation=10.0,
                scale=(0.8, 1.0),
                fill_mode="nearest",
                seed=seed,
                name="seed_affine",
            )
        ],
        name="seed_augmentation",
    )


def _strong(seed: int) -> keras.layers.Pipeline:
    """Stronger geometry plus photometric changes and occlusion by erasing."""
    return keras.layers.Pipeline(
        [
            RandomAffine(
                rotation=15.0,
                scale=(0.6, 1.0),
                translation=0.1,
                fill_mode="reflect",
                seed=seed,
                name="strong_affine",
            ),
            keras.layers.RandomBrightness(
                0.15, value_range=(0, 255), seed=seed + 1, name="strong_brightness"
            ),
            keras.layers.RandomContrast(
                0.25, value_range=(0, 255), seed=seed + 2, name="strong_contrast"
            ),
            keras.layers.RandomErasing(
                factor=(0.5, 0.5),
                scale=(0.02, 0.15),
                fill_value=127.5,
                value_range=(0, 255),
                seed=seed + 3,
                name="strong_erasing",
            ),
        ],
        name="strong_augmentation",
    )


# The side of the training crops of "crop44", in pixels of the 48-pixel
# face: the ten-crop views at test time (`fer_keras.tta`) have the same side.
CROP_SIDE = 44


def _crop44(seed: int) -> keras.layers.Pipeline:
    """The literature's FER2013 recipe: random 44-pixel crops, flip, +/-10 degrees
    and random erasing.

    Each crop is a square of 44 of the 48 pixels at a random position,
    resized back to 48 like the ten-crop views of `fer_keras.tta`, so the
    model sees at test time the views it trained on, and keeps its
    documented (48, 48, 1) input.
    """
    area = (CROP_SIDE / 48) ** 2
    return keras.layers.Pipeline(
        [
            RandomAffine(
                rotation=10.0,
                scale=(area, area),
                ratio=(1.0, 1.0),
                fill_mode="nearest",
                seed=seed,
                name="crop44_affine",
            ),
            keras.layers.RandomErasing(
                factor=(0.5, 0.5),
                scale=(0.02, 0.2),
                fill_value=127.5,
                value_range=(0, 255),
                seed=seed + 1,
                name="crop44_erasing",
            ),
        ],
        name="crop44_augmentation",
    )


# The centre zoom at inference that shows a model the faces at the scale its
# augmentation trained it on (`fer_keras.models.with_inference_zoom`): a
# shipped crop44 model scores 2.4 points higher plain on validation with it.
INFERENCE_ZOOM: dict[str, float] = {"crop44": CROP_SIDE / 48}

AUGMENTATIONS: dict[str, Callable[[int], keras.layers.Pipeline | None]] = {
    "none": _none,
    "seed": _seed,
    "strong": _strong,
    "crop44": _crop44,
}


def build_augmentation(name: str, seed: int = 0) -> keras.layers.Pipeline | None:
    """A fresh augmentation pipeline `name` of `AUGMENTATIONS` (None for "none").

    Fresh layers start their random stream at `seed`, so two pipelines built
    with the same seed augment the same batches the same way.
    """
    if name not in AUGMENTATIONS:
        raise unknown("augmentation", name, AUGMENTATIONS, "name")
    return AUGMENTATIONS[name](int(seed))


class AugmentedModel(keras.Model):
    """`model` behind an augmentation pipeline that runs inside the training step.

    `fit` on plain arrays then augments each batch on the device that trains
    (a GPU or TPU, in the same compiled step) instead of in a `tf.data`
    pipeline on the host, and needs no TensorFlow under jax or torch. At
    inference the augmentation is skipped, so the wrapper predicts what
    `model` predicts. It is a training harness, never saved: save `model`.

    Args:
        model: the model to train, taking 0-255 images.
        augmentation: a pipeline from `build_augmentation`, or None.
    """

    def __init__(self, model: keras.Model, augmentation: keras.layers.Layer | None, **kwargs):
        kwargs.setdefault("name", f"{model.name}_augmented")
        super().__init__(**kwargs)
        self.inner = model
        self.augmentation = augmentation
        # The augmentation layers hold only their random state, made with
        # them: with a built model the harness is built too, as Keras'
        # BackupAndRestore needs before `fit`.
        self.built = model.built

    def build(self, input_shape):
        self.inner.build(input_shape)

    def call(self, inputs, training=False):
        if training and self.augmentation is not None:
            inputs = self.augmentation(inputs, training=True)
        return self.inner(inputs, training=training)

    def compute_output_shape(self, input_shape):
        return self.inner.compute_output_shape(input_shape)
