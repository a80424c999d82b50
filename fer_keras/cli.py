"""What the command-line scripts share: choosing the backend before Keras loads,
checking option values as argparse reads them, keeping the libraries' log
noise out of what users read, and turning errors a user can fix into one
clear line instead of a traceback.

It imports neither Keras nor a backend: `fer_keras/__init__.py` loads its
names lazily, so a command can still choose the backend here.
"""

import argparse
import contextlib
import errno
import importlib.util
import math
import os
import re
import sys
import tempfile
import traceback
import warnings
from pathlib import Path

BACKENDS = ("jax", "tensorflow", "torch")
_BACKEND_MODULES = {"jax": "jax", "tensorflow": "tensorflow", "torch": "torch"}
_PACKAGE_DIR = str(Path(__file__).resolve().parent)


def add_backend_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend", choices=BACKENDS, default=None,
        help="Keras backend (default: $KERAS_BACKEND, else jax).",
    )


# Option types: argparse calls them on the text typed and names the option in
# its message, so a bad value is refused before anything loads or is written.


def _whole_number(text: str, ok, expected: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not ok(value) or str(value) != text.strip().lstrip("+"):
        raise argparse.ArgumentTypeError(f"expected {expected}. Received: {text!r}")
    return value


def _real_number(text: str, ok, expected: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not ok(value):
        raise argparse.ArgumentTypeError(f"expected {expected}. Received: {text!r}")
    return value


def add_tta_argument(parser: argparse.ArgumentParser, modes, unit: str = "image") -> None:
    """`--tta [MODE]`, one meaning in every script: a bare `--tta` is "mirror"."""
    parser.add_argument(
        "--tta", nargs="?", const="mirror", default="none", choices=tuple(modes),
        help=f"test-time augmentation: average the probabilities of each {unit} and "
        f"its mirror image (--tta, or --tta mirror), or of ten crops (--tta ten_crop: "
        f"ten forward passes per {unit})",
    )


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1 (a batch size, a count)."""
    return _whole_number(text, lambda v: v >= 1, "a whole number of at least 1")


def non_negative_int(text: str) -> int:
    """An argparse type: a whole number of at least 0 (0 often meaning "none")."""
    return _whole_number(text, lambda v: v >= 0, "a whole number of at least 0")


def positive_float(text: str) -> float:
    """An argparse type: a number above 0 (a learning rate)."""
    return _real_number(text, lambda v: v > 0, "a number above 0")


def non_negative_float(text: str) -> float:
    """An argparse type: a number of at least 0 (a weight decay)."""
    return _real_number(text, lambda v: v >= 0, "a number of at least 0")


def open_fraction(text: str) -> float:
    """An argparse type: a fraction strictly between 0 and 1 (a share held out)."""
    return _real_number(text, lambda v: 0 < v < 1, "a number between 0 and 1, both excluded")


def unit_fraction(text: str) -> float:
    """An argparse type: a number from 0 up to, not including, 1 (a smoothing, a momentum)."""
    return _real_number(text, lambda v: 0 <= v < 1, "a number from 0 up to, not including, 1")


def zoom_choice(text: str) -> float | str | None:
    """An argparse type: "recipe", "none" or the centre share seen at
    inference, a number above 0 up to 1 (1: the whole image)."""
    lowered = text.strip().lower()
    if lowered in ("recipe", "none"):
        return None if lowered == "none" else "recipe"
    value = _real_number(text, lambda v: 0 < v <= 1,
                         "'recipe', 'none' or a number above 0 up to 1")
    return None if value == 1 else value


def port_number(text: str) -> int:
    """An argparse type: a TCP port, 0 to 65535 (0: any free one)."""
    return _whole_number(text, lambda v: 0 <= v <= 65535,
                         "a port number from 0 to 65535 (0: any free port)")


def check_output_folder(option: str, path) -> None:
    """Refuses, in one line before anything loads, a folder to write that
    cannot be made: one that is a file, or lies below one."""
    folder = Path(path)
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        where = "is a file" if existing == folder else f"{existing} is a file"
        sys.exit(f"error: {path}: {where}, and {option} needs a folder. "
                 f"Choose another {option}.")


def select_backend(argv) -> str:
    """Sets KERAS_BACKEND from --backend; must run before Keras is imported.

    Also quiets the libraries for the scripts' users (`quiet_libraries`).
    """
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
    quiet_libraries()
    return backend


# Keras' ONNX export tests `hasattr(np, "object")`, which NumPy 2 answers with
# this warning on every `export.py --format onnx`.
_QUIET_WARNINGS = (
    (FutureWarning, r"In the future `np\.object` will be defined"),
)
# Lines that TensorFlow's C++ libraries write while they load, before their
# log level applies (absl's "before InitializeLog" notice; "oneDNN custom
# operations are on", "Could not find cuda drivers" at INFO), and LiteRT's
# note on its CPU delegate.
_ABSL_LINE = re.compile(r"([IWE])\d{4} [\d:. ]+ \d+ \S+:\d+\] ")
_NATIVE_NOTES = ("WARNING: All log messages before absl::InitializeLog() is called",
                 "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.")


def quiet_libraries() -> None:
    """Keeps the libraries' notes for developers out of what the scripts print.

    TensorFlow logs errors that are none on a machine without a GPU
    ("failed call to cuInit"): its C++ log level goes to 3 (fatal only)
    unless TF_CPP_MIN_LOG_LEVEL is set. Known harmless Python warnings are
    ignored by their message.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    for category, message in _QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)


def _tf_log_level() -> int:
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        return 0


def _is_native_noise(line: str, level: int) -> bool:
    if level < 1:
        return False
    if line.startswith(_NATIVE_NOTES):
        return True
    match = _ABSL_LINE.match(line)
    return bool(match) and "IWE".index(match.group(1)) < level


@contextlib.contextmanager
def native_log_filtered():
    """Drops what TensorFlow's C++ code writes straight to the standard error
    below TF_CPP_MIN_LOG_LEVEL while the block runs (importing it, running
    LiteRT): before its logging starts, it ignores that level.

    The file descriptor itself is caught; everything else written meanwhile,
    errors included, is passed on when the block ends. TF_CPP_MIN_LOG_LEVEL=0
    lets everything through.
    """
    level = _tf_log_level()
    if level < 1:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            text = caught.read().decode(errors="replace")
            kept = "".join(line for line in text.splitlines(keepends=True)
                           if not _is_native_noise(line, level))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()


def _raised_by_package(err: BaseException) -> bool:
    frames = traceback.extract_tb(err.__traceback__)
    return bool(frames) and frames[-1].filename.startswith(_PACKAGE_DIR)


def _passed_through_package(err: BaseException) -> bool:
    return any(frame.filename.startswith(_PACKAGE_DIR)
               for frame in traceback.extract_tb(err.__traceback__))


# What to do about the file-system errors a user's path can meet.
_OS_ERROR_ADVICE = {
    errno.ENOTDIR: "A part of the path is a file, not a folder: choose another path.",
    errno.EISDIR: "Expected a file there, found a folder: choose another path.",
    errno.EACCES: "Choose a place you may write to, or change its permissions.",
    errno.EPERM: "Choose a place you may write to, or change its permissions.",
    errno.EROFS: "Choose a place on a writable disk.",
    errno.ENOSPC: "Free some space, or choose another disk.",
}


def describe_os_error(err: OSError) -> str:
    """One line for a file-system error on a user's path: the path, the
    problem, and what to do where that is clear."""
    path = err.filename
    problem = err.strerror or str(err)
    advice = _OS_ERROR_ADVICE.get(err.errno, "")
    if err.errno == errno.EEXIST and os.path.isfile(path):
        problem = "is a file, where a folder is needed"
        advice = "Choose another path, or move the file away."
    line = f"error: {path}: {problem}"
    if err.filename2 is not None:
        line += f" (with {err.filename2})"
    return f"{line}. {advice}".rstrip() if advice else line


def run(main) -> None:
    """Runs `main()`; errors a user can fix end the program with one line.

    They are the package's own errors, and any file-system error on a path
    (an --output-dir below a file, a folder without write permission),
    wherever in the libraries it was raised. Programming errors (TypeError,
    ...) keep their traceback.
    """
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(
            "\nInterrupted. Run the same command again to resume from the last "
            "finished epoch."
        )
    except OSError as err:
        if err.filename is not None:
            sys.exit(describe_os_error(err))
        if not _passed_through_package(err):
            raise
        sys.exit(f"error: {err}")
    except (ValueError, RuntimeError, ImportError) as err:
        if not _raised_by_package(err):
            raise
        sys.exit(f"error: {err}")
