"""Tiny FER2013 look-alikes written by the tests: every class is a bright bar
at its own height, so a model can learn it in a few steps."""

from pathlib import Path

import numpy as np
from PIL import Image

KAGGLE_FOLDERS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def class_images(label: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` 48x48 uint8 images of class `label` (a bar at row 6 * label)."""
    images = rng.integers(0, 60, size=(count, 48, 48), dtype=np.int64)
    images[:, 6 * label : 6 * label + 6, :] += 180
    return np.clip(images, 0, 255).astype(np.uint8)


def write_kaggle_folders(root: Path, train_per_class: int = 16, test_per_class: int = 6,
                         seed: int = 0) -> Path:
    """Writes train/ and test/ class folders of JPEGs, as kagglehub unpacks them."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", train_per_class), ("test", test_per_class)):
        for label, name in enumerate(KAGGLE_FOLDERS):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            prefix = "Training" if split == "train" else "PublicTest"
            for i, image in enumerate(class_images(label, count, rng)):
                Image.fromarray(image).save(folder / f"{prefix}_{label}{i:04d}.jpg", quality=95)
    return root
