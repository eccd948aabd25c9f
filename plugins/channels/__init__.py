"""The built-in observation channels (``invkit.core.channels``; docs/channels.md): what an inverter sees of a
classifier's output, from the full logits of the paper to the label alone.

* ``logits``: the logit vector as it is (the paper's setting; the default everywhere).
* ``probs``: softmax probabilities, what most deployed APIs return.
* ``topk:K``: only the K largest probabilities are known (Yang et al., CCS 2019, "Neural network inversion in
  adversarial setting via background knowledge alignment", truncate the vector to its top-k). invkit observes them
  as log-probabilities shifted so that the largest is 0 (``log p_i - log p_max``: what a top-k API determines), and
  fills each unknown entry with the log of the mean unknown probability, ``log((1 - sum of the K) / (C - K))``,
  shifted the same way: the one value the K known probabilities imply for them, below every known entry. Yang et
  al. fill zeros in probability space; a log-space vector keeps the small known probabilities distinguishable
  (their differences span orders of magnitude) and has no ``log 0``.
* ``round:D``: probabilities rounded to D decimals (a common API defence; D = 0 leaves 0s and at most a few 1s).
* ``label``: the one-hot vector of the top-1 class (label-only access, as in Kahla et al. 2022, BREP-MI).
* ``noise:SIGMA``: the logits plus Gaussian noise of standard deviation SIGMA (logit units).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

import invkit
from invkit.core.channels import Channel
from invkit.errors import InputError

TINY = 1e-12  # floor of the unknown probability mass (top-k of nearly one-hot logits), before its log


class Logits(Channel):
    name = "logits"
    logit_space = True

    def observe(self, logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return logits


class Probs(Channel):
    name = "probs"

    def observe(self, logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return logits.softmax(dim=1)


@dataclass(frozen=True)
class TopKOptions:
    """Options of ``topk``."""

    k: int = 5  # how many of the largest probabilities are known, 1 to num_classes


class TopK(Channel):
    name = "topk"

    def __init__(self, options: TopKOptions):
        if options.k < 1:
            raise InputError(f"topk: K must be at least 1, got {options.k}; e.g. 'topk:5'.")
        super().__init__(options)

    def check(self, num_classes: int) -> None:
        if self.options.k > num_classes:
            raise InputError(
                f"topk:{self.options.k} asks for more probabilities than the classifier's {num_classes} classes; "
                f"use K <= {num_classes} ('probs' observes them all)."
            )

    def observe(self, logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        k, classes = self.options.k, logits.shape[1]
        logp = logits.log_softmax(dim=1)
        top, idx = logp.topk(k, dim=1)
        shifted = top - top[:, :1]
        if k == classes:
            return torch.empty_like(logp).scatter_(1, idx, shifted)
        rest = (1 - top.exp().sum(dim=1, keepdim=True)).clamp_min(TINY)  # probability mass of the unknown entries
        fill = (rest / (classes - k)).log() - top[:, :1]
        fill = torch.minimum(fill, shifted[:, -1:])  # never above a known entry (rounding of nearly equal values)
        return fill.expand_as(logp).clone().scatter_(1, idx, shifted)


@dataclass(frozen=True)
class RoundOptions:
    """Options of ``round``."""

    decimals: int = 2  # decimals the probabilities are rounded to, 0 or more


class Round(Channel):
    name = "round"

    def __init__(self, options: RoundOptions):
        if options.decimals < 0:
            raise InputError(f"round: D must be 0 or more decimals, got {options.decimals}; e.g. 'round:2'.")
        super().__init__(options)

    def observe(self, logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return logits.softmax(dim=1).round(decimals=self.options.decimals)


class Label(Channel):
    name = "label"

    def observe(self, logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.nn.functional.one_hot(logits.argmax(dim=1), logits.shape[1]).float()


@dataclass(frozen=True)
class NoiseOptions:
    """Options of ``noise``."""

    sigma: float = 1.0  # standard deviation of the Gaussian noise added to each logit, in logit units, 0 or more


class Noise(Channel):
    name = "noise"
    logit_space = True
    random = True

    def __init__(self, options: NoiseOptions):
        if not math.isfinite(options.sigma) or options.sigma < 0:
            raise InputError(f"noise: SIGMA must be a finite number >= 0, got {options.sigma}; e.g. 'noise:0.5'.")
        super().__init__(options)

    def observe(self, logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        noise = torch.randn(logits.shape, generator=generator, device=logits.device, dtype=logits.dtype)
        return logits + self.options.sigma * noise


@invkit.hookimpl
def register_channels(register: Callable[..., None]) -> None:
    register("logits", lambda: Logits(), description="the logit vector as it is (the paper's setting; default)")
    register("probs", lambda: Probs(), description="softmax probabilities")
    register(
        "topk",
        lambda k=5: TopK(TopKOptions(k)),
        options=TopKOptions,
        description="topk:K, the K largest probabilities (as shifted log-probabilities; the rest unknown)",
    )
    register(
        "round",
        lambda decimals=2: Round(RoundOptions(decimals)),
        options=RoundOptions,
        description="round:D, probabilities rounded to D decimals",
    )
    register("label", lambda: Label(), description="one-hot of the top-1 class (label-only access)")
    register(
        "noise",
        lambda sigma=1.0: Noise(NoiseOptions(sigma)),
        options=NoiseOptions,
        description="noise:SIGMA, logits plus Gaussian noise of standard deviation SIGMA",
    )
