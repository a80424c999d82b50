"""The jax backend's own ways: XLA compiles everything, so inference is one
jitted function of the weights, batch norm needs no kernel of its own, and
training spans several hosts through `jax.distributed`."""

import jax
import numpy as np

import keras

from fer_keras.backends import DataParallel

# channels-last trains the zoo faster here (benchmarks/README.md,
# "Training throughput under torch: layout and batch norm").
PREFERRED_DATA_FORMAT = "channels_last"
# XLA fuses Keras' own batch norm into the surrounding ops.
FUSED_BATCH_NORM_FORMAT = None
fused_batch_norm = None
# `RandomAffine`'s warp is jax code that XLA compiles; without compiling,
# a model holding it would train op by op.
COMPILES_AFFINE_WARP = True
MULTI_HOST = True


def runs_data_format(data_format: str) -> bool:
    return True


def accelerators() -> list[str]:
    return [d.device_kind for d in jax.devices() if d.platform != "cpu"]


def compile_forward(model: keras.Model):
    """One jitted softmax forward; batches are padded to a power of two so
    that a stream of odd-sized batches compiles a few shapes, not one each."""

    def forward(trainable, non_trainable, x):
        logits, _ = model.stateless_call(trainable, non_trainable, x, training=False)
        return jax.nn.softmax(logits.astype("float32"), axis=-1)

    compiled = jax.jit(forward)

    def run(x):
        n = len(x)
        size = padded_size(n)
        if size != n:
            x = np.concatenate([x, np.zeros((size - n, *x.shape[1:]), x.dtype)])
        # The current weights, read each call, so a model trained further is seen.
        probs = compiled(
            [v.value for v in model.trainable_variables],
            [v.value for v in model.non_trainable_variables],
            x,
        )
        return np.asarray(probs)[:n]

    return run


def padded_size(n: int) -> int:
    """The next power of two from n."""
    return 1 << max(n - 1, 0).bit_length()


def data_parallel(multi_host: bool) -> DataParallel:
    """Keras' `DataParallel` over every device of every host."""
    if multi_host:
        initialize_hosts()
    devices = jax.devices()
    return DataParallel(
        strategy="keras.distribution.DataParallel",
        devices=len(devices),
        device_kind=devices[0].device_kind,
        processes=jax.process_count(),
        process_index=jax.process_index(),
    )


def initialize_hosts() -> None:
    """Joins this process to a multi-host jax run, once, before any device is used.

    `keras.distribution.initialize` reads KERAS_DISTRIBUTION_JOB_ADDRESSES
    (the coordinator, process 0's host:port), KERAS_DISTRIBUTION_NUM_PROCESSES
    and KERAS_DISTRIBUTION_PROCESS_ID; without them jax finds the cluster
    itself on a Cloud TPU slice, under SLURM or Open MPI.
    """
    from fer_keras.errors import TrainingError

    if jax.distributed.is_initialized():
        return
    try:
        keras.distribution.initialize()
    except (ValueError, RuntimeError) as err:
        raise TrainingError(
            "Could not join the multi-host run. Expected a Cloud TPU slice, SLURM or "
            "Open MPI that jax detects, or KERAS_DISTRIBUTION_JOB_ADDRESSES (process "
            "0's host:port), KERAS_DISTRIBUTION_NUM_PROCESSES and "
            f"KERAS_DISTRIBUTION_PROCESS_ID set on every host. Received: {err}"
        ) from err
