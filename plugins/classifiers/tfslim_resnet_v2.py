"""ResNet-152-V2 (pre-activation) with TF-slim's published ImageNet weights, read from an exported checkpoint.

He, Zhang, Ren, Sun, "Identity Mappings in Deep Residual Networks" (ECCV 2016, arXiv:1603.05027): the network
the paper inverts as its standard ResNet (Teterwak et al. 2021, Sec. 4, "ResNet-152V2 (He et al., 2016)").
TF-slim's ``resnet_v2_152`` (tensorflow/models ``research/slim/nets/resnet_v2.py`` and ``resnet_utils.py``),
released as ``resnet_v2_152_2017_04_14.tar.gz`` (77.8% / 94.1% top-1 / top-5 in the slim README). What the
network below relies on, read from those files:

* Variables (``tf.train.load_checkpoint(...).get_variable_to_shape_map()``; ``B`` = block1..4, ``U`` = unit_1..)::

      resnet_v2_152/conv1/{weights,biases}                             stem conv 7x7/2 with bias, no BN
      resnet_v2_152/B/U/bottleneck_v2/preact/{gamma,beta,moving_mean,moving_variance}   BN + ReLU before the unit
      resnet_v2_152/B/U/bottleneck_v2/shortcut/{weights,biases}        1x1 projection of the pre-activation
                                                                       (first unit of a block only)
      resnet_v2_152/B/U/bottleneck_v2/conv{1,2}/weights                1x1, 3x3 convs without bias ...
      resnet_v2_152/B/U/bottleneck_v2/conv{1,2}/BatchNorm/{gamma,beta,moving_mean,moving_variance}  ... + BN + ReLU
      resnet_v2_152/B/U/bottleneck_v2/conv3/{weights,biases}           1x1 conv with bias, no BN
      resnet_v2_152/postnorm/{gamma,beta,moving_mean,moving_variance}  BN + ReLU after the last unit
      resnet_v2_152/logits/{weights,biases}                            1x1 conv to 1001 classes (0 = background)

  Blocks have 3, 8, 36 and 3 units with bottleneck widths 64, 128, 256, 512 (outputs 4x those). Conv kernels
  are HWIO ``(kh, kw, in, out)`` -> torch ``(out, in, kh, kw)``. BatchNorm epsilon is ``resnet_arg_scope``'s 1e-5.
* Stride: in the **last** unit of blocks 1-3 (block 4 has none), on the 3x3 ``conv2``; that unit's shortcut
  is the unit's *input* subsampled (``x[..., ::2, ::2]``, a 1x1 max-pool), not a convolution. The first unit of
  each block changes the width and so has the projection shortcut, at stride 1. (timm and torchvision put the
  stride in the first unit: a different network for the same weights.)
* Padding: ``conv2d_same`` pads a strided conv explicitly by ``(k - 1) // 2`` before and ``k - 1 - that`` after,
  then runs VALID: for the odd kernels here that is torch's symmetric ``padding=k // 2``, independent of the
  input size; stride-1 convs are TF ``SAME``, also symmetric for odd kernels. Only the stem max-pool (3x3/2,
  ``resnet_arg_scope`` sets ``padding='SAME'``) uses TF's input-size dependent SAME padding, which pads only at the
  bottom/right for an even input (``SameMaxPool2d``).
* Input: slim's ``inception_preprocessing`` (the slim README: "ResNet V2 models use Inception pre-processing and
  input image size of 299"): RGB in [0, 1] mapped to [-1, 1] (mean = std = 0.5), bilinear resize to 299
  (evaluation first takes the central 87.5% crop, which invkit, as for every classifier, does not).
* Classes: 1001 logits, index 0 the background class slim's ImageNet reader adds, 1..1000 the ILSVRC-2012 classes
  in sorted WordNet-id order. The network keeps all 1001 (so the file loads as is) and its forward drops logit 0:
  invkit's classifier has the usual 1000 classes.

timm has no published ResNet-152-V2 of this kind: its ``resnetv2_152`` has no weights and puts the stride in the
first unit with symmetric max-pool padding; its ``resnetv2_152x{2,4}_bit`` are Big Transfer networks (GroupNorm
and weight-standardised convs without biases, 2x/4x width, ImageNet-21k pre-training), so no file layout of
timm's fits this network. docs/classifiers.md says how to export the TensorFlow checkpoint to ``.npz``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from invkit.core.classifier import Classifier, ClassifierConfig
from invkit.errors import CheckpointError, InputError, WeightsNotFoundError

from .tensorpack_r152 import SameMaxPool2d
from .torchvision_timm import ImageSizeOptions
from .weights import WeightsSource, find_cached, load_network, resolve_weights

URL = "http://download.tensorflow.org/models/resnet_v2_152_2017_04_14.tar.gz"
PAGE = "https://github.com/tensorflow/models/tree/master/research/slim#pre-trained-models"
LICENSE = "apache-2.0 (tensorflow/models)"
PAPER = "He et al. 2016, Identity Mappings in Deep Residual Networks (arXiv:1603.05027)"
SCOPE = "resnet_v2_152"
UNITS_152 = (3, 8, 36, 3)  # units per block of resnet_v2_152
BASE_DEPTHS = (64, 128, 256, 512)  # bottleneck width of each block; a unit's output is 4x that
STRIDES = (2, 2, 2, 1)  # stride of each block's last unit
NUM_LOGITS = 1001  # slim's ImageNet head: background + 1000 classes
BN_EPS = 1e-5  # resnet_arg_scope(batch_norm_epsilon=1e-5)
BN_NAMES = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}
# what a training checkpoint holds besides the network (the published one holds none of it)
TRAINING_ONLY = re.compile(r"^(global_step|.*/(ExponentialMovingAverage|Momentum|RMSProp|RMSProp_1|Adam|Adam_1))$")
# conversion from a TF checkpoint, for messages and docs
EXPORT = (
    "python -c \"import numpy as np, tensorflow as tf; r = tf.train.load_checkpoint('resnet_v2_152.ckpt'); "
    "np.savez('resnet_v2_152.npz', **{n: r.get_tensor(n) for n in r.get_variable_to_shape_map()})\""
)


def register(register: Any) -> None:
    register(
        "resnet152v2.tf_in1k",
        create,
        description="ResNet-152-V2 (pre-activation, He et al. 2016) at 299 px, TF-slim resnet_v2_152 ImageNet "
        "weights exported to .npz/.safetensors; the paper's standard ResNet",
        options=ImageSizeOptions,  # input_size; invkit checks names and types
    )


def config(input_size: int | None = None) -> ClassifierConfig:
    """The preprocessing config of ``resnet152v2.tf_in1k`` (see the module docstring), at ``input_size`` px."""
    from .torchvision_timm import imagenet_class_ids, imagenet_label_names

    size = input_size or 299
    return ClassifierConfig(
        name="resnet152v2.tf_in1k",
        num_classes=1000,
        input_size=(3, size, size),
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        interpolation="bilinear",
        label_names=imagenet_label_names(1000),
        source=URL,
        license=LICENSE,
        robust=False,
        extra={
            "class_ids": imagenet_class_ids(1000),
            "paper": PAPER,
            "download_page": PAGE,
            "eval_transform": "inception_preprocessing: central_crop(0.875) + bilinear resize to 299, [-1, 1]",
            "background_class": "logit 0 of 1001 dropped",
            "padding": "symmetric convs; TF SAME stem max-pool",
        },
    )


# ------------------------------------------------------------------------------------------------- network
def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


class BottleneckV2(nn.Module):
    """TF-slim's ``bottleneck_v2`` unit: pre-activation BN-ReLU, 1x1 -> 3x3 (stride) -> 1x1, plus the shortcut.

    Args:
        depth_in: input channels.
        depth_bottleneck: width of the 1x1 and 3x3 convs.
        stride: 1, or 2 for the last unit of blocks 1-3 (on the 3x3 conv, and a subsampled identity shortcut).
    """

    def __init__(self, depth_in: int, depth_bottleneck: int, stride: int):
        super().__init__()
        depth = 4 * depth_bottleneck
        self.stride = stride
        self.preact = _bn(depth_in)
        # slim: a projection of the pre-activation when the width changes, else the subsampled input itself
        self.shortcut = nn.Conv2d(depth_in, depth, 1, stride=stride) if depth != depth_in else None
        self.conv1 = nn.Conv2d(depth_in, depth_bottleneck, 1, bias=False)
        self.bn1 = _bn(depth_bottleneck)
        self.conv2 = nn.Conv2d(depth_bottleneck, depth_bottleneck, 3, stride=stride, padding=1, bias=False)
        self.bn2 = _bn(depth_bottleneck)
        self.conv3 = nn.Conv2d(depth_bottleneck, depth, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        preact = F.relu(self.preact(x))
        shortcut = self.shortcut(preact) if self.shortcut is not None else x[..., :: self.stride, :: self.stride]
        h = F.relu(self.bn1(self.conv1(preact)))
        h = F.relu(self.bn2(self.conv2(h)))
        return shortcut + self.conv3(h)


class ResNetV2(nn.Module):
    """TF-slim's ``resnet_v2`` for classification: stem, bottleneck blocks, post-norm, mean pool, 1x1 logits.

    Args:
        units: units per block (``(3, 8, 36, 3)`` is ResNet-152-V2).
        base_depths: bottleneck width of each block (``(64, 128, 256, 512)``; smaller only in tests).
        num_logits: outputs of the logits layer (1001 for slim's ImageNet weights).
        drop_background: return logits 1.. only (slim's index 0 is the background class).

    ``forward`` takes a normalised ``(N, 3, H, W)`` batch (values in [-1, 1]) and returns ``(N, num_logits - 1)``
    logits with ``drop_background``, else ``(N, num_logits)``.
    """

    def __init__(
        self,
        units: Sequence[int] = UNITS_152,
        base_depths: Sequence[int] = BASE_DEPTHS,
        num_logits: int = NUM_LOGITS,
        drop_background: bool = True,
    ):
        super().__init__()
        if len(units) != 4 or len(base_depths) != 4 or min(units) < 1:
            raise InputError(f"resnet_v2: need 4 blocks of at least 1 unit, got units={list(units)}.")
        self.units, self.base_depths = tuple(units), tuple(base_depths)
        self.drop_background = drop_background
        stem = base_depths[0]  # slim: 64, the width of the first block's bottleneck
        self.conv1 = nn.Conv2d(3, stem, 7, stride=2, padding=3)  # conv2d_same: explicit (3, 3) padding, bias
        self.pool1 = SameMaxPool2d(kernel_size=3, stride=2)  # resnet_arg_scope: max_pool2d padding='SAME'
        self.blocks = nn.ModuleList()
        depth_in = stem
        for n, width, stride in zip(units, base_depths, STRIDES, strict=True):
            block = nn.ModuleList(BottleneckV2(depth_in if u == 0 else 4 * width, width, 1) for u in range(n - 1))
            block.append(BottleneckV2(depth_in if n == 1 else 4 * width, width, stride))  # stride in the last unit
            self.blocks.append(block)
            depth_in = 4 * width
        self.postnorm = _bn(depth_in)
        self.logits = nn.Linear(depth_in, num_logits)  # slim's 1x1 conv on the pooled features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pool1(self.conv1(x))
        for block in self.blocks:
            for unit in block:
                h = unit(h)
        h = F.relu(self.postnorm(h)).mean(dim=(2, 3))
        out = self.logits(h)
        return out[:, 1:] if self.drop_background else out


def build_network(units: Sequence[int] = UNITS_152, base_depths: Sequence[int] = BASE_DEPTHS) -> ResNetV2:
    """``ResNetV2`` with slim's 1001-way head and the background logit dropped (random weights)."""
    return ResNetV2(units, base_depths).eval()


# ----------------------------------------------------------------------------------------------- conversion
def _torch_key(name: str, scope: str, units: Sequence[int]) -> tuple[str, str] | None:
    """slim variable name -> (state-dict key, kind) with kind conv/bn/bias/fc_w/fc_b, or None if unknown."""
    if not name.startswith(scope + "/"):
        return None
    rest = name[len(scope) + 1 :]
    if rest == "conv1/weights":
        return "conv1.weight", "conv"
    if rest == "conv1/biases":
        return "conv1.bias", "bias"
    if rest == "logits/weights":
        return "logits.weight", "fc_w"
    if rest == "logits/biases":
        return "logits.bias", "fc_b"
    m = re.fullmatch(r"postnorm/(gamma|beta|moving_mean|moving_variance)", rest)
    if m:
        return f"postnorm.{BN_NAMES[m[1]]}", "bn"
    m = re.fullmatch(r"block(\d+)/unit_(\d+)/bottleneck_v2/(.+)", rest)
    if not m:
        return None
    b, u, leaf = int(m[1]) - 1, int(m[2]) - 1, m[3]
    if not (0 <= b < len(units) and 0 <= u < units[b]):
        return None
    prefix = f"blocks.{b}.{u}."
    m = re.fullmatch(r"(preact|conv1/BatchNorm|conv2/BatchNorm)/(gamma|beta|moving_mean|moving_variance)", leaf)
    if m:
        module = {"preact": "preact", "conv1/BatchNorm": "bn1", "conv2/BatchNorm": "bn2"}[m[1]]
        return f"{prefix}{module}.{BN_NAMES[m[2]]}", "bn"
    m = re.fullmatch(r"(shortcut|conv1|conv2|conv3)/(weights|biases)", leaf)
    if m:
        return f"{prefix}{m[1]}.{'weight' if m[2] == 'weights' else 'bias'}", "conv" if m[2] == "weights" else "bias"
    return None


def tfslim_to_torch(
    raw: dict[str, Any],
    source: str,
    units: Sequence[int] = UNITS_152,
    base_depths: Sequence[int] = BASE_DEPTHS,
    scope: str = SCOPE,
) -> dict[str, torch.Tensor]:
    """Convert TF-slim ``resnet_v2`` variables (names and layouts in the module docstring) to a ``ResNetV2`` state.

    Args:
        raw: variable name -> array or tensor, as read from an ``.npz`` or ``.safetensors`` export; a trailing
            ``:0`` on names is dropped, ``global_step`` and optimizer slots are ignored.
        source: the file, for messages.
        units, base_depths: the network the variables are for (ResNet-152-V2 by default).
        scope: the variables' top scope (``resnet_v2_152``).

    Returns:
        The state dict of ``ResNetV2(units, base_depths)``, every tensor float32 in torch's layout.

    Raises:
        CheckpointError: a name that is not one of the network's (other scope, unit or layer), a variable the
            network needs that the file lacks, or a shape that does not fit; one line naming the first few.
    """
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in ResNetV2(units, base_depths).state_dict().items()}
    state: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for name, value in raw.items():
        name = name[:-2] if name.endswith(":0") else name
        if TRAINING_ONLY.match(name):
            continue
        mapped = _torch_key(name, scope, units)
        if mapped is None:
            unknown.append(name)
            continue
        key, kind = mapped
        t = value if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))
        t = t.float()
        if kind == "conv" and t.dim() == 4:
            t = t.permute(3, 2, 0, 1)  # HWIO -> OIHW
        elif kind == "fc_w" and t.dim() == 4 and t.shape[:2] == (1, 1):
            t = t[0, 0].t()  # the logits 1x1 conv (1, 1, in, out) -> Linear (out, in)
        if tuple(t.shape) != expected[key]:
            raise CheckpointError(
                f"{source}: '{name}' has shape {tuple(np.asarray(value).shape)}, which does not fit {scope} "
                f"(expected {_tf_shape(expected[key], kind)}); is this the checkpoint of another network?"
            )
        state[key] = t.contiguous()
    if unknown:
        shown = ", ".join(f"'{n}'" for n in unknown[:3])
        raise CheckpointError(
            f"{source}: {len(unknown)} variable(s) that are not {scope}'s TF-slim ResNet-V2 (e.g. {shown}); "
            f"export the variables of resnet_v2_152.ckpt with their names unchanged (see docs/classifiers.md)."
        )
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    if missing:
        raise CheckpointError(
            f"{source}: {len(missing)} of {scope}'s variables are missing (e.g. {', '.join(missing[:3])}); "
            "the export is incomplete: export every variable of resnet_v2_152.ckpt (see docs/classifiers.md)."
        )
    for key in expected:
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(0, dtype=torch.long)
    return state


def _tf_shape(shape: tuple[int, ...], kind: str) -> tuple[int, ...]:
    """A torch shape written back in the layout of the TF variable, for messages."""
    if kind == "conv":
        return (shape[2], shape[3], shape[1], shape[0])
    if kind == "fc_w":
        return (1, 1, shape[1], shape[0])
    return shape


def parameter_count(units: Sequence[int] = UNITS_152, base_depths: Sequence[int] = BASE_DEPTHS) -> int:
    """Trainable parameters of ``ResNetV2(units, base_depths)`` (BN moving statistics not counted), on meta."""
    with torch.device("meta"):
        return sum(p.numel() for p in ResNetV2(units, base_depths).parameters())


def create(pretrained: bool = True, weights: str | None = None, input_size: int | None = None) -> Classifier:
    """``resnet152v2.tf_in1k``: TF-slim's ``resnet_v2_152`` ImageNet weights from an exported file.

    Args:
        pretrained: False builds random weights.
        weights: an ``.npz`` or ``.safetensors`` of the checkpoint's variables with TF-slim's names
            (``--weights PATH``; how to export it: docs/classifiers.md). Without it the file is looked up as
            ``resnet_v2_152.npz`` in torch hub's ``checkpoints/`` folder; invkit never downloads it (the
            published archive holds a TensorFlow checkpoint, which needs TensorFlow to read).
        input_size: run at this square size in pixels (32 or more) instead of 299.

    Returns:
        The classifier, in eval mode; it takes ``(N, C, H, W)`` RGB images in [0, 1] of any size and returns
        ``(N, 1000)`` logits (slim's background logit dropped).

    Raises:
        InputError: ``input_size`` below 32.
        WeightsNotFoundError: ``weights`` is missing or a folder, or no ``weights`` and no exported file in the
            cache.
        UnsafeCheckpointError: the weights file is a pickle that holds code or Python objects.
        CheckpointError: the weights file is unreadable, or its names or shapes are not ``resnet_v2_152``'s.
    """
    if input_size is not None and int(input_size) < 32:
        raise InputError(f"resnet152v2: input_size={input_size} is below 32.")
    input_size = int(input_size) if input_size is not None else None
    cfg = config(input_size)
    if pretrained or weights is not None:
        source = WeightsSource(filename="resnet_v2_152.npz", page=PAGE)
        if weights is None and find_cached(source) is None:  # no download: the archive is a TF checkpoint
            raise WeightsNotFoundError(
                f"resnet152v2.tf_in1k: no exported weights resnet_v2_152.npz in the torch hub cache; download "
                f"{URL}, export its variables with TensorFlow ({EXPORT}) and pass --weights resnet_v2_152.npz "
                "(see docs/classifiers.md)."
            )
        raw, path = resolve_weights(cfg.name, source, weights)
        state = tfslim_to_torch(raw, path)
        cfg = cfg.with_(extra={**cfg.extra, "weights_file": str(path)})
        network = load_network(build_network, state, path, cfg.name)
    else:
        network = build_network()
    clf = Classifier(network, cfg, init_kwargs={"input_size": input_size} if input_size else {})
    clf.random_weights = not (pretrained or weights is not None)
    return clf
