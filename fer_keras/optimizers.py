"""The optimizer a recipe names, its learning-rate schedule and its L2."""

import keras

from fer_keras.errors import unknown
from fer_keras.recipes import OPTIMIZERS, SCHEDULES, Recipe


def learning_rate_schedule(recipe: Recipe, steps_per_epoch: int):
    """The constant rate, or cosine decay after a linear warm-up, per step."""
    if recipe.schedule not in SCHEDULES:
        raise unknown("schedule", recipe.schedule, SCHEDULES, "schedule")
    if recipe.schedule == "constant":
        return recipe.lr
    total = max(1, recipe.epochs * steps_per_epoch)
    warmup = min(recipe.warmup_epochs * steps_per_epoch, total - 1)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=recipe.lr if warmup == 0 else 0.0,
        decay_steps=total - warmup,
        warmup_target=recipe.lr if warmup else None,
        warmup_steps=warmup,
    )


def make_optimizer(recipe: Recipe, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """The recipe's optimizer; L2 for adam/sgd is added to the weights instead."""
    lr = learning_rate_schedule(recipe, steps_per_epoch)
    if recipe.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate=lr)
    if recipe.optimizer == "adamw":
        return keras.optimizers.AdamW(learning_rate=lr, weight_decay=recipe.weight_decay)
    if recipe.optimizer == "sgd":
        return keras.optimizers.SGD(
            learning_rate=lr, momentum=recipe.momentum, nesterov=True
        )
    raise unknown("optimizer", recipe.optimizer, OPTIMIZERS, "optimizer")


def add_l2(model: keras.Model, weight_decay: float) -> None:
    """PyTorch-style coupled weight decay: L2 on every trainable kernel.

    `weight_decay` means what it means in `torch.optim` (the gradient gets
    `weight_decay * w`), hence the factor 1/2. The penalty sits on the
    variables, not in the layer configs, so saved models stay plain.
    """
    if weight_decay <= 0:
        return
    l2 = keras.regularizers.L2(weight_decay / 2.0)
    for variable in model.trainable_weights:
        if len(variable.shape) > 1:
            variable.regularizer = l2


