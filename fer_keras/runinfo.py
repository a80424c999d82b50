"""What a results file records about where it was made."""

import importlib.metadata
import os
import platform
import sys

import keras

from fer_keras import backends

_PACKAGES = ("fer-keras", "keras", "numpy", "jax", "jaxlib", "tensorflow", "torch",
             "tf-keras-vis", "opencv-python-headless")


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def accelerators() -> list[str]:
    """Names of the GPUs or TPUs the current backend computes on (empty on CPU)."""
    return backends.get().accelerators()


def cpu_info() -> tuple[str, set[str]]:
    """This CPU's model name and instruction-set flags, from /proc/cpuinfo.

    Elsewhere than Linux: `platform.processor()` and no flags.
    """
    model, flags = platform.processor(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    return model, flags


def cpu_has_bfloat16(flags: set[str] | None = None) -> bool:
    """Whether this CPU computes in bfloat16 natively (AVX512-BF16 or AMX).

    Without them, bfloat16 is emulated and training gets slower, not faster.
    """
    flags = cpu_info()[1] if flags is None else flags
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def device_description() -> str:
    """The device Keras computes on, in words (e.g. 'cpu (2 cores)' or a GPU name)."""
    names = accelerators()
    if not names:
        return f"cpu ({os.cpu_count()} cores, {platform.processor() or platform.machine()})"
    return f"{len(names)} x {names[0]}"


def environment_info() -> dict:
    """Backend, device and package versions, for run.json and metrics.json."""
    return {
        "backend": keras.backend.backend(),
        "device": device_description(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "versions": {p: v for p in _PACKAGES if (v := _version(p)) is not None},
    }
