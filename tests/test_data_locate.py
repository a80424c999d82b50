"""Tests for fer_keras.data.locate: a path, FER2013_DIR, or a kagglehub download."""

import pytest
from data_files import make_folders

from fer_keras import data


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
