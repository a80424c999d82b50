"""The one image decoder (fer_keras.images): training data (fer_keras.data) and
photos (fer_keras.media.load_image) give the same pixels for the same file."""

import io

import numpy as np
import pytest
from PIL import Image

from fer_keras import data, faces, images, media

SIDE = data.IMAGE_SIZE


def _rng(seed=0):
    return np.random.default_rng(seed)


def _grey_noise(seed=0, shape=(SIDE, SIDE)):
    return _rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _rgb_noise(seed=0):
    return _rng(seed).integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)


def _exif(orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


# Each writer saves one kind of file, 48x48 once upright, so the training
# path does not resize it and both paths must agree pixel for pixel.
def _write_grey8(path):
    Image.fromarray(_grey_noise()).save(path.with_suffix(".jpg"))
    return path.with_suffix(".jpg")


def _write_rgb(path):
    Image.fromarray(_rgb_noise()).save(path.with_suffix(".png"))
    return path.with_suffix(".png")


def _write_sixteen_bit(path):
    deep = _rng().integers(0, 65536, (SIDE, SIDE)).astype(np.uint16)
    Image.fromarray(deep).save(path.with_suffix(".png"))
    return path.with_suffix(".png")


def _write_dark_int32(path):
    # 32-bit "I" whose values all fit in 8 bits: read as 16-bit, it is dark.
    values = _rng().integers(0, 201, (SIDE, SIDE)).astype(np.int32)
    Image.fromarray(values, "I").save(path.with_suffix(".tif"))
    return path.with_suffix(".tif")


def _write_float_fraction(path):
    values = _rng().random((SIDE, SIDE)).astype(np.float32)
    Image.fromarray(values, "F").save(path.with_suffix(".tif"))
    return path.with_suffix(".tif")


def _write_float_large(path):
    values = _rng().uniform(-50, 400, (SIDE, SIDE)).astype(np.float32)
    Image.fromarray(values, "F").save(path.with_suffix(".tif"))
    return path.with_suffix(".tif")


def _write_palette(path):
    image = Image.fromarray(_rgb_noise()).convert("P", palette=Image.Palette.ADAPTIVE)
    image.save(path.with_suffix(".png"))
    return path.with_suffix(".png")


def _write_palette_transparent(path):
    image = Image.fromarray(_rgb_noise()).convert("P", palette=Image.Palette.ADAPTIVE)
    image.save(path.with_suffix(".png"), transparency=int(np.asarray(image)[0, 0]))
    return path.with_suffix(".png")


def _write_rgba(path):
    rgba = np.concatenate([_rgb_noise(), _grey_noise(1)[..., None]], axis=-1)
    Image.fromarray(rgba).save(path.with_suffix(".png"))
    return path.with_suffix(".png")


def _write_la(path):
    la = np.stack([_grey_noise(), _grey_noise(1)], axis=-1)
    Image.fromarray(la, "LA").save(path.with_suffix(".png"))
    return path.with_suffix(".png")


def _write_exif_rotated(path):
    # A ramp, so a missed rotation changes the pixels.
    ramp = np.tile(np.arange(0, 5 * SIDE, 5, dtype=np.uint8), (SIDE, 1))
    Image.fromarray(ramp).save(path.with_suffix(".jpg"), exif=_exif(6), quality=95)
    return path.with_suffix(".jpg")


WRITERS = {
    "grey8": _write_grey8,
    "rgb": _write_rgb,
    "sixteen_bit": _write_sixteen_bit,
    "dark_int32": _write_dark_int32,
    "float_fraction": _write_float_fraction,
    "float_large": _write_float_large,
    "palette": _write_palette,
    "palette_transparent": _write_palette_transparent,
    "rgba": _write_rgba,
    "la": _write_la,
    "exif_rotated": _write_exif_rotated,
}


@pytest.mark.parametrize("kind", WRITERS)
def test_training_and_prediction_decode_the_same_grey(tmp_path, kind):
    path = WRITERS[kind](tmp_path / kind)
    trained, _, size = data.decode_image(str(path))
    photo = media.load_image(path)
    assert size == (SIDE, SIDE) and photo.shape == (SIDE, SIDE, 3)
    assert trained.dtype == photo.dtype == np.uint8
    np.testing.assert_array_equal(trained, images.to_grey(photo))
    np.testing.assert_array_equal(trained, images.decode(path, "L"))
    np.testing.assert_array_equal(photo, images.decode(path, "RGB"))


def test_fer2013_grey_jpegs_decode_as_stored(tmp_path):
    """The FER2013 files, 8-bit grey JPEGs, keep the pixels Pillow stores,
    so caches and results made before the shared decoder stay valid."""
    for side in (SIDE, 64):
        path = tmp_path / f"face{side}.jpg"
        Image.fromarray(_grey_noise(side, (side, side))).save(path)
        with Image.open(path) as stored:
            expected = stored.resize((SIDE, SIDE), Image.Resampling.BILINEAR)
            expected = np.asarray(expected, dtype=np.uint8)
        pixels, mode, size = data.decode_image(str(path))
        assert (mode, size) == ("L", (side, side))
        np.testing.assert_array_equal(pixels, expected)


def test_sixteen_bit_is_scaled_by_257(tmp_path):
    values = np.array([[0, 257 * 7, 257 * 180, 257 * 180 + 128, 65535]], np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    np.testing.assert_array_equal(images.decode(tmp_path / "deep.png"), [[0, 7, 180, 180, 255]])
    Image.fromarray(np.array([[-5, 100, 257 * 9, 10**6]], np.int32), "I").save(
        tmp_path / "wide.tif"
    )
    np.testing.assert_array_equal(images.decode(tmp_path / "wide.tif"), [[0, 0, 9, 255]])


def test_float_fractions_are_scaled_and_other_floats_clipped(tmp_path):
    fractions = np.array([[0.0, 0.5, 1.0, 0.2]], np.float32)
    Image.fromarray(fractions, "F").save(tmp_path / "fractions.tif")
    np.testing.assert_array_equal(
        images.decode(tmp_path / "fractions.tif"), [[0, 128, 255, 51]]
    )
    values = np.array([[-3.0, 0.5, 1.5, 254.6, 300.0]], np.float32)
    Image.fromarray(values, "F").save(tmp_path / "values.tif")
    np.testing.assert_array_equal(images.decode(tmp_path / "values.tif"), [[0, 0, 2, 255, 255]])


def test_transparency_is_laid_on_white(tmp_path):
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (200, 0, 0, 255)  # opaque red
    rgba[0, 1] = (0, 0, 0, 0)  # transparent: white
    rgba[1] = (0, 0, 0, 128)  # half-transparent black: mid grey
    Image.fromarray(rgba).save(tmp_path / "alpha.png")
    rgb = images.decode(tmp_path / "alpha.png", "RGB")
    assert tuple(rgb[0, 0]) == (200, 0, 0) and tuple(rgb[0, 1]) == (255, 255, 255)
    assert np.all(np.abs(rgb[1].astype(int) - 127) <= 1)
    grey = data.decode_image(str(tmp_path / "alpha.png"))[0]
    assert grey.shape == (SIDE, SIDE) and grey.max() == 255


def test_exif_rotation_turns_training_images_upright(tmp_path):
    image = np.zeros((SIDE, SIDE), np.uint8)
    image[:8, :] = 255  # a white top band
    Image.fromarray(image).save(tmp_path / "band.png", exif=_exif(6))
    pixels, mode, _ = data.decode_image(str(tmp_path / "band.png"))
    # Orientation 6: the stored top is the upright right side.
    assert mode == "L" and pixels[:, -8:].min() == 255 and pixels[:, :-8].max() == 0
    Image.new("L", (40, 20)).save(tmp_path / "wide.jpg", exif=_exif(6))
    assert images.decode(tmp_path / "wide.jpg").shape == (40, 20)
    assert data.decode_image(str(tmp_path / "wide.jpg"))[2] == (20, 40)


def test_binary_files_and_open_images_decode_too(tmp_path):
    path = _write_rgba(tmp_path / "rgba")
    expected = images.decode(path)
    np.testing.assert_array_equal(images.decode(io.BytesIO(path.read_bytes())), expected)
    np.testing.assert_array_equal(data.decode_image(io.BytesIO(path.read_bytes()))[0], expected)
    with Image.open(path) as opened:
        np.testing.assert_array_equal(images.decode(opened), expected)


def test_to_grey_is_the_decoders_luma():
    rgb = _rng(3).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    expected = np.asarray(Image.fromarray(rgb).convert("L"))
    np.testing.assert_array_equal(images.to_grey(rgb), expected)
    grey = _grey_noise()
    assert images.to_grey(grey) is grey
    np.testing.assert_array_equal(images.to_grey(grey[..., None]), grey)


def test_bad_arguments_say_what_was_received(tmp_path):
    path = _write_grey8(tmp_path / "face")
    with pytest.raises(ValueError, match=r"Expected one of: L, RGB. Received: mode='RGBA'"):
        images.decode(path, "RGBA")
    with pytest.raises(ValueError, match="Received: dtype=float32"):
        images.to_grey(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match=r"Received: shape=\(4, 4, 4\)"):
        images.to_grey(np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(Image.DecompressionBombError, match="48x48 pixels"):
        images.open_image(path, max_pixels=SIDE * SIDE - 1)


def test_data_errors_are_unchanged(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(data.DataError, match="Could not read image .*bad.png: "
                       "UnidentifiedImageError") as info:
        data.decode_image(str(bad))
    assert "delete it or replace it" in str(info.value)
    assert info.value.__cause__ is not None  # tools/pack_data.py reports it


def test_prediction_crops_are_within_one_grey_level_of_the_decoder():
    pytest.importorskip("cv2")
    rgb = _rng(4).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    difference = np.abs(faces._grey(rgb).astype(int) - images.to_grey(rgb).astype(int))
    assert difference.max() <= 1 and difference.mean() < 0.01
