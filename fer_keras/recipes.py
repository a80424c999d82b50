"""Named training presets.

"seed" is the original project's recipe as it describes itself (SEED.md),
with its described augmentation really applied. "strong" is the recipe this
project recommends: stronger augmentation, SGD with Nesterov momentum and a
cosine schedule, label smoothing and longer training, the ingredients with
which published small CNNs reach 70-73% on FER2013.
"""

import dataclasses

from fer_keras.errors import unknown


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Hyper-parameters of one training run (every field is a CLI option)."""

    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9
    schedule: str = "constant"
    warmup_epochs: int = 0
    batch_size: int = 64
    epochs: int = 20
    augment: str = "seed"
    class_weights: str = "seed"
    label_smoothing: float = 0.0

    def replace(self, **overrides) -> "Recipe":
        """A copy with the given fields changed; `None` values are ignored."""
        extra = set(overrides) - {f.name for f in dataclasses.fields(self)}
        if extra:
            raise ValueError(
                f"Unknown recipe fields: {sorted(extra)}. Expected some of: "
                f"{[f.name for f in dataclasses.fields(self)]}"
            )
        given = {k: v for k, v in overrides.items() if v is not None}
        return dataclasses.replace(self, **given)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


RECIPES: dict[str, Recipe] = {
    "seed": Recipe(),
    "strong": Recipe(
        optimizer="sgd",
        lr=0.01,
        weight_decay=5e-4,
        momentum=0.9,
        schedule="cosine",
        warmup_epochs=2,
        batch_size=64,
        epochs=60,
        augment="strong",
        class_weights="none",
        label_smoothing=0.1,
    ),
    # The published FER2013 recipe (issue 20): SGD-Nesterov, cosine decay,
    # label smoothing, random 44-pixel crops whose size the ten-crop views
    # at test time share (`tta_crop`).
    "crop44": Recipe(
        optimizer="sgd",
        lr=0.01,
        weight_decay=5e-4,
        momentum=0.9,
        schedule="cosine",
        warmup_epochs=1,
        batch_size=64,
        epochs=40,
        augment="crop44",
        class_weights="none",
        label_smoothing=0.1,
    ),
}

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine")


def get_recipe(name: str) -> Recipe:
    """The preset `name`, or a `ValueError` listing the presets."""
    if name not in RECIPES:
        raise unknown("recipe", name, RECIPES, "name")
    return RECIPES[name]
