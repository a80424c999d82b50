"""Keeps the decoded-data caches of the tests' throwaway folders out of the
user's cache (subprocesses inherit the variable too), shares one LiteRT
export between the tests of the predictor and of the face pipeline, and
imports the repository's scripts for the tests of their functions."""

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

_OWN_CACHE = None


def pytest_configure(config):
    global _OWN_CACHE
    if "FER_KERAS_CACHE" not in os.environ:
        _OWN_CACHE = tempfile.mkdtemp(prefix="fer_keras_cache_")
        os.environ["FER_KERAS_CACHE"] = _OWN_CACHE


def pytest_unconfigure(config):
    if _OWN_CACHE:
        shutil.rmtree(_OWN_CACHE, ignore_errors=True)


@pytest.fixture(scope="session")
def load_script():
    """Imports a script of the repository (tools/, benchmarks/) as a module."""

    def load(relative_path: str):
        path = ROOT / relative_path
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture(scope="session")
def litert_files(tmp_path_factory):
    """A random baseline as `.keras`, and as float and int8-weight `.tflite`
    files written by export.py (under tensorflow, whatever the tests' backend)."""
    import keras

    from fer_keras.models import build_model

    folder = tmp_path_factory.mktemp("litert")
    keras.utils.set_random_seed(0)
    build_model("baseline").save(folder / "model.keras")
    files = {"keras": folder / "model.keras", "float": folder / "model.tflite",
             "int8": folder / "model_int8.tflite"}
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
    return files
