"""The original's four models in plain PyTorch, layer for layer as the Keras zoo builds them.

They are the yardstick the project measures itself against: the parity
tests check that a `state_dict` of one of them converted by
`fer_keras.convert` gives the same logits as the Keras model, and the
benchmarks time the original's eager training loop on them. Parameter
names follow what the original PyTorch course project would have used
(`conv1.weight`, `bn1.running_mean`, `fc1.weight`,
`cbam1.channel_attention.fc1.weight`, ...); `fer_keras/convert.py` documents
them per model. Unlike the original, the fixed filter bank is really applied;
`original_model` builds a model as the original really trained it, without.

Importing this module imports torch, whatever the Keras backend.
"""

from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from fer_keras.errors import unknown
from fer_keras.layers import fixed_kernel_bank


def _scale(x):
    # Raw 0-255 grey pixels, NHWC like the Keras models, to [-1, 1] NCHW.
    return (x / 127.5 - 1.0).permute(0, 3, 1, 2)


class FixedBank(nn.Module):
    """The 5 hand-made 3x3 kernels as a frozen bias-free conv, padding 1."""

    def __init__(self):
        super().__init__()
        bank = np.transpose(fixed_kernel_bank(), (3, 2, 0, 1))
        self.weight = nn.Parameter(torch.from_numpy(bank.copy()), requires_grad=False)

    def forward(self, x):
        return F.conv2d(x, self.weight, padding=1)


class PlainCNN(nn.Module):
    """The baseline (`fixed_kernels=False`) and kernels models."""

    def __init__(self, fixed_kernels, num_classes=7):
        super().__init__()
        self.fixed_conv = FixedBank() if fixed_kernels else None
        in_channels = 5 if fixed_kernels else 1
        self.conv1 = nn.Conv2d(in_channels, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.conv3 = nn.Conv2d(64, 128, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.dropout = nn.Dropout(0.25)
        self.fc1 = nn.Linear(128 * 6 * 6, 256)
        self.fc_dropout = nn.Dropout(0.5)
        self.fc2 = nn.Linear(256, num_classes)

    def forward(self, x):
        x = _scale(x)
        if self.fixed_conv is not None:
            x = self.fixed_conv(x)
        for conv in (self.conv1, self.conv2, self.conv3):
            x = self.dropout(self.pool(F.relu(conv(x))))
        x = self.fc_dropout(F.relu(self.fc1(torch.flatten(x, 1))))
        return self.fc2(x)


class ResidualBlock(nn.Module):
    def __init__(self, in_channels, channels, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(channels),
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class SimpleResNet(nn.Module):
    def __init__(self, num_classes=7, fixed_kernels=True):
        super().__init__()
        self.fixed_conv = FixedBank() if fixed_kernels else nn.Identity()
        self.conv1 = nn.Conv2d(5 if fixed_kernels else 1, 32, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.layer1 = ResidualBlock(32, 64, 1)
        self.layer2 = ResidualBlock(64, 128, 2)
        self.layer3 = ResidualBlock(128, 256, 2)
        self.fc = nn.Linear(256, num_classes)

    def forward(self, x):
        x = self.fixed_conv(_scale(x))
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.mean(x, dim=(2, 3)))


class ChannelAttention(nn.Module):
    def __init__(self, channels, reduction=16):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, max(1, channels // reduction), 1, bias=False)
        self.fc2 = nn.Conv2d(max(1, channels // reduction), channels, 1, bias=False)

    def forward(self, x):
        pooled = F.adaptive_avg_pool2d(x, 1)
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(pooled))))


class SpatialAttention(nn.Module):
    def __init__(self, kernel_size=7):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x):
        maps = torch.cat(
            [torch.amax(x, dim=1, keepdim=True), torch.mean(x, dim=1, keepdim=True)],
            dim=1,
        )
        return x * torch.sigmoid(self.conv(maps))


class CBAM(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.channel_attention = ChannelAttention(channels)
        self.spatial_attention = SpatialAttention()

    def forward(self, x):
        return self.spatial_attention(self.channel_attention(x))


class CBAMNet(nn.Module):
    def __init__(self, num_classes=7, fixed_kernels=True):
        super().__init__()
        self.fixed_conv = FixedBank() if fixed_kernels else nn.Identity()
        widths = [(5 if fixed_kernels else 1, 64), (64, 64), (64, 128), (128, 128), (128, 256)]
        for i, (cin, cout) in enumerate(widths, start=1):
            setattr(self, f"conv{i}", nn.Conv2d(cin, cout, 3, padding=1, bias=False))
            setattr(self, f"bn{i}", nn.BatchNorm2d(cout))
        self.cbam1 = CBAM(64)
        self.cbam2 = CBAM(128)
        self.cbam3 = CBAM(256)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(256 * 6 * 6, 512)
        self.dropout = nn.Dropout(0.5)
        self.fc2 = nn.Linear(512, num_classes)

    def _conv(self, x, i):
        return F.relu(getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(x)))

    def forward(self, x):
        x = self.fixed_conv(_scale(x))
        x = self.pool(self.cbam1(self._conv(self._conv(x, 1), 2)))
        x = self.pool(self.cbam2(self._conv(self._conv(x, 3), 4)))
        x = self.pool(self.cbam3(self._conv(x, 5)))
        x = self.dropout(F.relu(self.fc1(torch.flatten(x, 1))))
        return self.fc2(x)


# The zoo entries of the original PyTorch project: only these have a
# reference here and checkpoints for `fer_keras.convert` to load; the zoo's
# later models (resnet18, vgg) exist in Keras alone.
ORIGINAL_MODELS = ("baseline", "kernels", "resnet", "cbam")

REFERENCES: dict[str, Callable[..., nn.Module]] = {
    "baseline": lambda: PlainCNN(fixed_kernels=False),
    "kernels": lambda: PlainCNN(fixed_kernels=True),
    "resnet": SimpleResNet,
    "cbam": CBAMNet,
}


def original_model(name: str) -> nn.Module:
    """The model `name` as the original project really trained it.

    Its filter bank was built but never applied, so the first conv took the
    grey image itself: a `kernels` model was a `baseline` one.
    """
    if name not in ORIGINAL_MODELS:
        raise unknown("model", name, ORIGINAL_MODELS, "name")
    if name in ("baseline", "kernels"):
        return PlainCNN(fixed_kernels=False)
    return REFERENCES[name](fixed_kernels=False)
