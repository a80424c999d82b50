"""What a results file records about where it was made."""

import importlib.metadata
import os
import platform
import sys

import keras

_PACKAGES = ("fer-keras", "keras", "numpy", "jax", "jaxlib", "tensorflow", "torch",
             "tf-keras-vis", "opencv-python-headless")


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def device_description() -> str:
    """The device Keras computes on, in words (e.g. 'cpu (2 cores)' or a GPU name)."""
    devices = keras.distribution.list_devices()
    accelerators = [d for d in devices if not d.lower().startswith("cpu")]
    if not accelerators:
        return f"cpu ({os.cpu_count()} cores, {platform.processor() or platform.machine()})"
    backend = keras.backend.backend()
    if backend == "torch":
        import torch

        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    elif backend == "jax":
        import jax

        names = [d.device_kind for d in jax.devices()]
    else:
        names = accelerators
    return f"{len(names)} x {names[0]}" if names else ", ".join(accelerators)


def environment_info() -> dict:
    """Backend, device and package versions, for run.json and metrics.json."""
    return {
        "backend": keras.backend.backend(),
        "device": device_description(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "versions": {p: v for p in _PACKAGES if (v := _version(p)) is not None},
    }
