"""The one image decoder: training data and photos become pixels by the same rules.

Training (`fer_keras.data`) and prediction (`fer_keras.media.load_image`)
both decode files here, so a file gives the model the same pixels at both
times. The rules, for every file Pillow opens:

- The image is turned upright by its EXIF orientation first (phones store
  photos sideways and say so in EXIF).
- 8-bit grey ("L") and RGB pixels are kept as they are; bilevel ("1") is 0
  or 255.
- 16-bit grey ("I;16*", and 32-bit "I" alike) is scaled to 8 bits by
  rounding value / 257: 0 -> 0, 65535 -> 255, and an 8-bit value v stored
  as 16 bits (v * 257) comes back as v. Scaling by a fixed factor, rather
  than by the image's own maximum, keeps a dark image dark.
- Float ("F") pixels all within [0, 1] are taken as fractions of white and
  scaled by 255; any other float image is taken as 0-255 values and clipped
  to that range. NaN counts as 0. Values are rounded to the nearest integer.
- Images with transparency (RGBA, LA, PA, or a palette or colour with a
  transparent entry) are laid on white, as a viewer shows them on a page:
  cut-out faces then keep their outline against a background, whereas black
  would darken every half-transparent edge. FER2013 itself is opaque grey,
  so this only decides how such photos look.
- Everything else (palette, CMYK, YCbCr, ...) goes through RGB.
- Grey is Pillow's ITU-R 601 luma of that RGB (`Image.convert("L")`): the
  same formula on both paths, so `to_grey(decode(f, "RGB")) == decode(f, "L")`.

FER2013's own 8-bit grey files come back exactly as stored.
"""

from __future__ import annotations

import os
import warnings
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps

from fer_keras.errors import unknown

__all__ = ["MODES", "SIXTEEN_BIT_MODES", "decode", "open_image", "to_array", "to_grey"]

# What `decode` and `to_array` return: "L" grey (H, W), "RGB" (H, W, 3).
MODES = ("L", "RGB")
# Integer grey modes scaled down by 257 ("I" is 32-bit, read as 16-bit).
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
# Transparent pixels are laid on white (see the module docstring).
_BACKGROUND = (255, 255, 255, 255)


def open_image(
    source: str | os.PathLike | BinaryIO, max_pixels: int | None = None
) -> Image.Image:
    """`source` (a path or a binary file) read in full and turned upright.

    The image keeps its file's mode, so callers can report it. With
    `max_pixels`, a larger image raises `PIL.Image.DecompressionBombError`
    before it is decoded, and Pillow's own size warning is silenced; without
    it, Pillow's own limits apply. Other failures are Pillow's: `OSError`
    (`PIL.UnidentifiedImageError` for a non-image), `SyntaxError` or
    `ValueError` for a corrupt file.
    """
    with warnings.catch_warnings():
        if max_pixels is not None:
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(source) as image:
            width, height = image.size
            if max_pixels is not None and width * height > max_pixels:
                raise Image.DecompressionBombError(f"{width}x{height} pixels")
            image.load()
            # A new image either way, detached from the file being closed.
            return ImageOps.exif_transpose(image)


def to_array(image: Image.Image, mode: str = "L") -> np.ndarray:
    """The pixels of an open image as uint8 grey (H, W) for `mode="L"` or RGB
    (H, W, 3) for `mode="RGB"`, by the rules of this module."""
    _check_mode(mode)
    if image.mode in SIXTEEN_BIT_MODES:
        # The same float32 arithmetic as the decoder before this module, so
        # caches of 16-bit folders stay valid.
        grey = np.asarray(image, dtype=np.float32) / 257.0
        return _grey_as(np.clip(np.rint(grey), 0, 255).astype(np.uint8), mode)
    if image.mode == "F":
        values = np.nan_to_num(
            np.asarray(image, dtype=np.float32), nan=0.0, posinf=255.0, neginf=0.0
        )
        if values.size and values.min() >= 0.0 and values.max() <= 1.0:
            values = values * 255.0
        return _grey_as(np.clip(np.rint(values), 0, 255).astype(np.uint8), mode)
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        background = Image.new("RGBA", image.size, _BACKGROUND)
        image = Image.alpha_composite(background, image.convert("RGBA"))
    elif image.mode == "L":
        return _grey_as(np.asarray(image, dtype=np.uint8), mode)
    if image.mode != "RGB":
        image = image.convert("RGB")
    if mode == "L":
        image = image.convert("L")
    return np.asarray(image, dtype=np.uint8)


def decode(
    source: str | os.PathLike | BinaryIO | Image.Image,
    mode: str = "L",
    max_pixels: int | None = None,
) -> np.ndarray:
    """A file (path or binary file) or an open Pillow image as uint8 grey
    (H, W) or RGB (H, W, 3) pixels, upright; see the module docstring."""
    _check_mode(mode)
    if isinstance(source, Image.Image):
        image = ImageOps.exif_transpose(source)
    else:
        image = open_image(source, max_pixels=max_pixels)
    return to_array(image, mode)


def to_grey(pixels) -> np.ndarray:
    """Grey uint8 (H, W) of RGB uint8 (H, W, 3) pixels, with the luma formula
    `decode(..., "L")` uses; grey (H, W) pixels come back as they are."""
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8:
        raise ValueError(f"Expected uint8 pixels. Received: dtype={pixels.dtype}")
    if pixels.ndim == 2:
        return pixels
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        return pixels[..., 0]
    if pixels.ndim == 3 and pixels.shape[-1] == 3:
        rgb = Image.fromarray(np.ascontiguousarray(pixels))
        return np.asarray(rgb.convert("L"), dtype=np.uint8)
    raise ValueError(
        "Expected grey (H, W) or RGB (H, W, 3) pixels. "
        f"Received: shape={pixels.shape}"
    )


def _grey_as(grey: np.ndarray, mode: str) -> np.ndarray:
    return grey if mode == "L" else np.repeat(grey[..., None], 3, axis=-1)


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise unknown("mode", mode, MODES, "mode")
