"""fer-keras: facial expression recognition on FER2013 with Keras 3.

Runs under JAX, TensorFlow and PyTorch; choose the backend with
`KERAS_BACKEND` before importing Keras (the scripts do it for you).
Importing the package registers its layers, so `.keras` files that use them
load with plain `keras.saving.load_model`.
"""

from fer_keras.classes import CLASS_NAMES
from fer_keras.layers import CBAM, FixedKernels
from fer_keras.loading import load_model, load_pretrained
from fer_keras.models import available_models, build_model

__version__ = "0.1.0"

__all__ = [
    "CBAM",
    "CLASS_NAMES",
    "FixedKernels",
    "MODELS",
    "available_models",
    "build_model",
    "load_model",
    "load_pretrained",
    "__version__",
]


def __getattr__(name: str):
    # `MODELS` is read from the registry at each access (and by `from
    # fer_keras import MODELS`), so models registered after import are in it.
    if name == "MODELS":
        return available_models()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), "MODELS"})
