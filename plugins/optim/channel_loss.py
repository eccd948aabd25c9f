"""How ``optim`` compares an image's classifier output with an observation made through a channel.

``optim`` inverts by gradient descent on the image, so its loss must be differentiable in the image. Through an
observation channel (``invkit.core.channels``; ``--channel``) it compares, per image:

* ``logits``: the logits with the target logits (Mahendran & Vedaldi's normalised error; unchanged);
* ``probs``: the softmax probabilities with the observed probabilities (the same error, in probability space);
* ``topk:K``: the channel applied to the image's logits (shifted log-probabilities of its own top K, the rest
  filled) with the observation; ``topk`` is differentiable in the values, its index set changes piecewise;
* ``noise:SIGMA``: the logits with the noisy observation: under Gaussian noise the squared error is the negative
  log-likelihood (up to a constant), so it is the maximum-likelihood match (fresh noise in the loss would only
  add variance);
* ``label`` and ``round:D``: the cross-entropy ``-sum_c t_c log softmax(z)_c`` of the image's logits ``z`` to the
  observed one-hot label or rounded probabilities ``t`` (renormalised to sum 1): rounding and argmax have zero
  gradient almost everywhere, so matching them directly would not move the image;
* a channel of another plugin: the channel applied to the logits, compared with the squared error (its
  ``observe`` must be differentiable).

docs/baselines.md lists these choices.
"""

from __future__ import annotations

import torch

from invkit.core.channels import Channel

CROSS_ENTROPY = ("label", "round")  # channels matched by cross-entropy (their observe has no useful gradient)
ON_LOGITS = ("logits", "noise")  # channels whose observation is compared with the logits themselves


def channel_view(channel: Channel, logits: torch.Tensor) -> torch.Tensor:
    """What the squared error compares with the observation: the logits (``logits``, ``noise``), the
    probabilities (``probs``), else the channel applied to the logits; differentiable in ``logits``.

    Args:
        channel: the inverter's channel.
        logits: ``(N, num_classes)`` logits of the current images.

    Returns:
        ``(N, num_classes)``.
    """
    if channel.name in ON_LOGITS:
        return logits
    if channel.name == "probs":
        return logits.softmax(dim=1)
    return channel.observe(logits)


def cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image cross-entropy ``-sum_c t_c log softmax(z)_c`` to observed probabilities ``t``: ``(N,)``.

    Args:
        logits: ``(N, C)`` logits ``z`` of the current images.
        target: ``(N, C)`` observed one-hot labels or rounded probabilities, >= 0; each row is renormalised to sum 1
            (rounded probabilities need not; a row of zeros, possible with ``round:0``, counts as uniform).
    """
    t = target.clamp_min(0)
    t = torch.where(t.sum(1, keepdim=True) > 0, t, torch.ones_like(t))
    t = t / t.sum(1, keepdim=True)
    return -(t * logits.log_softmax(dim=1)).sum(dim=1)
