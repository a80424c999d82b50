"""What differs between the Keras backends, one module per backend.

Every module here has the same names, so the rest of the package asks
`backends.get()` rather than testing the backend's name, and a reader sees
in one file everything jax (or tensorflow, or torch) does its own way:

- `PREFERRED_DATA_FORMAT`: the layout the backend trains the zoo fastest in
  (benchmarks/README.md, "Training throughput under torch: layout and
  batch norm").
- `runs_data_format(data_format)`: whether the backend computes the zoo in
  that layout on this machine.
- `FUSED_BATCH_NORM_FORMAT` and `fused_batch_norm(x, gamma, beta, epsilon)`:
  the layout in which the backend has a single-kernel training batch norm,
  and that kernel (None where it has none worth calling).
- `COMPILES_AFFINE_WARP`: whether a model holding `RandomAffine` may be
  compiled by the backend.
- `accelerators()`: the GPUs or TPUs the backend computes on.
- `compile_forward(model)`: a fast function from a float32 NumPy batch to
  NumPy class probabilities, for inference.
- `MULTI_HOST` and `data_parallel(multi_host)`: whether training may span
  several hosts, and the data-parallel layout over the devices (None where
  the backend does not train data parallel here).

Backends other than these three (numpy, openvino) get `generic`, which
predicts but neither accelerates nor distributes.
"""

import importlib
from dataclasses import dataclass
from types import ModuleType

import keras

from fer_keras.errors import install_extra

NAMES = ("jax", "tensorflow", "torch")


@dataclass(frozen=True)
class DataParallel:
    """How a data-parallel run is laid out over the devices it found."""

    strategy: str
    devices: int
    device_kind: str
    processes: int = 1
    process_index: int = 0
    tf_strategy: object = None


def get(name: str | None = None) -> ModuleType:
    """The module of backend `name`, or of the current Keras backend.

    Raises an `ImportError` saying what to install where the backend's
    framework is missing.
    """
    name = name or keras.backend.backend()
    module = name if name in NAMES else "generic"
    try:
        return importlib.import_module(f"{__name__}.{module}")
    except ModuleNotFoundError as err:
        if err.name != name and not str(err.name).startswith(f"{name}."):
            raise
        raise ImportError(
            f"The {name} backend needs {name} installed: {install_extra(name)}. "
            f"Received: backend={name!r}, {err}"
        ) from err
