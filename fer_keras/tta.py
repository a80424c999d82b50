"""Test-time augmentation: the views of each image whose predictions are averaged.

The models train on mirrored, zoomed-in crops of the faces (`augment.py`);
showing them the same kinds of views at test time and averaging the
probabilities corrects some of their mistakes at the cost of one forward pass
per view:

- "mirror": the image and its mirror image (2 views);
- "ten_crop": the four corner crops and the centre crop, each resized back to
  the input size, and the mirror image of each (10 views), the usual
  ten-crop evaluation of small FER2013 CNNs, here without a smaller input
  size, so the models need no change.

The views are computed in NumPy, so every backend sees the same pixels. They
do not depend on the pixels' scale; the models do, and `Predictor` and
`EmotionRecognizer` check it on the images they are given
(`fer_keras.inference.check_pixel_scale`), before the views, which are floats.
"""

import numpy as np

from fer_keras.errors import unknown

TTA_MODES: tuple[str, ...] = ("none", "mirror", "ten_crop")

# The side of a ten-crop view as a fraction of the image side: 44 of 48
# pixels, chosen on the validation split (README.md, "Use it").
CROP_FRACTION = 44 / 48


def resolve_mode(tta: bool | str | None) -> str:
    """`tta` as one of `TTA_MODES`: True means "mirror", False and None "none"."""
    if tta is None or tta is False:
        return "none"
    if tta is True:
        return "mirror"
    if tta not in TTA_MODES:
        raise unknown("test-time augmentation", tta, TTA_MODES, "tta",
                      hint="(True means mirror.)")
    return tta


def num_views(tta: bool | str | None) -> int:
    """How many views `tta_views` makes of each image: the forward passes per image."""
    return {"none": 1, "mirror": 2, "ten_crop": 10}[resolve_mode(tta)]


def tta_views(
    images: np.ndarray, tta: bool | str | None, crop_fraction: float = CROP_FRACTION,
    zoom: float | None = None,
) -> list[np.ndarray]:
    """The float32 views of a batch `images` (N, H, W, C) that `tta` averages over.

    Every view has the shape of `images`; the first is `images` itself for
    "none" and "mirror".

    `zoom` is the fraction a model crops of the centre of its inputs itself
    (`fer_keras.layers.InferenceZoom`, `fer_keras.models.inference_zoom`).
    Its ten views are then the image shifted so that the model's centre crop
    falls on each corner crop of that fraction: the ten crops above, as the
    model sees them, without cropping twice. `crop_fraction` is then unused.
    """
    mode = resolve_mode(tta)
    images = np.asarray(images, dtype="float32")
    if images.ndim != 4:
        raise ValueError(
            "Test-time augmentation takes a batch of shape (N, height, width, "
            f"channels). Received: images.shape={images.shape}"
        )
    if mode == "none":
        return [images]
    if mode == "mirror":
        return [images, images[:, :, ::-1]]
    if zoom is not None:
        shifts = _shifted_corners(images, zoom)
        return shifts + [shift[:, :, ::-1] for shift in shifts]
    if not 0.0 < crop_fraction <= 1.0:
        raise ValueError(
            f"`crop_fraction` must be in (0, 1]. Received: crop_fraction={crop_fraction}"
        )
    height, width = images.shape[1:3]
    crop_h, crop_w = crop_size(height, width, crop_fraction)
    crops = [resize(images[:, top : top + crop_h, left : left + crop_w], height, width)
             for top, left in _five_offsets(height, width, crop_h, crop_w)]
    return crops + [crop[:, :, ::-1] for crop in crops]


def crop_size(height: int, width: int, fraction: float) -> tuple[int, int]:
    """The side of a crop of `fraction` of an image, in whole pixels; a centre
    crop starts at `((height - crop_h) // 2, (width - crop_w) // 2)`: the ten
    crops here, `InferenceZoom` and its Grad-CAM maps share this geometry."""
    return round(fraction * height), round(fraction * width)


def _five_offsets(height, width, crop_h, crop_w):
    """The (top, left) of the top-left, top-right, bottom-left, bottom-right and centre crops."""
    tops = (0, 0, height - crop_h, height - crop_h, (height - crop_h) // 2)
    lefts = (0, width - crop_w, 0, width - crop_w, (width - crop_w) // 2)
    return list(zip(tops, lefts))


def _shifted_corners(images, zoom):
    """The image moved so that its centre crop of side `zoom` shows each of
    the five crops of `_five_offsets`, edges repeated where it moved away."""
    height, width = images.shape[1:3]
    crop_h, crop_w = crop_size(height, width, zoom)
    offsets = _five_offsets(height, width, crop_h, crop_w)
    centre_top, centre_left = offsets[-1]
    pad_h, pad_w = height - crop_h, width - crop_w
    padded = np.pad(images, ((0, 0), (pad_h, pad_h), (pad_w, pad_w), (0, 0)), mode="edge")
    # The view's pixel (i, j) is the image's (i - centre_top + top, j - centre_left + left).
    return [padded[:, pad_h + top - centre_top : pad_h + top - centre_top + height,
                   pad_w + left - centre_left : pad_w + left - centre_left + width]
            for top, left in offsets]


def resize(images: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of (N, H, W, C) images to (N, height, width, C), with
    half-pixel centres and no antialiasing (as Keras' `resize`), as two matrix products.

    Batched `matmul` on (N, C, H, W) planes: a three-operand `einsum` loops
    over every index and is about 100 times slower.
    """
    rows = _interpolation_matrix(images.shape[1], height)
    cols = _interpolation_matrix(images.shape[2], width)
    planes = np.moveaxis(np.asarray(images, dtype="float32"), -1, 1)
    resized = np.matmul(np.matmul(rows, planes), cols.T)
    return np.ascontiguousarray(np.moveaxis(resized, 1, -1))


def _interpolation_matrix(source: int, target: int) -> np.ndarray:
    """The (target, source) matrix of 1-D linear interpolation, edges clamped."""
    centres = (np.arange(target) + 0.5) * (source / target) - 0.5
    low = np.floor(centres).astype(int)
    frac = (centres - low).astype("float32")
    matrix = np.zeros((target, source), dtype="float32")
    rows = np.arange(target)
    np.add.at(matrix, (rows, np.clip(low, 0, source - 1)), 1.0 - frac)
    np.add.at(matrix, (rows, np.clip(low + 1, 0, source - 1)), frac)
    return matrix
