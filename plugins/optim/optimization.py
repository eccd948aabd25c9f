"""Optimisation-based inversion: find an image whose logits match the target, by gradient descent on the image.

Papers:
  * A. Mahendran and A. Vedaldi, "Understanding Deep Image Representations by Inverting Them", CVPR 2015
    (arXiv:1412.0035); jitter as in their extended version, "Visualizing Deep Convolutional Neural Networks
    Using Natural Pre-images", IJCV 2016.
  * L. Engstrom, A. Ilyas, S. Santurkar, D. Tsipras, B. Tran and A. Madry, "Adversarial Robustness as a Prior
    for Learned Representations", arXiv:1906.00945, 2019: with an adversarially robust classifier, plain
    representation matching from noise, with no image prior, already gives recognisable images.

Objective (M&V Eq. 1-3, per image, mean-reduced so that weights do not depend on the resolution)::

    x* = argmin_x  ||Phi(x) - z||^2 / ||z||^2  +  lambda_tv * TV^beta(x)  +  lambda_alpha * N_alpha(x)

    TV^beta(x) = mean_ij ( (x[i,j+1] - x[i,j])^2 + (x[i+1,j] - x[i,j])^2 )^(beta/2)      total variation
    N_alpha(x) = mean_ij | (x[i,j] - center) / max(center, 1 - center) |^alpha            alpha-norm bound

``Phi`` is the classifier's logit function and ``z`` the target logits. The division by ||z||^2 is M&V's
normalisation. Engstrom et al. (the ``robust`` preset) instead match the *penultimate* representation R with
the normalised distance ||R(x) - R(x_t)|| / ||R(x_t)|| (``layer="penultimate"``, ``distance="l2"``), by L2
projected gradient descent with a constant step (``optimizer="pgd_l2"``) from clamp(0.5 + N(0, 1) / 20), no
prior, keeping each image's best iterate (``use_best``); ``targets(images)`` gives what ``invert`` takes. The image is
kept in [0, 1] by a sigmoid parametrisation ``x = sigmoid(u)`` (default) or by clamping ``x`` after every step
(``param="clamp"``, a projected gradient method like Engstrom et al.'s PGD). Each step may shift the image by
a random translation of up to ``jitter`` pixels (``torch.roll``) before it enters the classifier, which
discourages high-frequency solutions (M&V 2016); the last ``1 - jitter_fraction`` of the steps run without
jitter, so that the returned (unshifted) image is the one that matches the target. The optimiser is Adam with a
cosine-decayed step (``optimizer="adam"``, the default) or, as Mahendran & Vedaldi, gradient descent with momentum
0.9 and a decaying step (``optimizer="sgd_momentum"``, the ``mv15_paper`` preset).

``fake_relu`` (on in the ``robust`` preset) runs the classifier as the robustness library's ``model(x,
fake_relu=True)``, with which Engstrom et al. invert: the ReLU after the last residual block computes ``max(x, 0)``
but passes gradients through unchanged (their ``FakeReLU``), so the representation's gradient reaches units that
are off. invkit finds that ReLU in torchvision's ResNets (the robustness library's networks) and invkit's
``resnet18s`` (``fake_relu_hooks``); for other classifiers it warns and runs them unchanged.

The inverter holds the classifier (it needs no training, so ``make_trainer`` raises ``TrainingError``); its
checkpoint is a config.json with an empty model.safetensors, loaded with
``invkit.load_inverter(dir, classifier=clf)``.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from invkit.core.channels import Channel, create_channel
from invkit.core.classifier import Classifier
from invkit.core.inverter import Inverter
from invkit.errors import InputError, InvkitError
from invkit.utils.progress import Progress, ProgressCallback, no_progress

from .channel_loss import CROSS_ENTROPY, channel_view, cross_entropy


@dataclass
class OptimConfig:
    """Constructor arguments of ``OptimInverter``; defaults are the ``mv15`` preset for MNIST-sized inputs."""

    num_classes: int = 1000  # logit dimension of the classifier
    channels: int = 3  # image channels
    resolution: int = 224  # image side (defaults to the classifier's input size)
    noise_dim: int = 0  # no noise input: randomness is the start image, drawn from `generator`
    classifier_name: str = ""  # name of the classifier this was set up for (information only)
    steps: int = 300  # Adam steps
    lr: float = 0.1  # Adam learning rate (on u for param="sigmoid", on x for param="clamp")
    lr_decay: float = 0.1  # the learning rate decays by cosine to lr * lr_decay at the last step
    normalize: bool = True  # divide the logit error by ||z||^2 (Mahendran & Vedaldi)
    lambda_tv: float = 1.0  # weight of TV^beta
    tv_beta: float = 2.0  # exponent beta of the total variation (M&V use 1 or 2)
    lambda_alpha: float = 0.3  # weight of the alpha-norm
    alpha: float = 6.0  # exponent alpha of the alpha-norm (M&V: 6)
    alpha_center: float = 0.0  # the alpha-norm pulls pixels towards this value (MNIST background: 0)
    jitter: int = 1  # random translation of up to this many pixels per step (0: none)
    jitter_fraction: float = 0.8  # jitter only the first fraction of the steps; the rest refine the plain image
    param: str = "sigmoid"  # "sigmoid": x = sigmoid(u); "clamp": optimise x and clamp it to [0, 1]
    init_std: float = 0.1  # start image x0 = clamp(0.5 + init_std * N(0, 1)) unless `start` is given
    batch_size: int = 256  # images optimised at once (larger batches are done in chunks)
    # ---- Engstrom et al. 2019 (the robust preset) ----
    layer: str = "logits"  # representation matched: "logits" or "penultimate" (input of the last nn.Linear)
    distance: str = "squared"  # "squared": ||R(x) - t||^2 (/||t||^2); "l2": ||R(x) - t|| (/||t||), Engstrom et al.
    optimizer: str = "adam"  # "adam", or "pgd_l2": x -= lr * g / ||g||_2, clamp to [0, 1] (robustness lib L2Step),
    # or "sgd_momentum": gradient descent with momentum (Mahendran & Vedaldi 2015), step cosine-decayed like Adam's
    momentum: float = 0.9  # momentum of "sgd_momentum" (M&V: 0.9)
    use_best: bool = False  # return each image's lowest-loss iterate (the robustness library's use_best)
    fake_relu: bool = False  # the last ReLU passes gradients through (Engstrom et al.'s fake_relu=True; robust preset)

    # Fields added after reconstructions were first kept (invkit.evaluation.recon_cache), with the value that gives
    # the inversion made before they existed: a kept inversion whose recorded config lacks them is still this one.
    checkpoint_legacy: ClassVar[dict[str, Any]] = {"momentum": 0.9, "fake_relu": False}


# --------------------------------------------------------------------------------------------- loss terms
def logit_loss(
    logits: torch.Tensor, target: torch.Tensor, normalize: bool = True, distance: str = "squared"
) -> torch.Tensor:
    """Per-image representation distance, shape ``(N,)``.

    ``distance="squared"``: ``||R - t||^2``, divided by ``||t||^2`` when ``normalize`` (Mahendran & Vedaldi).
    ``distance="l2"``: ``||R - t||``, divided by ``||t||`` when ``normalize`` (Engstrom et al. 2019's inversion
    loss, the robustness library's ``norm(rep - targ) / norm(targ)``).
    """
    if distance == "l2":
        err = (logits - target).norm(dim=1)
        return err / target.norm(dim=1).clamp_min(1e-12) if normalize else err
    err = (logits - target).pow(2).sum(dim=1)
    return err / target.pow(2).sum(dim=1).clamp_min(1e-12) if normalize else err


def total_variation(x: torch.Tensor, beta: float = 2.0) -> torch.Tensor:
    """Per-image TV^beta (mean over pixels and channels of the beta/2 power of the squared gradient): ``(N,)``.

    The total-variation regulariser of Mahendran & Vedaldi 2015, mean-reduced (module docstring). The last row
    and column, which have no right/lower neighbour, use a zero difference there.

    Args:
        x: ``(N, C, H, W)`` images, in [0, 1] here.
        beta: the exponent (M&V use 1 or 2); for beta != 2, 1e-8 is added inside the power (differentiable at 0).
    """
    dx = F.pad(x[..., :, 1:] - x[..., :, :-1], (0, 1, 0, 0))
    dy = F.pad(x[..., 1:, :] - x[..., :-1, :], (0, 0, 0, 1))
    sq = dx.pow(2) + dy.pow(2)
    tv = sq if beta == 2.0 else (sq + 1e-8).pow(beta / 2)  # eps keeps beta < 2 differentiable at 0
    return tv.flatten(1).mean(dim=1)


def alpha_norm(x: torch.Tensor, alpha: float = 6.0, center: float = 0.0) -> torch.Tensor:
    """Per-image mean of |(x - center) / scale|^alpha with scale = max(center, 1 - center): ``(N,)``, <= 1 on [0, 1].

    The alpha-norm regulariser of Mahendran & Vedaldi 2015 (their alpha = 6), mean-reduced and centred.

    Args:
        x: ``(N, C, H, W)`` images in [0, 1].
        alpha: the exponent.
        center: the value pixels are pulled towards, in [0, 1] (0: a black background such as MNIST's).
    """
    scale = max(center, 1.0 - center)
    return ((x - center) / scale).abs().pow(alpha).flatten(1).mean(dim=1)


def logit_cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of each row of ``a`` with the same row of ``b``: ``(N,)`` in [-1, 1].

    Args:
        a: ``(N, D)`` logits (or representations).
        b: ``(N, D)`` targets.
    """
    return F.cosine_similarity(a, b, dim=1)


# ------------------------------------------------------------------------------------------------ fake_relu
class FakeReLU(torch.autograd.Function):
    """``max(x, 0)`` forward, the identity backward: the gradient passes where the unit is off too.

    The ``FakeReLU`` of the robustness library (MadryLab), which its ResNets apply after the last residual block
    when called with ``fake_relu=True``, as Engstrom et al. 2019 do for representation inversion.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return grad


def _last_residual_block(network: torch.nn.Module) -> torch.nn.Module | None:
    """The last torchvision ``BasicBlock``/``Bottleneck`` or invkit ``resnet18s`` block of ``network``, or None."""
    from invkit_plugins.inhouse.models import BasicBlock as InhouseBlock
    from torchvision.models.resnet import BasicBlock, Bottleneck

    blocks = [m for m in network.modules() if isinstance(m, BasicBlock | Bottleneck | InhouseBlock)]
    return blocks[-1] if blocks else None


@contextlib.contextmanager
def fake_relu_hooks(network: torch.nn.Module) -> Iterator[bool]:
    """While open, ``network``'s last ReLU (the one closing its last residual block) is a ``FakeReLU``.

    Forward values stay bit-identical; only gradients change. Works through hooks, without touching the network:
    for torchvision's blocks (whose one ``relu`` module is called 2 or 3 times, in place) the input of its last call
    is kept and the block's output replaced by ``FakeReLU`` of it; for invkit's ``resnet18s`` block (which ends in
    ``torch.relu(bn2(...) + shortcut(x))``) the block's output is rebuilt from the outputs of ``bn2`` and
    ``shortcut``.

    Args:
        network: the classifier's network (``Classifier.network``).

    Yields:
        Whether such a ReLU was found (False: the network runs unchanged).
    """
    block = _last_residual_block(network)
    if block is None:
        yield False
        return
    seen: dict[str, torch.Tensor] = {}

    def keep(name: str):
        def hook(module: torch.nn.Module, args: tuple, out: torch.Tensor) -> None:
            seen[name] = out

        return hook

    def keep_input(module: torch.nn.Module, args: tuple) -> None:
        seen["pre"] = args[0].clone()  # a copy: the in-place ReLU overwrites its input next

    handles = []
    if hasattr(block, "relu"):  # torchvision: remember the input of relu's last call before it runs in place
        handles.append(block.relu.register_forward_pre_hook(keep_input))

        def replace(module: torch.nn.Module, args: tuple, out: torch.Tensor) -> torch.Tensor:
            return FakeReLU.apply(seen.pop("pre"))

    else:  # invkit resnet18s: torch.relu(out + shortcut(x))
        handles.append(block.bn2.register_forward_hook(keep("bn2")))
        handles.append(block.shortcut.register_forward_hook(keep("shortcut")))

        def replace(module: torch.nn.Module, args: tuple, out: torch.Tensor) -> torch.Tensor:
            return FakeReLU.apply(seen.pop("bn2") + seen.pop("shortcut"))

    handles.append(block.register_forward_hook(replace))
    try:
        yield True
    finally:
        for h in handles:
            h.remove()


# ----------------------------------------------------------------------------------------------- inverter
class OptimInverter(Inverter):
    """Inverts logits by optimising the image (see the module docstring). Holds, but does not own, the classifier.

    Follows A. Mahendran and A. Vedaldi, "Understanding Deep Image Representations by Inverting Them", CVPR 2015
    (``optim.mv15``), and L. Engstrom et al., "Adversarial Robustness as a Prior for Learned Representations",
    arXiv:1906.00945, 2019 (``optim.robust``).

    Args:
        config: the objective and optimiser settings; build it through ``optim.<preset>`` (``build``), which checks
            the field values first.
        classifier: the classifier to invert; None until ``set_classifier`` (``invert`` needs one).

    Attributes:
        progress: a ``ProgressCallback`` that receives one ``Progress`` every few steps (the CLI draws it).

    Raises:
        InputError: ``param``, ``layer``, ``distance`` or ``optimizer`` is not one of its values; ``pgd_l2`` without
            ``param="clamp"``; ``steps`` < 0 or ``batch_size`` < 1; the classifier has another number of classes.
    """

    trainable = False

    def __init__(self, config: OptimConfig, classifier: Classifier | None = None):
        super().__init__(config)
        if config.param not in ("sigmoid", "clamp"):
            raise InputError(f"optim: param must be 'sigmoid' or 'clamp', got '{config.param}'.")
        for field, allowed in (
            ("layer", ("logits", "penultimate")),
            ("distance", ("squared", "l2")),
            ("optimizer", ("adam", "pgd_l2", "sgd_momentum")),
        ):
            if getattr(config, field) not in allowed:
                raise InputError(f"optim: {field} must be one of {', '.join(allowed)}; got '{getattr(config, field)}'.")
        if config.optimizer == "pgd_l2" and config.param != "clamp":
            raise InputError("optim: optimizer 'pgd_l2' steps on the image itself; use it with param='clamp'.")
        if config.steps < 0 or config.batch_size < 1:
            raise InputError("optim: steps must be >= 0 and batch_size >= 1.")
        self.progress: ProgressCallback = no_progress
        # Not registered as a submodule: the classifier's weights are not part of this inverter's checkpoint.
        object.__setattr__(self, "_classifier", None)
        if classifier is not None:
            self.set_classifier(classifier)

    @property
    def classifier(self) -> Classifier | None:
        return self._classifier

    def set_classifier(self, classifier: Classifier) -> None:
        """Invert ``classifier`` from now on and record its name in ``config.classifier_name``.

        The classifier is held, not registered as a submodule: its weights are not part of this inverter's
        checkpoint (``invkit.load_inverter(dir, classifier=clf)`` sets it again).

        Raises:
            InputError: the classifier gives another number of logits than ``num_classes``.
        """
        if classifier.num_classes != self.num_classes:
            raise InputError(
                f"optim: set up for {self.num_classes} logits but {classifier.name} gives {classifier.num_classes}."
            )
        object.__setattr__(self, "_classifier", classifier)
        self.config.classifier_name = classifier.name

    def representation(self, images: torch.Tensor) -> torch.Tensor:
        """``R(x)``, the representation this inverter matches: the logits, or (``layer="penultimate"``) the input
        of the classifier's last ``nn.Linear``, flattened to ``(N, D)``. Keeps the graph (used in the objective).

        Args:
            images: ``(N, C, H, W)`` float images in [0, 1], any size, 1 or 3 channels (the classifier resizes).

        Returns:
            ``(N, num_classes)`` logits, or ``(N, D)`` penultimate features.

        Raises:
            InvkitError: no classifier, or no ``nn.Linear`` in it for ``layer="penultimate"``.
            InputError: ``images`` is not such a batch (``Classifier.check_images``).
        """
        clf = self._classifier
        if clf is None:
            raise InvkitError("optim needs the classifier it inverts: create it with classifier=...")
        if self.layer is not None:  # --layer (invkit.core.observation): feature matching on its pooled activations
            return clf.features(images, self.layer, pooled=True)
        with self._fake_relu(clf):
            if self.config.layer == "logits":
                return clf.logits(images)
            linears = [m for m in clf.network.modules() if isinstance(m, torch.nn.Linear)]
            if not linears:
                raise InvkitError(f"optim: {clf.name} has no nn.Linear layer; use layer='logits'.")
            captured: list[torch.Tensor] = []
            handle = linears[-1].register_forward_pre_hook(lambda m, args: captured.append(args[0]))
            try:
                clf.logits(images)
            finally:
                handle.remove()
            return captured[-1].flatten(1)

    def _fake_relu(self, clf: Classifier) -> contextlib.AbstractContextManager:
        """``fake_relu_hooks`` on the classifier when ``config.fake_relu``; warns once where it finds no ReLU."""
        if not self.config.fake_relu:
            return contextlib.nullcontext()
        if _last_residual_block(clf.network) is None and not getattr(self, "_warned_fake_relu", False):
            object.__setattr__(self, "_warned_fake_relu", True)
            warnings.warn(
                f"optim: fake_relu is on but {clf.name} has no torchvision or invkit ResNet block whose last ReLU it "
                "could fake; it runs unchanged (pass -o fake_relu=false to silence this).",
                stacklevel=3,
            )
        return fake_relu_hooks(clf.network)

    def targets(self, images: torch.Tensor) -> torch.Tensor:
        """What ``invert`` takes for these images: their logits, or their penultimate representation
        (``layer="penultimate"``), without gradient. ``invkit bench`` and ``invkit invert`` call it.

        Args:
            images: ``(N, C, H, W)`` float images in [0, 1], any size, 1 or 3 channels.

        Returns:
            ``(N, num_classes)`` logits, or ``(N, D)`` penultimate features, detached, on the classifier's device.

        Raises:
            InvkitError: no classifier, or no ``nn.Linear`` in it for ``layer="penultimate"``.
            InputError: ``images`` is not such a batch.
        """
        with torch.no_grad():
            return self.representation(images.to(self.device)).detach()

    @property
    def device(self) -> torch.device:
        """The classifier's device (this inverter has no weights of its own)."""
        if self._classifier is not None:
            for t in (*self._classifier.parameters(), *self._classifier.buffers()):
                return t.device
        return torch.device("cpu")

    def invert(
        self,
        logits: torch.Tensor,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        *,
        start: torch.Tensor | None = None,
        progress: ProgressCallback | None = None,
    ) -> torch.Tensor:
        """Images whose logits match ``logits``; see ``invert_with_info`` for the arguments and errors."""
        return self.invert_with_info(logits, noise, generator, start=start, progress=progress)[0]

    def invert_with_info(
        self,
        logits: torch.Tensor,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        *,
        start: torch.Tensor | None = None,
        progress: ProgressCallback | None = None,
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Optimise one image per logit vector.

        Args:
            logits: ``(N, num_classes)`` target logits ``z``. With ``layer="penultimate"`` (``optim.robust``) it
                holds the ``(N, D)`` target penultimate representations instead, as ``targets(images)`` gives
                them; the name is kept because it is the ``Inverter.invert`` API.
            noise: unused (``noise_dim`` is 0); must be None.
            generator: seeds the start images and the jitter; the same seed gives the same images.
            start: ``(N, channels, resolution, resolution)`` start images in [0, 1] instead of noise.
            progress: receives progress every few steps (default: ``self.progress``).

        Returns:
            ``(images, info)``: images ``(N, C, R, R)`` in [0, 1] and ``info`` with per-image tensors
            ``logit_mse`` (mean squared error of the matched representation), ``logit_cosine`` (cosine to the
            target) and ``loss`` (the final objective), plus ``steps`` and ``seconds``.

        Raises:
            InvkitError: no classifier is set; with ``layer="penultimate"``, the classifier has no ``nn.Linear``.
            InputError: ``logits`` is not a non-empty, finite, floating-point batch of the expected width;
                ``noise`` is neither None nor ``(N, 0)``; ``start`` has the wrong shape or values outside [0, 1].
        """
        clf = self._classifier
        if clf is None:
            raise InvkitError(
                "optim needs the classifier it inverts: create it with classifier=... or load it "
                "with invkit.load_inverter(dir, classifier=clf)."
            )
        if self.channel != "logits" and self.config.layer != "logits" and self.layer is None:
            raise InputError(
                f"optim (layer='{self.config.layer}') matches the {self.config.layer} layer, not a channel of the "
                f"logits; use --channel {self.channel} with optim.mv15 (or -o layer=logits), or --layer instead."
            )
        if self.config.layer == "logits" and self.layer is None:
            self.check_logits(logits)
        else:
            d = None
            if isinstance(logits, torch.Tensor) and logits.dim() == 2 and clf is not None:
                with torch.no_grad():
                    d = self.representation(torch.zeros(1, *self.image_shape, device=self.device)).shape[1]
            if d is None or logits.shape[1] != d:
                got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
                raise InputError(
                    f"optim (layer='penultimate') inverts penultimate representations of shape (N, {d}), got {got}: "
                    "give inverter.targets(images), or use layer='logits' (-o layer=logits) to invert logits."
                )
            if not logits.is_floating_point() or len(logits) == 0 or not bool(torch.isfinite(logits).all()):
                raise InputError(
                    f"optim (layer='penultimate'): the representations must be a non-empty floating-point batch "
                    f"without NaN/inf, got {len(logits)} row(s) of {logits.dtype}."
                )
        self.check_noise(noise, logits.shape[0], generator)
        n = logits.shape[0]
        if start is not None:
            if (
                not isinstance(start, torch.Tensor)
                or start.dim() != 4
                or start.shape[0] != n
                or tuple(start.shape[1:]) != self.image_shape
            ):
                shape = tuple(start.shape) if isinstance(start, torch.Tensor) else type(start).__name__
                raise InputError(
                    f"optim: start must be ({n}, {', '.join(map(str, self.image_shape))}) images, got {shape}."
                )
            if start.min() < 0 or start.max() > 1:
                raise InputError("optim: start images must lie in [0, 1].")
        report = progress or self.progress
        bs = self.config.batch_size
        chunks = list(range(0, n, bs))
        t0 = time.perf_counter()
        images, mses, coss, losses = [], [], [], []
        for k, i in enumerate(chunks):
            x, info = self._optimise(
                logits[i : i + bs], None if start is None else start[i : i + bs], generator, report, k, len(chunks)
            )
            images.append(x)
            mses.append(info["logit_mse"])
            coss.append(info["logit_cosine"])
            losses.append(info["loss"])
        info = {
            "logit_mse": torch.cat(mses),
            "logit_cosine": torch.cat(coss),
            "loss": torch.cat(losses),
            "steps": self.config.steps,
            "seconds": time.perf_counter() - t0,
        }
        return torch.cat(images), info

    def _objective(self, x: torch.Tensor, target: torch.Tensor, shift: tuple[int, int] | None) -> torch.Tensor:
        """Per-image objective ``(N,)``; ``shift`` jitters the image seen by the classifier."""
        c = self.config
        seen = torch.roll(x, shifts=shift, dims=(2, 3)) if shift is not None and shift != (0, 0) else x
        loss = self._match(self.representation(seen), target)
        if c.lambda_tv:
            loss = loss + c.lambda_tv * total_variation(x, c.tv_beta)
        if c.lambda_alpha:
            loss = loss + c.lambda_alpha * alpha_norm(x, c.alpha, c.alpha_center)
        return loss

    def _observed_through(self) -> Channel | None:
        """The observation channel the objective goes through (``--channel``, ``channel_loss``); None for the logits
        as they are, a ``--layer`` or this preset's own penultimate layer."""
        if self.layer is not None or self.config.layer != "logits" or self.channel == "logits":
            return None
        cached = getattr(self, "_channel_cache", None)
        if cached is None or cached.spec != self.channel:
            cached = create_channel(self.channel, num_classes=self.num_classes)
            object.__setattr__(self, "_channel_cache", cached)
        return cached

    def _match(self, representation: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-image distance ``(N,)`` of the current images' representation to the target, through the channel
        (``channel_loss``: cross-entropy for ``label``/``round``); plain ``logit_loss`` without one."""
        c, channel = self.config, self._observed_through()
        if channel is not None and channel.name in CROSS_ENTROPY:
            return cross_entropy(representation, target)
        seen = representation if channel is None else channel_view(channel, representation)
        return logit_loss(seen, target, c.normalize, c.distance)

    def _optimise(
        self,
        target: torch.Tensor,
        start: torch.Tensor | None,
        generator: torch.Generator | None,
        report: ProgressCallback,
        chunk: int,
        n_chunks: int,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        c = self.config
        device = self.device
        target = target.detach().to(device).float()
        n = target.shape[0]
        if start is None:
            gdev = generator.device if generator is not None else torch.device("cpu")
            x0 = (0.5 + c.init_std * torch.randn(n, *self.image_shape, generator=generator, device=gdev)).clamp(0, 1)
        else:
            x0 = start.detach().float()
        x0 = x0.to(device)
        if c.param == "sigmoid":
            p = torch.logit(x0.clamp(1e-3, 1 - 1e-3)).requires_grad_(True)
        else:
            p = x0.clone().requires_grad_(True)

        def image() -> torch.Tensor:
            return torch.sigmoid(p) if c.param == "sigmoid" else p

        pgd = c.optimizer == "pgd_l2"
        if pgd:
            opt = None
        elif c.optimizer == "sgd_momentum":  # Mahendran & Vedaldi 2015: gradient descent with momentum 0.9
            opt = torch.optim.SGD([p], lr=c.lr, momentum=c.momentum)
        else:
            opt = torch.optim.Adam([p], lr=c.lr)
        sched = (
            None
            if pgd
            else torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, c.steps), eta_min=c.lr * c.lr_decay)
        )
        best_x, best_loss = None, None
        every = max(1, c.steps // 50)
        with torch.enable_grad():
            for step in range(c.steps):
                shift = None
                if c.jitter > 0 and step < c.jitter_fraction * c.steps:
                    gdev = generator.device if generator is not None else torch.device("cpu")
                    s = torch.randint(-c.jitter, c.jitter + 1, (2,), generator=generator, device=gdev)
                    shift = (int(s[0]), int(s[1]))
                per_image = self._objective(image(), target, shift)
                loss = per_image.sum()  # sum: each image's gradient is its own
                if c.use_best:  # the loss of the iterate before this step's update
                    with torch.no_grad():
                        if best_loss is None:
                            best_loss, best_x = per_image.detach().clone(), image().detach().clone()
                        else:
                            better = per_image.detach() < best_loss
                            best_loss = torch.where(better, per_image.detach(), best_loss)
                            best_x[better] = image().detach()[better]
                if pgd:
                    # L2 PGD step (robustness library L2Step, targeted): x <- x - lr * g / ||g||_2, then [0, 1].
                    (grad,) = torch.autograd.grad(loss, p)
                    with torch.no_grad():
                        norm = grad.flatten(1).norm(dim=1).clamp_min(1e-10).view(-1, 1, 1, 1)
                        p.sub_(c.lr * grad / norm)
                else:
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    sched.step()
                if c.param == "clamp":
                    with torch.no_grad():
                        p.clamp_(0, 1)
                if (step + 1) % every == 0 or step + 1 == c.steps:
                    report(Progress("optim", chunk * c.steps + step + 1, n_chunks * c.steps, {"loss": loss.item() / n}))
        if c.use_best and best_x is not None:
            with torch.no_grad():
                final = self._objective(image(), target, None)
                better = final < best_loss
                best_x[better] = image().detach()[better]
                p.data.copy_(best_x if c.param == "clamp" else torch.logit(best_x.clamp(1e-6, 1 - 1e-6)))
        with torch.no_grad():
            x = image().detach()
            logits = self.representation(x)
            if (channel := self._observed_through()) is not None:  # compared as the objective compares them
                logits = channel_view(channel, logits)
            info = {
                "logit_mse": (logits - target).pow(2).mean(dim=1).cpu(),
                "logit_cosine": logit_cosine(logits, target).cpu(),
                "loss": self._objective(x, target, None).cpu(),
            }
        return x, info


# ----------------------------------------------------------------------------------------------- factory
MV15_PAPER_LR = 10.0  # SGD step on the sigmoid parameter u (set on the MNIST demo, docs/baselines.md)

PRESETS: dict[str, dict[str, Any]] = {
    # Mahendran & Vedaldi 2015: normalised logit error + TV^2 + alpha^6 norm, with jitter, sigmoid images.
    "mv15": {},
    # The same objective with M&V's optimiser: gradient descent with momentum 0.9 and a decaying step (mv15 keeps
    # Adam: the committed default bench numbers were made with it).
    "mv15_paper": {"optimizer": "sgd_momentum", "momentum": 0.9, "lr": MV15_PAPER_LR},
    # Engstrom et al. 2019 (robustness library, "inverting representations"): the penultimate representation,
    # loss ||R(x) - R(x_t)|| / ||R(x_t)||, L2 PGD with step 1 from clamp(0.5 + N(0, 1) / 20), no image prior,
    # the best iterate kept. Their 10000 steps are 2000 here (CPU budgets; a deviation in docs/baselines.md).
    "robust": {
        "layer": "penultimate",
        "distance": "l2",
        "normalize": True,
        "optimizer": "pgd_l2",
        "use_best": True,
        "lambda_tv": 0.0,
        "lambda_alpha": 0.0,
        "jitter": 0,
        "param": "clamp",
        "lr": 1.0,
        "init_std": 0.05,
        "steps": 2000,
        "fake_relu": True,  # the robustness library's model(x, fake_relu=True) in its inversion
    },
}


def build(preset: str, classifier: Classifier | None = None, **fields: Any) -> OptimInverter:
    """Factory for ``optim.<preset>``: preset values, then the classifier's shape, then ``fields``.

    ``mv15`` follows Mahendran & Vedaldi 2015, ``robust`` Engstrom et al. 2019 (``PRESETS``, module docstring).

    Args:
        preset: a key of ``PRESETS``.
        classifier: the classifier to invert; sets ``num_classes``, ``channels`` and ``resolution`` (its input
            size in pixels). The inverter cannot ``invert`` without one (``set_classifier`` adds it later).
        **fields: ``OptimConfig`` fields, e.g. ``steps`` or ``lr``. ``invkit.create_inverter`` (and
            ``load_inverter``) check their names and types against ``OptimConfig`` before calling this (the
            registration declares it: ``invkit.utils.config.check_options``).

    Raises:
        InputError: a setting ``OptimInverter`` refuses (see there).
    """
    values: dict[str, Any] = dict(PRESETS[preset])
    if classifier is not None:
        c, h, _ = classifier.config.input_size
        values.update(num_classes=classifier.num_classes, channels=c, resolution=h, classifier_name=classifier.name)
    values.update(fields)  # names and types checked by invkit before this call (registered with options=OptimConfig)
    inv = OptimInverter(OptimConfig(**values), classifier)
    inv.registry_name = f"optim.{preset}"
    return inv
