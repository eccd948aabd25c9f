"""BigGAN with a projection discriminator, conditioned on a classifier's logits: the feedforward inverter of

    P. Teterwak, C. Zhang, D. Krishnan, M. C. Mozer. "Understanding invariance via feedforward inversion of
    discriminatively trained classifiers." ICML 2021 (arXiv:2103.07470).

The inverter is BigGAN (Brock, Donahue & Simonyan, ICLR 2019) with the one-hot class label replaced by the
frozen classifier's logit vector ``z``:

* Eq. 3, conditional batch-norm: every batch-norm in the generator's residual blocks normalises without
  affine parameters and then applies a per-channel gain and bias that are two-layer MLPs of the logits
  concatenated with the block's chunk of the hierarchical noise: ``BN(h) * (1 + gamma(z, e_i)) + beta(z, e_i)``
  (the ``1 +`` convention is BigGAN's).
* Eq. 2, projection discriminator (Miyato & Koyama 2018) with logits as the condition:
  ``D(x, z) = w1 . Psi(x) + b + (W2 z) . Psi(x)`` where ``Psi`` is the sum-pooled output of D's residual trunk.
* Hinge losses, spectral norm on every convolution and linear layer of G and D, orthogonal initialisation,
  Adam(beta1=0, beta2=0.999) with lr 1e-4 (G) and 5e-4 (D), two D steps per G step, and an exponential moving
  average of G's weights that is the network used for inversion.

Widths follow the paper's supplementary tables (64x64: G 16/16/8/4/2 x ch, D 2/4/8/16/16 x ch, ch=96);
the 32x32 and 128x128 layouts are the analogues from BigGAN-PyTorch's ``G_arch``/``D_arch`` tables.
Architecture facts were read from github.com/ajbrock/BigGAN-PyTorch (BigGAN.py, layers.py); the code is
written from scratch.

Where BigGAN-PyTorch and compare_gan (the code the paper's supplement configures) differ, the config offers both
(``upsample``, ``cbn``, ``d_shortcut``, ``d_input_range``, ``init``; issue 22): the ``paper`` preset takes
compare_gan's, the other presets and every checkpoint written before these options BigGAN-PyTorch's
(``BigGANConfig.checkpoint_legacy``).

This module is over 500 lines: it is the one file of the method (docs/architecture.md, "one method per file"),
read top to bottom, and splitting G, D and the trainer apart would scatter the equations it implements.

Module layout, top to bottom: config -> building blocks -> Generator -> Discriminator -> losses ->
the Inverter -> the trainer.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from invkit.core.inverter import Batch, Inverter, InverterTrainer
from invkit.errors import InputError


# ------------------------------------------------------------------------------------------------------ config
@dataclass
class BigGANConfig:
    """Constructor arguments of ``BigGANInverter`` and the training hyper-parameters of its trainer.

    Defaults are the paper's 64x64 setting (Teterwak et al. 2021 and its supplement, which take BigGAN's
    ImageNet recipe). The paper trains with batch size 2048 for 250k G steps (``paper_batch_size``,
    ``paper_steps``); ``invkit train`` uses its own, smaller defaults for both and records what it used.
    """

    num_classes: int = 1000  # logit dimension = the conditioning vector (taken from the classifier)
    channels: int = 3  # image channels: 3 for RGB, 1 for MNIST (taken from the classifier)
    resolution: int = 64  # output size: 32, 64 (paper) or 128
    ch: int = 96  # width multiplier; 96 gives the supplement's 1536/1536/768/384/192 G widths at 64x64
    noise_dim: int = 120  # hierarchical noise, split evenly over the initial linear and each G block (BigGAN)
    cbn_hidden: int = 128  # hidden width of the Eq. 3 CBN MLPs (not stated in the paper; invkit's choice)
    g_attention: int = 64  # resolution of G's non-local self-attention block (0 = none)
    d_attention: int = 32  # resolution of D's non-local self-attention block (0 = none)
    bn_eps: float = 1e-5  # batch-norm epsilon (BigGAN BN_eps)
    sn_eps: float = 1e-6  # spectral-norm epsilon (BigGAN launch scripts' SN_eps)
    g_lr: float = 1e-4  # generator Adam learning rate (paper)
    d_lr: float = 5e-4  # discriminator Adam learning rate (paper)
    beta1: float = 0.0  # Adam beta1 for G and D (paper)
    beta2: float = 0.999  # Adam beta2 for G and D (paper)
    adam_eps: float = 1e-8  # Adam epsilon: paper (compare_gan: TF AdamOptimizer default); BigGAN-PyTorch 1e-6
    num_d_steps: int = 2  # discriminator steps per generator step (paper)
    ema_decay: float = 0.9999  # decay of the exponential moving average of G used for inversion (BigGAN)
    ema_start: int = 40000  # G steps before which the EMA copy just tracks G (compare_gan ema_start_step; BigGAN 20000)
    # Batch-norm statistics of the inverter that is saved and used (standing.py; the paper's compare_gan config:
    # standardize_batch.use_moving_averages = False). standing_batches > 0: every checkpoint's G holds standing
    # statistics accumulated over the logits of the last standing_batches G-step batches with fresh noise.
    standing_batches: int = 16  # 0 = keep the EMA of the raw G's running statistics (invkit before issue 12)
    bn_stats: str = "running"  # what the BN buffers in the weights are: "running" or "standing" (set, not chosen)
    paper_batch_size: int = 2048  # batch size of the paper's runs (documentation; the loop picks its own)
    paper_steps: int = 250000  # G steps of the paper's runs (documentation; the loop picks its own)
    # ---- compare_gan variants (issue 22). Defaults: BigGAN-PyTorch's choices, which every preset but `paper` and
    # every checkpoint written before these fields existed use; `biggan_proj.paper` takes compare_gan's (the paper's
    # own code: its supplement prints a compare_gan config).
    upsample: str = "nearest"  # G blocks' 2x upsampling: "nearest" (BigGAN-PyTorch) or "unpool" (compare_gan)
    cbn: str = "mlp"  # Eq. 3 gain/bias: "mlp" (own 2-layer MLP per CBN, 1 + gamma) or "compare_gan" (see CondBatchNorm)
    d_shortcut: str = "identity"  # D block of equal in/out width: "identity" skip or "none" (compare_gan)
    d_input_range: str = "-1..1"  # range D sees images in: "-1..1" (BigGAN-PyTorch) or "0..1" (compare_gan)
    init: str = "pytorch"  # "pytorch": torch's default biases, orthogonal projection embedding; "compare_gan": zero
    # biases and a Glorot-normal projection embedding (weights are orthogonal in both)

    # What a checkpoint whose config.json lacks a field was trained with: load_inverter fills these in (not the
    # preset's values), so every checkpoint keeps the network it was trained as.
    checkpoint_legacy: ClassVar[dict[str, Any]] = {
        "upsample": "nearest",
        "cbn": "mlp",
        "d_shortcut": "identity",
        "d_input_range": "-1..1",
        "init": "pytorch",
    }


# The values each variant field takes (BigGANInverter refuses others).
VARIANTS = {
    "upsample": ("nearest", "unpool"),
    "cbn": ("mlp", "compare_gan"),
    "d_shortcut": ("identity", "none"),
    "d_input_range": ("-1..1", "0..1"),
    "init": ("pytorch", "compare_gan"),
}


# Channel multipliers per resolution. G: width of the initial 4x4 map, then the output width of each
# up-block (each doubles the size). D: output width of each block and whether it halves the size.
G_WIDTHS = {32: (4, 4, 4, 4), 64: (16, 16, 8, 4, 2), 128: (16, 16, 8, 4, 2, 1)}
D_LAYOUT = {
    32: ((4, True), (4, True), (4, False), (4, False)),
    64: ((2, True), (4, True), (8, True), (16, True), (16, False)),
    128: ((1, True), (2, True), (4, True), (8, True), (16, True), (16, False)),
}


def generator_widths(config: BigGANConfig) -> list[int]:
    """Channels of G's initial 4x4 map followed by the output channels of each up-block."""
    _check_resolution(config.resolution)
    return [m * config.ch for m in G_WIDTHS[config.resolution]]


def discriminator_widths(config: BigGANConfig) -> list[int]:
    """Output channels of each D block (the last one is the width of Psi(x))."""
    _check_resolution(config.resolution)
    return [m * config.ch for m, _ in D_LAYOUT[config.resolution]]


def _check_resolution(resolution: int) -> None:
    if resolution not in G_WIDTHS:
        raise InputError(f"biggan_proj: resolution {resolution} is not supported; use 32, 64 or 128.")


def _check_variants(cfg: BigGANConfig) -> None:
    for name, allowed in VARIANTS.items():
        if getattr(cfg, name) not in allowed:
            raise InputError(f"biggan_proj: {name} '{getattr(cfg, name)}' is unknown; use one of {', '.join(allowed)}.")


# ------------------------------------------------------------------------------------------ building blocks
def sn_conv(cin: int, cout: int, kernel: int = 3, bias: bool = True, eps: float = 1e-6) -> nn.Module:
    """Conv with orthogonal init and spectral norm (one power iteration per training forward)."""
    conv = nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=bias)
    nn.init.orthogonal_(conv.weight)
    return spectral_norm(conv, eps=eps)


def sn_linear(cin: int, cout: int, bias: bool = True, eps: float = 1e-6) -> nn.Module:
    """Linear layer with orthogonal init and spectral norm."""
    lin = nn.Linear(cin, cout, bias=bias)
    nn.init.orthogonal_(lin.weight)
    return spectral_norm(lin, eps=eps)


def glorot_normal_(weight: torch.Tensor) -> torch.Tensor:
    """TensorFlow's ``glorot_normal`` in place: a normal truncated at 2 standard deviations, scaled so that the
    variance is ``2 / (fan_in + fan_out)`` (``VarianceScaling(1, "fan_avg", "truncated_normal")``, whose stddev is
    divided by 0.8796, the std of a unit normal truncated to [-2, 2]). compare_gan initialises the projection
    embedding of its discriminator with it (resnet_biggan.py, ``embedding_fc``)."""
    fan_out, fan_in = weight.shape
    std = (2.0 / (fan_in + fan_out)) ** 0.5 / 0.87962566103423978
    return nn.init.trunc_normal_(weight, std=std, a=-2 * std, b=2 * std)


def zero_biases_(module: nn.Module) -> None:
    """Set every Conv2d/Linear bias in ``module`` to zero (compare_gan's ``conv2d``/``linear`` start them at 0)."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Conv2d | nn.Linear) and m.bias is not None:
                m.bias.zero_()


def unpool(x: torch.Tensor) -> torch.Tensor:
    """2x upsampling by zero insertion: ``(N, C, H, W)`` -> ``(N, C, 2H, 2W)`` with ``out[..., 2i, 2j] = x[..., i, j]``
    and zeros at the three other positions of each 2x2 cell.

    The "unpooling" of A. Dosovitskiy, J. T. Springenberg and T. Brox, "Learning to Generate Chairs with
    Convolutional Neural Networks", CVPR 2015, as compare_gan's ``resnet_ops.unpool`` computes it (its reshape
    and concatenations put each value at the top-left of its 2x2 cell); compare_gan's BigGAN G blocks upsample with
    it before the 3x3 convolution and the 1x1 shortcut.
    """
    n, c, h, w = x.shape
    out = x.new_zeros(n, c, h, 2, w, 2)
    out[:, :, :, 0, :, 0] = x
    return out.view(n, c, 2 * h, 2 * w)


def upsample2x(x: torch.Tensor, mode: str) -> torch.Tensor:
    """G blocks' 2x upsampling: nearest neighbour (BigGAN-PyTorch) or ``unpool`` (compare_gan)."""
    if mode == "unpool":
        return unpool(x)
    return F.interpolate(x, scale_factor=2.0, mode="nearest")


class CondBatchNorm(nn.Module):
    """Eq. 3: batch-norm whose per-channel gain and bias are functions of the condition ``cond``.

    ``variant="mlp"`` (invkit's reading of Eq. 3): gain and bias are two-layer MLPs (Linear-ReLU-Linear, hidden
    ``hidden``) of ``cond = [logits, noise chunk]``, applied as ``BN(h) * (1 + gamma) + beta`` (BigGAN-PyTorch's
    ``1 +``). ``variant="compare_gan"`` (the paper's code, ``arch_ops.conditional_batch_norm`` with its default
    ``use_bias=False``): ``cond = [noise chunk, shared embedding of the logits]`` (``Generator``) and gain and bias
    are one bias-free spectrally normalised linear layer each, applied as ``BN(h) * gamma + beta`` (no ``1 +``). With
    orthogonal weights and spectral norm, gamma then starts zero-mean with a spread of about ``||cond|| /
    sqrt(C)``, not around 1; that is compare_gan's own start (it offers no bias of 1 here).
    """

    def __init__(
        self, num_features: int, cond_dim: int, hidden: int, bn_eps: float, sn_eps: float, variant: str = "mlp"
    ):
        super().__init__()
        self.plus_one = variant == "mlp"
        if variant == "mlp":
            self.gain = nn.Sequential(
                sn_linear(cond_dim, hidden, eps=sn_eps),
                nn.ReLU(),
                sn_linear(hidden, num_features, bias=False, eps=sn_eps),
            )
            self.bias = nn.Sequential(
                sn_linear(cond_dim, hidden, eps=sn_eps),
                nn.ReLU(),
                sn_linear(hidden, num_features, bias=False, eps=sn_eps),
            )
        else:
            self.gain = sn_linear(cond_dim, num_features, bias=False, eps=sn_eps)
            self.bias = sn_linear(cond_dim, num_features, bias=False, eps=sn_eps)
        self.bn = nn.BatchNorm2d(num_features, eps=bn_eps, affine=False)  # statistics only

    def forward(self, h: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        gamma = self.gain(cond)[:, :, None, None]
        beta = self.bias(cond)[:, :, None, None]
        if self.plus_one:
            return self.bn(h) * (1 + gamma) + beta
        return self.bn(h) * gamma + beta  # compare_gan: outputs *= gamma; outputs += beta


class SelfAttention(nn.Module):
    """Non-local block of SAGAN/BigGAN: 1x1 theta/phi (C/8) and g (C/2), 2x2 max-pooled keys, gain init 0."""

    def __init__(self, c: int, sn_eps: float):
        super().__init__()
        self.ck, self.cv = max(1, c // 8), max(1, c // 2)
        self.theta = sn_conv(c, self.ck, 1, bias=False, eps=sn_eps)
        self.phi = sn_conv(c, self.ck, 1, bias=False, eps=sn_eps)
        self.g = sn_conv(c, self.cv, 1, bias=False, eps=sn_eps)
        self.o = sn_conv(self.cv, c, 1, bias=False, eps=sn_eps)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        theta = self.theta(x).flatten(2)  # (N, C/8, HW)
        phi = F.max_pool2d(self.phi(x), 2).flatten(2)  # (N, C/8, HW/4)
        g = F.max_pool2d(self.g(x), 2).flatten(2)  # (N, C/2, HW/4)
        beta = torch.softmax(theta.transpose(1, 2) @ phi, dim=-1)  # (N, HW, HW/4)
        o = self.o((g @ beta.transpose(1, 2)).view(n, self.cv, h, w))
        return x + self.gamma * o


class GBlock(nn.Module):
    """Residual up-block: CBN-ReLU-up-conv3x3-CBN-ReLU-conv3x3, plus an upsampled 1x1 shortcut; ``cfg.upsample``
    picks nearest neighbour or zero-insertion ``unpool`` for both upsamplings."""

    def __init__(self, cin: int, cout: int, cond_dim: int, cfg: BigGANConfig):
        super().__init__()
        self.upsample = cfg.upsample
        self.bn1 = CondBatchNorm(cin, cond_dim, cfg.cbn_hidden, cfg.bn_eps, cfg.sn_eps, cfg.cbn)
        self.conv1 = sn_conv(cin, cout, eps=cfg.sn_eps)
        self.bn2 = CondBatchNorm(cout, cond_dim, cfg.cbn_hidden, cfg.bn_eps, cfg.sn_eps, cfg.cbn)
        self.conv2 = sn_conv(cout, cout, eps=cfg.sn_eps)
        self.conv_sc = sn_conv(cin, cout, 1, eps=cfg.sn_eps)  # always learnable: every block upsamples

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = upsample2x(F.relu(self.bn1(x, cond)), self.upsample)
        h = self.conv2(F.relu(self.bn2(self.conv1(h), cond)))
        return h + self.conv_sc(upsample2x(x, self.upsample))


class DBlock(nn.Module):
    """Residual down-block ("wide" D of BigGAN): [ReLU]-conv3x3-ReLU-conv3x3-[avgpool], 1x1 shortcut.

    ``shortcut="identity"`` (BigGAN-PyTorch): a 1x1-conv shortcut where the width or size changes, else the
    identity. ``shortcut="none"`` (compare_gan's ``add_shortcut=in_channels != out_channels``): the 1x1-conv
    shortcut only where the widths differ and no skip at all elsewhere (the paper's last D block, 1536 -> 1536).
    """

    def __init__(
        self, cin: int, cout: int, downsample: bool, preactivation: bool, sn_eps: float, shortcut: str = "identity"
    ):
        super().__init__()
        self.downsample, self.preactivation = downsample, preactivation
        self.skip = shortcut == "identity" or cin != cout
        self.conv1 = sn_conv(cin, cout, eps=sn_eps)
        self.conv2 = sn_conv(cout, cout, eps=sn_eps)
        needs_conv = cin != cout or (downsample and shortcut == "identity")
        self.conv_sc = sn_conv(cin, cout, 1, eps=sn_eps) if needs_conv else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(x) if self.preactivation else x
        h = self.conv2(F.relu(self.conv1(h)))
        if self.downsample:
            h = F.avg_pool2d(h, 2)
        if not self.skip:
            return h
        sc = x
        if self.preactivation:  # BigGAN: conv then pool after the first block, pool then conv in it
            sc = self.conv_sc(sc) if self.conv_sc is not None else sc
            sc = F.avg_pool2d(sc, 2) if self.downsample else sc
        else:
            sc = F.avg_pool2d(sc, 2) if self.downsample else sc
            sc = self.conv_sc(sc) if self.conv_sc is not None else sc
        return h + sc


# ---------------------------------------------------------------------------------------------------- networks
class Generator(nn.Module):
    """G(e, z): hierarchical noise ``e`` and logits ``z`` to an image in [-1, 1] (tanh); BigGAN's generator with
    Eq. 3 conditional batch-norm on the logits (Teterwak et al. 2021).

    ``forward(noise, logits)`` takes noise ``(N, noise_dim)`` (standard normal; split into one chunk for the initial
    linear layer and one per up-block) and logits ``(N, num_classes)``, and returns images
    ``(N, channels, resolution, resolution)`` in [-1, 1].

    Args:
        cfg: the architecture fields of the config (``resolution``, ``ch``, ``noise_dim``, ...).

    Raises:
        InputError: ``resolution`` is not 32, 64 or 128, or ``noise_dim`` is not a positive multiple of the number
            of chunks (4 at 32 px, 5 at 64 px, 6 at 128 px).
    """

    def __init__(self, cfg: BigGANConfig):
        super().__init__()
        widths = generator_widths(cfg)
        num_blocks = len(widths) - 1
        self.num_chunks = num_blocks + 1  # one noise chunk for the initial linear, one per block
        if cfg.noise_dim <= 0 or cfg.noise_dim % self.num_chunks:
            raise InputError(
                f"biggan_proj: noise_dim {cfg.noise_dim} must be a positive multiple of "
                f"{self.num_chunks} (one chunk per G block plus the initial linear) at "
                f"resolution {cfg.resolution}."
            )
        self.chunk = cfg.noise_dim // self.num_chunks
        cond_dim = cfg.num_classes + self.chunk  # [logits, block noise chunk] feeds every CBN MLP (Eq. 3)
        self.bottom = 4
        self.linear = sn_linear(self.chunk, widths[0] * self.bottom**2, eps=cfg.sn_eps)
        self.embed: nn.Module | None = None
        if cfg.cbn == "compare_gan":
            # compare_gan (resnet_biggan.Generator, embed_y): one linear map of the logits to cbn_hidden (128),
            # without bias or spectral norm, shared by every CBN; each gets [noise chunk, embedding].
            self.embed = nn.Linear(cfg.num_classes, cfg.cbn_hidden, bias=False)
            nn.init.orthogonal_(self.embed.weight)
            cond_dim = self.chunk + cfg.cbn_hidden
        self.blocks = nn.ModuleList()
        self.attention = nn.ModuleDict()
        size = self.bottom
        for i in range(num_blocks):
            size *= 2
            self.blocks.append(GBlock(widths[i], widths[i + 1], cond_dim, cfg))
            if size == cfg.g_attention:
                self.attention[str(i)] = SelfAttention(widths[i + 1], cfg.sn_eps)
        self.out_bn = nn.BatchNorm2d(widths[-1], eps=cfg.bn_eps)  # final, unconditional BN
        self.out_conv = sn_conv(widths[-1], cfg.channels, eps=cfg.sn_eps)
        if cfg.init == "compare_gan":
            zero_biases_(self)

    def forward(self, noise: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        chunks = torch.split(noise, self.chunk, dim=1)
        h = self.linear(chunks[0]).view(noise.shape[0], -1, self.bottom, self.bottom)
        y = self.embed(logits) if self.embed is not None else None
        for i, block in enumerate(self.blocks):
            cond = torch.cat([logits, chunks[i + 1]], dim=1) if y is None else torch.cat([chunks[i + 1], y], dim=1)
            h = block(h, cond)
            if str(i) in self.attention:
                h = self.attention[str(i)](h)
        return torch.tanh(self.out_conv(F.relu(self.out_bn(h))))


class Discriminator(nn.Module):
    """D(x, z) with the projection head of Eq. 2; ``terms`` returns its two summands separately.

    The projection discriminator of T. Miyato and M. Koyama, "cGANs with Projection Discriminator", ICLR 2018,
    conditioned on the logits instead of a class embedding (Teterwak et al. 2021, Eq. 2).
    ``forward(x, logits)`` takes images ``x`` ``(N, channels, resolution, resolution)`` in [-1, 1] (the range of
    G's tanh output; the trainer maps real images from [0, 1] with ``2 x - 1``) and logits ``(N, num_classes)``,
    and returns one unbounded score per image, ``(N,)`` (higher: more real).

    Args:
        cfg: the architecture fields of the config; ``resolution`` must be 32, 64 or 128 (not checked here:
            ``BigGANInverter`` checks it first).
    """

    def __init__(self, cfg: BigGANConfig):
        super().__init__()
        self.blocks = nn.ModuleList()
        self.attention = nn.ModuleDict()
        cin, size = cfg.channels, cfg.resolution
        for i, (mult, down) in enumerate(D_LAYOUT[cfg.resolution]):
            cout = mult * cfg.ch
            self.blocks.append(DBlock(cin, cout, down, preactivation=i > 0, sn_eps=cfg.sn_eps, shortcut=cfg.d_shortcut))
            size = size // 2 if down else size
            if size == cfg.d_attention and down:
                self.attention[str(i)] = SelfAttention(cout, cfg.sn_eps)
            cin = cout
        self.linear = sn_linear(cin, 1, bias=True, eps=cfg.sn_eps)  # w1 and b of Eq. 2
        if cfg.init == "compare_gan":  # W2 of Eq. 2, Glorot normal (compare_gan's embedding_fc)
            embed = nn.Linear(cfg.num_classes, cin, bias=False)
            glorot_normal_(embed.weight)
            self.embed = spectral_norm(embed, eps=cfg.sn_eps)
        else:
            self.embed = sn_linear(cfg.num_classes, cin, bias=False, eps=cfg.sn_eps)  # W2 of Eq. 2
        self.unit_range = cfg.d_input_range == "0..1"
        if cfg.init == "compare_gan":
            zero_biases_(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Psi(x): the residual trunk, ReLU and global sum pooling; ``(N, discriminator_widths(cfg)[-1])``.

        ``x`` is in [-1, 1]; with ``d_input_range="0..1"`` (compare_gan, whose G ends with ``(tanh + 1) / 2`` and
        whose D sees real images in [0, 1]) the trunk first maps it to [0, 1]."""
        h = (x + 1) / 2 if self.unit_range else x
        for i, block in enumerate(self.blocks):
            h = block(h)
            if str(i) in self.attention:
                h = self.attention[str(i)](h)
        return F.relu(h).sum(dim=(2, 3))

    def terms(self, x: torch.Tensor, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(unconditional term ``w1.Psi(x) + b``, projection term ``(W2 z).Psi(x)``), each ``(N,)``."""
        psi = self.features(x)
        return self.linear(psi).squeeze(1), (self.embed(logits) * psi).sum(dim=1)

    def forward(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        uncond, proj = self.terms(x, logits)
        return uncond + proj  # Eq. 2


# ------------------------------------------------------------------------------------------------------ losses
def d_hinge_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Discriminator hinge loss: (mean(relu(1 - D(real))), mean(relu(1 + D(fake)))).

    The hinge loss of J. H. Lim and J. C. Ye, "Geometric GAN", arXiv:1705.02894, 2017, as used by Miyato et al.,
    "Spectral Normalization for Generative Adversarial Networks", ICLR 2018, and by BigGAN.

    Args:
        d_real: ``(N,)`` D scores of real images.
        d_fake: ``(M,)`` D scores of generated images.

    Returns:
        The real and the fake term, two scalars >= 0; D minimises their sum.
    """
    return F.relu(1.0 - d_real).mean(), F.relu(1.0 + d_fake).mean()


def g_hinge_loss(d_fake: torch.Tensor) -> torch.Tensor:
    """Generator hinge loss: -mean(D(G(e, z), z)) (Lim & Ye 2017; Miyato et al. 2018), a scalar.

    Args:
        d_fake: ``(N,)`` D scores of generated images.
    """
    return -d_fake.mean()


# ---------------------------------------------------------------------------------------------------- inverter
class BigGANInverter(Inverter):
    """Logits -> image with the (EMA) BigGAN generator; its state dict holds G's weights only.

    The feedforward inverter of Teterwak et al., ICML 2021 (module docstring). ``invert`` takes logits
    ``(N, num_classes)`` and noise ``(N, noise_dim)`` (drawn when None) and returns images
    ``(N, channels, resolution, resolution)`` in [0, 1].

    ``config.bn_stats`` says whether its batch-norm buffers are standing statistics ("standing", the default of
    checkpoints trained since issue 12; see standing.py) or the EMA of the training running statistics.

    Args:
        config: the architecture (and training defaults); build it through ``biggan_proj.<tag>``, which checks
            the field values first.

    Raises:
        InputError: ``bn_stats`` is not "running" or "standing"; ``upsample``, ``cbn``, ``d_shortcut``,
            ``d_input_range`` or ``init`` is not one of its ``VARIANTS``; ``resolution`` is not 32, 64 or 128;
            ``noise_dim`` is not a positive multiple of the number of noise chunks (``Generator``).
    """

    trainable = True

    def __init__(self, config: BigGANConfig):
        super().__init__(config)
        if config.bn_stats not in ("running", "standing"):
            raise InputError(
                f"biggan_proj: bn_stats '{config.bn_stats}' is unknown; it is 'running' or 'standing' and is set by "
                "training or `invkit standing-stats`, not chosen."
            )
        _check_variants(config)
        self.generator = Generator(config)

    def invert(
        self, logits: torch.Tensor, noise: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        logits = self.check_logits(logits)
        noise = self.check_noise(noise, logits.shape[0], generator)
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                out = self.generator(noise.to(self.device, torch.float32), logits.to(self.device, torch.float32))
        finally:
            self.train(was_training)
        # Each of the 2 conditional batch-norms per G block multiplies its activations by 1 + gain(logits), a gain
        # linear in the logits: they compound, and logits near 1e6 (the demo checkpoint) overflow float32 to NaN.
        self.check_output(out, logits, "each conditional batch-norm multiplies by a gain that grows with the logits")
        return (out.float() + 1) / 2  # tanh output in [-1, 1] -> images in [0, 1]

    def make_trainer(self, classifier: Any, **options: Any) -> BigGANTrainer:
        return BigGANTrainer(self, classifier, **options)

    def with_standing_stats(self, logits_batches: Any, generator: torch.Generator | None = None) -> BigGANInverter:
        """A copy whose batch-norms hold standing statistics over ``logits_batches`` (see standing.py)."""
        from .standing import accumulate_standing_stats

        return accumulate_standing_stats(self, logits_batches, generator)


def spectral_norm_modules(module: nn.Module) -> list[tuple[str, nn.Module, bool]]:
    """Every Conv2d/Linear inside ``module`` with whether its weight is spectrally normalised."""
    out = []
    for name, m in module.named_modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            has_sn = parametrize.is_parametrized(m, "weight") and any(
                type(p).__name__ == "_SpectralNorm" for p in m.parametrizations["weight"]
            )
            out.append((name, m, has_sn))
    return out


# ----------------------------------------------------------------------------------------------------- trainer
def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 natively: CUDA GPUs with bf16 support, or CPUs whose oneDNN
    build reports AVX512-BF16/AMX. Elsewhere bf16 is emulated and slower than fp32, so it stays off."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # torch builds without oneDNN or without the query
        return False


@dataclass(frozen=True)
class BigGANTrainerOptions:
    """The options of ``BigGANTrainer`` (``invkit train --option``, besides the config fields); None: the default
    written beside each."""

    g_lr: float | None = None  # G's Adam learning rate (None: BigGANConfig.g_lr)
    d_lr: float | None = None  # D's Adam learning rate (None: BigGANConfig.d_lr)
    beta1: float | None = None  # Adam beta1 of both (None: BigGANConfig.beta1)
    beta2: float | None = None  # Adam beta2 of both (None: BigGANConfig.beta2)
    adam_eps: float | None = None  # Adam epsilon of both (None: BigGANConfig.adam_eps)
    num_d_steps: int | None = None  # D steps per G step (None: BigGANConfig.num_d_steps)
    ema_decay: float | None = None  # decay of G's EMA copy (None: BigGANConfig.ema_decay)
    ema_start: int | None = None  # G steps before the EMA starts (None: BigGANConfig.ema_start)
    bf16: bool | None = None  # bfloat16 autocast (None: where the device computes bf16 natively, native_bf16)
    channels_last: bool | None = None  # channels-last memory format (None: as bf16)
    seed: int | None = None  # seeds the noise generator (None: drawn from torch's global RNG)


TRAINER_OPTIONS = tuple(f.name for f in fields(BigGANTrainerOptions))  # the option names (before: a hand-kept list)


class BigGANTrainer(InverterTrainer):
    """Hinge-loss GAN training of the inverter against real images and their logits.

    The training of Teterwak et al. 2021, which takes BigGAN's ImageNet recipe (A. Brock, J. Donahue and
    K. Simonyan, "Large Scale GAN Training for High Fidelity Natural Image Synthesis", ICLR 2019): hinge losses,
    Adam(0, 0.999), two D steps per G step, an EMA of G; values in ``BigGANConfig``.

    Holds the discriminator, both Adam optimisers, the EMA copy of G and a noise generator. Every step:
    ``num_d_steps`` D updates, each on a fresh batch (real images and their logits against G's images for the
    same logits), then one G update on a fresh batch, then the EMA update.

    Options (``BigGANTrainerOptions``, checked by invkit; all optional, defaults from the inverter's config):
    ``g_lr``, ``d_lr``, ``beta1``, ``beta2``, ``adam_eps``, ``num_d_steps``, ``ema_decay``, ``ema_start``;
    ``bf16`` (autocast to bfloat16) and
    ``channels_last`` (memory format of G, D and the image batches), both on by default where the device
    computes bf16 natively (``native_bf16``: CUDA with bf16, CPUs with AVX512-BF16/AMX) and off elsewhere;
    ``seed`` for the noise generator (default: drawn from torch's global RNG, so ``torch.manual_seed`` fixes it).
    Batches (``invkit.core.inverter.Batch``) hold images in [0, 1] at the inverter's resolution and their logits.

    Deviations from the paper: on such devices the forward passes run in bf16 (losses, optimiser states and
    weights stay fp32); the paper does not state its precision. On a CPU with AMX a step is 2.5-5x faster than in fp32;
    how much it changes the numbers is measured (docs/training.md, "Numerics"). ``bf16=False`` restores fp32.

    Args:
        inverter: the inverter to train (its generator is G).
        classifier: the frozen classifier being inverted (the training loop, not the trainer, computes the logits).
        **options: the options above.

    Raises:
        InputError: an option not listed above (with the closest names), or a value of the wrong type, NaN/inf or a
            learning rate not above 0 (``InverterTrainer.__init__``, ``invkit.utils.config.check_options``).
    """

    options = BigGANTrainerOptions()  # declared: invkit checks the names and types of the options given

    def __init__(self, inverter: BigGANInverter, classifier: Any, **options: Any):
        super().__init__(inverter, classifier, **options)  # checks them and sets self.options
        cfg = inverter.config
        given = self.options
        opt = {k: v if (v := getattr(given, k)) is not None else getattr(cfg, k, None) for k in TRAINER_OPTIONS}
        self.num_d_steps, self.ema_decay, self.ema_start = int(opt["num_d_steps"]), opt["ema_decay"], opt["ema_start"]
        device = inverter.device
        fast = native_bf16(device)  # precision "auto": bf16 + channels_last where the hardware has bf16
        self.bf16 = fast if given.bf16 is None else given.bf16
        self.channels_last = fast if given.channels_last is None else given.channels_last
        self.G = inverter.generator
        self.D = Discriminator(cfg).to(device)
        self.ema = copy.deepcopy(inverter).eval()
        self.ema.requires_grad_(False)
        if self.channels_last:
            for m in (self.G, self.D, self.ema):
                m.to(memory_format=torch.channels_last)
        self.G_train: nn.Module = self.G  # the modules used for gradient steps (DDP-wrapped by distribute)
        self.D_train: nn.Module = self.D
        betas = (float(opt["beta1"]), float(opt["beta2"]))
        fused = True if device.type == "cuda" else None  # one kernel per step on GPUs; torch's default elsewhere
        self.opt_G = torch.optim.Adam(
            self.G.parameters(), lr=opt["g_lr"], betas=betas, eps=opt["adam_eps"], fused=fused
        )
        self.opt_D = torch.optim.Adam(
            self.D.parameters(), lr=opt["d_lr"], betas=betas, eps=opt["adam_eps"], fused=fused
        )
        seed = given.seed
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,)).item())
        self.noise_gen = torch.Generator().manual_seed(int(seed))
        self.g_steps = 0
        self.distributed = False
        self.standing_batches = int(cfg.standing_batches)
        self.recent_logits: list[torch.Tensor] = []  # logits of the last standing_batches G steps
        self._standing: tuple[int, BigGANInverter] | None = None  # (g_steps, copy with standing statistics)

    # ------------------------------------------------------------------------------------------------- steps
    def _noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.inverter.noise_dim, generator=self.noise_gen).to(self.inverter.device)

    def _batch(self, next_batch: Callable[[], Batch]) -> tuple[torch.Tensor, torch.Tensor]:
        images, logits = next_batch()
        device = self.inverter.device
        images = images.to(device, torch.float32) * 2 - 1  # D sees images in [-1, 1], like G's tanh output
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images, logits.to(device, torch.float32)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(self.inverter.device.type, dtype=torch.bfloat16)

    def train_step(self, next_batch: Callable[[], Batch], step: int) -> dict[str, float]:
        self.G.train()
        self.D.train()
        self.D.requires_grad_(True)
        loss_real = loss_fake = torch.zeros(())
        for _ in range(self.num_d_steps):
            real, logits = self._batch(next_batch)
            noise = self._noise(real.shape[0])
            with torch.no_grad(), self._autocast():
                fake = self.G(noise, logits)  # plain module: no gradient, nothing for DDP to reduce
            with self._autocast():
                # One D call on [real; fake] so each D step runs a single (DDP-friendly) forward.
                out = self.D_train(torch.cat([real, fake.to(real.dtype)]), torch.cat([logits, logits])).float()
            loss_real, loss_fake = d_hinge_loss(out[: real.shape[0]], out[real.shape[0] :])
            self.opt_D.zero_grad(set_to_none=True)
            (loss_real + loss_fake).backward()
            loss_real, loss_fake = loss_real.detach(), loss_fake.detach()
            self.opt_D.step()

        self.D.requires_grad_(False)  # G step: gradients flow through D to G, none accumulate in D
        _, logits = self._batch(next_batch)
        if self.standing_batches > 0:
            self.recent_logits = [*self.recent_logits, logits.detach()][-self.standing_batches :]
        noise = self._noise(logits.shape[0])
        with self._autocast():
            d_fake = self.D(self.G_train(noise, logits), logits).float()  # plain D: it is not updated here
        g_loss = g_hinge_loss(d_fake)
        self.opt_G.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_G.step()
        self.D.requires_grad_(True)
        if self.distributed:
            self._average_bn_stats()
        self.g_steps += 1
        self._update_ema()
        return {
            "d_loss_real": loss_real.item(),
            "d_loss_fake": loss_fake.item(),
            "g_loss": g_loss.item(),
            "d_fake_mean": d_fake.detach().mean().item(),
        }

    @torch.no_grad()
    def _update_ema(self) -> None:
        """EMA of G's parameters and BN statistics; before ``ema_start`` the copy just tracks G (BigGAN)."""
        decay = self.ema_decay if self.g_steps >= self.ema_start else 0.0
        src = dict(self.inverter.named_parameters()) | {
            k: v for k, v in self.inverter.named_buffers() if k.endswith(("running_mean", "running_var"))
        }
        dst = dict(self.ema.named_parameters()) | dict(self.ema.named_buffers())
        for name, s in src.items():
            dst[name].lerp_(s, 1.0 - decay)
        for name, buf in self.inverter.named_buffers():
            if name.endswith("num_batches_tracked"):
                dst[name].copy_(buf)
        # Spectral norm's u/v of the EMA copy follow the EMA weights: one power iteration on them.
        self.ema.train()
        for _, m, has_sn in spectral_norm_modules(self.ema):
            if has_sn:
                _ = m.weight
        self.ema.eval()

    def _average_bn_stats(self) -> None:
        import torch.distributed as dist

        world = dist.get_world_size()
        for name, buf in self.G.named_buffers():
            if name.endswith(("running_mean", "running_var")):
                dist.all_reduce(buf)
                buf.div_(world)

    # ----------------------------------------------------------------------------------------------- contract
    def inference_inverter(self) -> BigGANInverter:
        """The EMA generator, with standing BN statistics (standing.py) when ``standing_batches > 0``.

        The statistics are accumulated once per G step count over the logits of the last ``standing_batches``
        G-step batches, with noise from a generator seeded by the step count (so a resumed run saves the same).
        """
        if self.standing_batches <= 0 or not self.recent_logits:
            return self.ema
        if self._standing is None or self._standing[0] != self.g_steps:
            from .standing import accumulate_standing_stats

            gen = torch.Generator().manual_seed(self.g_steps)
            self._standing = (self.g_steps, accumulate_standing_stats(self.ema, self.recent_logits, gen))
        return self._standing[1]

    def distribute(self, wrap: Callable[[nn.Module], nn.Module]) -> None:
        self.G_train, self.D_train = wrap(self.G), wrap(self.D)  # DDP broadcasts rank 0's weights here
        self.distributed = True
        if self.g_steps == 0:  # so the EMA copy starts from the same (broadcast) G on every rank
            self.ema.load_state_dict(self.inverter.state_dict())

    def sample_images(self, logits: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        return self.inference_inverter().invert(logits.to(self.inverter.device), noise=noise)

    def state_dict(self) -> dict[str, Any]:
        return {
            "G": dict(self.G.state_dict()),  # raw G too, so a resume never depends on how the loop saves it
            "D": dict(self.D.state_dict()),
            "G_ema": dict(self.ema.state_dict()),
            "opt_G": self.opt_G.state_dict(),
            "opt_D": self.opt_D.state_dict(),
            "noise_gen": self.noise_gen.get_state(),
            "g_steps": self.g_steps,
            "recent_logits": torch.stack(self.recent_logits) if self.recent_logits else torch.zeros(0),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.ema.load_state_dict(state["G_ema"])
        self.opt_G.load_state_dict(state["opt_G"])
        self.opt_D.load_state_dict(state["opt_D"])
        self.noise_gen.set_state(state["noise_gen"])
        self.g_steps = int(state["g_steps"])
        recent = state.get("recent_logits")  # absent in train states written before standing statistics
        self.recent_logits = list(recent.to(self.inverter.device).unbind(0)) if recent is not None else []
        self._standing = None


def config_field_names() -> list[str]:
    return [f.name for f in fields(BigGANConfig)]
