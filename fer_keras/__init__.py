"""fer-keras: facial expression recognition on FER2013 with Keras 3.

Runs under JAX, TensorFlow and PyTorch; choose the backend with
`KERAS_BACKEND` before Keras is imported (the commands do it for you with
`--backend`). Importing this package does not import Keras: the names below
load on first use, so `fer_keras.cli` can choose the backend first.

The package's layers are registered with Keras, so that `.keras` files using
them load with plain `keras.saving.load_model`, as soon as Keras is in: at
`import fer_keras` where Keras was imported before, else at the first use of
a name below (`fer_keras.load_model` and the others need nothing more).
"""

import importlib
import sys

__version__ = "0.1.0"

# Public name -> the module that defines it, imported on first access.
_LAZY = {
    "CBAM": "fer_keras.layers",
    "FixedKernels": "fer_keras.layers",
    "CLASS_NAMES": "fer_keras.classes",
    "available_models": "fer_keras.models",
    "build_ensemble": "fer_keras.ensemble",
    "build_model": "fer_keras.models",
    "load_model": "fer_keras.loading",
    "load_pretrained": "fer_keras.loading",
}

__all__ = [*sorted(_LAZY), "MODELS", "__version__"]


def __getattr__(name: str):
    # `MODELS` is read from the registry at each access (and by `from
    # fer_keras import MODELS`), so models registered after import are in it.
    if name == "MODELS":
        return importlib.import_module("fer_keras.models").available_models()
    if name in _LAZY:
        importlib.import_module("fer_keras.layers")  # registers the layers
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, "MODELS"})


if "keras" in sys.modules:
    # Keras' backend is chosen already; nothing is gained by waiting.
    importlib.import_module("fer_keras.layers")
