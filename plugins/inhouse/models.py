"""In-house networks for small images, trained with ``invkit train-classifier``.

* ``SmallCNN`` for 28-32 px (MNIST, Fashion-MNIST, CIFAR): three 3x3 convolutions (the last two with stride
  2) and two linear layers; about 0.2M parameters at the default width (16), a checkpoint under 1 MB.
* ``ResNet18S`` for 32-64 px (CIFAR, Tiny ImageNet): ResNet-18 (He et al. 2016, four stages of two basic
  blocks) with the small-image stem used for CIFAR: one 3x3 convolution, no max-pool. ``width`` is the
  first stage's channel count (64 is the standard ResNet-18, 11M parameters).
* ``VGG11S`` for 28-64 px: VGG-11 with batch norm (Simonyan & Zisserman 2015, configuration "A"), its 4096-wide
  fully connected head replaced by global average pooling and one linear layer (the usual small-image form).
  A different architecture from the two above, trained as an independent *evaluator* for bench.

All three networks take normalised ``(N, C, H, W)`` batches at their ``input_size`` and return logits; the
``invkit.Classifier`` around them does the resizing and normalisation.
"""

from __future__ import annotations

import torch
from torch import nn


class SmallCNN(nn.Module):
    """conv(w) -> conv(2w, stride 2) -> conv(2w, stride 2) -> linear(128) -> linear(num_classes), ReLU between.

    Args:
        channels: input channels (1 for MNIST, 3 for RGB).
        num_classes: logits out.
        input_size: side of the square input (28 for MNIST, 32 for CIFAR).
        width: channels of the first convolution.
    """

    def __init__(self, channels: int = 1, num_classes: int = 10, input_size: int = 28, width: int = 16):
        super().__init__()
        side = (input_size + 3) // 4  # two stride-2 convolutions with padding 1: ceil(s / 4)
        self.features = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1),
            nn.ReLU(inplace=True),
        )
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(2 * width * side * side, 128),
            nn.ReLU(inplace=True),
            nn.Linear(128, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and an identity (or 1x1 projection) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet18S(nn.Module):
    """ResNet-18 for small images: 3x3 stem, no max-pool, stages of width w, 2w, 4w, 8w (strides 1, 2, 2, 2).

    Args:
        channels: input channels.
        num_classes: logits out.
        input_size: side of the square input (any size works: the head pools globally).
        width: channels of the first stage (64 = standard ResNet-18).
    """

    def __init__(self, channels: int = 3, num_classes: int = 10, input_size: int = 32, width: int = 64):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)
        )
        stages, cin = [], width
        for i, stride in enumerate((1, 2, 2, 2)):
            cout = width * 2**i
            stages.append(nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)))
            cin = cout
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.stages(self.stem(x))).flatten(1))


class VGG11S(nn.Module):
    """VGG-11 with batch norm for small images: eight 3x3 convolutions of w, 2w, 4w, 4w, 8w, 8w, 8w, 8w channels
    (VGG configuration "A"), each followed by batch norm and ReLU, 2x2 max-pools after the 1st, 2nd, 4th, 6th and
    8th, then global average pooling and one linear layer.

    A max-pool is skipped when the map is already 1 px, so 28 px inputs (4 pools: 14, 7, 3, 1) work as well as 32
    and 64 px ones (5 pools).

    Args:
        channels: input channels.
        num_classes: logits out.
        input_size: side of the square input; sets how many pools run.
        width: channels of the first convolution (64 = the published VGG-11).
    """

    CONFIG = (1, "M", 2, "M", 4, 4, "M", 8, 8, "M", 8, 8, "M")  # multiples of width; "M": 2x2 max-pool

    def __init__(self, channels: int = 3, num_classes: int = 10, input_size: int = 32, width: int = 64):
        super().__init__()
        layers: list[nn.Module] = []
        cin, side = channels, input_size
        for item in self.CONFIG:
            if item == "M":
                if side >= 2:
                    layers.append(nn.MaxPool2d(2))
                    side //= 2
                continue
            cout = width * int(item)
            layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.features(x)).flatten(1))
