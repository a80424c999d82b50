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


class Placement:
    """Where a run trains: one device, or data parallel over several.

    Made before the data loads, so a batch that does not split evenly over
    the devices is refused at once; `to_dict` is what run.json records, so a
    user can tell whether an 8-GPU or TPU run was parallel at all.
    """

    def __init__(self, distribute: bool, global_batch: int):
        self.distribute = bool(distribute)
        self.global_batch = int(global_batch)
        self._strategy = None
        backend = keras.backend.backend()
        if not self.distribute:
            found = accelerators()
            self.strategy, self.devices = "single device", 1
            self.device_kind = found[0] if found else "CPU"
        elif backend == "jax":
            import jax

            devices = jax.devices()
            self.strategy = "keras.distribution.DataParallel"
            self.devices, self.device_kind = len(devices), devices[0].device_kind
        elif backend == "tensorflow":
            self._strategy = _tf_strategy()
            self.strategy = f"tf.distribute.{type(self._strategy).__name__}"
            self.devices = int(self._strategy.num_replicas_in_sync)
            worker = str(self._strategy.extended.worker_devices[0])
            self.device_kind = worker.rsplit("device:", 1)[-1].split(":")[0]
        else:
            raise TrainingError(
                "Training on several devices is supported under the jax and tensorflow "
                f"backends. Received: backend={backend!r}; use --backend jax or "
                "--backend tensorflow, or drop --distribute."
            )
        if self.global_batch % self.devices:
            lower = self.global_batch - self.global_batch % self.devices
            valid = [b for b in (lower, lower + self.devices) if b > 0]
            raise TrainingError(
                f"--batch-size {self.global_batch} does not split evenly over "
                f"{self.devices} {self.device_kind} devices. Expected a multiple of "
                f"{self.devices}, such as {' or '.join(map(str, valid))}. "
                f"Received: batch_size={self.global_batch}"
            )

    @property
    def per_device_batch(self) -> int:
        return self.global_batch // self.devices

    def scope(self):
        """The context to build and compile the model in."""
        if self._strategy is not None:
            return self._strategy.scope()
        if self.distribute:
            keras.distribution.set_distribution(keras.distribution.DataParallel())
        return contextlib.nullcontext()

    def to_dict(self) -> dict:
        return {
            "strategy": self.strategy,
            "devices": self.devices,
            "device_kind": self.device_kind,
            "global_batch": self.global_batch,
            "per_device_batch": self.per_device_batch,
        }

    def describe(self) -> str:
        if self.devices == 1 and not self.distribute:
            return f"one {self.device_kind} device, batch {self.global_batch}"
        return (f"{self.devices} {self.device_kind} devices ({self.strategy}), batch "
                f"{self.global_batch} = {self.devices} x {self.per_device_batch}")


def _tf_strategy():
    import tensorflow as tf

    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    except (ValueError, RuntimeError):
        return tf.distribute.MirroredStrategy()


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
