"""The torch backend's own ways: channels-first layouts, PyTorch's batch-norm
kernel, and eager inference without autograd."""

import torch

import keras

# PyTorch's batch-norm kernel applies channels-first, where the zoo trains
# fastest under torch (benchmarks/README.md, "Training throughput under
# torch: layout and batch norm").
PREFERRED_DATA_FORMAT = "channels_first"
FUSED_BATCH_NORM_FORMAT = "channels_first"
COMPILES_AFFINE_WARP = False
MULTI_HOST = False
# Keras' torch backend has no data-parallel distribution.
data_parallel = None


def runs_data_format(data_format: str) -> bool:
    return True


def fused_batch_norm(x, gamma, beta, epsilon: float):
    """Channels-first training batch norm in one kernel: (outputs, batch mean,
    unbiased batch variance)."""
    # With momentum 1 the kernel overwrites these buffers with the batch
    # mean and unbiased variance, outside the autograd graph.
    mean = torch.zeros(x.shape[1], device=x.device)
    variance = torch.ones(x.shape[1], device=x.device)
    outputs = torch.nn.functional.batch_norm(
        x, mean, variance, gamma, beta, training=True, momentum=1.0, eps=epsilon
    )
    return outputs, mean, variance


def accelerators() -> list[str]:
    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]


def compile_forward(model: keras.Model):
    def run(x):
        with torch.inference_mode():
            logits = model(keras.ops.convert_to_tensor(x), training=False)
            return torch.softmax(logits.float(), dim=-1).cpu().numpy()

    return run
