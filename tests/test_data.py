"""Tests for fer_keras.data: layouts, caching, bad input, splits, pipelines."""

import os
import pathlib
import warnings

import keras
import numpy as np
import pytest
from PIL import Image

import fer_keras
from fer_keras import data
from fer_keras.classes import CLASS_NAMES

KAGGLE_FOLDERS = CLASS_NAMES  # msambare/fer2013 folder names, in label order
ANANTHU_FOLDERS = (
    "angry",
    "disgusted",
    "fearful",
    "happy",
    "sad",
    "surprised",
    "neutral",
)
REAL_DATA = pathlib.Path(
    os.environ.get("FER2013_DIR")
    or pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "fer2013"
)


def grey_of(label):
    """The flat grey value the fake data uses for `label`: label is readable."""
    return 10 + 35 * int(label)


def write_image(path, value, size=(48, 48), mode="L"):
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "L":
        img = Image.new("L", size, value)
    elif mode == "I;16":
        img = Image.fromarray(np.full(size[::-1], value * 257, np.uint16))
    else:
        # Opaque: transparent pixels are laid on white (fer_keras.images).
        alpha = (255,) if mode.endswith("A") else ()
        img = Image.new(mode, size, (value,) * len(mode.rstrip("A")) + alpha)
    img.save(path)


def make_folders(root, folders=KAGGLE_FOLDERS, suffix=".jpg", per_class=(3, 2)):
    """A tiny FER2013 copy: per_class[0] train and per_class[1] test images."""
    for split, count in zip(("train", "test"), per_class):
        for label, name in enumerate(folders):
            for j in range(count):
                write_image(
                    root / split / name / f"{split}_{label}_{j}{suffix}",
                    grey_of(label),
                )
    return root


def make_csv(path, rows=None):
    if rows is None:
        rows = []
        for usage, count in (("Training", 3), ("PublicTest", 2), ("PrivateTest", 1)):
            for label in range(len(CLASS_NAMES)):
                for _ in range(count):
                    pixels = " ".join([str(grey_of(label))] * 48 * 48)
                    rows.append(f"{label},{pixels},{usage}")
        rows = ["emotion,pixels,Usage"] + rows
    path.write_text("\n".join(rows) + "\n")
    return path


def assert_labels_match_pixels(images, labels):
    means = images.reshape(len(images), -1).mean(axis=1)
    expected = np.array([grey_of(label) for label in labels])
    np.testing.assert_allclose(means, expected, atol=3)


# Layouts -------------------------------------------------------------------


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


# Caching -------------------------------------------------------------------


def test_second_call_uses_the_cache(tmp_path, monkeypatch):
    root = make_folders(tmp_path / "fer")
    cache = tmp_path / "cache"
    first = data.load_split(root, "train", cache_dir=cache)
    assert len(list(cache.glob("*.npz"))) == 1

    def fail(path):
        raise AssertionError(f"decoded {path} although the cache is valid")

    monkeypatch.setattr(data, "_decode_image", fail)
    second = data.load_split(root, "train", cache_dir=cache)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


def test_cache_dir_from_environment(tmp_path, monkeypatch):
    root = make_folders(tmp_path / "fer")
    monkeypatch.setenv("FER_KERAS_CACHE", str(tmp_path / "env_cache"))
    data.load_split(root, "test")
    assert len(list((tmp_path / "env_cache").glob("*.npz"))) == 1


def test_changed_file_invalidates_the_cache(tmp_path):
    root = make_folders(tmp_path / "fer", suffix=".png")
    cache = tmp_path / "cache"
    images, _ = data.load_split(root, "train", cache_dir=cache)
    target = root / "train" / "angry" / "train_0_0.png"
    index = 0  # "angry" is label 0, and this file sorts first within it
    assert np.all(images[index] == grey_of(0))
    write_image(target, 200, size=(48, 48))
    stamp = target.stat().st_mtime_ns + 10**9
    os.utime(target, ns=(stamp, stamp))
    images, _ = data.load_split(root, "train", cache_dir=cache)
    assert np.all(images[index] == 200)
    write_image(root / "train" / "angry" / "new.png", grey_of(0))
    images, _ = data.load_split(root, "train", cache_dir=cache)
    assert len(images) == 22
    # Stale caches of the same source and split are removed.
    assert len(list(cache.glob("*.npz"))) == 1


def test_unwritable_cache_warns_and_still_loads(tmp_path):
    root = make_folders(tmp_path / "fer")
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")
    with pytest.warns(UserWarning, match="Could not write the FER2013 cache"):
        images, _ = data.load_split(root, "test", cache_dir=blocker)
    assert len(images) == 14


# Locating and bad input ----------------------------------------------------


def test_locate_prefers_explicit_path_then_environment(tmp_path, monkeypatch):
    explicit = make_folders(tmp_path / "explicit", per_class=(1, 1))
    from_env = make_folders(tmp_path / "env", per_class=(1, 1))
    monkeypatch.setenv("FER2013_DIR", str(from_env))
    assert data.locate_data(explicit) == explicit.resolve()
    assert data.locate_data() == from_env.resolve()
    assert data.locate_data(str(tmp_path / "env")) == from_env.resolve()


def test_locate_downloads_with_kagglehub(tmp_path, monkeypatch):
    import kagglehub

    root = make_folders(tmp_path / "download", per_class=(1, 1))
    monkeypatch.delenv("FER2013_DIR", raising=False)
    handles = []

    def download(handle, *args, **kwargs):
        handles.append(handle)
        return str(root)

    monkeypatch.setattr(kagglehub, "dataset_download", download)
    assert data.locate_data() == root.resolve()
    assert handles == ["msambare/fer2013"]


def test_failed_download_explains_how_to_point_at_a_copy(monkeypatch):
    import kagglehub

    monkeypatch.delenv("FER2013_DIR", raising=False)

    def download(handle, *args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(kagglehub, "dataset_download", download)
    with pytest.raises(data.DataError, match="--data-dir.*FER2013_DIR") as info:
        data.locate_data()
    assert "failed" in str(info.value) and "no network" in str(info.value)
    assert isinstance(info.value.__cause__, ConnectionError)


def test_missing_folder(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere"
    with pytest.raises(data.DataError, match="does not exist") as info:
        data.locate_data(missing)
    assert str(missing) in str(info.value)
    monkeypatch.setenv("FER2013_DIR", str(missing))
    with pytest.raises(data.DataError, match="FER2013_DIR"):
        data.load_split(None, "train", cache_dir=tmp_path / "cache")


def test_wrong_layout(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "notes.txt").write_text("")
    with pytest.raises(data.DataError, match="does not look like FER2013") as info:
        data.locate_data(tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message and "fer2013.csv" in message
    assert "photos/" in message and "train/<class>/" in message


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


# Splits and class weights --------------------------------------------------


def imbalanced_labels():
    counts = [40, 5, 41, 72, 48, 31, 49]
    return np.repeat(np.arange(7), counts).astype(np.int32)


def test_train_val_split_is_stratified_disjoint_and_seeded():
    labels = imbalanced_labels()
    train, val = data.train_val_split(labels, val_fraction=0.2, seed=3)
    assert np.intersect1d(train, val).size == 0
    np.testing.assert_array_equal(np.union1d(train, val), np.arange(labels.size))
    val_counts = np.bincount(labels[val], minlength=7)
    expected = np.round(0.2 * np.bincount(labels)).astype(int)
    np.testing.assert_array_equal(val_counts, expected)
    again = data.train_val_split(labels, val_fraction=0.2, seed=3)
    np.testing.assert_array_equal(again[1], val)
    other = data.train_val_split(labels, val_fraction=0.2, seed=4)
    assert not np.array_equal(other[1], val)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_train_val_split_rejects_bad_fraction(fraction):
    with pytest.raises(ValueError, match=f"Received: val_fraction={fraction}"):
        data.train_val_split(imbalanced_labels(), val_fraction=fraction)


def test_kfold_splits_cover_everything_once():
    labels = imbalanced_labels()
    folds = data.kfold_splits(labels, k=3, seed=1)
    assert len(folds) == 3
    vals = np.concatenate([val for _, val in folds])
    np.testing.assert_array_equal(np.sort(vals), np.arange(labels.size))
    for train, val in folds:
        np.testing.assert_array_equal(np.union1d(train, val), np.arange(labels.size))
        assert np.intersect1d(train, val).size == 0
    sizes = [len(val) for _, val in folds]
    assert max(sizes) - min(sizes) <= 1
    per_class = np.stack([np.bincount(labels[val], minlength=7) for _, val in folds])
    assert np.all(per_class.max(axis=0) - per_class.min(axis=0) <= 1)
    again = data.kfold_splits(labels, k=3, seed=1)
    for (_, a), (_, b) in zip(folds, again):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("k", [1, 0, 2.5, 1000])
def test_kfold_splits_rejects_bad_k(k):
    with pytest.raises(ValueError, match=f"Received: k={k}"):
        data.kfold_splits(imbalanced_labels(), k=k)


def test_kfold_splits_refuses_more_folds_than_the_rarest_class_has_images():
    # 5 "disgust" images: a sixth fold would validate on no disgust at all.
    with pytest.raises(ValueError, match=r"at most 5, .*rarest class \(disgust\).*"
                       "Received: k=6"):
        data.kfold_splits(imbalanced_labels(), k=6)
    for _, val in data.kfold_splits(imbalanced_labels(), k=5):
        assert np.all(np.bincount(imbalanced_labels()[val], minlength=7) >= 1)


def test_train_val_split_refuses_a_fraction_that_holds_out_nothing_or_a_whole_class():
    labels = np.repeat(np.arange(7), 3)
    with pytest.raises(ValueError, match="holds out no image.*Received: val_fraction=0.1"):
        data.train_val_split(labels, val_fraction=0.1)
    labels = np.repeat(np.arange(2), [40, 1])
    with pytest.raises(ValueError,
                       match=r"every image of a class \(1 of them\).*val_fraction=0.6"):
        data.train_val_split(labels, val_fraction=0.6)


def test_checks_leave_the_splits_of_a_seed_as_they_were():
    """Runs validated on these splits are evaluated on them again later
    (`evaluate.py --split val`): the digest is of the splits before the checks."""
    import hashlib

    labels = imbalanced_labels()
    digest = hashlib.sha256()
    for k in (2, 3, 5):
        for seed in (0, 1):
            for train, val in data.kfold_splits(labels, k, seed):
                digest.update(train.astype(np.int64).tobytes())
                digest.update(val.astype(np.int64).tobytes())
    for fraction in (0.1, 0.2, 0.5):
        for seed in (0, 3):
            train, val = data.train_val_split(labels, fraction, seed)
            digest.update(train.astype(np.int64).tobytes())
            digest.update(val.astype(np.int64).tobytes())
    assert digest.hexdigest() == (
        "ea18e91c96c77dcc0a06dbb895a325e0c539959872a6c4e6d48f610d7013d4cb"
    )


def test_class_weights_seed_is_inverse_frequency_with_max_one():
    labels = imbalanced_labels()
    counts = np.bincount(labels)
    weights = data.class_weights(labels, "seed")
    assert sorted(weights) == list(range(7))
    assert max(weights.values()) == pytest.approx(1.0)
    assert weights[1] == pytest.approx(1.0)  # the rarest class
    for i in range(7):
        assert weights[i] == pytest.approx(counts.min() / counts[i])
        assert weights[i] / weights[3] == pytest.approx(counts[3] / counts[i])


def test_class_weights_balanced_formula():
    labels = imbalanced_labels()
    counts = np.bincount(labels)
    weights = data.class_weights(labels, "balanced")
    for i in range(7):
        assert weights[i] == pytest.approx(labels.size / (7 * counts[i]))
    mean_per_sample = np.mean([weights[label] for label in labels])
    assert mean_per_sample == pytest.approx(1.0)


def test_class_weights_none_and_unknown_mode():
    assert data.class_weights(imbalanced_labels(), "none") is None
    with pytest.raises(ValueError, match="seed, balanced, none. Received: mode='inv'"):
        data.class_weights(imbalanced_labels(), "inv")


def test_class_weights_absent_class_gets_zero():
    weights = data.class_weights(np.array([0, 0, 2]), "seed")
    assert weights == {0: 0.5, 1: 0.0, 2: 1.0, 3: 0.0, 4: 0.0, 5: 0.0, 6: 0.0}


def test_class_counts_and_bad_labels():
    assert data.class_counts(np.array([3, 3, 6])) == {
        "angry": 0,
        "disgust": 0,
        "fear": 0,
        "happy": 2,
        "sad": 0,
        "surprise": 0,
        "neutral": 1,
    }
    with pytest.raises(ValueError, match="Received: labels in 0..7"):
        data.class_counts(np.array([0, 7]))


# Pipelines -----------------------------------------------------------------


def id_images(n):
    """Image i is filled with the value i, so a batch says which samples it holds."""
    images = np.repeat(np.arange(n, dtype=np.uint8), 48 * 48).reshape(n, 48, 48, 1)
    return images, (np.arange(n) % 7).astype(np.int32)


def as_numpy(batch):
    return tuple(keras.ops.convert_to_numpy(t) for t in batch)


def test_eval_dataset_keeps_order_and_every_sample():
    images, labels = id_images(70)
    batches = [as_numpy(b) for b in data.make_dataset(images, labels, batch_size=32)]
    assert [len(b[0]) for b in batches] == [32, 32, 6]
    x = np.concatenate([b[0] for b in batches])
    y = np.concatenate([b[1] for b in batches])
    assert x.dtype == np.float32 and y.dtype == np.int32
    assert x.shape == (70, 48, 48, 1)
    np.testing.assert_array_equal(x, images.astype(np.float32))
    np.testing.assert_array_equal(y, labels)


def test_training_dataset_shuffles_full_batches_each_epoch():
    images, labels = id_images(70)
    dataset = data.make_dataset(images, labels, batch_size=16, training=True, seed=5)
    epochs = []
    for _ in range(2):
        batches = [as_numpy(b) for b in dataset]
        assert [b[0].shape for b in batches] == [(16, 48, 48, 1)] * 4
        ids = np.concatenate([b[0][:, 0, 0, 0] for b in batches]).astype(int)
        assert len(set(ids)) == 64  # no sample twice, 6 left for the next epoch
        np.testing.assert_array_equal(
            np.concatenate([b[1] for b in batches]), labels[ids]
        )
        epochs.append(ids)
    assert not np.array_equal(epochs[0], epochs[1])
    assert not np.array_equal(epochs[0], np.sort(epochs[0]))
    spec = dataset.element_spec
    assert tuple(spec[0].shape) == (16, 48, 48, 1) and tuple(spec[1].shape) == (16,)


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_augmentation_lanes_keep_the_shuffled_order(workers):
    images = np.zeros((70, 48, 48, 1), np.uint8)
    ids = np.arange(70, dtype=np.int32)  # labels as sample ids
    plain = data.make_dataset(images, ids, batch_size=8, training=True, seed=2)
    lanes = data.make_dataset(
        images,
        ids,
        batch_size=8,
        training=True,
        augment="seed",
        seed=2,
        augment_workers=workers,
    )
    for _ in range(2):  # the second epoch reshuffles the same way in both
        expected = [as_numpy(b)[1] for b in plain]
        got = [as_numpy(b)[1] for b in lanes]
        assert len(got) == 8
        np.testing.assert_array_equal(np.concatenate(got), np.concatenate(expected))
        assert len(set(np.concatenate(got))) == 64


def test_augmentation_lanes_must_be_positive():
    images, labels = id_images(10)
    with pytest.raises(ValueError, match="Received: augment_workers=0"):
        data.make_dataset(images, labels, training=True, augment_workers=0)


@pytest.mark.parametrize(
    "training, augment", [(False, None), (True, None), (True, "seed")]
)
def test_dataset_knows_its_number_of_batches(training, augment):
    images, labels = id_images(70)
    dataset = data.make_dataset(
        images, labels, batch_size=16, training=training, augment=augment
    )
    expected = 4 if training else 5  # training drops the partial batch
    assert int(dataset.cardinality()) == expected
    assert len(list(dataset)) == expected


def test_training_dataset_is_deterministic_for_a_seed():
    images = np.random.default_rng(0).integers(0, 256, (40, 48, 48, 1), np.uint8)
    labels = (np.arange(40) % 7).astype(np.int32)

    def first_two(seed):
        dataset = data.make_dataset(
            images, labels, batch_size=8, training=True, augment="seed", seed=seed
        )
        return [as_numpy(b) for b in dataset.take(2)]

    a, b, c = first_two(1), first_two(1), first_two(2)
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(ya, yb)
        np.testing.assert_allclose(xa, xb, atol=1e-4)
    assert not np.allclose(a[0][0], c[0][0])


def test_training_augmentation_changes_images_but_not_shape_or_range():
    _, labels = id_images(64)
    gradient = np.linspace(0, 255, 48).astype(np.uint8)
    images = np.tile(gradient[None, None, :, None], (64, 48, 1, 1))
    plain = data.make_dataset(images, labels, batch_size=32, training=True, seed=0)
    augmented = data.make_dataset(
        images, labels, batch_size=32, training=True, augment="seed", seed=0
    )
    for (x, y), (xa, ya) in zip(map(as_numpy, plain), map(as_numpy, augmented)):
        np.testing.assert_array_equal(y, ya)  # same shuffle for the same seed
        assert xa.shape == x.shape and xa.dtype == np.float32
        assert xa.min() >= 0.0 and xa.max() <= 255.0
        changed = np.abs(xa - x).reshape(len(x), -1).max(axis=1) > 1.0
        assert changed.mean() > 0.9


def test_sample_weights_travel_with_their_samples():
    images, labels = id_images(20)
    weights = np.arange(20, dtype=np.float32) / 10
    for training in (False, True):
        dataset = data.make_dataset(
            images, labels, batch_size=8, training=training, sample_weights=weights
        )
        for x, y, w in map(as_numpy, dataset):
            ids = x[:, 0, 0, 0].astype(int)
            np.testing.assert_allclose(w, weights[ids])
            np.testing.assert_array_equal(y, labels[ids])


def test_small_training_set_keeps_its_only_batch():
    images, labels = id_images(5)
    batches = list(data.make_dataset(images, labels, batch_size=8, training=True))
    assert len(batches) == 1 and batches[0][0].shape[0] == 5


def test_make_dataset_rejects_bad_arguments():
    images, labels = id_images(10)
    with pytest.raises(ValueError, match="training only.*Received: augment='seed'"):
        data.make_dataset(images, labels, augment="seed")
    with pytest.raises(ValueError, match="Received: images.shape"):
        data.make_dataset(images, labels[:5])
    with pytest.raises(ValueError, match="Received: batch_size=0"):
        data.make_dataset(images, labels, batch_size=0)
    with pytest.raises(ValueError, match="Unknown augmentation 'wild'"):
        data.make_dataset(images, labels, training=True, augment="wild")


def test_model_fit_on_a_training_dataset():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (48, 48, 48, 1), np.uint8)
    labels = (np.arange(48) % 7).astype(np.int32)
    model = fer_keras.build_model("baseline")
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    train = data.make_dataset(
        images, labels, batch_size=16, training=True, augment="seed", seed=0
    )
    history = model.fit(
        train,
        epochs=1,
        class_weight=data.class_weights(labels),
        verbose=0,
    )
    assert len(history.history["loss"]) == 1
    assert np.isfinite(history.history["loss"][0])


# The real FER2013 ----------------------------------------------------------

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
    for x, y in dataset:
        assert tuple(x.shape) == (256, 48, 48, 1) and x.dtype.name == "float32"
        seen += int(x.shape[0])
    assert seen == len(train) // 256 * 256


def test_array_batches_shuffle_full_one_hot_batches_each_epoch():
    images, labels = id_images(70)
    batches = data.ArrayBatches(images, labels, batch_size=16, seed=5)
    assert len(batches) == 4
    epochs = []
    for _ in range(2):
        ids = []
        for i in range(len(batches)):
            x, y = batches[i]
            assert x.shape == (16, 48, 48, 1) and x.dtype == np.float32
            assert y.shape == (16, 7) and y.dtype == np.float32
            batch_ids = x[:, 0, 0, 0].astype(int)
            np.testing.assert_array_equal(y.argmax(axis=1), labels[batch_ids])
            np.testing.assert_array_equal(y.sum(axis=1), np.ones(16))
            np.testing.assert_array_equal(x, images[batch_ids].astype(np.float32))
            ids.extend(batch_ids)
        assert len(set(ids)) == 64  # no sample twice, 6 left out this epoch
        epochs.append(ids)
        batches.on_epoch_end()
    assert epochs[0] != epochs[1] and epochs[0] != sorted(epochs[0])
    again = data.ArrayBatches(images, labels, batch_size=16, seed=5)
    np.testing.assert_array_equal(again[0][0], data.ArrayBatches(images, labels, 16, seed=5)[0][0])
    assert not np.array_equal(again[0][0], data.ArrayBatches(images, labels, 16, seed=6)[0][0])


@pytest.mark.parametrize("batch_size", [0, 71])
def test_array_batches_reject_a_batch_size_that_cannot_fill(batch_size):
    images, labels = id_images(70)
    with pytest.raises(ValueError, match=f"Received: batch_size={batch_size}"):
        data.ArrayBatches(images, labels, batch_size=batch_size)
    with pytest.raises(ValueError, match="69 labels"):
        data.ArrayBatches(images, labels[:69], batch_size=8)
