"""Keeps the decoded-data caches of the tests' throwaway folders out of the
user's cache (subprocesses inherit the variable too)."""

import os
import tempfile


def pytest_configure(config):
    if "FER_KERAS_CACHE" not in os.environ:
        os.environ["FER_KERAS_CACHE"] = tempfile.mkdtemp(prefix="fer_keras_cache_")
