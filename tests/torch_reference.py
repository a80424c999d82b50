"""Test helpers around the pure-PyTorch models of `fer_keras.torch_reference`."""

import torch
from torch import nn

from fer_keras.torch_reference import ORIGINAL_MODELS, REFERENCES

__all__ = ["ORIGINAL_MODELS", "REFERENCES", "random_reference"]


def random_reference(name: str, seed: int = 0, **kwargs) -> nn.Module:
    """A reference model in eval mode with random weights and BN statistics.

    The running statistics are randomised too (they start at 0 and 1), so a
    conversion that drops or misplaces them changes the logits.
    """
    torch.manual_seed(seed)
    model = REFERENCES[name](**kwargs)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    return model.eval()
