"""Backends without a module of their own (numpy, openvino): they predict
through Keras alone, on the CPU, and do not train data parallel."""

import keras

PREFERRED_DATA_FORMAT = "channels_last"
FUSED_BATCH_NORM_FORMAT = None
fused_batch_norm = None
COMPILES_AFFINE_WARP = False
MULTI_HOST = False
data_parallel = None


def runs_data_format(data_format: str) -> bool:
    return True


def accelerators() -> list[str]:
    return []


def compile_forward(model: keras.Model):
    def run(x):
        logits = model(x, training=False)
        return keras.ops.convert_to_numpy(keras.ops.softmax(logits, axis=-1))

    return run
