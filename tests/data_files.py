"""Tiny FER2013 copies written by the data tests: every image is one flat
grey that says its label, so a test can check which label a pixel got."""

import os
import pathlib

import numpy as np
from PIL import Image

from fer_keras.classes import CLASS_NAMES

KAGGLE_FOLDERS = CLASS_NAMES  # msambare/fer2013 folder names, in label order

ANANTHU_FOLDERS = (
    "angry",
    "disgusted",
    "fearful",
    "happy",
    "sad",
    "surprised",
    "neutral",
)

REAL_DATA = pathlib.Path(
    os.environ.get("FER2013_DIR")
    or pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "fer2013"
)


def grey_of(label):
    """The flat grey value the fake data uses for `label`: label is readable."""
    return 10 + 35 * int(label)


def write_image(path, value, size=(48, 48), mode="L"):
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "L":
        img = Image.new("L", size, value)
    elif mode == "I;16":
        img = Image.fromarray(np.full(size[::-1], value * 257, np.uint16))
    else:
        # Opaque: transparent pixels are laid on white (fer_keras.images).
        alpha = (255,) if mode.endswith("A") else ()
        img = Image.new(mode, size, (value,) * len(mode.rstrip("A")) + alpha)
    img.save(path)


def make_folders(root, folders=KAGGLE_FOLDERS, suffix=".jpg", per_class=(3, 2)):
    """A tiny FER2013 copy: per_class[0] train and per_class[1] test images."""
    for split, count in zip(("train", "test"), per_class):
        for label, name in enumerate(folders):
            for j in range(count):
                write_image(
                    root / split / name / f"{split}_{label}_{j}{suffix}",
                    grey_of(label),
                )
    return root


def make_csv(path, rows=None):
    if rows is None:
        rows = []
        for usage, count in (("Training", 3), ("PublicTest", 2), ("PrivateTest", 1)):
            for label in range(len(CLASS_NAMES)):
                for _ in range(count):
                    pixels = " ".join([str(grey_of(label))] * 48 * 48)
                    rows.append(f"{label},{pixels},{usage}")
        rows = ["emotion,pixels,Usage"] + rows
    path.write_text("\n".join(rows) + "\n")
    return path


def assert_labels_match_pixels(images, labels):
    means = images.reshape(len(images), -1).mean(axis=1)
    expected = np.array([grey_of(label) for label in labels])
    np.testing.assert_allclose(means, expected, atol=3)
