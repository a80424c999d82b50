"""What the command-line scripts share: choosing the backend before Keras loads,
and turning the package's errors into one clear line instead of a traceback.

Kept outside `fer_keras` on purpose: importing the package imports Keras,
which fixes the backend.
"""

import argparse
import importlib.util
import os
import sys
import traceback
from pathlib import Path

BACKENDS = ("jax", "tensorflow", "torch")
_BACKEND_MODULES = {"jax": "jax", "tensorflow": "tensorflow", "torch": "torch"}
_PACKAGE_DIR = str(Path(__file__).resolve().parent / "fer_keras")


def add_backend_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend", choices=BACKENDS, default=None,
        help="Keras backend (default: $KERAS_BACKEND, else jax).",
    )


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1 (a batch size, a count)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1 or str(value) != text.strip().lstrip("+"):
        raise argparse.ArgumentTypeError(
            f"expected a whole number of at least 1. Received: {text!r}"
        )
    return value


def select_backend(argv) -> str:
    """Sets KERAS_BACKEND from --backend; must run before Keras is imported."""
    parser = argparse.ArgumentParser(add_help=False)
    add_backend_argument(parser)
    requested = parser.parse_known_args(argv)[0].backend
    env = os.environ.get("KERAS_BACKEND")
    if requested and env and env != requested:
        sys.exit(
            f"error: KERAS_BACKEND={env} disagrees with --backend {requested}. "
            "Unset KERAS_BACKEND or make the two match."
        )
    backend = requested or env or "jax"
    if backend not in BACKENDS:
        sys.exit(
            f"error: unknown Keras backend {backend!r} (from KERAS_BACKEND). "
            f"Expected one of: {', '.join(BACKENDS)}."
        )
    if importlib.util.find_spec(_BACKEND_MODULES[backend]) is None:
        sys.exit(
            f"error: the {backend} backend is not installed. Install it with "
            f"`pip install {backend}` or choose another with --backend."
        )
    if "keras" in sys.modules and sys.modules["keras"].backend.backend() != backend:
        sys.exit(f"error: Keras was already imported with another backend than {backend}.")
    os.environ["KERAS_BACKEND"] = backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return backend


def _raised_by_package(err: BaseException) -> bool:
    frames = traceback.extract_tb(err.__traceback__)
    return bool(frames) and frames[-1].filename.startswith(_PACKAGE_DIR)


def run(main) -> None:
    """Runs `main()`; the package's own errors end the program with one line."""
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(
            "\nInterrupted. Run the same command again to resume from the last "
            "finished epoch."
        )
    except (ValueError, RuntimeError, OSError, ImportError) as err:
        if not _raised_by_package(err):
            raise
        sys.exit(f"error: {err}")
