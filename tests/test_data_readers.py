"""Tests for the FER2013 readers (fer_keras.data.readers, folders, csv_file,
decoding): each layout on disk read into the same arrays, and bad input named."""

import warnings

import numpy as np
import pytest
from data_files import (
    ANANTHU_FOLDERS,
    REAL_DATA,
    assert_labels_match_pixels,
    grey_of,
    make_csv,
    make_folders,
    write_image,
)
from PIL import Image

import fer_keras
from fer_keras import data
from fer_keras.classes import CLASS_NAMES


def test_class_names_are_the_fer2013_label_order():
    assert data.CLASS_NAMES == (
        "angry",
        "disgust",
        "fear",
        "happy",
        "sad",
        "surprise",
        "neutral",
    )
    assert data.CLASS_NAMES is fer_keras.CLASS_NAMES


def test_kaggle_folders(tmp_path):
    root = make_folders(tmp_path / "fer")
    images, labels = data.load_split(root, "train", cache_dir=tmp_path / "cache")
    assert images.shape == (21, 48, 48, 1) and images.dtype == np.uint8
    assert labels.shape == (21,) and labels.dtype == np.int32
    assert data.class_counts(labels) == {name: 3 for name in CLASS_NAMES}
    assert_labels_match_pixels(images, labels)
    images, labels = data.load_split(root, "test", cache_dir=tmp_path / "cache")
    assert data.class_counts(labels) == {name: 2 for name in CLASS_NAMES}
    assert_labels_match_pixels(images, labels)


def test_files_are_read_in_sorted_order(tmp_path):
    root = make_folders(tmp_path / "fer")
    _, labels = data.load_split(root, "train", cache_dir=tmp_path / "cache")
    # Class by class in label order, then file names sorted within a class.
    np.testing.assert_array_equal(labels, np.repeat(np.arange(7), 3))


def test_ananthu_folders_map_to_fer2013_ids(tmp_path):
    root = make_folders(tmp_path / "fer", folders=ANANTHU_FOLDERS, suffix=".png")
    images, labels = data.load_split(root, "train", cache_dir=tmp_path / "cache")
    assert data.class_counts(labels) == {name: 3 for name in CLASS_NAMES}
    # PNG is lossless: every image is exactly the grey of its label.
    for image, label in zip(images, labels):
        assert np.all(image == grey_of(label))
    disgusted = labels[np.all(images == grey_of(1), axis=(1, 2, 3))]
    assert set(disgusted) == {CLASS_NAMES.index("disgust")}


def test_csv_splits(tmp_path):
    csv_path = make_csv(tmp_path / "fer2013.csv")
    cache = tmp_path / "cache"
    for split, count in (
        ("train", 3),
        ("test", 3),
        ("public_test", 2),
        ("private_test", 1),
    ):
        images, labels = data.load_split(csv_path, split, cache_dir=cache)
        assert images.shape == (7 * count, 48, 48, 1) and images.dtype == np.uint8
        assert labels.dtype == np.int32
        assert data.class_counts(labels) == {name: count for name in CLASS_NAMES}
        for image, label in zip(images, labels):
            assert np.all(image == grey_of(label))


def test_csv_found_through_its_folder(tmp_path):
    make_csv(tmp_path / "fer2013.csv")
    assert data.locate_data(tmp_path) == tmp_path.resolve()
    _, labels = data.load_split(tmp_path, "train", cache_dir=tmp_path / "cache")
    assert labels.shape == (21,)


def test_folder_split_other_than_train_test_is_refused(tmp_path):
    root = make_folders(tmp_path / "fer")
    with pytest.raises(ValueError, match="public_test.*only in fer2013.csv"):
        data.load_split(root, "public_test", cache_dir=tmp_path / "cache")
    with pytest.raises(ValueError, match="Received: split='val'"):
        data.load_split(root, "val", cache_dir=tmp_path / "cache")


def test_converted_and_resized_images_warn_once(tmp_path):
    root = make_folders(tmp_path / "fer", per_class=(2, 1))
    write_image(root / "train" / "happy" / "rgb.jpg", grey_of(3), mode="RGB")
    write_image(root / "train" / "happy" / "rgba.png", grey_of(3), mode="RGBA")
    write_image(root / "train" / "sad" / "big.png", grey_of(4), size=(96, 64))
    write_image(root / "train" / "sad" / "deep.png", grey_of(4), mode="I;16")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        images, labels = data.load_split(root, "train", cache_dir=tmp_path / "cache")
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1, messages
    assert "converted 3 from other modes (I;16: 1, RGB: 1, RGBA: 1)" in messages[0]
    assert "resized 1 from other sizes (96x64: 1) to 48x48" in messages[0]
    assert str(root / "train") in messages[0]
    assert images.shape == (18, 48, 48, 1)
    # 16-bit grey is scaled, not clipped: 180 * 257 comes back as 180.
    assert_labels_match_pixels(images, labels)


def test_split_folder_missing(tmp_path):
    root = make_folders(tmp_path / "fer")
    for path in sorted((root / "test").rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    (root / "test").rmdir()
    with pytest.raises(data.DataError, match="has no test/ folder") as info:
        data.load_split(root, "test", cache_dir=tmp_path / "cache")
    assert str(root) in str(info.value)


def test_unknown_class_folder(tmp_path):
    root = make_folders(tmp_path / "fer")
    write_image(root / "train" / "contempt" / "a.jpg", 100)
    with pytest.raises(data.DataError, match="Unknown class folder") as info:
        data.load_split(root, "train", cache_dir=tmp_path / "cache")
    message = str(info.value)
    assert "'contempt'" in message and str(root / "train") in message
    assert "angry, disgust, fear, happy, neutral, sad, surprise" in message


def test_mixed_layout_folder_names_are_refused(tmp_path):
    root = make_folders(tmp_path / "fer")
    write_image(root / "train" / "fearful" / "a.jpg", 100)
    with pytest.raises(data.DataError, match="'fearful'"):
        data.load_split(root, "train", cache_dir=tmp_path / "cache")


def test_empty_class_in_train_is_an_error(tmp_path):
    root = make_folders(tmp_path / "fer")
    for path in (root / "train" / "disgust").iterdir():
        path.unlink()
    with pytest.raises(data.DataError, match="No training images") as info:
        data.load_split(root, "train", cache_dir=tmp_path / "cache")
    assert str(root / "train" / "disgust") in str(info.value)


def test_missing_class_in_train_is_an_error(tmp_path):
    root = make_folders(tmp_path / "fer")
    for path in (root / "train" / "fear").iterdir():
        path.unlink()
    (root / "train" / "fear").rmdir()
    with pytest.raises(data.DataError, match="No training images") as info:
        data.load_split(root, "train", cache_dir=tmp_path / "cache")
    assert str(root / "train" / "fear") in str(info.value)


def test_empty_class_in_test_warns_and_loads_the_rest(tmp_path):
    root = make_folders(tmp_path / "fer")
    for path in (root / "test" / "disgust").iterdir():
        path.unlink()
    with pytest.warns(UserWarning, match="No test images") as caught:
        images, labels = data.load_split(root, "test", cache_dir=tmp_path / "cache")
    assert str(root / "test" / "disgust") in str(caught[0].message)
    assert len(images) == 12 and 1 not in labels


@pytest.mark.parametrize(
    "content",
    [b"this is not an image", "truncated"],
    ids=["garbage", "truncated"],
)
def test_corrupt_image_is_named(tmp_path, content):
    root = make_folders(tmp_path / "fer")
    bad = root / "train" / "sad" / "bad.jpg"
    if content == "truncated":
        noise = np.random.default_rng(0).integers(0, 256, (48, 48), np.uint8)
        Image.fromarray(noise).save(bad)
        content = bad.read_bytes()[: bad.stat().st_size // 2]
    bad.write_bytes(content)
    with pytest.raises(data.DataError, match="Could not read image") as info:
        data.load_split(root, "train", cache_dir=tmp_path / "cache")
    assert str(bad) in str(info.value) and "delete" in str(info.value)


def test_csv_with_wrong_columns(tmp_path):
    path = make_csv(tmp_path / "fer2013.csv", ["label,pixels", "0," + "1 " * 2304])
    with pytest.raises(data.DataError, match="wrong columns") as info:
        data.load_split(path, "train", cache_dir=tmp_path / "cache")
    message = str(info.value)
    assert str(path) in message
    assert "Expected: emotion, pixels, Usage" in message
    assert "Found: label, pixels" in message


@pytest.mark.parametrize(
    "pixels, found",
    [
        (" ".join(["7"] * 2303), "2303 values"),
        (" ".join(["7"] * 2303 + ["256"]), "2304 values in 7..256"),
        (" ".join(["7"] * 2303 + ["x"]), "non-integer values"),
        ("", "no values"),
    ],
    ids=["short", "too_bright", "not_integer", "empty"],
)
def test_csv_bad_pixel_row(tmp_path, pixels, found):
    good = " ".join(["7"] * 2304)
    rows = ["emotion,pixels,Usage", f"0,{good},Training", f"1,{pixels},Training"]
    path = make_csv(tmp_path / "fer2013.csv", rows)
    with pytest.raises(data.DataError, match="bad pixel row") as info:
        data.load_split(path, "train", cache_dir=tmp_path / "cache")
    message = str(info.value)
    assert f"{path}, line 3" in message
    assert "2304 space-separated integers 0-255" in message and found in message


@pytest.mark.parametrize("label", ["7", "-1", "happy"])
def test_csv_label_out_of_range(tmp_path, label):
    good = " ".join(["7"] * 2304)
    rows = ["emotion,pixels,Usage", f"0,{good},Training", f"{label},{good},Training"]
    path = make_csv(tmp_path / "fer2013.csv", rows)
    with pytest.raises(data.DataError, match="out of range") as info:
        data.load_split(path, "train", cache_dir=tmp_path / "cache")
    assert f"{path}, line 3" in str(info.value) and "0-6" in str(info.value)


def test_csv_unknown_usage(tmp_path):
    good = " ".join(["7"] * 2304)
    rows = ["emotion,pixels,Usage", f"0,{good},Validation"]
    path = make_csv(tmp_path / "fer2013.csv", rows)
    with pytest.raises(data.DataError, match="line 2: unknown Usage 'Validation'"):
        data.load_split(path, "test", cache_dir=tmp_path / "cache")


def test_csv_train_missing_a_class(tmp_path):
    good = " ".join(["7"] * 2304)
    rows = ["emotion,pixels,Usage"] + [f"{i},{good},Training" for i in range(6)]
    path = make_csv(tmp_path / "fer2013.csv", rows)
    with pytest.raises(data.DataError, match="no training rows of class.*neutral"):
        data.load_split(path, "train", cache_dir=tmp_path / "cache")


REAL_COUNTS = {
    "train": {
        "angry": 3995,
        "disgust": 436,
        "fear": 4097,
        "happy": 7215,
        "sad": 4830,
        "surprise": 3171,
        "neutral": 4965,
    },
    "test": {
        "angry": 467,
        "disgust": 56,
        "fear": 496,
        "happy": 895,
        "sad": 653,
        "surprise": 415,
        "neutral": 607,
    },
}


@pytest.mark.real_data
def test_real_fer2013():
    if not (REAL_DATA / "train").is_dir():
        pytest.skip(f"FER2013 not found at {REAL_DATA}")
    images, labels = data.load_split(REAL_DATA, "train")
    assert images.shape == (28709, 48, 48, 1) and images.dtype == np.uint8
    assert data.class_counts(labels) == REAL_COUNTS["train"]
    assert 80 < images.mean() < 180  # faces, not blank or inverted images
    test_images, test_labels = data.load_split(REAL_DATA, "test")
    counts = data.class_counts(test_labels)
    if len(test_labels) == 3589:  # the shared copy: PublicTest only
        assert counts == REAL_COUNTS["test"]
    else:  # a full Kaggle download adds PrivateTest
        assert len(test_labels) == 7178
    assert test_images.shape == (len(test_labels), 48, 48, 1)

    train, val = data.train_val_split(labels, 0.1, seed=0)
    assert abs(len(val) - 2871) <= 7
    dataset = data.make_dataset(
        images[train], labels[train], batch_size=256, training=True, augment="seed"
    )
    seen = 0
    for x, _ in dataset:
        assert tuple(x.shape) == (256, 48, 48, 1) and x.dtype.name == "float32"
        seen += int(x.shape[0])
    assert seen == len(train) // 256 * 256


# The registry ---------------------------------------------------------------


def test_a_new_layout_is_one_new_reader(tmp_path, monkeypatch):
    class OneNpz(data.Reader):
        """A single `faces.npz` of images and labels, for the test only."""

        name, kind, splits = "faces.npz", "npz", ("train",)

        def describe(self):
            return "a faces.npz with images and labels"

        def find(self, path):
            return path / "faces.npz" if (path / "faces.npz").is_file() else None

        def list_split(self, source, split):
            stat = source.stat()
            return data.SplitListing(source, split, [(source.name, stat.st_size, 0)])

        def read_split(self, listing):
            with np.load(listing.source) as arrays:
                return arrays["images"], arrays["labels"]

    from fer_keras.data import readers

    monkeypatch.setattr(readers, "_READERS", list(readers._READERS))
    images = np.full((7, 48, 48, 1), 9, np.uint8)
    np.savez(tmp_path / "faces.npz", images=images, labels=np.arange(7, dtype=np.int32))
    with pytest.raises(data.DataError, match="does not look like FER2013"):
        data.locate_data(tmp_path)
    data.register_reader(OneNpz())
    assert "a faces.npz with images and labels" in data.describe_layouts()
    loaded, labels = data.load_split(tmp_path, "train", cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(loaded, images)
    assert data.class_counts(labels) == {name: 1 for name in CLASS_NAMES}
    assert data.find_layout(tmp_path.resolve()) == ("npz", tmp_path.resolve() / "faces.npz")


def test_names_of_the_single_module_still_import():
    """Code written against the one-file `fer_keras.data` keeps working."""
    assert data._decode_image is data.decode_image
    assert data._find_layout is data.find_layout
    assert data._list_folder_split is data.list_folder_split
    assert data._check_labels is data.check_labels
    assert data._CACHE_VERSION == 2
    for name in ("IMAGE_SIZE", "KAGGLE_HANDLE", "CSV_NAME", "CSV_COLUMNS", "CSV_SPLITS",
                 "FOLDER_LAYOUTS", "FOLDER_SPLITS", "IMAGE_SUFFIXES", "CLASS_WEIGHT_MODES",
                 "_decode_images", "_read_csv", "_cache_file", "_download"):
        assert hasattr(data, name), name
    assert set(data.FOLDER_LAYOUTS) == {"msambare/fer2013", "ananthu017/emotion-detection-fer"}
