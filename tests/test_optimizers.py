"""The recipe's optimizer, schedule and L2."""

import math

import numpy as np
import pytest

import keras

from fer_keras import optimizers, recipes


def test_l2_matches_torch_weight_decay():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.layers[0].kernel.assign(np.ones((3, 2), "float32"))
    optimizers.add_l2(model, 1e-2)
    penalty = float(keras.ops.convert_to_numpy(sum(model.losses)))
    # torch adds wd * w to the gradient, i.e. a loss of wd / 2 * ||w||^2 on kernels only.
    assert math.isclose(penalty, 1e-2 / 2 * 6, rel_tol=1e-5)


def test_cosine_schedule_warms_up_then_decays():
    recipe = recipes.get_recipe("strong").replace(epochs=4, warmup_epochs=1)
    schedule = optimizers.learning_rate_schedule(recipe, steps_per_epoch=10)
    values = [float(keras.ops.convert_to_numpy(schedule(step))) for step in (0, 10, 25, 39)]
    assert values[0] < values[1] == pytest.approx(recipe.lr)
    assert values[1] > values[2] > values[3] > 0


def test_constant_schedule():
    assert optimizers.learning_rate_schedule(recipes.get_recipe("seed"), 10) == 1e-3


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_optimizers(name):
    recipe = recipes.get_recipe("seed").replace(optimizer=name)
    assert optimizers.make_optimizer(recipe, 10).__class__.__name__.lower() == name


def test_unknown_optimizer():
    with pytest.raises(ValueError, match="Unknown optimizer"):
        optimizers.make_optimizer(recipes.Recipe(optimizer="rmsprop"), 10)
