import pytest

from fer_keras import recipes


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
    with pytest.raises(ValueError, match="seed, strong"):
        recipes.get_recipe("fast")
