"""Tests for fer_keras.augment under the current KERAS_BACKEND."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from fer_keras import augment
from fer_keras.augment import RandomAffine, build_augmentation


def faces(n=16, seed=0):
    """Random 0-255 grey images: every pixel differs, so any warp shows."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 48, 48, 1)).astype(np.float32)


def ramp(n=16):
    """Images whose value is the column index: f(x, y) = x."""
    row = np.arange(48, dtype=np.float32)
    return np.tile(row[None, None, :, None], (n, 48, 1, 1))


def apply(layer, images, training=True):
    """Runs `layer` in tf.data, where training uses it, under any backend."""
    dataset = tf.data.Dataset.from_tensors(images)
    dataset = dataset.map(lambda x: layer(x, training=training))
    return next(iter(dataset)).numpy()


def apply_eagerly(layer, images, training=True):
    """Runs `layer` on the backend's own tensors, outside tf.data."""
    return keras.ops.convert_to_numpy(layer(images, training=training))


def test_registry_names():
    assert {"none", "seed", "strong", "crop44"} <= set(augment.AUGMENTATIONS)
    assert build_augmentation("none") is None
    for name in ("seed", "strong", "crop44"):
        assert isinstance(build_augmentation(name), keras.layers.Pipeline)


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="none, seed, strong, crop44. Received: name='wild'"):
        build_augmentation("wild")


@pytest.mark.parametrize("run", [apply, apply_eagerly], ids=["tf_data", "eager"])
@pytest.mark.parametrize("name", ["seed", "strong", "crop44"])
def test_pipeline_behaviour(name, run):
    """Changes images, keeps shape and range, repeats for a seed, off in eval."""
    images = faces()
    pipeline = build_augmentation(name, seed=7)
    a = run(pipeline, images)
    assert a.shape == images.shape and a.dtype == np.float32
    assert a.min() >= 0.0 and a.max() <= 255.0
    changed = np.abs(a - images).reshape(len(images), -1).mean(axis=1) > 1.0
    assert changed.all()
    again = run(build_augmentation(name, seed=7), images)
    np.testing.assert_allclose(again, a, atol=1e-4)
    assert not np.allclose(run(build_augmentation(name, seed=8), images), a)
    np.testing.assert_allclose(run(pipeline, images, training=False), images)


def test_pipeline_draws_new_augmentations_for_each_batch_in_tf_data():
    pipeline = build_augmentation("seed", seed=0)
    same = np.repeat(faces(1), 8, axis=0)
    dataset = tf.data.Dataset.from_tensors(same).repeat(3)
    dataset = dataset.map(lambda x: pipeline(x, training=True))
    batches = [b.numpy() for b in dataset]
    assert [b.shape for b in batches] == [(8, 48, 48, 1)] * 3
    assert not np.allclose(batches[0], batches[1])
    assert not np.allclose(batches[0][0], batches[0][1])


def test_identity_affine_leaves_images_alone():
    layer = RandomAffine(
        rotation=0.0, scale=(1.0, 1.0), ratio=(1.0, 1.0), horizontal_flip=False
    )
    images = faces()
    np.testing.assert_allclose(apply(layer, images), images, atol=1e-3)


def test_flip_mirrors_about_half_the_images():
    layer = RandomAffine(rotation=0.0, scale=(1.0, 1.0), ratio=(1.0, 1.0), seed=3)
    images = faces(64)
    out = apply(layer, images)
    same = np.all(np.isclose(out, images, atol=1e-3), axis=(1, 2, 3))
    mirrored = np.all(np.isclose(out, images[:, :, ::-1], atol=1e-3), axis=(1, 2, 3))
    assert np.all(same | mirrored)
    assert 16 < mirrored.sum() < 48


def test_rotation_stays_within_its_range():
    # On f(x, y) = x the warped image is a plane; its gradient is the first
    # row of the warp matrix: length 1 and angle within +/-10 degrees.
    layer = RandomAffine(
        rotation=10.0, scale=(1.0, 1.0), ratio=(1.0, 1.0), horizontal_flip=False,
        seed=0,
    )
    out = apply(layer, ramp(64))[:, 8:-8, 8:-8, 0]  # keep clear of the fill
    gx = np.median(np.diff(out, axis=2), axis=(1, 2))
    gy = np.median(np.diff(out, axis=1), axis=(1, 2))
    np.testing.assert_allclose(np.hypot(gx, gy), 1.0, atol=1e-3)
    angles = np.degrees(np.arctan2(gy, gx))
    assert np.all(np.abs(angles) <= 10.0 + 1e-3)
    assert np.abs(angles).max() > 5.0


def test_crop_scale_zooms_in_by_the_square_root_of_the_area():
    # Keeping 25% of the area at ratio 1 shows half the width at full size.
    layer = RandomAffine(
        rotation=0.0, scale=(0.25, 0.25), ratio=(1.0, 1.0), horizontal_flip=False,
        seed=0,
    )
    out = apply(layer, ramp(16))[..., 0]
    # The outer output pixels sample up to half a pixel beyond the last
    # pixel centre, where the reflected fill flattens the ramp.
    np.testing.assert_allclose(np.diff(out[..., 1:-1], axis=2), 0.5, atol=1e-3)
    # The crop lies inside the image, at a random position.
    assert out.min() >= 0.0 and out.max() <= 47.0
    starts = out[:, 0, 0]
    assert starts.max() - starts.min() > 5.0


def test_seed_augmentation_matches_the_original_description():
    (affine,) = build_augmentation("seed").layers
    assert isinstance(affine, RandomAffine)
    assert affine.rotation == 10.0 and affine.scale == (0.8, 1.0)
    assert affine.horizontal_flip and affine.translation == 0.0
    assert affine.fill_mode == "nearest"
    out = apply(affine, ramp(256))[:, 10:-10, 10:-10, 0]
    slope = np.abs(np.median(np.diff(out, axis=2), axis=(1, 2)))
    # Zoom in by sqrt(area) in [0.89, 1.0], times the aspect-ratio and the
    # rotation's cosine: never a zoom out.
    assert slope.max() <= 1.0 + 1e-3 and slope.min() >= math.sqrt(0.8 * 0.75) - 0.1


def test_strong_augmentation_erases_some_patches():
    images = np.full((64, 48, 48, 1), 255.0, np.float32)
    out = apply(build_augmentation("strong", seed=0), images)
    erased = np.any(np.isclose(out, 127.5), axis=(1, 2, 3))
    assert 8 < erased.sum() < 56


def test_crop44_enlarges_a_square_by_48_over_44():
    """A 20-pixel square in a 44-pixel crop resized to 48 covers (48/44)^2 of
    its area; rotation keeps areas, and the crop stays inside the image."""
    images = np.zeros((64, 48, 48, 1), np.float32)
    images[:, 14:34, 14:34] = 255.0
    out = apply(build_augmentation("crop44", seed=0), images)
    erased = np.any(np.isclose(out, 127.5), axis=(1, 2, 3))
    assert 8 < erased.sum() < 56  # random erasing, about half the time
    area = (out[~erased] > 127.5).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(area / 400, (48 / 44) ** 2, rtol=0.03)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"scale": (0.0, 1.0)}, "Received: scale"),
        ({"scale": (0.9, 0.8)}, "Received: scale"),
        ({"ratio": (2.0, 1.0)}, "Received: ratio"),
        ({"translation": 1.0}, "Received: translation=1.0"),
        ({"rotation": -5.0}, "Received: rotation=-5.0"),
    ],
)
def test_affine_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RandomAffine(**kwargs)


def test_affine_config_round_trip():
    layer = RandomAffine(
        rotation=12.0, scale=(0.7, 0.9), translation=0.05, fill_mode="nearest", seed=4
    )
    config = layer.get_config()
    clone = RandomAffine.from_config(config)
    assert clone.get_config() == config
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(build_augmentation("strong"))
    )
    assert [type(layer) for layer in restored.layers][0] is RandomAffine


def _identity_model():
    inputs = keras.Input((48, 48, 1))
    return keras.Model(inputs, keras.layers.Identity()(inputs))


def test_augmented_model_augments_only_in_training():
    images = faces(8)
    wrapped = augment.AugmentedModel(_identity_model(), build_augmentation("seed", seed=1))
    wrapped.build((None, 48, 48, 1))
    inference = keras.ops.convert_to_numpy(wrapped(images, training=False))
    np.testing.assert_array_equal(inference, images)
    trained = keras.ops.convert_to_numpy(wrapped(images, training=True))
    assert trained.shape == images.shape
    changed = np.abs(trained - images).reshape(8, -1).mean(axis=1) > 1.0
    assert changed.all()
    plain = augment.AugmentedModel(_identity_model(), None)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(plain(images, training=True)),
                                  images)


def test_augmented_model_trains_compiled_under_jax():
    """Keras' RandomRotation opts out of XLA (TensorFlow's warp has no XLA
    kernel); RandomAffine opts back in under jax, where its warp is jax code,
    or a model holding it would train op by op."""
    wrapped = augment.AugmentedModel(_identity_model(), build_augmentation("strong"))
    wrapped.compile(optimizer="sgd", loss="mse")
    assert wrapped.jit_compile is (keras.backend.backend() == "jax")
