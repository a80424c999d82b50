"""Half-size `.keras` files: weights stored as float16, computed in float32.

A `.keras` archive holds the model's config and a `model.weights.h5`. Storing
the float32 arrays of that file as float16 halves the download while the model
itself is unchanged: Keras casts each array to its variable's dtype (float32)
when it loads, under every backend, so the model computes exactly as before
on weights rounded to float16 (about 3 significant digits). The pretrained
model ships this way.
"""

import io
import os
import zipfile
from pathlib import Path

import h5py
import numpy as np

WEIGHTS_FILE = "model.weights.h5"


def _halve(source: h5py.File, target: h5py.File) -> int:
    """Copies `source` into `target` with float32 datasets as float16; returns how many."""
    converted = 0
    for key, value in source.attrs.items():
        target.attrs[key] = value

    def copy(name, item):
        nonlocal converted
        if isinstance(item, h5py.Dataset):
            array = item[()]
            if isinstance(array, np.ndarray) and array.dtype == np.float32:
                array = array.astype(np.float16)
                converted += 1
            dataset = target.create_dataset(name, data=array)
        else:
            dataset = target.require_group(name)
        for key, value in item.attrs.items():
            dataset.attrs[key] = value

    source.visititems(copy)
    return converted


def save_float16(source: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Writes a copy of the `.keras` file `source` with float16 weights to `target`.

    Raises:
        ValueError: `source` is not a `.keras` archive with a weights file, or
            it has no float32 weights to shrink.
    """
    source, target = Path(source), Path(target)
    if not zipfile.is_zipfile(source):
        raise ValueError(
            f"{source} is not a `.keras` archive. Expected a file written by "
            "`model.save('name.keras')`."
        )
    with zipfile.ZipFile(source) as archive:
        names = archive.namelist()
        if WEIGHTS_FILE not in names:
            raise ValueError(
                f"{source} has no {WEIGHTS_FILE}; expected a Keras 3 `.keras` "
                f"archive. Received an archive holding: {names}"
            )
        parts = {item: archive.read(item.filename) for item in archive.infolist()}
    for item, data in parts.items():
        if item.filename != WEIGHTS_FILE:
            continue
        buffer = io.BytesIO()
        with h5py.File(io.BytesIO(data), "r") as weights, h5py.File(buffer, "w") as halved:
            converted = _halve(weights, halved)
        if not converted:
            raise ValueError(f"{source} has no float32 weights to store as float16.")
        parts[item] = buffer.getvalue()
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for item, data in parts.items():
            archive.writestr(item, data, compress_type=zipfile.ZIP_DEFLATED)
    return target
