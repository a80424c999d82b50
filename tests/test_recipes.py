import numpy as np
import pytest

import keras

from fer_keras import recipes, tta
from fer_keras.augment import RandomAffine, build_augmentation


def test_seed_recipe_is_the_originals():
    seed = recipes.get_recipe("seed")
    assert (seed.optimizer, seed.lr, seed.weight_decay, seed.batch_size, seed.epochs) == (
        "adam", 1e-3, 1e-4, 64, 20)
    assert seed.augment == "seed" and seed.class_weights == "seed"


def test_replace_ignores_none_and_rejects_unknown_fields():
    seed = recipes.get_recipe("seed")
    assert seed.replace(lr=None, epochs=3) == seed.replace(epochs=3)
    assert seed.replace(epochs=3).epochs == 3
    with pytest.raises(ValueError, match="Unknown recipe fields"):
        seed.replace(learning_rate=0.1)


def test_unknown_recipe_lists_presets():
    with pytest.raises(ValueError, match="one of: seed, strong, crop44. Received: name='fast'"):
        recipes.get_recipe("fast")


def _slopes(images):
    """How far the value moves per pixel on a warped f(x, y) = x, per image."""
    inner = images[:, 8:-8, 8:-8, 0]  # clear of any fill at the borders
    gx = np.median(np.diff(inner, axis=2), axis=(1, 2))
    gy = np.median(np.diff(inner, axis=1), axis=(1, 2))
    return np.hypot(gx, gy)


def test_crop44_trains_on_crops_of_the_ten_crop_views_size():
    """The recipe's point: training crops of the side the ten-crop views have
    at test time (`tta.CROP_FRACTION`); changing either alone breaks it."""
    recipe = recipes.get_recipe("crop44")
    assert recipe.augment == "crop44"
    ramp = np.tile(np.arange(48, dtype="float32")[None, None, :, None], (32, 48, 1, 1))
    (affine,) = [layer for layer in build_augmentation(recipe.augment, seed=0).layers
                 if isinstance(layer, RandomAffine)]
    # A crop of side s resized to 48 moves the ramp by s / 48 per pixel,
    # whatever its rotation.
    trained = _slopes(keras.ops.convert_to_numpy(affine(ramp, training=True)))
    tested = np.concatenate([_slopes(view) for view in tta.tta_views(ramp, "ten_crop")])
    np.testing.assert_allclose(trained, tta.CROP_FRACTION, atol=1e-3)
    np.testing.assert_allclose(tested, tta.CROP_FRACTION, atol=1e-3)
    assert round(np.median(trained) * 48) == 44  # the recipe's name
