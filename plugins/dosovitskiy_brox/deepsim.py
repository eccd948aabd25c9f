"""Dosovitskiy & Brox (2016): an up-convolutional decoder from a feature vector, trained with DeePSiM losses.

Paper: A. Dosovitskiy and T. Brox, "Generating Images with Perceptual Similarity Metrics based on Deep
Networks", NIPS 2016 (arXiv:1602.02644). Here the feature vector is a classifier's logit vector, as in the
paper's inversion of AlexNet's fc8, or an observation channel of it, or (``invkit train --layer NAME``) one layer's
globally pooled activations, as the paper inverts every AlexNet layer (``invkit.core.observation``).

Generator G: the published fc-feature generator (Dosovitskiy & Brox's released Caffe definition for fc6-fc8;
layer names defc7, defc6, defc5, deconv5, conv5_1, deconv4, conv4_1, deconv3, conv3_1, deconv2, deconv1, deconv0,
checked against a public PyTorch port of it). With C = ``start_channels`` (256) it is::

    fc 4096 -> fc 4096 -> fc 4096 (= 4x4xC) -> reshape 4x4xC
    up C -> conv 2C   (8x8)      up = 4x4 transposed conv, stride 2, padding 1
    up C -> conv C    (16x16)    conv = 3x3 conv, padding 1
    up C/2 -> conv C/2 (32x32)
    up C/4            (64x64)
    up C/8            (128x128)
    up image channels (256x256)  the last layer: no activation in the paper, a sigmoid here

leaky ReLU with negative slope 0.3 after every layer but the last. Scaled to the resolution: the number of
up-convolutions k follows from it (4 -> 8 -> ... -> R; a resolution such as 28 starts from 7x7); the first k-1
stages of the list above are kept and the last one always produces the image (32 px: up C, conv 2C, up C,
conv C, up image; 512 px: one more stage without a 3x3 conv, halving). ``width_mult`` scales all widths and
``min_channels`` is a floor. The output is a sigmoid so that images lie in [0, 1] (the paper's output is an
unbounded mean-subtracted image; invkit's Inverter API returns [0, 1]).

Training loss for G (their Eq. 1-4)::

    L = lambda_pix * L_img + lambda_feat * L_feat + lambda_adv * L_adv
    L_img  = ||G(y) - x||^2                   image-space loss
    L_feat = ||C(G(y)) - C(x)||^2             loss in a comparator network C's feature space
    L_adv  = -log D(G(y), y)                  adversarial loss, D also sees the feature vector y

and for the discriminator ``L_discr = -log D(x, y) - log(1 - D(G(y), y))``. D is a two-way softmax classifier
(real / generated) whose image branch is a conv stack with average pooling and whose feature branch is fully
connected; the two are concatenated and classified (their Sec. 3). The paper temporarily stops updating D while
``L_discr / L_adv`` is below 0.1, to keep it from overfitting; so does this trainer.

Loss weights. The paper (Caffe) uses lambda_feat = 0.01, lambda_img = 2e-6, lambda_adv = 100 on losses that
are *sums* over pixels / feature entries (Caffe's EuclideanLoss, 1/2 sum per image) of 227x227x3 images in
[0, 255] and AlexNet conv5 features (13x13x256), while the softmax loss is a per-image mean. invkit uses
per-element *means* of [0, 1] images and features, so the same balance of per-element errors is:

    lambda_pix  = 2e-6 * (227*227*3) * 255^2 / 2 = 10052     ->  /100 = 100.5
    lambda_feat = 0.01 * (13*13*256) / 2         = 216.3     ->  /100 = 2.163
    lambda_adv  = 100                                        ->  /100 = 1.0

(divided by 100 overall: Adam is invariant to the scale of the loss). Mean reduction keeps this balance at any
resolution, which applying the raw sum weights at 32x32 would not (the pixel term would shrink 150-fold).
See docs/baselines.md.

Comparator C: by default the inverted classifier itself, at its deepest spatial feature map (``"spatial"``: the
last output of shape (N, C, H, W) with H * W > 1 in its forward pass; AlexNet's conv5, 13x13x256, in the paper,
for which the loss weight below was derived), so that training runs offline. ``"penultimate"`` (the input of the
last linear layer, a vector), ``"logits"``, a dotted module name of ``classifier.network``, or another
``invkit.Classifier`` (or a registered name) can be given instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from invkit.core.classifier import Classifier
from invkit.core.inverter import Batch, Inverter, InverterTrainer
from invkit.errors import InputError, InvkitError, TrainingError


@dataclass
class DosovitskiyBroxConfig:
    """Constructor arguments of ``DosovitskiyBroxInverter``; defaults are the paper's (AlexNet fc8 inversion)."""

    num_classes: int = 1000  # logit (feature) vector length; AlexNet fc8 in the paper
    channels: int = 3  # output image channels
    resolution: int = 256  # output image side; the paper generates 256x256 and crops 227x227
    noise_dim: int = 0  # the decoder is deterministic
    fc_dim: int = 4096  # width of each fully connected layer (paper: 4096)
    fc_layers: int = 3  # number of fully connected layers before the reshape (paper: 3)
    start_channels: int = 256  # channels of the reshaped map (paper: 4x4x256)
    width_mult: float = 1.0  # multiplies fc_dim, start_channels and the discriminator widths
    min_channels: int = 16  # floor of the up-convolution widths (the paper's last ones: 64, 32)
    leak: float = 0.3  # leaky ReLU negative slope (paper: 0.3)
    # ---- training defaults (used by make_trainer; each can be overridden there) ----
    lambda_pix: float = 100.5  # image-space loss weight (paper 2e-6 on Caffe sums; mapping in module docstring)
    lambda_feat: float = 2.163  # comparator feature loss weight (paper 0.01 on Caffe sums)
    lambda_adv: float = 1.0  # adversarial loss weight (paper 100; everything divided by 100)
    comparator_layer: str = "spatial"  # "spatial" (paper: conv5 map), "penultimate", "logits" or a module name
    lr: float = 2e-4  # Adam learning rate for G and D (paper: 0.0002)
    beta1: float = 0.9  # Adam beta1 (paper: 0.9)
    beta2: float = 0.999  # Adam beta2 (paper: 0.999)
    d_pause_ratio: float = 0.1  # skip the D update while L_discr / L_adv is below this (paper: 0.1)
    d_channels: int = 32  # channels of the first discriminator conv, doubled per stride-2 conv
    d_fc_dim: int = 1024  # discriminator feature branch width (paper: 1024-512)


def _scaled(n: int, mult: float) -> int:
    return max(1, int(round(n * mult)))


def _stages(resolution: int) -> tuple[int, int]:
    """(number of 2x up-convolution stages, side of the reshaped map): 256 -> (6, 4), 32 -> (3, 4), 28 -> (2, 7)."""
    k = 0
    while resolution % (2 ** (k + 1)) == 0 and resolution // (2 ** (k + 1)) >= 4:
        k += 1
    return k, resolution // (2**k)


def _stage_widths(start: int, n: int) -> list[tuple[int, int]]:
    """(up-conv width, 3x3 conv width or 0) of the first ``n`` stages before the image layer, for a reshaped map of
    ``start`` channels: the paper's (C, 2C), (C, C), (C/2, C/2), (C/4, -), (C/8, -), then halving without a conv."""
    paper = [(start, 2 * start), (start, start), (start // 2, start // 2), (start // 4, 0), (start // 8, 0)]
    widths = paper[:n]
    while len(widths) < n:
        widths.append((max(1, widths[-1][0] // 2), 0))
    return widths


class DosovitskiyBroxInverter(Inverter):
    """The generator G: logits -> fully connected -> reshape -> up-convolutions -> image in [0, 1].

    The fc-feature decoder of A. Dosovitskiy and T. Brox, "Generating Images with Perceptual Similarity Metrics
    based on Deep Networks", NIPS 2016, scaled to the resolution (module docstring). ``forward(logits)`` and
    ``invert(logits)`` map logits ``(N, num_classes)`` to images ``(N, channels, resolution, resolution)`` in
    [0, 1] (sigmoid output); it is deterministic (``noise_dim`` 0).

    Args:
        config: the architecture (and training defaults); build it through ``dosovitskiy_brox.<preset>``
            (``build``), which checks the field values first.

    Raises:
        InputError: ``resolution`` is odd or below 8 pixels, or ``noise_dim`` is not 0.
    """

    trainable = True

    def __init__(self, config: DosovitskiyBroxConfig):
        super().__init__(config)
        c = config
        if c.resolution < 8 or c.resolution % 2:
            raise InputError(
                f"dosovitskiy_brox: resolution {c.resolution} is not possible; the decoder ends with a stride-2 "
                "up-convolution, so use an even resolution of at least 8."
            )
        if c.noise_dim != 0:
            raise InputError("dosovitskiy_brox is deterministic: noise_dim must be 0.")
        self.n_stages, self.start_side = _stages(c.resolution)
        fc_dim = _scaled(c.fc_dim, c.width_mult)
        ch = _scaled(c.start_channels, c.width_mult)
        # Fully connected layers (paper: fc 4096 x3), the last one sized to the reshaped map.
        dims = [c.num_classes] + [fc_dim] * (c.fc_layers - 1) + [ch * self.start_side**2]
        fc: list[nn.Module] = []
        for d_in, d_out in zip(dims[:-1], dims[1:]):
            fc += [nn.Linear(d_in, d_out), nn.LeakyReLU(c.leak)]
        self.fc = nn.Sequential(*fc)
        self.map_channels = ch
        up: list[nn.Module] = []
        for up_out, conv_out in _stage_widths(ch, self.n_stages - 1):
            up_out, conv_out = max(c.min_channels, up_out), conv_out and max(c.min_channels, conv_out)
            up += [nn.ConvTranspose2d(ch, up_out, 4, stride=2, padding=1), nn.LeakyReLU(c.leak)]
            ch = up_out
            if conv_out:
                up += [nn.Conv2d(ch, conv_out, 3, padding=1), nn.LeakyReLU(c.leak)]
                ch = conv_out
        self.up = nn.Sequential(*up)
        # The last layer (deconv0): an up-convolution straight to the image.
        self.to_image = nn.ConvTranspose2d(ch, c.channels, 4, stride=2, padding=1)
        # He initialisation for leaky ReLU: with PyTorch's default init the signal shrinks ~3x per layer and a
        # fresh decoder's output would not depend on the logits at all (std across inputs ~1e-5).
        for m in self.modules():
            if isinstance(m, nn.Linear | nn.Conv2d | nn.ConvTranspose2d):
                nn.init.kaiming_normal_(m.weight, a=c.leak, nonlinearity="leaky_relu")
                nn.init.zeros_(m.bias)

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        h = self.fc(logits).view(-1, self.map_channels, self.start_side, self.start_side)
        return torch.sigmoid(self.to_image(self.up(h)))

    def invert(
        self, logits: torch.Tensor, noise: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        self.check_logits(logits)
        self.check_noise(noise, logits.shape[0], generator)
        return self.check_output(self(logits.to(self.device)), logits, "its fully connected layers")

    def make_trainer(self, classifier: Any, **options: Any) -> DosovitskiyBroxTrainer:
        return DosovitskiyBroxTrainer(self, classifier, **options)


class Discriminator(nn.Module):
    """D(x, y): conv layers on the image and fully connected layers on the feature vector, concatenated,
    then a two-way (real / generated) classifier (the paper's Sec. 3 discriminator, scaled to the resolution).

    ``forward(images, features)`` takes images ``(N, channels, H, W)`` in [0, 1] (real ones and G's sigmoid output;
    built for H = W = ``resolution``, though the global average pooling accepts other sizes) and feature vectors
    ``(N, num_classes)`` (the logits ``y``), and returns ``(N, 2)`` unnormalised two-way logits.

    Args:
        channels: image channels.
        resolution: image side in pixels; stride-2 convolutions halve it down to 4 or less.
        num_classes: length of the feature vector.
        width: channels of the first convolution, doubled per stride-2 convolution up to ``8 * width``.
        fc_dim: width of the feature branch's first layer (then ``fc_dim // 2``).
    """

    def __init__(self, channels: int, resolution: int, num_classes: int, width: int = 32, fc_dim: int = 1024):
        super().__init__()
        convs: list[nn.Module] = []
        c_in, c_out, side = channels, width, resolution
        while side > 4:
            convs += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.ReLU()]
            c_in, c_out, side = c_out, min(c_out * 2, 8 * width), math.ceil(side / 2)
        convs += [nn.Conv2d(c_in, c_in, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.image_branch = nn.Sequential(*convs)
        self.feature_branch = nn.Sequential(
            nn.Linear(num_classes, fc_dim), nn.ReLU(), nn.Linear(fc_dim, fc_dim // 2), nn.ReLU()
        )
        self.head = nn.Sequential(nn.Linear(c_in + fc_dim // 2, fc_dim // 2), nn.ReLU(), nn.Linear(fc_dim // 2, 2))

    def forward(self, images: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """Two logits per image, ``(N, 2)``: index 0 = generated, index 1 = real (softmax gives D's probability)."""
        return self.head(torch.cat([self.image_branch(images), self.feature_branch(features)], dim=1))


# --------------------------------------------------------------------------------------------- loss terms
REAL, FAKE = 1, 0


def pixel_loss(generated: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L_img: mean squared error per element."""
    return (generated - target).pow(2).mean()


def feature_loss(generated_features: torch.Tensor, target_features: torch.Tensor) -> torch.Tensor:
    """L_feat: mean squared error per feature entry."""
    return (generated_features - target_features).pow(2).mean()


def adversarial_loss(d_logits_generated: torch.Tensor) -> torch.Tensor:
    """L_adv = -log D(G(y), y): the softmax cross-entropy of generated images against the *real* label.

    Args:
        d_logits_generated: ``(N, 2)`` discriminator logits of generated images (index 1 = real).

    Returns:
        The batch mean, a scalar >= 0.
    """
    target = torch.full((d_logits_generated.shape[0],), REAL, dtype=torch.long, device=d_logits_generated.device)
    return F.cross_entropy(d_logits_generated, target)


def discriminator_loss(d_logits_real: torch.Tensor, d_logits_generated: torch.Tensor) -> torch.Tensor:
    """L_discr = -log D(x, y) - log(1 - D(G(y), y)) (batch means).

    Args:
        d_logits_real: ``(N, 2)`` discriminator logits of real images.
        d_logits_generated: ``(M, 2)`` discriminator logits of generated images.

    Returns:
        The sum of the two cross-entropy batch means, a scalar >= 0.
    """
    real = torch.full((d_logits_real.shape[0],), REAL, dtype=torch.long, device=d_logits_real.device)
    fake = torch.full((d_logits_generated.shape[0],), FAKE, dtype=torch.long, device=d_logits_generated.device)
    return F.cross_entropy(d_logits_real, real) + F.cross_entropy(d_logits_generated, fake)


# --------------------------------------------------------------------------------------------- comparator
class Comparator:
    """C(x): features of a classifier for images in [0, 1], flattened to ``(N, D)``.

    Args:
        classifier: an ``invkit.Classifier`` (frozen; gradients flow to the input).
        layer: ``"spatial"`` (the last output of shape ``(N, C, H, W)`` with ``H * W > 1`` computed in the
            forward pass of ``classifier.network``: its deepest feature map, the analogue of the paper's AlexNet
            conv5), ``"penultimate"`` (the input of the last ``nn.Linear``), ``"logits"``, or a dotted module
            name in ``classifier.network`` whose output is taken.

    Raises:
        InvkitError: the network has no such layer, or (``"spatial"``) produced no spatial map.
    """

    def __init__(self, classifier: Classifier, layer: str = "penultimate"):
        self.classifier, self.layer = classifier, layer
        self._captured: torch.Tensor | None = None
        self._handle: Any = None
        if layer == "logits":
            return
        modules = dict(classifier.network.named_modules())
        if layer == "spatial":
            self._handle = [m.register_forward_hook(self._capture_spatial) for m in modules.values()]
        elif layer == "penultimate":
            linears = [m for m in modules.values() if isinstance(m, nn.Linear)]
            if not linears:
                raise InvkitError(
                    f"comparator: {classifier.name} has no nn.Linear layer; give comparator_layer "
                    "as a module name of classifier.network or 'logits'."
                )
            self._handle = linears[-1].register_forward_pre_hook(self._capture_input)
        elif layer in modules:
            self._handle = modules[layer].register_forward_hook(self._capture_output)
        else:
            close = ", ".join(n for n in modules if n)[:300]
            raise InvkitError(
                f"comparator: {classifier.name} has no module '{layer}'; choose one of: {close}, "
                "'penultimate' or 'logits'."
            )

    def _capture_input(self, module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        self._captured = args[0]

    def _capture_output(self, module: nn.Module, args: Any, output: torch.Tensor) -> None:
        self._captured = output

    def _capture_spatial(self, module: nn.Module, args: Any, output: Any) -> None:
        # Hooks run in execution order, so the last spatial map wins (a container's output after its children's).
        if isinstance(output, torch.Tensor) and output.dim() == 4 and output.shape[-1] * output.shape[-2] > 1:
            self._captured = output

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        self._captured = None
        logits = self.classifier.logits(images)
        features = logits if self.layer == "logits" else self._captured
        if features is None:
            what = "produced no (N, C, H, W) map larger than 1x1" if self.layer == "spatial" else "was not run"
            raise InvkitError(
                f"comparator: layer '{self.layer}' of {self.classifier.name} {what}; give comparator_layer as "
                "'penultimate', 'logits' or a module name of classifier.network."
            )
        return features.flatten(1)

    def close(self) -> None:
        handles = self._handle if isinstance(self._handle, list) else [self._handle]
        for handle in handles:
            if handle is not None:
                handle.remove()
        self._handle = None


# ------------------------------------------------------------------------------------------------ trainer
@dataclass(frozen=True)
class DosovitskiyBroxTrainerOptions:
    """The options of ``DosovitskiyBroxTrainer`` (``invkit train --option``); None: the inverter config's value."""

    lambda_pix: float | None = None  # weight of the pixel loss L_img
    lambda_feat: float | None = None  # weight of the feature loss L_feat
    lambda_adv: float | None = None  # weight of the adversarial loss L_adv
    comparator_layer: str | None = None  # "spatial", "penultimate", "logits" or a module name of the comparator
    lr: float | None = None  # Adam learning rate of G and D
    beta1: float | None = None  # Adam beta1
    beta2: float | None = None  # Adam beta2
    d_pause_ratio: float | None = None  # D is skipped while L_discr / L_adv is below this
    comparator: Any = None  # None (the inverted classifier), an invkit.Classifier, or a classifier name or folder
    g_lr: float | None = None  # G's learning rate (invkit train --lr-g; None: lr)
    d_lr: float | None = None  # D's learning rate (invkit train --lr-d; None: lr)
    bf16: bool = False  # bfloat16 autocast of the forward passes
    channels_last: bool = False  # channels-last memory format of G and D


class DosovitskiyBroxTrainer(InverterTrainer):
    """G and D updates with the DeePSiM loss (see the module docstring).

    Options (``DosovitskiyBroxTrainerOptions``, checked by invkit; each defaults to the inverter's config):
    ``lambda_pix``, ``lambda_feat``, ``lambda_adv``,
    ``comparator_layer``, ``lr``, ``beta1``, ``beta2``, ``d_pause_ratio``; plus ``comparator``: None (the
    inverted classifier), another ``invkit.Classifier``, or a registered classifier name; ``g_lr`` / ``d_lr``
    (separate learning rates, from ``invkit train --lr-g/--lr-d``); ``bf16`` (bfloat16 autocast of the
    forward passes) and ``channels_last`` (memory format of G and D), both off by default.
    Batches (``invkit.core.inverter.Batch``) hold images in [0, 1] at the inverter's resolution and their logits.

    Args:
        inverter: the decoder G to train.
        classifier: the frozen classifier being inverted (also the default comparator).
        **options: the fields of ``DosovitskiyBroxTrainerOptions`` (above).

    Raises:
        InputError: an option not listed above (with the closest names), or a value of the wrong type or NaN/inf
            (``InverterTrainer.__init__``, ``invkit.utils.config.check_options``).
        TrainingError: a classifier with another number of logits than the inverter takes; neither a classifier
            nor a comparator.
        InvkitError: ``comparator_layer`` is not a module of the comparator's network, or is "penultimate" for
            a network without ``nn.Linear`` (``Comparator``); a ``comparator`` name that does not resolve
            (``invkit.resolve_classifier``: ``UnknownNameError``, ``CheckpointError``).
    """

    OPTIONS = ("lambda_pix", "lambda_feat", "lambda_adv", "comparator_layer", "lr", "beta1", "beta2", "d_pause_ratio")
    options = DosovitskiyBroxTrainerOptions()  # declared: invkit checks the names and types of the options given

    def __init__(self, inverter: DosovitskiyBroxInverter, classifier: Any, **options: Any):
        super().__init__(inverter, classifier, **options)  # checks them and sets self.options
        cfg = inverter.config
        given = self.options
        self.opts = {k: v if (v := getattr(given, k)) is not None else getattr(cfg, k) for k in self.OPTIONS}
        comparator, g_lr, d_lr = given.comparator, given.g_lr, given.d_lr
        bf16, channels_last = given.bf16, given.channels_last
        # conditioned on a layer (invkit.core.observation), num_classes is that layer's width, checked by invkit
        if classifier is not None and inverter.layer is None and classifier.num_classes != inverter.num_classes:
            raise TrainingError(
                f"dosovitskiy_brox: inverter takes {inverter.num_classes} logits but "
                f"{classifier.name} gives {classifier.num_classes}."
            )
        if isinstance(comparator, str):
            import invkit

            comparator = invkit.resolve_classifier(comparator)  # a registry name or a classifier checkpoint folder
        comparator = comparator if comparator is not None else classifier
        if comparator is None:
            raise TrainingError("dosovitskiy_brox: training needs a classifier (or a comparator) for L_feat.")
        self.comparator = Comparator(comparator, self.opts["comparator_layer"])
        self.discriminator = Discriminator(
            cfg.channels,
            cfg.resolution,
            cfg.num_classes,
            width=_scaled(cfg.d_channels, cfg.width_mult),
            fc_dim=_scaled(cfg.d_fc_dim, cfg.width_mult),
        ).to(inverter.device)
        betas = (self.opts["beta1"], self.opts["beta2"])
        self.g_lr = float(g_lr if g_lr is not None else self.opts["lr"])
        self.d_lr = float(d_lr if d_lr is not None else self.opts["lr"])
        self.bf16 = bool(bf16)
        if channels_last:
            self.discriminator.to(memory_format=torch.channels_last)
        self.opt_g = torch.optim.Adam(inverter.parameters(), lr=self.g_lr, betas=betas)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=self.d_lr, betas=betas)
        self.g: nn.Module = inverter  # replaced by DDP wrappers in distribute()
        self.d: nn.Module = self.discriminator
        self.d_updates = 0
        self.d_skips = 0

    def distribute(self, wrap: Callable[[nn.Module], nn.Module]) -> None:
        self.g = wrap(self.inverter)
        self.d = wrap(self.discriminator)

    def train_step(self, next_batch: Callable[[], Batch], step: int) -> dict[str, float]:
        o = self.opts
        images, logits = next_batch()
        device = self.inverter.device
        images, logits = images.to(device), logits.to(device)
        self.inverter.train()
        self.discriminator.train()

        autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.bf16)

        # Generator: lambda_pix * L_img + lambda_feat * L_feat + lambda_adv * L_adv.
        with autocast:
            generated = self.g(logits).float()
            l_img = pixel_loss(generated, images)
            with torch.no_grad():
                target_features = self.comparator(images).float()
            l_feat = feature_loss(self.comparator(generated).float(), target_features)
            l_adv = adversarial_loss(self.d(generated, logits).float())
        loss_g = o["lambda_pix"] * l_img + o["lambda_feat"] * l_feat + o["lambda_adv"] * l_adv
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()

        # Discriminator: L_discr, skipped while L_discr / L_adv < d_pause_ratio (the paper's rule).
        with autocast:
            l_discr = discriminator_loss(self.d(images, logits).float(), self.d(generated.detach(), logits).float())
        ratio = l_discr.item() / max(l_adv.item(), 1e-12)
        self.opt_d.zero_grad(set_to_none=True)
        if o["lambda_adv"] > 0 and ratio >= o["d_pause_ratio"]:
            l_discr.backward()
            self.opt_d.step()
            self.d_updates += 1
        else:
            self.d_skips += 1
        self.opt_g.zero_grad(set_to_none=True)  # D's backward leaves nothing on G, but keep the state clean
        return {
            "loss_g": loss_g.item(),
            "img": l_img.item(),
            "feat": l_feat.item(),
            "adv": l_adv.item(),
            "discr": l_discr.item(),
            "d_updated": float(ratio >= o["d_pause_ratio"]),
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "discriminator": self.discriminator.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "d_updates": self.d_updates,
            "d_skips": self.d_skips,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.discriminator.load_state_dict(state["discriminator"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.d_updates, self.d_skips = int(state["d_updates"]), int(state["d_skips"])


# ----------------------------------------------------------------------------------------------- factory
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},  # the paper's widths (fc 4096 x3, 4x4x256), scaled in depth to the resolution
    # A small decoder for 32x32 MNIST (about 1 MB of weights, fast on a CPU): fc 256 x2, a 4x4x32 map,
    # 3 up-conv stages with 32, 16 and 8 channels.
    "mnist": {
        "resolution": 32,
        "fc_dim": 256,
        "fc_layers": 3,
        "start_channels": 32,
        "min_channels": 8,
        "d_channels": 16,
        "d_fc_dim": 256,
    },
}


def build(preset: str, classifier: Classifier | None = None, **fields: Any) -> DosovitskiyBroxInverter:
    """Factory for ``dosovitskiy_brox.<preset>``: preset fields, then the classifier's shape, then ``fields``.

    A new, untrained decoder of Dosovitskiy & Brox 2016 (NIPS; module docstring).

    Args:
        preset: a key of ``PRESETS``.
        classifier: the classifier to invert; sets ``num_classes`` and ``channels``, and for ``paper`` also
            ``resolution`` (its input height in pixels).
        **fields: ``DosovitskiyBroxConfig`` fields, e.g. ``resolution`` or ``width_mult``; their names and types are
            checked by ``invkit.create_inverter``/``load_inverter`` before this call (``check_options``).

    Returns:
        The inverter; it maps ``(N, num_classes)`` logits to ``(N, channels, resolution, resolution)`` images in
        [0, 1].

    Raises:
        InputError: an odd resolution or one below 8; ``noise_dim`` other than 0.
    """
    values: dict[str, Any] = dict(PRESETS[preset])
    if classifier is not None:
        c, h, _ = classifier.config.input_size
        values.update(num_classes=classifier.num_classes, channels=c)
        if preset == "paper":
            values["resolution"] = h
    values.update(fields)  # names and types checked by invkit (registered with options=DosovitskiyBroxConfig)
    inv = DosovitskiyBroxInverter(DosovitskiyBroxConfig(**values))
    inv.registry_name = f"dosovitskiy_brox.{preset}"
    return inv
