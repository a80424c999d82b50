"""Tests for fer_keras.data.cache: decoded splits are read back, not decoded again."""

import os

import numpy as np
import pytest
from data_files import grey_of, make_folders, write_image

from fer_keras import data
from fer_keras.data import decoding


def test_second_call_uses_the_cache(tmp_path, monkeypatch):
    root = make_folders(tmp_path / "fer")
    cache = tmp_path / "cache"
    first = data.load_split(root, "train", cache_dir=cache)
    assert len(list(cache.glob("*.npz"))) == 1

    def fail(path):
        raise AssertionError(f"decoded {path} although the cache is valid")

    # decode_images looks the decoder up in its own module: patch it there.
    monkeypatch.setattr(decoding, "decode_image", fail)
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
