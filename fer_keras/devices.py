"""How a run uses the devices it has: the dtype policy (mixed precision) and
the distribution over several devices, the backend-specific part of training.
"""

import contextlib

import keras

from fer_keras.errors import TrainingError
from fer_keras.runinfo import accelerators, cpu_has_bfloat16


def auto_precision(devices: list[str], cpu_bfloat16: bool) -> str:
    """The dtype policy `--mixed-precision auto` picks for these devices.

    float16 on GPUs, bfloat16 on TPUs and on CPUs with native bfloat16;
    float32 on other CPUs, where emulated bfloat16 measured 2.4x slower.
    """
    if devices:
        return "mixed_bfloat16" if "TPU" in devices[0].upper() else "mixed_float16"
    return "mixed_bfloat16" if cpu_bfloat16 else "float32"


def set_precision(mixed_precision: str | None) -> str:
    """Sets the global dtype policy `--mixed-precision` asks for; returns its name."""
    if mixed_precision in (None, "", "off", "float32"):
        policy = "float32"
    elif mixed_precision == "auto":
        policy = auto_precision(accelerators(), cpu_has_bfloat16())
    elif mixed_precision in ("bfloat16", "float16"):
        policy = f"mixed_{mixed_precision}"
    else:
        raise ValueError(
            "`mixed_precision` must be one of off, auto, bfloat16, float16. "
            f"Received: mixed_precision={mixed_precision!r}"
        )
    keras.config.set_dtype_policy(policy)
    return policy


def distribution_scope(distribute: bool):
    """A context to build and compile the model in, for several devices."""
    if not distribute:
        return contextlib.nullcontext()
    backend = keras.backend.backend()
    if backend == "jax":
        keras.distribution.set_distribution(keras.distribution.DataParallel())
        return contextlib.nullcontext()
    if backend == "tensorflow":
        import tensorflow as tf

        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
            strategy = tf.distribute.TPUStrategy(resolver)
        except (ValueError, RuntimeError):
            strategy = tf.distribute.MirroredStrategy()
        return strategy.scope()
    raise TrainingError(
        "Training on several devices is supported under the jax and tensorflow "
        f"backends. Received: backend={backend!r}; use --backend jax or "
        "--backend tensorflow, or drop --distribute."
    )




@contextlib.contextmanager
def preserved_global_state():
    """Puts back the global dtype policy and distribution a run changed.

    A notebook that trains and then builds another model must not inherit the
    run's mixed precision or device layout, whether the run ended or raised.
    """
    policy = keras.config.dtype_policy()
    distribution = keras.distribution.distribution()
    try:
        yield
    finally:
        keras.config.set_dtype_policy(policy)
        keras.distribution.set_distribution(distribution)
