"""Photos and videos read as RGB frames (`fer_keras.media`): the image files
photos really come as, and files that cannot be read."""

import io

import numpy as np
import pytest
from PIL import Image

from fer_keras import faces, media

cv2 = pytest.importorskip("cv2")
skimage_data = pytest.importorskip("skimage.data")


@pytest.fixture(scope="module")
def astronaut():
    return skimage_data.astronaut()


def test_faces_hands_out_the_same_readers():
    """`from fer_keras.faces import load_image` still works, with the same objects."""
    assert faces.load_image is media.load_image and faces.read_video is media.read_video
    assert faces.ImageFileError is media.ImageFileError


def test_load_image_modes(tmp_path, astronaut):
    grey = cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)
    Image.fromarray(grey.astype("uint16") * 257).save(tmp_path / "deep.png")
    loaded = media.load_image(tmp_path / "deep.png")
    assert loaded.shape == (512, 512, 3) and loaded.dtype == np.uint8
    np.testing.assert_array_equal(loaded[..., 0], grey)

    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:4, ..., 3] = 255
    Image.fromarray(rgba).save(tmp_path / "alpha.png")
    loaded = media.load_image(tmp_path / "alpha.png")
    assert loaded.shape == (8, 8, 3)
    assert tuple(loaded[0, 0]) == (200, 0, 0) and tuple(loaded[7, 7]) == (255, 255, 255)

    Image.fromarray(astronaut).convert("P", palette=Image.Palette.ADAPTIVE).save(tmp_path / "p.png")
    loaded = media.load_image(tmp_path / "p.png")
    assert loaded.shape == (512, 512, 3)
    assert np.abs(loaded.astype(int) - astronaut).mean() < 12

    Image.fromarray(grey).convert("1").save(tmp_path / "bw.png")
    assert set(np.unique(media.load_image(tmp_path / "bw.png"))) <= {0, 255}


def test_load_image_turns_by_exif(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees clockwise
    Image.new("RGB", (40, 20), (10, 20, 30)).save(tmp_path / "phone.jpg", exif=exif)
    assert media.load_image(tmp_path / "phone.jpg").shape == (40, 20, 3)


def test_bad_image_files_name_the_file(tmp_path, astronaut):
    Image.fromarray(astronaut).save(tmp_path / "full.jpg")
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(media.ImageFileError, match="cut.jpg is truncated or corrupt"):
        media.load_image(tmp_path / "cut.jpg")
    (tmp_path / "notes.jpg").write_text("not a picture")
    with pytest.raises(media.ImageFileError, match="notes.jpg is not an image file"):
        media.load_image(tmp_path / "notes.jpg")
    with pytest.raises(media.ImageFileError, match="gone.png: no such file"):
        media.load_image(tmp_path / "gone.png")
    with pytest.raises(media.ImageFileError, match=r"full.jpg is too large.*262,143 pixels"):
        media.load_image(tmp_path / "full.jpg", max_pixels=512 * 512 - 1)


def test_load_image_reads_an_upload_held_in_memory(astronaut):
    buffer = io.BytesIO()
    Image.fromarray(astronaut).save(buffer, "PNG")
    np.testing.assert_array_equal(media.load_image(io.BytesIO(buffer.getvalue())), astronaut)
    with pytest.raises(media.ImageFileError, match="The upload is not an image file"):
        media.load_image(io.BytesIO(b"not a picture"))
    named = io.BytesIO(buffer.getvalue()[:1000])
    named.name = "photo.png"
    with pytest.raises(media.ImageFileError, match="photo.png is truncated or corrupt"):
        media.load_image(named)


def test_video_that_cannot_be_opened(tmp_path):
    (tmp_path / "clip.mp4").write_text("not a video")
    with pytest.raises(media.ImageFileError, match="Could not open .*clip.mp4"):
        list(media.read_video(tmp_path / "clip.mp4"))
