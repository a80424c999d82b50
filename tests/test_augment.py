"""Tests for fer_keras.augment under the current KERAS_BACKEND."""

import math
import warnings

import numpy as np
import pytest
import tensorflow as tf

import keras

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
    """TensorFlow's warp op has no XLA kernel, so RandomAffine opts out of
    compilation there; under jax its warp is jax code, and it opts in, or a
    model holding it would train op by op."""
    wrapped = augment.AugmentedModel(_identity_model(), build_augmentation("strong"))
    wrapped.compile(optimizer="sgd", loss="mse")
    assert wrapped.jit_compile is (keras.backend.backend() == "jax")


# RandomAffine on Keras' public API -----------------------------------------


def _forced_draws(monkeypatch, row):
    """Makes every image's six uniform draws `row`, on both of RandomAffine's
    paths: `keras.random` outside tf.data, TensorFlow's stateless ops in it."""
    row = np.asarray(row, np.float32)

    def keras_uniform(shape, *args, **kwargs):
        return keras.ops.tile(keras.ops.convert_to_tensor(row[None]), (shape[0], 1))

    def tf_uniform(shape, *args, **kwargs):
        return tf.tile(tf.constant(row[None]), tf.stack([tf.cast(shape[0], tf.int32), 1]))

    monkeypatch.setattr(keras.random, "uniform", keras_uniform)
    monkeypatch.setattr(tf.random, "stateless_uniform", tf_uniform)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("run", [apply, apply_eagerly], ids=["tf_data", "eager"])
def test_forced_rotation_turns_the_image_counter_clockwise(monkeypatch, run, data_format):
    # Draw 1.0 for the angle: +rotation; 0.5 centres the crop; 0.9 no flip.
    _forced_draws(monkeypatch, [1.0, 0.5, 0.5, 0.5, 0.5, 0.9])
    layer = RandomAffine(
        rotation=90.0, scale=(1.0, 1.0), ratio=(1.0, 1.0), data_format=data_format
    )
    images = faces(4)
    expected = np.rot90(images, k=1, axes=(1, 2))
    if data_format == "channels_first":
        images, expected = (np.transpose(x, (0, 3, 1, 2)) for x in (images, expected))
    # cos(90 degrees) is not quite 0 in float32: off by up to ~2e-3.
    np.testing.assert_allclose(run(layer, images), expected, atol=1e-2)
    # The same with the flip drawn: the rotated image, mirrored.
    _forced_draws(monkeypatch, [1.0, 0.5, 0.5, 0.5, 0.5, 0.1])
    layer = RandomAffine(rotation=90.0, scale=(1.0, 1.0), ratio=(1.0, 1.0))
    expected = np.rot90(faces(4), k=1, axes=(1, 2))[:, :, ::-1]
    np.testing.assert_allclose(run(layer, faces(4)), expected, atol=1e-2)


@pytest.mark.parametrize("run", [apply, apply_eagerly], ids=["tf_data", "eager"])
def test_forced_crop_shows_the_drawn_corner(monkeypatch, run):
    # A quarter of the area at ratio 1, pushed to the left and top edges.
    _forced_draws(monkeypatch, [0.5, 0.0, 0.5, 0.0, 0.0, 0.9])
    layer = RandomAffine(rotation=0.0, scale=(0.25, 0.25), ratio=(1.0, 1.0))
    out = run(layer, ramp(2))[..., 0]
    # Columns 0..23.5 of the ramp stretched over the 48 output columns.
    expected = np.broadcast_to(np.arange(1, 47) * 0.5 - 0.25, (2, 48, 46))
    np.testing.assert_allclose(out[:, :, 1:-1], expected, atol=1e-3)


@pytest.mark.parametrize("run", [apply, apply_eagerly], ids=["tf_data", "eager"])
def test_every_image_of_a_batch_gets_its_own_transform(run):
    layer = RandomAffine(rotation=15.0, scale=(0.6, 1.0), translation=0.1, seed=2)
    out = run(layer, np.repeat(faces(1), 8, axis=0)).reshape(8, -1)
    distances = np.abs(out[:, None] - out[None]).mean(axis=-1)
    assert np.all(distances[~np.eye(8, dtype=bool)] > 1.0)


@pytest.mark.parametrize("run", [apply, apply_eagerly], ids=["tf_data", "eager"])
def test_a_seed_repeats_its_stream_and_each_call_draws_anew(run):
    images = faces(8)
    first = RandomAffine(seed=11)
    again = RandomAffine(seed=11)
    a1, a2 = run(first, images), run(first, images)
    np.testing.assert_allclose(run(again, images), a1, atol=1e-4)
    np.testing.assert_allclose(run(again, images), a2, atol=1e-4)
    assert not np.allclose(a1, a2)
    assert not np.allclose(run(RandomAffine(seed=12), images), a1)


def test_an_unbatched_image_is_warped_too():
    image = faces(1)[0]
    for run in (apply, apply_eagerly):
        out = run(RandomAffine(rotation=20.0, seed=1), image)
        assert out.shape == image.shape and np.abs(out - image).mean() > 1.0


def test_affine_config_keeps_every_argument():
    arguments = {
        "rotation": 12.0,
        "scale": (0.7, 0.9),
        "ratio": (0.5, 2.0),
        "translation": 0.05,
        "horizontal_flip": False,
        "fill_mode": "constant",
        "interpolation": "nearest",
        "fill_value": 127.5,
        "seed": 4,
        "data_format": "channels_first",
    }
    layer = RandomAffine(name="affine", **arguments)
    config = layer.get_config()
    assert {key: config[key] for key in arguments} == arguments
    clone = RandomAffine.from_config(config)
    assert clone.get_config() == config and clone.name == "affine"
    images = np.transpose(faces(4), (0, 3, 1, 2))
    np.testing.assert_allclose(apply_eagerly(clone, images), apply_eagerly(layer, images))


def test_configs_saved_before_the_rewrite_still_load():
    """The config `RandomAffine` wrote as a subclass of Keras' RandomRotation."""
    saved = {
        "module": "fer_keras.augment",
        "class_name": "RandomAffine",
        "config": {
            "name": "seed_affine", "trainable": True,
            "dtype": {"module": "keras", "class_name": "DTypePolicy",
                      "config": {"name": "float32"}, "registered_name": None},
            "data_format": "channels_last", "fill_mode": "nearest", "fill_value": 0.0,
            "interpolation": "bilinear", "seed": 0, "rotation": 10.0,
            "scale": [0.8, 1.0], "ratio": [0.75, 1.3333333333333333],
            "translation": 0.0, "horizontal_flip": True,
        },
        "registered_name": "fer_keras>RandomAffine",
    }
    layer = keras.saving.deserialize_keras_object(saved)
    assert isinstance(layer, RandomAffine) and layer.fill_mode == "nearest"
    assert layer.get_config() == (build_augmentation("seed").layers[0]).get_config()


def test_affine_is_built_and_quiet_in_tf_data():
    """Built from the start: Keras never builds it in tf.data under jax or torch."""
    pipeline = build_augmentation("strong", seed=0)
    assert isinstance(pipeline.layers[0], RandomAffine) and pipeline.layers[0].built

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        apply(pipeline, faces(4))


def test_the_random_state_trains_with_the_model():
    """In a compiled training step the seed state is the model's, so every
    step draws new transforms instead of replaying the first ones."""
    inputs = keras.Input((48, 48, 1))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1)(pooled))
    (affine,) = build_augmentation("seed", seed=0).layers
    wrapped = augment.AugmentedModel(model, keras.layers.Pipeline([affine]))
    state = affine.seed_generator.state
    assert any(v is state for v in wrapped.non_trainable_variables)
    wrapped.compile(optimizer="sgd", loss="mse")
    before = keras.ops.convert_to_numpy(state).copy()
    wrapped.fit(faces(12), np.zeros((12, 1), np.float32), batch_size=4, epochs=1, verbose=0)
    after = keras.ops.convert_to_numpy(state)
    assert after[0] == before[0] and after[1] == before[1] + 3


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"fill_mode": "mirror"}, "Received: fill_mode='mirror'"),
        ({"interpolation": "bicubic"}, "Received: interpolation='bicubic'"),
        ({"data_format": "nhwc"}, "Received: data_format='nhwc'"),
        ({"seed": 1.5}, "Received: seed=1.5"),
    ],
)
def test_affine_rejects_bad_warp_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RandomAffine(**kwargs)
