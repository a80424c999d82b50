"""Readers of FER2013 as class folders of image files, one per folder naming.

- the Kaggle `msambare/fer2013` folders, `train/<class>/*.jpg` and
  `test/<class>/*.jpg`, named as `CLASS_NAMES`;
- the `ananthu017/emotion-detection-fer` folders (PNG, class folders named
  "disgusted", "fearful", "surprised", ...).

The folder layouts share their root (train/ and test/), so a split's class
folder names decide which registered layout reads it.
"""

import os
import pathlib
import warnings

import numpy as np

from fer_keras.classes import CLASS_NAMES
from fer_keras.data.decoding import decode_images
from fer_keras.data.readers import (
    DataError,
    Reader,
    SplitListing,
    describe_layouts,
    registered_readers,
)

FOLDER_SPLITS = ("train", "test")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


class ClassFolders(Reader):
    """`train/<class>/` and `test/<class>/` image folders, named `folders`.

    Args:
        name: the layout's name, e.g. its Kaggle handle.
        folders: the class folder names in `CLASS_NAMES` order (matched
            without regard to case).
    """

    kind = "folders"
    splits = FOLDER_SPLITS

    def __init__(self, name: str, folders: tuple[str, ...]):
        if len(folders) != len(CLASS_NAMES):
            raise ValueError(
                f"`folders` must name one folder per class ({len(CLASS_NAMES)}: "
                f"{', '.join(CLASS_NAMES)}). Received: {len(folders)} folders {folders}"
            )
        self.name = name
        self.folders = tuple(folders)
        # Folder name -> label id.
        self.table: dict[str, int] = {n: i for i, n in enumerate(self.folders)}

    def __repr__(self) -> str:
        return f"ClassFolders({self.name!r}, {self.folders!r})"

    def describe(self) -> str:
        return (
            f"{self.name}: train/<class>/ and test/<class>/ with classes "
            f"{', '.join(sorted(self.table))}"
        )

    def find(self, path: pathlib.Path) -> pathlib.Path | None:
        if path.is_file():
            return None
        if (path / "train").is_dir() or (path / "test").is_dir():
            return path
        return None

    def list_split(self, source: pathlib.Path, split: str) -> SplitListing:
        if split not in FOLDER_SPLITS:
            raise ValueError(
                f"Split {split!r} exists only in fer2013.csv; the folders at "
                f"{source} have {' and '.join(FOLDER_SPLITS)}. "
                f"Received: split={split!r}"
            )
        paths, labels, stamps = list_folder_split(source, split)
        return SplitListing(source, split, stamps, paths, labels)

    def read_split(self, listing: SplitListing) -> tuple[np.ndarray, np.ndarray]:
        images = decode_images(listing.paths, listing.source / listing.split)
        return images, listing.labels


KAGGLE_FOLDERS = ClassFolders("msambare/fer2013", CLASS_NAMES)
EMOTION_DETECTION_FOLDERS = ClassFolders(
    "ananthu017/emotion-detection-fer",
    ("angry", "disgusted", "fearful", "happy", "sad", "surprised", "neutral"),
)

# Folder name -> label id, one table per built-in folder layout.
FOLDER_LAYOUTS: dict[str, dict[str, int]] = {
    reader.name: reader.table for reader in (KAGGLE_FOLDERS, EMOTION_DETECTION_FOLDERS)
}


def match_layout(names: list[str], split_dir: pathlib.Path) -> dict[str, int]:
    """The folder-name table that knows every class folder in `split_dir`."""
    best_unknown = None
    for reader in registered_readers():
        if not isinstance(reader, ClassFolders):
            continue
        unknown = [n for n in names if n.lower() not in reader.table]
        if not unknown:
            return reader.table
        if best_unknown is None or len(unknown) < len(best_unknown):
            best_unknown = unknown
    raise DataError(
        f"Unknown class folder(s) {', '.join(map(repr, best_unknown or names))} in "
        f"{split_dir}. Expected the FER2013 class folders of one of these "
        f"layouts:\n{describe_layouts()}\nRename or remove the folder(s)."
    )


def _list_class_folder(folder: pathlib.Path | None) -> list[tuple[str, os.stat_result]]:
    """(name, stat) of the image files in `folder`, sorted by name."""
    if folder is None:
        return []
    with os.scandir(folder) as entries:
        return sorted(
            (
                (e.name, e.stat())
                for e in entries
                if e.is_file()
                and not e.name.startswith(".")
                and e.name.lower().endswith(IMAGE_SUFFIXES)
            ),
            key=lambda item: item[0],
        )


def list_folder_split(
    root: pathlib.Path, split: str
) -> tuple[list[str], np.ndarray, list[tuple[str, int, int]]]:
    """Image paths, labels and stamps (path, size, mtime), in a fixed order.

    Class by class in label order, file names sorted within a class, so both
    folder layouts of the same images give the same arrays.
    """
    split_dir = root / split
    if not split_dir.is_dir():
        raise DataError(
            f"{root} has no {split}/ folder. Expected {root}/{split}/<class>/ "
            "image folders next to the other split."
        )
    class_dirs = sorted(
        p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith(".")
    )
    if not class_dirs:
        raise DataError(
            f"{split_dir} has no class folders. Expected one folder of images "
            f"per class:\n{describe_layouts()}"
        )
    table = match_layout([p.name for p in class_dirs], split_dir)
    paths, labels, stamps, missing = [], [], [], []
    by_label = {table[p.name.lower()]: p for p in class_dirs}
    for label, name in sorted((i, n) for n, i in table.items()):
        folder = by_label.get(label)
        files = _list_class_folder(folder)
        if not files:
            missing.append(str(folder) if folder is not None else f"{split_dir}/{name}")
        for file_name, stat in files:
            paths.append(os.path.join(folder, file_name))
            labels.append(label)
            stamp = (f"{folder.name}/{file_name}", stat.st_size, stat.st_mtime_ns)
            stamps.append(stamp)
    if missing and split == "train":
        raise DataError(
            f"No training images for class folder(s) {', '.join(missing)}. "
            "Every class needs training images (an empty class cannot be "
            "learned and breaks class weights): put the class's images there, "
            "or point at a complete copy of FER2013."
        )
    if not paths:
        raise DataError(f"{split_dir} holds no images ({', '.join(IMAGE_SUFFIXES)}).")
    if missing:
        # Past load_split and the reader, to the code that asked for the data.
        warnings.warn(
            f"No {split} images for class folder(s) {', '.join(missing)}; "
            "that class is left out of this split.",
            stacklevel=4,
        )
    return paths, np.asarray(labels, np.int32), stamps
