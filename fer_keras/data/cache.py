"""The cache of decoded splits: `.npz` files, so images are decoded once.

A cache file is named by the source path and split, and versioned by the
stamps (name, size, mtime) of every file read and by `_CACHE_VERSION`.
"""

import contextlib
import hashlib
import os
import pathlib
import warnings
import zipfile

import numpy as np

from fer_keras.data.readers import IMAGE_SIZE

# Bump when decoding changes, so old caches are not reused.
_CACHE_VERSION = 2


def cache_folder(cache_dir: str | os.PathLike | None) -> pathlib.Path:
    """`cache_dir`, else FER_KERAS_CACHE, else ~/.cache/fer_keras."""
    if cache_dir is not None:
        return pathlib.Path(cache_dir).expanduser()
    if os.environ.get("FER_KERAS_CACHE"):
        return pathlib.Path(os.environ["FER_KERAS_CACHE"]).expanduser()
    return pathlib.Path.home() / ".cache" / "fer_keras"


def cache_file(
    cache_dir: str | os.PathLike | None, source: pathlib.Path, split: str, stamps
) -> pathlib.Path:
    """Cache file named by the source and split, versioned by the file stamps."""
    name = hashlib.sha256(f"{source}\0{split}".encode()).hexdigest()[:12]
    content = hashlib.sha256(f"{_CACHE_VERSION}\0{source}\0{split}\n".encode())
    for stamp in stamps:
        content.update(("\0".join(map(str, stamp)) + "\n").encode())
    return cache_folder(cache_dir) / f"fer2013-{name}-{content.hexdigest()[:16]}.npz"


def read_cache(path: pathlib.Path) -> tuple[np.ndarray, np.ndarray] | None:
    """The cached (images, labels), or None if missing, unreadable or malformed."""
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


def write_cache(path: pathlib.Path, images: np.ndarray, labels: np.ndarray) -> None:
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
