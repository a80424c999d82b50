"""Image files -> uint8 48x48 grey, by the rules prediction decodes with."""

import concurrent.futures
import os
import pathlib
import warnings

import numpy as np

from fer_keras.data.readers import IMAGE_SIZE, DataError


def decode_image(path) -> tuple[np.ndarray, str, tuple[int, int]]:
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


def decode_images(paths: list[str], where: pathlib.Path) -> np.ndarray:
    """Decodes `paths` on a thread pool; one warning sums up conversions."""
    images = np.empty((len(paths), IMAGE_SIZE, IMAGE_SIZE, 1), np.uint8)
    converted, resized = {}, {}
    workers = min(16, 2 * (os.cpu_count() or 1))
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for i, (pixels, mode, size) in enumerate(pool.map(decode_image, paths)):
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
        # Past load_split and the reader, to the code that asked for the data.
        warnings.warn(
            f"Of the {len(paths)} images in {where}, " + " and ".join(notes) + ".",
            stacklevel=4,
        )
    return images
