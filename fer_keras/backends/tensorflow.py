"""The tensorflow backend's own ways: a traced inference function, the
fused batch-norm kernel, and `tf.distribute` for several devices."""

import functools

import tensorflow as tf

import keras

from fer_keras.backends import DataParallel

# channels-last trains the zoo faster here (benchmarks/README.md,
# "Training throughput under torch: layout and batch norm").
PREFERRED_DATA_FORMAT = "channels_last"
FUSED_BATCH_NORM_FORMAT = "channels_last"
# TensorFlow's warp op has no XLA kernel, so a model holding `RandomAffine`
# must not be compiled with XLA.
COMPILES_AFFINE_WARP = False
MULTI_HOST = False


def runs_data_format(data_format: str) -> bool:
    """Channels-first convolutions and pooling run on the CPU only through
    oneDNN, which TensorFlow turns on for some x86 CPUs (AVX-512 ones such as
    Intel's since Cascade Lake), not, for example, on AVX2-only AMD EPYCs."""
    return data_format != "channels_first" or _runs_channels_first()


@functools.cache
def _runs_channels_first() -> bool:
    try:
        x = tf.nn.conv2d(tf.zeros((1, 1, 4, 4)), tf.zeros((3, 3, 1, 1)), 1, "SAME",
                         data_format="NCHW")
        tf.nn.max_pool2d(x, 2, 2, "VALID", data_format="NCHW")
    except (tf.errors.UnimplementedError, tf.errors.InvalidArgumentError):
        return False
    return True


def fused_batch_norm(x, gamma, beta, epsilon: float):
    """Channels-last training batch norm in one kernel: (outputs, batch mean,
    unbiased batch variance)."""
    return tf.compat.v1.nn.fused_batch_norm(
        x, gamma, beta, epsilon=epsilon, is_training=True, data_format="NHWC"
    )


def accelerators() -> list[str]:
    devices = tf.config.list_logical_devices()
    return [d.name for d in devices if d.device_type in ("GPU", "TPU")]


def compile_forward(model: keras.Model):
    """A `tf.function` traced once for any batch size, without XLA (it
    compiles a new program for every batch size it meets)."""
    height, width = model.inputs[0].shape[1:3]

    @tf.function(
        input_signature=[tf.TensorSpec([None, height, width, 1], tf.float32)],
        jit_compile=False,
    )
    def run(x):
        return tf.nn.softmax(tf.cast(model(x, training=False), tf.float32), axis=-1)

    return lambda x: run(x).numpy()


def data_parallel(multi_host: bool) -> DataParallel:
    """A `tf.distribute` strategy over this host's devices."""
    strategy = _strategy()
    worker = str(strategy.extended.worker_devices[0])
    return DataParallel(
        strategy=f"tf.distribute.{type(strategy).__name__}",
        devices=int(strategy.num_replicas_in_sync),
        device_kind=worker.rsplit("device:", 1)[-1].split(":")[0],
        tf_strategy=strategy,
    )


def _strategy():
    """A TPU's strategy, else one mirrored over the GPUs, else over the CPUs.

    `MirroredStrategy()` alone takes a single CPU whatever logical CPU devices
    were configured (`tf.config.set_logical_device_configuration`), so on a
    machine without GPUs the CPUs are named.
    """
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    except (ValueError, RuntimeError):
        pass
    if tf.config.list_logical_devices("GPU"):
        return tf.distribute.MirroredStrategy()
    cpus = [device.name for device in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(cpus)
