"""Keeps the decoded-data caches of the tests' throwaway folders out of the
user's cache (subprocesses inherit the variable too)."""

import os
import shutil
import tempfile

_OWN_CACHE = None


def pytest_configure(config):
    global _OWN_CACHE
    if "FER_KERAS_CACHE" not in os.environ:
        _OWN_CACHE = tempfile.mkdtemp(prefix="fer_keras_cache_")
        os.environ["FER_KERAS_CACHE"] = _OWN_CACHE


def pytest_unconfigure(config):
    if _OWN_CACHE:
        shutil.rmtree(_OWN_CACHE, ignore_errors=True)
