"""Adversarial examples: FGSM and PGD (L2 and Linf) in [0, 1] pixel space.

* FGSM (Goodfellow et al. 2015): ``x + eps * sign(grad_x loss)``.
* PGD (Madry et al. 2018, "Towards deep learning models resistant to adversarial attacks"): ``steps``
  ascent steps of size ``step_size`` on the loss, each followed by a projection onto the eps ball around
  the clean image and a clamp to [0, 1]; optionally from a random start inside the ball. For Linf the step
  is the gradient's sign; for L2 it is the gradient divided by its L2 norm (per image).

Every function works on a batch and on any ``invkit.Classifier`` (whose ``logits`` takes [0, 1] images of
any size), or on any callable mapping images in [0, 1] to logits. Eps is in [0, 1] pixel units (Linf 0.3 on
MNIST is Madry et al.'s setting; 8/255 is the usual CIFAR one). Only the input gets gradients; the model's
parameters are left untouched (no ``.grad`` is accumulated on them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import InputError

NORMS = ("linf", "l2")
Model = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class AttackConfig:
    """A PGD attack (``steps=1``, ``step_size=eps``, no random start and ``norm='linf'`` is FGSM)."""

    norm: str = "linf"  # "linf" or "l2"
    eps: float = 0.3  # radius of the ball around the clean image, in [0, 1] pixel units
    steps: int = 10  # PGD iterations
    step_size: float | None = None  # size of each step; None: 2.5 * eps / steps (Madry et al.'s robustness lib)
    random_start: bool = True  # start from a uniform random point in the ball instead of the clean image

    @property
    def resolved_step_size(self) -> float:
        return self.step_size if self.step_size is not None else 2.5 * self.eps / max(self.steps, 1)

    def run(
        self, model: Any, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        return pgd(
            model,
            images,
            labels,
            norm=self.norm,
            eps=self.eps,
            steps=self.steps,
            step_size=self.step_size,
            random_start=self.random_start,
            generator=generator,
        )

    def describe(self) -> str:
        return (
            f"PGD-{self.steps} {self.norm} eps={self.eps:g} step={self.resolved_step_size:.4g}"
            f"{' random start' if self.random_start else ''}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "norm": self.norm,
            "eps": self.eps,
            "steps": self.steps,
            "step_size": self.resolved_step_size,
            "random_start": self.random_start,
        }


def _logits_fn(model: Any) -> Model:
    return model.logits if hasattr(model, "logits") else model


def _check(images: torch.Tensor, labels: torch.Tensor, norm: str, eps: float) -> None:
    if norm not in NORMS:
        raise InputError(f"unknown attack norm '{norm}'; use one of {', '.join(NORMS)}.")
    if eps < 0:
        raise InputError(f"attack eps must be >= 0, got {eps}.")
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or not images.is_floating_point():
        raise InputError("attacks take a float batch (N, C, H, W) of images in [0, 1].")
    if labels.shape != images.shape[:1]:
        raise InputError(f"attacks need one label per image: {tuple(labels.shape)} labels for {len(images)} images.")


def _per_image_norm(x: torch.Tensor) -> torch.Tensor:
    """L2 norm of each image, shaped (N, 1, 1, 1) for broadcasting."""
    return x.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)


def _project(delta: torch.Tensor, norm: str, eps: float) -> torch.Tensor:
    """Project perturbations onto the eps ball."""
    if norm == "linf":
        return delta.clamp(-eps, eps)
    return delta * (eps / _per_image_norm(delta)).clamp(max=1.0)


def _loss_grad(fn: Model, x: torch.Tensor, labels: torch.Tensor, targeted: bool) -> torch.Tensor:
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        loss = F.cross_entropy(fn(x), labels, reduction="sum")  # sum: each image's gradient is its own
        (grad,) = torch.autograd.grad(-loss if targeted else loss, x)
    return grad


def fgsm(model: Any, images: torch.Tensor, labels: torch.Tensor, *, eps: float, targeted: bool = False) -> torch.Tensor:
    """Fast gradient sign method (Goodfellow, Shlens & Szegedy 2015, "Explaining and harnessing adversarial
    examples"): one Linf step of size ``eps`` on the cross-entropy loss, clamped to [0, 1].

    Args:
        model: an ``invkit.Classifier`` or a callable from [0, 1] images to ``(N, K)`` logits.
        images: clean float images ``(N, C, H, W)`` in [0, 1].
        labels: ``(N,)`` class indices: the true labels (or, with ``targeted``, the labels to move towards).
        eps: step size in [0, 1] pixel units, >= 0.
        targeted: descend the loss of ``labels`` instead of ascending it.

    Returns:
        The adversarial images, detached, same shape as ``images``, in [0, 1].

    Raises:
        InputError: ``eps < 0``, ``images`` not a 4-D float tensor, or ``labels`` not of shape ``(N,)``.
    """
    _check(images, labels, "linf", eps)
    grad = _loss_grad(_logits_fn(model), images, labels, targeted)
    return (images + eps * grad.sign()).clamp(0, 1).detach()


def pgd(
    model: Any,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    eps: float,
    norm: str = "linf",
    steps: int = 10,
    step_size: float | None = None,
    random_start: bool = True,
    targeted: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Projected gradient descent on the cross-entropy loss (Madry et al. 2018).

    Args:
        model: an ``invkit.Classifier`` or a callable from [0, 1] images to ``(N, K)`` logits.
        images: clean float images ``(N, C, H, W)`` in [0, 1].
        labels: ``(N,)`` class indices: the true labels (or, with ``targeted``, the labels to move towards).
        eps: radius of the ball in [0, 1] pixel units, >= 0 (Linf: per pixel; L2: per image).
        norm: ``linf`` or ``l2``.
        steps: ascent steps.
        step_size: size of each step; default ``2.5 * eps / steps``.
        random_start: start from a uniformly random point of the ball (Linf: uniform per pixel; L2: uniform
            in the ball).
        targeted: descend the loss of ``labels`` instead of ascending it.
        generator: seeds the random start.

    Returns:
        The adversarial images (the last iterate), detached, inside the eps ball and in [0, 1].

    Raises:
        InputError: ``norm`` not ``linf`` or ``l2``, ``eps < 0``, ``steps < 0``, ``images`` not a 4-D float
            tensor, or ``labels`` not of shape ``(N,)``.
    """
    _check(images, labels, norm, eps)
    if steps < 0:
        raise InputError(f"PGD steps must be >= 0, got {steps}.")
    fn = _logits_fn(model)
    alpha = step_size if step_size is not None else 2.5 * eps / max(steps, 1)
    clean = images.detach()
    delta = torch.zeros_like(clean)
    if random_start and eps > 0:
        if norm == "linf":
            delta = (torch.rand(clean.shape, generator=generator, device="cpu") * 2 - 1).to(clean) * eps
        else:  # uniform in the L2 ball: a uniform direction, radius eps * U^(1/d)
            d = clean[0].numel()
            direction = torch.randn(clean.shape, generator=generator, device="cpu").to(clean)
            radius = torch.rand(len(clean), generator=generator, device="cpu").to(clean) ** (1.0 / d) * eps
            delta = direction / _per_image_norm(direction) * radius.view(-1, 1, 1, 1)
        delta = (clean + delta).clamp(0, 1) - clean
    for _ in range(steps):
        grad = _loss_grad(fn, clean + delta, labels, targeted)
        if norm == "linf":
            step = grad.sign()
        else:
            step = grad / _per_image_norm(grad)
        delta = _project(delta + alpha * step, norm, eps)
        delta = (clean + delta).clamp(0, 1) - clean  # stay a valid image; clamping never leaves the ball
    return (clean + delta).detach()


@torch.no_grad()
def accuracy(model: Any, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of ``images`` that ``model`` classifies as ``labels``."""
    return (_logits_fn(model)(images).argmax(1) == labels).float().mean().item()
