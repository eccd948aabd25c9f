"""The PGD-trained ResNet-152 of Xie et al. 2019, converted on load from tensorpack into torchvision's resnet152.

Xie, Wu, van der Maaten, Yuille, He, "Feature Denoising for Improving Adversarial Robustness" (CVPR 2019),
github.com/facebookresearch/ImageNet-Adversarial-Training (CC-BY-NC 4.0). Their "ResNet152 Baseline"
(``--arch ResNet -d 152``, no denoising blocks) is released as ``R152.npz``: targeted PGD adversarial
training, Linf eps 16/255. What the conversion relies on, from their ``resnet_model.py``, ``adv_model.py``,
``inference-example.py`` and tensorpack's layers:

* Names (``np.savez`` of the graph variables; a trailing ``:0`` may appear and is dropped)::

      conv0/W, conv0/bn/{gamma,beta,mean/EMA,variance/EMA}         stem conv 7x7/2 + BN
      group{g}/block{b}/conv{1,2,3}/W, .../conv{n}/bn/...           bottleneck convs 1x1, 3x3, 1x1 + BN
      group{g}/block0/convshortcut/W, .../convshortcut/bn/...       projection shortcut 1x1 + BN
      linear/W, linear/b                                            the 1000-way classifier

  groups 0..3 have 3, 8, 36, 3 blocks and map to torchvision's layer1..layer4.
* Layouts: conv ``W`` is (kh, kw, in, out) -> torch (out, in, kh, kw); ``linear/W`` is (in, out) -> (out, in).
  BatchNorm epsilon is tensorpack's default 1e-5 (torch's too).
* Stride: on the 3x3 conv of the first block of groups 1-3 ("ImageNet in 1 Hour", Sec. 5.1), as in torchvision's
  ResNet v1.5, and on the 1x1 shortcut.
* Padding: tensorpack convolutions and the stem max-pool use TensorFlow's ``SAME`` padding, which for a
  stride-2 layer on an even-sized input pads only at the bottom/right (pad total = max((ceil(n/s) - 1) * s +
  k - n, 0), split floor/ceil), where torchvision pads symmetrically. The stem conv, the max-pool and the three
  stride-2 3x3 convs are therefore swapped for SAME-padding versions (same parameters, same state-dict keys).
* Input: ``image / 127.5 - 1`` on BGR images (OpenCV), i.e. BGR channel order, mean 0.5, std 0.5 on [0, 1];
  evaluation resizes the short side to 256 (bicubic) and centre-crops 224.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from invkit.core.classifier import Classifier, ClassifierConfig
from invkit.errors import CheckpointError, InputError
from invkit.io import strip_prefix, unwrap

from .torchvision_timm import ImageSizeOptions
from .weights import WeightsSource, load_network, resolve_weights, tensors_only

URL = "https://github.com/facebookresearch/ImageNet-Adversarial-Training/releases/download/v0/R152.npz"
PAGE = "https://github.com/facebookresearch/ImageNet-Adversarial-Training/blob/master/INSTRUCTIONS.md"
LICENSE = "CC-BY-NC-4.0 (non-commercial)"
PAPER = "Xie et al. 2019, Feature Denoising for Improving Adversarial Robustness (arXiv:1812.03411)"
BLOCKS = (3, 8, 36, 3)  # ResNet-152: blocks per group
BN_NAMES = {"gamma": "weight", "beta": "bias", "mean/EMA": "running_mean", "variance/EMA": "running_var"}
TRAINING_ONLY = re.compile(r"^(global_step|learning_rate|EMA/.*|.*/(Momentum|Adam|Adam_1|AccumGrad))$")


def register(register: Any) -> None:
    register(
        "robust_resnet152.linf_eps16",
        create,
        description="ResNet-152 (v1), targeted PGD adversarial training Linf eps 16/255 (Xie et al. 2019 R152.npz, "
        "tensorpack, CC-BY-NC); stands in for the paper's robust ResNet-152-V2 of Qin et al. 2019 (not public)",
        options=ImageSizeOptions,  # input_size; invkit checks names and types
    )


def config(input_size: int | None = None) -> ClassifierConfig:
    from .torchvision_timm import imagenet_class_ids, imagenet_label_names

    size = input_size or 224
    return ClassifierConfig(
        name="robust_resnet152.linf_eps16",
        num_classes=1000,
        input_size=(3, size, size),
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        interpolation="bicubic",
        channel_order="BGR",
        label_names=imagenet_label_names(1000),
        source=URL,
        license=LICENSE,
        robust=True,
        extra={
            "class_ids": imagenet_class_ids(1000),
            "threat_model": "Linf, targeted PGD",
            "eps": "16/255",
            "paper": PAPER,
            "download_page": PAGE,
            "eval_transform": "ResizeShortestEdge(256, bicubic) + CenterCrop(224)",
            "padding": "TF SAME",
        },
    )


# ------------------------------------------------------------------------------------ TensorFlow SAME padding
def _same_pad(n: int, k: int, s: int) -> tuple[int, int]:
    total = max((math.ceil(n / s) - 1) * s + k - n, 0)
    return total // 2, total - total // 2


class SameConv2d(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow ``SAME`` padding computed from the input size (padding=0 otherwise)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = _same_pad(x.shape[-2], self.kernel_size[0], self.stride[0])
        left, right = _same_pad(x.shape[-1], self.kernel_size[1], self.stride[1])
        return super().forward(F.pad(x, (left, right, top, bottom)))


class SameMaxPool2d(nn.MaxPool2d):
    """``nn.MaxPool2d`` with TensorFlow ``SAME`` padding (padded cells never win the max)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel_size, self.stride
        top, bottom = _same_pad(x.shape[-2], k, s)
        left, right = _same_pad(x.shape[-1], k, s)
        return F.max_pool2d(F.pad(x, (left, right, top, bottom), value=-math.inf), k, s)


def _same(conv: nn.Conv2d) -> SameConv2d:
    return SameConv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        padding=0,
        bias=conv.bias is not None,
        device=conv.weight.device,
    )


def build_network() -> nn.Module:
    """torchvision's resnet152 with tensorpack's padding on its stride-2 layers (state-dict keys unchanged)."""
    import torchvision

    net = torchvision.models.resnet152()
    net.conv1 = _same(net.conv1)
    net.maxpool = SameMaxPool2d(kernel_size=3, stride=2)
    for layer in (net.layer2, net.layer3, net.layer4):
        layer[0].conv2 = _same(layer[0].conv2)
    return net


# ----------------------------------------------------------------------------------------------- conversion
def _torch_key(tp: str) -> tuple[str, str] | None:
    """tensorpack variable name -> (torchvision key, kind) with kind conv/bn/fc_w/fc_b, or None if unknown."""
    if tp == "linear/W":
        return "fc.weight", "fc_w"
    if tp == "linear/b":
        return "fc.bias", "fc_b"
    m = re.fullmatch(r"conv0/(W|bn/(gamma|beta|mean/EMA|variance/EMA))", tp)
    if m:
        return ("conv1.weight", "conv") if m.group(1) == "W" else (f"bn1.{BN_NAMES[m.group(2)]}", "bn")
    m = re.fullmatch(r"group(\d)/block(\d+)/(conv[123]|convshortcut)/(W|bn/(gamma|beta|mean/EMA|variance/EMA))", tp)
    if not m:
        return None
    g, b, conv = int(m.group(1)), int(m.group(2)), m.group(3)
    if g >= len(BLOCKS) or b >= BLOCKS[g]:
        return None
    prefix = f"layer{g + 1}.{b}."
    if conv == "convshortcut":
        mod_conv, mod_bn = prefix + "downsample.0", prefix + "downsample.1"
    else:
        mod_conv, mod_bn = prefix + conv, prefix + "bn" + conv[-1]
    if m.group(4) == "W":
        return mod_conv + ".weight", "conv"
    return f"{mod_bn}.{BN_NAMES[m.group(5)]}", "bn"


def tensorpack_to_torchvision(raw: dict[str, Any], source: str) -> dict[str, torch.Tensor]:
    """Convert the arrays of ``R152.npz`` (names and layouts in the module docstring) to a resnet152 state dict."""
    plain = unwrap(raw)[0]
    plain = strip_prefix(plain)[0] if isinstance(plain, dict) else plain
    if isinstance(plain, dict) and "conv1.weight" in plain and "fc.weight" in plain:
        return tensors_only(plain, source)  # already converted: a torchvision resnet152 state dict (wrapped or not)
    state: dict[str, torch.Tensor] = {}
    for name, value in raw.items():
        name = name[:-2] if name.endswith(":0") else name
        if TRAINING_ONLY.match(name):
            continue
        if "_denoise/" in name or "non_local" in name:
            raise CheckpointError(
                f"{source} holds feature-denoising blocks ('{name}'): it is R152-Denoise or "
                "X101-DenoiseAll, which invkit does not implement; use the baseline R152.npz."
            )
        mapped = _torch_key(name)
        if mapped is None:
            raise CheckpointError(
                f"{source}: unexpected parameter '{name}'; this is not the tensorpack ResNet-152 "
                "of ImageNet-Adversarial-Training (R152.npz)."
            )
        key, kind = mapped
        t = torch.as_tensor(np.asarray(value)) if not isinstance(value, torch.Tensor) else value
        t = t.float()
        if kind == "conv":
            if t.dim() != 4:
                raise CheckpointError(f"{source}: '{name}' has shape {tuple(t.shape)}, expected a 4-d HWIO kernel.")
            t = t.permute(3, 2, 0, 1)  # (kh, kw, in, out) -> (out, in, kh, kw)
        elif kind == "fc_w":
            if t.dim() != 2:
                raise CheckpointError(f"{source}: '{name}' has shape {tuple(t.shape)}, expected (in, out).")
            t = t.t()  # (in, out) -> (out, in)
        state[key] = t.contiguous()
        if key.endswith(".running_mean"):
            state[key[: -len("running_mean")] + "num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
    if not state:
        raise CheckpointError(f"{source} holds no tensorpack ResNet parameters (expected names like conv0/W).")
    return state


def create(pretrained: bool = True, weights: str | None = None, input_size: int | None = None) -> Classifier:
    """``robust_resnet152.linf_eps16``: R152.npz converted into torchvision's resnet152 (SAME padding).

    Args:
        pretrained: False builds random weights.
        weights: a local ``R152.npz`` (``--weights PATH``); a safetensors file with the same names also works.
        input_size: run at this square size in pixels (32 or more) instead of 224.

    Returns:
        The classifier, in eval mode; it takes ``(N, C, H, W)`` images in [0, 1] of any size (RGB; it flips them
        to BGR).

    Raises:
        InputError: ``input_size`` below 32. (Another keyword argument, or an ``input_size`` that is not a whole
            number, is refused by ``invkit.create_classifier`` before this runs.)
        WeightsNotFoundError: ``weights`` is missing or a folder; the weights are in no local cache and the
            network is off, or the download failed.
        UnsafeCheckpointError: the weights file is a pickle that holds code or Python objects (a
            ``CheckpointError``).
        CheckpointError: the weights file is unreadable; it holds feature-denoising blocks (R152-Denoise,
            X101-DenoiseAll), names that are not the tensorpack ResNet-152's (or none of them), or kernels of the
            wrong rank; or the converted keys or shapes do not fit resnet152.
    """
    if input_size is not None and int(input_size) < 32:
        raise InputError(f"robust_resnet152: input_size={input_size} is below 32.")
    input_size = int(input_size) if input_size is not None else None
    cfg = config(input_size)
    if pretrained or weights is not None:
        source = WeightsSource(url=URL)
        raw, path = resolve_weights(cfg.name, source, weights)
        state = tensorpack_to_torchvision(raw, path)
        cfg = cfg.with_(extra={**cfg.extra, "weights_file": str(path)})
        network = load_network(build_network, state, path, cfg.name)
    else:
        network = build_network().eval()
    clf = Classifier(network, cfg, init_kwargs={"input_size": input_size} if input_size else {})
    clf.random_weights = not (pretrained or weights is not None)
    return clf
