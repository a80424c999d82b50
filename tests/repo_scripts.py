"""Imports the repository's scripts (tools/, benchmarks/) as modules, for the
tests of their functions, without leaving their folders on `sys.path`."""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load_script(relative_path: str) -> ModuleType:
    """The script at `relative_path`, imported with its folder on `sys.path`
    as when it runs (the benchmarks import `harness`)."""
    path = ROOT / relative_path
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    return module
