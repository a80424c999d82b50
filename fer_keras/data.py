"""FER2013 on disk -> one canonical form -> splits and input pipelines.

Every reader ends in the same arrays: images uint8 `(N, 48, 48, 1)` and
labels int32 `(N,)` in `CLASS_NAMES` order, whatever the layout on disk:

- the Kaggle `msambare/fer2013` folders, `train/<class>/*.jpg` and
  `test/<class>/*.jpg`;
- the `ananthu017/emotion-detection-fer` folders (PNG, class folders named
  "disgusted", "fearful", "surprised", ...);
- the original `fer2013.csv` (`emotion,pixels,Usage`).

Decoded arrays are cached as `.npz` files, so the 28,709 training images are
decoded once. Everything after `load_split` works on arrays only.
"""

import concurrent.futures
import contextlib
import csv
import hashlib
import os
import pathlib
import warnings
import zipfile

import numpy as np

import keras

from fer_keras.augment import build_augmentation
from fer_keras.classes import CLASS_NAMES

__all__ = [
    "CLASS_NAMES",
    "ArrayBatches",
    "DataError",
    "class_counts",
    "class_weights",
    "kfold_splits",
    "load_split",
    "locate_data",
    "make_dataset",
    "train_val_split",
]

IMAGE_SIZE = 48
KAGGLE_HANDLE = "msambare/fer2013"
CSV_NAME = "fer2013.csv"
CSV_COLUMNS = ("emotion", "pixels", "Usage")

# Folder name -> label id, one table per folder layout.
FOLDER_LAYOUTS: dict[str, dict[str, int]] = {
    "msambare/fer2013": {name: i for i, name in enumerate(CLASS_NAMES)},
    "ananthu017/emotion-detection-fer": {
        name: i
        for i, name in enumerate(
            ("angry", "disgusted", "fearful", "happy", "sad", "surprised", "neutral")
        )
    },
}

# Split name -> the csv `Usage` values it holds. Folder layouts have only
# "train" and "test".
CSV_SPLITS: dict[str, tuple[str, ...]] = {
    "train": ("Training",),
    "test": ("PublicTest", "PrivateTest"),
    "public_test": ("PublicTest",),
    "private_test": ("PrivateTest",),
}
FOLDER_SPLITS = ("train", "test")

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")

# Bump when decoding changes, so old caches are not reused.
_CACHE_VERSION = 2


class DataError(ValueError):
    """The data on disk is missing or not in a form this package can read."""


def _describe_layouts() -> str:
    lines = [
        f"  {layout}: train/<class>/ and test/<class>/ with classes "
        f"{', '.join(sorted(names))}"
        for layout, names in FOLDER_LAYOUTS.items()
    ]
    lines.append(f"  the original {CSV_NAME} with columns {','.join(CSV_COLUMNS)}")
    return "\n".join(lines)


def _download() -> pathlib.Path:
    try:
        import kagglehub

        return pathlib.Path(kagglehub.dataset_download(KAGGLE_HANDLE))
    except Exception as err:
        hint = " (pip install kagglehub)" if isinstance(err, ImportError) else ""
        raise DataError(
            f"Downloading FER2013 ({KAGGLE_HANDLE}) with kagglehub failed: "
            f"{type(err).__name__}: {err}{hint}. Point at a local copy instead, with "
            "`--data-dir PATH` or the FER2013_DIR environment variable (a folder "
            f"holding train/ and test/, or a {CSV_NAME})."
        ) from err


def _find_layout(path: pathlib.Path) -> tuple[str, pathlib.Path]:
    """("folders", root) or ("csv", csv_file); a `DataError` for anything else."""
    if path.is_file():
        if path.suffix.lower() == ".csv":
            return "csv", path
        raise DataError(
            f"{path} is a file but not a csv. Expected a folder holding train/ "
            f"and test/ class folders, or a {CSV_NAME}."
        )
    if (path / "train").is_dir() or (path / "test").is_dir():
        return "folders", path
    if (path / CSV_NAME).is_file():
        return "csv", path / CSV_NAME
    found = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir())
    shown = ", ".join(found[:10]) + (", ..." if len(found) > 10 else "")
    raise DataError(
        f"{path} does not look like FER2013: it has no train/ or test/ folder "
        f"and no {CSV_NAME}. Expected one of these layouts:\n{_describe_layouts()}\n"
        f"Found: {shown or 'an empty folder'}"
    )


def locate_data(data_dir: str | os.PathLike | None = None) -> pathlib.Path:
    """The absolute path of the FER2013 copy to read: a folder or a csv file.

    Looks at `data_dir`, else the `FER2013_DIR` environment variable, else
    downloads `msambare/fer2013` with kagglehub, so the scripts run with no
    setup where the network allows and with one setting where it does not.
    """
    if data_dir is not None:
        path, source = pathlib.Path(data_dir).expanduser(), "data_dir"
    elif os.environ.get("FER2013_DIR"):
        path, source = pathlib.Path(os.environ["FER2013_DIR"]).expanduser(), (
            "the FER2013_DIR environment variable"
        )
    else:
        path, source = _download(), "kagglehub"
    if not path.exists():
        raise DataError(
            f"FER2013 folder {path} (from {source}) does not exist. Pass the "
            "folder holding train/ and test/ (or a fer2013.csv) with "
            "`--data-dir` or FER2013_DIR. "
            f"Received: data_dir={str(data_dir) if data_dir is not None else None}"
        )
    path = path.resolve()
    _find_layout(path)
    return path


def _cache_dir(cache_dir) -> pathlib.Path:
    if cache_dir is not None:
        return pathlib.Path(cache_dir).expanduser()
    if os.environ.get("FER_KERAS_CACHE"):
        return pathlib.Path(os.environ["FER_KERAS_CACHE"]).expanduser()
    return pathlib.Path.home() / ".cache" / "fer_keras"


def _cache_file(cache_dir, source: pathlib.Path, split: str, stamps) -> pathlib.Path:
    """Cache file named by the source and split, versioned by the file stamps."""
    name = hashlib.sha256(f"{source}\0{split}".encode()).hexdigest()[:12]
    content = hashlib.sha256(f"{_CACHE_VERSION}\0{source}\0{split}\n".encode())
    for stamp in stamps:
        content.update(("\0".join(map(str, stamp)) + "\n").encode())
    return _cache_dir(cache_dir) / f"fer2013-{name}-{content.hexdigest()[:16]}.npz"


def _read_cache(path: pathlib.Path):
    try:
        with np.load(path, allow_pickle=False) as data:
            images, labels = data["images"], data["labels"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None
    if (
        images.dtype != np.uint8
        or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE, 1)
        or labels.shape != images.shape[:1]
    ):
        return None
    return images, labels.astype(np.int32)


def _write_cache(path: pathlib.Path, images: np.ndarray, labels: np.ndarray):
    """Writes atomically and drops older caches of the same source and split."""
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            np.savez(f, images=images, labels=labels)
        os.replace(tmp, path)
        stale = path.name.rsplit("-", 1)[0] + "-*.npz"
        for old in path.parent.glob(stale):
            if old != path:
                old.unlink(missing_ok=True)
    except OSError as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        warnings.warn(
            f"Could not write the FER2013 cache {path}: {err}. Loading works, "
            "but the images will be decoded again next time; set "
            "FER_KERAS_CACHE to a writable folder to keep them.",
            stacklevel=3,
        )


def _decode_image(path):
    """One image (a path or a binary file) as uint8 (48, 48), its original
    mode and its upright size.

    It decodes with `fer_keras.images`, as prediction does (16-bit, float,
    alpha, EXIF rotation alike), so a file trains on the pixels it is later
    classified from; only the resize to 48x48 is this module's own.
    """
    from PIL import Image

    from fer_keras import images as image_decoder

    try:
        img = image_decoder.open_image(path)
        mode, size = img.mode, img.size
        grey = image_decoder.to_array(img, "L")
        if size != (IMAGE_SIZE, IMAGE_SIZE):
            grey = Image.fromarray(grey).resize(
                (IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR
            )
        return np.asarray(grey, dtype=np.uint8), mode, size
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise DataError(
            f"Could not read image {path}: {type(err).__name__}: {err}. "
            "The file is corrupt or not an image: delete it or replace it "
            "with a good copy, then run again."
        ) from err


def _decode_images(paths: list[str], where: pathlib.Path) -> np.ndarray:
    """Decodes `paths` on a thread pool; one warning sums up conversions."""
    images = np.empty((len(paths), IMAGE_SIZE, IMAGE_SIZE, 1), np.uint8)
    converted, resized = {}, {}
    workers = min(16, 2 * (os.cpu_count() or 1))
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for i, (pixels, mode, size) in enumerate(pool.map(_decode_image, paths)):
            images[i, :, :, 0] = pixels
            if mode != "L":
                converted[mode] = converted.get(mode, 0) + 1
            if size != (IMAGE_SIZE, IMAGE_SIZE):
                key = f"{size[0]}x{size[1]}"
                resized[key] = resized.get(key, 0) + 1
    notes = []
    if converted:
        modes = ", ".join(f"{m}: {n}" for m, n in sorted(converted.items()))
        notes.append(
            f"converted {sum(converted.values())} from other modes ({modes}) "
            "to 8-bit grey"
        )
    if resized:
        sizes = ", ".join(f"{s}: {n}" for s, n in sorted(resized.items()))
        notes.append(
            f"resized {sum(resized.values())} from other sizes ({sizes}) "
            f"to {IMAGE_SIZE}x{IMAGE_SIZE}"
        )
    if notes:
        warnings.warn(
            f"Of the {len(paths)} images in {where}, " + " and ".join(notes) + ".",
            stacklevel=3,
        )
    return images


def _match_layout(names: list[str], split_dir: pathlib.Path) -> dict[str, int]:
    """The folder-name table that knows every class folder in `split_dir`."""
    best_unknown = None
    for table in FOLDER_LAYOUTS.values():
        unknown = [n for n in names if n.lower() not in table]
        if not unknown:
            return table
        if best_unknown is None or len(unknown) < len(best_unknown):
            best_unknown = unknown
    raise DataError(
        f"Unknown class folder(s) {', '.join(map(repr, best_unknown))} in "
        f"{split_dir}. Expected the FER2013 class folders of one of these "
        f"layouts:\n{_describe_layouts()}\nRename or remove the folder(s)."
    )


def _list_folder_split(root: pathlib.Path, split: str):
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
            f"per class:\n{_describe_layouts()}"
        )
    table = _match_layout([p.name for p in class_dirs], split_dir)
    paths, labels, stamps, missing = [], [], [], []
    by_label = {table[p.name.lower()]: p for p in class_dirs}
    for label, name in sorted((i, n) for n, i in table.items()):
        folder = by_label.get(label)
        files = []
        if folder is not None:
            with os.scandir(folder) as entries:
                files = sorted(
                    (
                        (e.name, e.stat())
                        for e in entries
                        if e.is_file()
                        and not e.name.startswith(".")
                        and e.name.lower().endswith(IMAGE_SUFFIXES)
                    ),
                    key=lambda item: item[0],
                )
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
        warnings.warn(
            f"No {split} images for class folder(s) {', '.join(missing)}; "
            "that class is left out of this split.",
            stacklevel=3,
        )
    return paths, np.asarray(labels, np.int32), stamps


def _parse_pixels(text: str) -> np.ndarray | None:
    """Space-separated integers as an array, None if any is not an integer."""
    with warnings.catch_warnings():
        # Text-mode fromstring is 4x faster than splitting; on a bad token
        # it warns (older NumPy) or raises, and here both mean "not integers".
        warnings.simplefilter("error", DeprecationWarning)
        try:
            return np.fromstring(text, dtype=np.int64, sep=" ")
        except (ValueError, DeprecationWarning):
            return None


def _describe_pixels(values: np.ndarray | None) -> str:
    if values is None:
        return "non-integer values"
    if values.size == 0:
        return "no values"
    return f"{values.size} values in {values.min()}..{values.max()}"


def _read_csv(path: pathlib.Path, split: str):
    """The rows of `split` in the original fer2013.csv, checked row by row."""
    usages = CSV_SPLITS[split]
    known = {u for values in CSV_SPLITS.values() for u in values}
    images, labels = [], []
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        if not set(CSV_COLUMNS) <= set(header):
            raise DataError(
                f"{path} has the wrong columns. Expected: {', '.join(CSV_COLUMNS)}. "
                f"Found: {', '.join(header) or 'no header'}. Use the original "
                "fer2013.csv (Kaggle challenges-in-representation-learning)."
            )
        emotion, pixels, usage = (header.index(c) for c in CSV_COLUMNS)
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            where = f"{path}, line {line}"
            if len(row) < len(header):
                raise DataError(
                    f"{where}: expected {len(header)} fields "
                    f"({', '.join(header)}), found {len(row)}."
                )
            row_usage = row[usage].strip()
            if row_usage not in known:
                raise DataError(
                    f"{where}: unknown Usage {row[usage]!r}. Expected one of: "
                    f"{', '.join(sorted(known))}."
                )
            if row_usage not in usages:
                continue
            try:
                label = int(row[emotion])
            except ValueError:
                label = -1
            if not 0 <= label < len(CLASS_NAMES):
                raise DataError(
                    f"{where}: label {row[emotion]!r} is out of range. Expected "
                    f"an integer 0-{len(CLASS_NAMES) - 1} "
                    f"({', '.join(CLASS_NAMES)})."
                )
            values = _parse_pixels(row[pixels])
            if (
                values is None
                or values.size != IMAGE_SIZE * IMAGE_SIZE
                or values.min() < 0
                or values.max() > 255
            ):
                raise DataError(
                    f"{where}: bad pixel row. Expected {IMAGE_SIZE * IMAGE_SIZE} "
                    f"space-separated integers 0-255, found "
                    f"{_describe_pixels(values)}. Fix or delete the row."
                )
            images.append(values.astype(np.uint8).reshape(IMAGE_SIZE, IMAGE_SIZE, 1))
            labels.append(label)
    if not images:
        raise DataError(f"{path} has no rows with Usage {' or '.join(usages)}.")
    labels = np.asarray(labels, np.int32)
    if split == "train" and np.bincount(labels, minlength=len(CLASS_NAMES)).min() == 0:
        absent = [CLASS_NAMES[i] for i in range(len(CLASS_NAMES)) if i not in labels]
        raise DataError(
            f"{path} has no training rows of class(es) {', '.join(absent)}. "
            "Every class needs training images: use the complete fer2013.csv."
        )
    return np.stack(images), labels


def load_split(
    data_dir: str | os.PathLike | None,
    split: str,
    cache_dir: str | os.PathLike | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (N, 48, 48, 1) and labels int32 (N,) of one split.

    `split` is "train" or "test" ("public_test" and "private_test" too for
    the csv). `data_dir` goes through `locate_data`. The arrays are cached in
    `cache_dir` (default: FER_KERAS_CACHE, else ~/.cache/fer_keras), keyed by
    the source path and every file's size and mtime, so an edited copy is
    decoded again and an unchanged one never is.
    """
    if split not in CSV_SPLITS:
        raise ValueError(
            f"Unknown split {split!r}. Expected one of: {', '.join(CSV_SPLITS)}. "
            f"Received: split={split!r}"
        )
    kind, source = _find_layout(locate_data(data_dir))
    if kind == "folders":
        if split not in FOLDER_SPLITS:
            raise ValueError(
                f"Split {split!r} exists only in {CSV_NAME}; the folders at "
                f"{source} have {' and '.join(FOLDER_SPLITS)}. "
                f"Received: split={split!r}"
            )
        paths, labels, stamps = _list_folder_split(source, split)
    else:
        stat = source.stat()
        stamps = [(source.name, stat.st_size, stat.st_mtime_ns)]
    cache_file = _cache_file(cache_dir, source, split, stamps)
    cached = _read_cache(cache_file)
    if cached is not None:
        return cached
    if kind == "folders":
        images = _decode_images(paths, source / split)
    else:
        images, labels = _read_csv(source, split)
    _write_cache(cache_file, images, labels)
    return images, labels


def _check_labels(labels, num_classes: int | None = len(CLASS_NAMES)) -> np.ndarray:
    """`labels` as a 1-D integer array of ids in 0..num_classes - 1 (or >= 0)."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            "`labels` must be a 1-D array of integer class ids. "
            f"Received: labels with shape {labels.shape} and dtype {labels.dtype}"
        )
    too_big = num_classes is not None and labels.size and labels.max() >= num_classes
    if labels.size and (labels.min() < 0 or too_big):
        expected = f"0..{num_classes - 1}" if num_classes is not None else ">= 0"
        raise ValueError(
            f"`labels` must be class ids in {expected}. "
            f"Received: labels in {labels.min()}..{labels.max()}"
        )
    return labels


def class_counts(labels) -> dict[str, int]:
    """Number of samples per class, keyed by class name in `CLASS_NAMES` order."""
    counts = np.bincount(_check_labels(labels), minlength=len(CLASS_NAMES))
    return {name: int(n) for name, n in zip(CLASS_NAMES, counts)}


def train_val_split(
    labels, val_fraction: float = 0.1, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, val) index arrays, each class split in the same ratio.

    Stratified so that the rare "disgust" class (1.5% of FER2013) is in the
    validation set in its real proportion; seeded so a run can be repeated.
    """
    labels = _check_labels(labels, num_classes=None)
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(
            f"`val_fraction` must be between 0 and 1 (exclusive). "
            f"Received: val_fraction={val_fraction}"
        )
    _, counts = np.unique(labels, return_counts=True)
    held = np.round(val_fraction * counts).astype(np.int64)
    if labels.size and not held.any():
        raise ValueError(
            f"`val_fraction` holds out no image: {val_fraction} of {counts.max()} images "
            f"(the most of any class) rounds to 0. Expected more than "
            f"{0.5 / counts.max():.2g}. Received: val_fraction={val_fraction}"
        )
    if np.any(held == counts):
        raise ValueError(
            f"`val_fraction` holds out every image of a class ({counts[held == counts].min()} "
            "of them), leaving none of it to train on. Expected a smaller fraction. "
            f"Received: val_fraction={val_fraction}"
        )
    rng = np.random.default_rng(seed)
    val = []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        val.append(members[: int(round(val_fraction * members.size))])
    val = np.sort(np.concatenate(val)) if val else np.empty(0, np.int64)
    train = np.setdiff1d(np.arange(labels.size), val)
    return train, val


def kfold_splits(
    labels, k: int, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified k-fold: k sorted (train, val) index pairs; the vals partition all.

    Each class is dealt out over the folds in turn, continuing where the
    previous class stopped, so fold sizes differ by at most one.
    """
    labels = _check_labels(labels, num_classes=None)
    if int(k) != k or k < 2 or k > labels.size:
        raise ValueError(
            "`k` must be an integer from 2 to the number of samples "
            f"({labels.size}). Received: k={k}"
        )
    # More folds than images of the rarest class leave it out of some folds'
    # validation sets, whose accuracy then means something else.
    classes, counts = np.unique(labels, return_counts=True)
    rarest = int(np.argmin(counts))
    if k > counts[rarest]:
        name = (CLASS_NAMES[classes[rarest]] if classes[rarest] < len(CLASS_NAMES)
                else f"class {classes[rarest]}")
        raise ValueError(
            f"`k` (train.py's --folds) must be at most {counts[rarest]}, the number of "
            f"images of the rarest class ({name}), so that every fold validates on "
            f"each class. Received: k={k}"
        )
    k = int(k)
    rng = np.random.default_rng(seed)
    fold_of = np.empty(labels.size, np.int64)
    start = 0
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        fold_of[members] = (start + np.arange(members.size)) % k
        start = (start + members.size) % k
    return [
        (np.flatnonzero(fold_of != fold), np.flatnonzero(fold_of == fold))
        for fold in range(k)
    ]


CLASS_WEIGHT_MODES = ("seed", "balanced", "none")


def class_weights(
    labels, mode: str = "seed", num_classes: int = len(CLASS_NAMES)
) -> dict[int, float] | None:
    """Per-class loss weights for `model.fit(class_weight=...)`.

    - "seed": inverse class frequency scaled so the largest weight is 1.0,
      as the original project did;
    - "balanced": n / (classes * count), so the mean weight per sample is 1;
    - "none": None (no weighting).

    Classes absent from `labels` get weight 0.0: there is nothing to weigh,
    but Keras wants a weight for every class id.
    """
    if mode not in CLASS_WEIGHT_MODES:
        raise ValueError(
            f"Unknown class weight mode {mode!r}. Expected one of: "
            f"{', '.join(CLASS_WEIGHT_MODES)}. Received: mode={mode!r}"
        )
    if mode == "none":
        return None
    counts = np.bincount(_check_labels(labels, num_classes), minlength=num_classes)
    present = counts > 0
    if not present.any():
        raise ValueError("`labels` is empty: there are no classes to weigh.")
    weights = np.zeros(num_classes)
    if mode == "seed":
        weights[present] = counts[present].min() / counts[present]
    else:
        weights[present] = counts.sum() / (present.sum() * counts[present])
    return {i: float(w) for i, w in enumerate(weights)}


class ArrayBatches(keras.utils.PyDataset):
    """Shuffled full batches of in-memory images, a new order every epoch.

    The feed of `train.py --pipeline device`, with no `tf.data`: float32
    0-255 images and one-hot labels sliced from the arrays in host memory,
    and the augmentation left to the model (`AugmentedModel`). Only full
    batches, as in `make_dataset`, so a compiled step sees one shape and
    every epoch has the same number of steps; the same `seed` gives the same
    epochs.
    """

    def __init__(self, images, labels, batch_size: int = 64,
                 num_classes: int = len(CLASS_NAMES), seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.images = np.asarray(images)
        self.labels = _check_labels(labels, num_classes)
        if len(self.images) != len(self.labels):
            raise ValueError(
                "images and labels must have the same length. Received: "
                f"{len(self.images)} images and {len(self.labels)} labels"
            )
        if not 1 <= int(batch_size) <= len(self.images):
            raise ValueError(
                f"batch_size must be between 1 and the number of images "
                f"({len(self.images)}). Received: batch_size={batch_size}"
            )
        self.batch_size = int(batch_size)
        self.num_classes = int(num_classes)
        self._rng = np.random.default_rng(seed)
        self._order = self._rng.permutation(len(self.images))

    def __len__(self) -> int:
        return len(self.images) // self.batch_size

    def __getitem__(self, index: int):
        rows = self._order[index * self.batch_size:(index + 1) * self.batch_size]
        one_hot = np.eye(self.num_classes, dtype=np.float32)[self.labels[rows]]
        return self.images[rows].astype(np.float32), one_hot

    def on_epoch_end(self) -> None:
        self._order = self._rng.permutation(len(self.images))


def _import_tensorflow():
    try:
        import tensorflow as tf
    except ImportError as err:
        raise ImportError(
            "make_dataset builds a tf.data pipeline and needs TensorFlow "
            "(it feeds Keras under every backend): pip install tensorflow-cpu, "
            "or train with --pipeline device, which needs none"
        ) from err
    return tf


def make_dataset(
    images,
    labels,
    batch_size: int = 64,
    training: bool = False,
    augment: str | None = None,
    seed: int = 0,
    sample_weights=None,
    augment_workers: int = 2,
):
    """A `tf.data.Dataset` of (float32 0-255 images, int32 labels[, weights]).

    Training: the whole set is reshuffled each epoch (the same epochs for the
    same `seed`), cut into full batches only, so shapes stay static and JAX
    compiles once, then augmented by `augment` (see `fer_keras.augment`) a
    batch at a time. Otherwise: the samples in order, the last batch partial,
    no augmentation. `model.fit` accepts the result under every backend.

    Augmentation runs in `augment_workers` lanes, each with its own layers
    and seed, on alternate batches. Keras augmentation layers keep their
    random state in a variable, so one layer mapped in parallel would give
    batches their augmentation in whatever order threads ran; lanes keep a
    seed's batches the same from run to run. The batches depend on the
    number of lanes, so it is a setting rather than the CPU count: raise it
    where more cores are free.
    """
    tf = _import_tensorflow()
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.ndim != 4 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise ValueError(
            "Expected images of shape (N, height, width, channels) and labels "
            f"of shape (N,). Received: images.shape={images.shape}, "
            f"labels.shape={labels.shape}"
        )
    if images.shape[0] == 0:
        raise ValueError("Received no samples: images.shape[0] == 0")
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(
            "`batch_size` must be a positive integer. "
            f"Received: batch_size={batch_size}"
        )
    batch_size = int(batch_size)
    if int(augment_workers) != augment_workers or augment_workers < 1:
        raise ValueError(
            "`augment_workers` must be a positive integer. "
            f"Received: augment_workers={augment_workers}"
        )
    if augment not in (None, "none") and not training:
        raise ValueError(
            "Augmentation is for training only; evaluation data is never "
            f"augmented. Received: augment={augment!r}, training={training}"
        )
    # uint8 images stay uint8 in memory; batches become float32 one by one.
    tensors = [tf.constant(images), tf.constant(labels.astype(np.int32, copy=False))]
    if sample_weights is not None:
        sample_weights = np.asarray(sample_weights, np.float32)
        if sample_weights.shape != labels.shape:
            raise ValueError(
                "`sample_weights` must hold one weight per sample. Received: "
                f"sample_weights.shape={sample_weights.shape}, "
                f"labels.shape={labels.shape}"
            )
        tensors.append(tf.constant(sample_weights))

    def to_float(batch_images, *rest):
        return (tf.cast(batch_images, tf.float32), *rest)

    if not training:
        dataset = tf.data.Dataset.from_tensor_slices(tuple(tensors))
        dataset = dataset.batch(batch_size).map(to_float)
        return dataset.prefetch(tf.data.AUTOTUNE)

    num_samples = images.shape[0]
    drop_remainder = num_samples >= batch_size

    def lane(index: int, lanes: int):
        # Shuffle indices, not images: the uint8 arrays stay in memory once.
        # Every lane owns its shuffle with the same seed: lanes sharing one
        # would each draw a different epoch order.
        dataset = tf.data.Dataset.range(num_samples).shuffle(
            num_samples, seed=seed, reshuffle_each_iteration=True
        )
        dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
        if lanes > 1:
            dataset = dataset.shard(lanes, index)
        dataset = dataset.map(lambda idx: tuple(tf.gather(t, idx) for t in tensors))
        dataset = dataset.map(to_float)
        augmentation = build_augmentation(
            augment or "none", seed=_lane_seed(seed, index)
        )
        if augmentation is not None:
            dataset = dataset.map(
                lambda batch_images, *rest: (
                    augmentation(batch_images, training=True),
                    *rest,
                )
            )
        return dataset.prefetch(2)

    if augment in (None, "none"):
        return lane(0, 1).prefetch(tf.data.AUTOTUNE)
    lanes = int(augment_workers)
    # Batch i goes to lane i % lanes and comes back in the same place.
    dataset = tf.data.Dataset.choose_from_datasets(
        [lane(i, lanes) for i in range(lanes)],
        tf.data.Dataset.range(lanes).repeat(),
    )
    # tf.data cannot see through the choice; Keras needs the epoch length.
    num_batches = num_samples // batch_size if drop_remainder else 1
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(num_batches))
    return dataset.prefetch(tf.data.AUTOTUNE)


def _lane_seed(seed: int, lane: int) -> int:
    """Well-separated augmentation seeds for the lanes of one pipeline."""
    state = np.random.SeedSequence((int(seed), lane)).generate_state(1)[0]
    return int(state >> 1)
