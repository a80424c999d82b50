import numpy as np
import pytest

import keras

from fer_keras import tta


def _images(n=3, size=48, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 1)).astype("float32")


@pytest.mark.parametrize("given, mode", [(False, "none"), (None, "none"), (True, "mirror"),
                                         ("mirror", "mirror"), ("ten_crop", "ten_crop")])
def test_modes_resolve(given, mode):
    assert tta.resolve_mode(given) == mode


@pytest.mark.parametrize("given", [False, True, *tta.TTA_MODES])
def test_num_views_counts_the_views(given):
    assert tta.num_views(given) == len(tta.tta_views(_images(n=1), given))


def test_unknown_mode_names_the_choices():
    with pytest.raises(ValueError, match=r"Expected one of: none, mirror, ten_crop.*"
                       r"Received: tta='tencrop'"):
        tta.resolve_mode("tencrop")


def test_mirror_views_are_the_image_and_its_mirror():
    images = _images()
    views = tta.tta_views(images, "mirror")
    assert len(views) == 2
    np.testing.assert_array_equal(views[0], images)
    np.testing.assert_array_equal(views[1], images[:, :, ::-1])


def test_ten_crops_are_corner_and_centre_crops_resized_and_mirrored():
    images = _images()
    views = tta.tta_views(images, "ten_crop", crop_fraction=44 / 48)
    assert len(views) == 10
    assert all(v.shape == images.shape and v.dtype == np.float32 for v in views)
    for plain, mirrored in zip(views[:5], views[5:]):
        np.testing.assert_array_equal(mirrored, plain[:, :, ::-1])
    # Each view is its crop resized: Keras' own bilinear resize agrees.
    corners = [(0, 0), (0, 4), (4, 0), (4, 4), (2, 2)]
    for view, (top, left) in zip(views[:5], corners):
        crop = images[:, top : top + 44, left : left + 44]
        expected = keras.ops.convert_to_numpy(
            keras.ops.image.resize(crop, (48, 48), interpolation="bilinear", antialias=False)
        )
        np.testing.assert_allclose(view, expected, atol=1e-3)
    # Distinct views of one image, not five copies.
    assert len({v.tobytes() for v in views[:5]}) == 5


def test_a_constant_image_stays_constant_in_every_crop():
    images = np.full((2, 48, 48, 1), 100.0, dtype="float32")
    for view in tta.tta_views(images, "ten_crop"):
        np.testing.assert_allclose(view, 100.0, rtol=1e-6)


def test_full_size_crops_are_the_image_and_its_mirror():
    images = _images(n=2)
    views = tta.tta_views(images, "ten_crop", crop_fraction=1.0)
    for view in views[:5]:
        np.testing.assert_allclose(view, images, atol=1e-4)


@pytest.mark.parametrize("bad", [0.0, 1.5])
def test_crop_fraction_out_of_range_is_refused(bad):
    with pytest.raises(ValueError, match=rf"Received: crop_fraction={bad}"):
        tta.tta_views(_images(n=1), "ten_crop", crop_fraction=bad)


def test_a_single_image_without_batch_axis_is_refused():
    with pytest.raises(ValueError, match=r"\(N, height, width, channels\).*\(48, 48\)"):
        tta.tta_views(np.zeros((48, 48)), "mirror")


def test_ten_views_for_a_model_that_zooms_in_are_the_ten_crops_it_sees():
    images = np.random.default_rng(2).uniform(0, 255, (3, 48, 48, 1)).astype("float32")
    crops = tta.tta_views(images, "ten_crop")
    shifted = tta.tta_views(images, "ten_crop", zoom=44 / 48)
    assert len(shifted) == 10 and all(v.shape == images.shape for v in shifted)
    np.testing.assert_array_equal(shifted[4], images)  # the centre: no shift
    # The model's own zoom (centre crop, resized) of each shifted view is each crop.
    for view, crop in zip(shifted, crops):
        np.testing.assert_allclose(tta.resize(view[:, 2:46, 2:46], 48, 48), crop, atol=1e-3)
