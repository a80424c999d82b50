"""Keeps the decoded-data caches of the tests' throwaway folders out of the
user's cache (subprocesses inherit the variable too), lets JAX reuse the
compilations the tests repeat (the same models at the same shapes: a
quarter off test_models and test_training under jax), shares one LiteRT
export between the tests of the predictor and of the face pipeline, and
imports the repository's scripts for the tests of their functions, runs
the tests marked `only_backend` under their backends only, and skips the
channels-first tests where the CPU has no kernels for them."""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import repo_scripts

ROOT = Path(__file__).resolve().parents[1]

_OWN_CACHES = []


def _own_cache(variable: str, prefix: str) -> None:
    if variable not in os.environ:
        os.environ[variable] = tempfile.mkdtemp(prefix=prefix)
        _OWN_CACHES.append(os.environ[variable])


def pytest_configure(config):
    _own_cache("FER_KERAS_CACHE", "fer_keras_cache_")
    # Read when jax is first imported, here and in the scripts' subprocesses.
    _own_cache("JAX_COMPILATION_CACHE_DIR", "fer_keras_jax_cache_")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")


def pytest_collection_modifyitems(config, items):
    _skip_other_backends(items)
    _skip_channels_first(items)


def _skip_other_backends(items) -> None:
    """Skips the tests marked `only_backend(*backends, reason=...)` under the
    other backends: the suite runs once per backend, and some tests need one
    backend's features, or check what does not depend on it in one pass."""
    import keras

    backend = keras.backend.backend()
    for item in items:
        marker = item.get_closest_marker("only_backend")
        if marker is None:
            continue
        if not marker.args or not marker.kwargs.get("reason"):
            raise pytest.UsageError(
                f"{item.nodeid}: `only_backend` takes the backends and a reason, as in "
                f"only_backend(\"jax\", reason=\"...\"). Received: {marker}")
        if backend not in marker.args:
            item.add_marker(pytest.mark.skip(
                reason=f"under {' or '.join(marker.args)} only: {marker.kwargs['reason']}"))


def _skip_channels_first(items) -> None:
    """Skips the channels-first tests where the backend cannot compute that
    layout here: TensorFlow on CPUs where it runs without oneDNN."""
    marked = [item for item in items if item.get_closest_marker("channels_first")]
    if not marked:
        return
    from fer_keras.models import data_format_supported

    if data_format_supported("channels_first"):
        return
    skip = pytest.mark.skip(reason="no channels-first convolution kernels for this "
                            "backend on this CPU (fer_keras.models.data_format_supported)")
    for item in marked:
        item.add_marker(skip)


def pytest_unconfigure(config):
    for folder in _OWN_CACHES:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def load_script():
    """`repo_scripts.load_script`, for the tests of the scripts' functions."""
    return repo_scripts.load_script


@pytest.fixture(scope="session")
def baseline_path(tmp_path_factory):
    """A random baseline as a `.keras` file: the quickest model to load, for
    the tests of what the tools do with photos rather than how well."""
    from fer_keras.models import build_model

    path = tmp_path_factory.mktemp("baseline") / "baseline.keras"
    build_model("baseline").save(path)
    return path


@pytest.fixture(scope="session")
def litert_files(tmp_path_factory):
    """A random baseline as `.keras`, and as float and int8-weight `.tflite`
    files written by export.py (under tensorflow, whatever the tests' backend).

    Made once per run: under pytest-xdist the workers share one folder (the
    parent of their base temporary folders) and take turns through a lock."""
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    folder = root / "litert"
    files = {"keras": folder / "model.keras", "float": folder / "model.tflite",
             "int8": folder / "model_int8.tflite"}
    with FileLock(str(root / "litert.lock")):
        if not all(path.exists() for path in files.values()):
            _export_litert(files)
    return files


def _export_litert(files: dict) -> None:
    import keras

    from fer_keras.models import build_model

    files["keras"].parent.mkdir(exist_ok=True)
    keras.utils.set_random_seed(0)
    build_model("baseline").save(files["keras"])
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    for kind in ("float", "int8"):
        result = subprocess.run(
            [sys.executable, str(ROOT / "export.py"), "--model-path", str(files["keras"]),
             "--format", "tflite", "--output", str(files[kind]),
             *(["--quantize"] if kind == "int8" else [])],
            capture_output=True, text=True, env=env, cwd=ROOT, timeout=600,
        )
        assert result.returncode == 0, result.stderr
        assert "Checked: max" in result.stdout


@pytest.fixture(scope="session")
def served_files(litert_files):
    """litert_files' `.keras` model as an `.onnx` file and a SavedModel folder,
    written under tensorflow (whatever the tests' backend), once per run."""
    from filelock import FileLock

    pytest.importorskip("tf2onnx")
    folder = litert_files["keras"].parent
    files = {"keras": litert_files["keras"], "onnx": folder / "model.onnx",
             "saved_model": folder / "model_saved_model"}
    code = ("import sys; from fer_keras import export; "
            "export.export_model(sys.argv[1], sys.argv[2], 'onnx'); "
            "export.export_model(sys.argv[1], sys.argv[3], 'saved_model')")
    with FileLock(str(folder.parent / "served.lock")):
        if not (files["onnx"].exists() and (files["saved_model"] / "saved_model.pb").exists()):
            result = subprocess.run(
                [sys.executable, "-c", code, str(files["keras"]), str(files["onnx"]),
                 str(files["saved_model"])],
                capture_output=True, text=True, cwd=ROOT, timeout=600,
                env={**os.environ, "KERAS_BACKEND": "tensorflow"},
            )
            assert result.returncode == 0, result.stderr
    return files


@pytest.fixture
def exports_without_runtime(tmp_path, monkeypatch):
    """An `.onnx` file and a SavedModel folder, as paths only, with their
    runtimes reported missing: (onnx path, SavedModel folder)."""
    from fer_keras import export

    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"onnx")
    saved = tmp_path / "model_saved_model"
    saved.mkdir()
    (saved / "saved_model.pb").write_bytes(b"pb")
    monkeypatch.setattr(export, "installed", lambda module: False)
    return onnx, saved
