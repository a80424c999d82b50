"""One split of FER2013 from disk to arrays, through the cache."""

import os

import numpy as np

from fer_keras.data import cache
from fer_keras.data.locate import locate_data
from fer_keras.data.readers import find_reader, known_splits


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
    splits = known_splits()
    if split not in splits:
        raise ValueError(
            f"Unknown split {split!r}. Expected one of: {', '.join(splits)}. "
            f"Received: split={split!r}"
        )
    reader, source = find_reader(locate_data(data_dir))
    listing = reader.list_split(source, split)
    cache_file = cache.cache_file(cache_dir, source, split, listing.stamps)
    cached = cache.read_cache(cache_file)
    if cached is not None:
        return cached
    images, labels = reader.read_split(listing)
    cache.write_cache(cache_file, images, labels)
    return images, labels
