"""Instance identification in every space the bench has, and which one is the headline (``--id-space``).

Instance identification asks whether the original x is the nearest of k candidates to its reconstruction x̂: x
and k-1 other held-out images of x's class, the same candidates in every space (``Bench.distractors``). The spaces:

* ``pixel``: L2 distance between the images at the inverter's resolution (``metrics.identification_hits``);
  always computed, the record's ``id_pixel``;
* ``lpips``: LPIPS distance (Zhang et al. 2018; ``metrics.LPIPS``) between the same images; computed whenever the
  LPIPS backbone is present (``metrics.lpips_status``), the record's ``id_lpips`` (None without it);
* ``evaluator[:NAME]``: cosine distance between an independent evaluator's penultimate features
  (``invkit.evaluation.evaluator``), the record's ``evaluators[LABEL]["id_accuracy"]``.

The record's ``id_accuracy`` is the one ``BenchSettings.id_space`` names (default ``pixel``, as before
``--id-space`` existed), and ``id_space`` says which. Each is a mean of per-image scores: 1 hit, 0 miss, 1/(t+1)
for a tie with t distractors; chance is 1/k. Pixel identification rewards blur (a blurry mean image is close in
L2 to every candidate, the nearest often its own original); LPIPS and evaluator features compare what people and
classifiers see (docs/bench.md, "Instance identification").
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import torch

from ..errors import InvkitError
from ..io.download import DOWNLOAD_ENV
from . import metrics

ID_SPACES = ("pixel", "lpips", "evaluator")  # where --id-space identifies: pixel L2, LPIPS, an evaluator's features


def check_id_space(
    id_space: str, lpips_ok: bool, lpips_message: str, lpips_net: str, evaluators: Collection[str]
) -> str:
    """Check an ``id_space`` setting against what the run has, and return the headline space as recorded.

    Args:
        id_space: ``pixel``, ``lpips``, ``evaluator`` or ``evaluator:NAME``.
        lpips_ok: whether LPIPS can run (``metrics.lpips_status``), and its one-line status ``lpips_message``.
        lpips_net: the LPIPS backbone asked for (``alex``, ``vgg``).
        evaluators: the labels of the run's evaluators (``invkit.evaluation.evaluator.load_evaluators``), in order.

    Returns:
        ``pixel``, ``lpips`` or ``evaluator:LABEL`` (without NAME: the first evaluator).

    Raises:
        InvkitError: an unknown space; ``lpips`` without the LPIPS backbone (the message names ``--download`` and
            ``INVKIT_DOWNLOAD=1``); ``evaluator`` without evaluators, or a NAME that is not one of their labels.
    """
    space, colon, name = id_space.partition(":")
    if space not in ID_SPACES or (colon and (space != "evaluator" or not name)):
        raise InvkitError(f"--id-space '{id_space}' is not one of pixel, lpips, evaluator, evaluator:NAME.")
    if space == "lpips" and not lpips_ok:
        how = "" if "--download" in lpips_message else f"; pass --download or set {DOWNLOAD_ENV}=1 to fetch it"
        raise InvkitError(f"--id-space lpips needs the LPIPS {lpips_net} backbone, which is {lpips_message}{how}.")
    if space != "evaluator":
        return space
    if not evaluators:
        raise InvkitError(f"--id-space {id_space} needs an independent classifier: pass --evaluator SPEC.")
    if name and name not in evaluators:
        raise InvkitError(
            f"--id-space {id_space}: no evaluator is labelled '{name}'; use one of {', '.join(evaluators)}."
        )
    return f"evaluator:{name or next(iter(evaluators))}"


def identification_per_image(
    recons: torch.Tensor,
    originals: torch.Tensor,
    distractors: torch.Tensor,
    to_target: Callable[[torch.Tensor], torch.Tensor],
    batch_size: int,
    lpips: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """Pixel (and LPIPS) identification hits of every reconstruction, a batch of originals at a time.

    Args:
        recons: ``(N, C, H, W)`` reconstructions in [0, 1], at the originals' size and channels.
        originals: ``(N, C, H, W)`` the originals in [0, 1] as the inverter was asked to reconstruct them.
        distractors: ``(N, k - 1, C', H', W')`` uint8 distractors at the data's resolution.
        to_target: brings ``(M, C', H', W')`` images in [0, 1] to the originals' size and channels
            (``Inverter.target_images``).
        batch_size: originals per step (their distractors are converted a batch at a time).
        lpips: an ``metrics.LPIPS`` (or any per-pair distance); None: no ``id_lpips``.

    Returns:
        ``{"id_pixel": (N,), "id_lpips": (N,)}`` float32 scores in [0, 1] (``id_lpips`` only with ``lpips``).
    """
    k1, pixel, perceptual = distractors.shape[1], [], []
    for i in range(0, len(originals), batch_size):
        chunk = to_target(distractors[i : i + batch_size].flatten(0, 1).float() / 255.0).cpu()
        chunk = chunk.reshape(-1, k1, *originals.shape[1:])
        r, o = recons[i : i + batch_size], originals[i : i + batch_size]
        pixel.append(metrics.identification_hits(r, o, chunk))
        if lpips is not None:  # the same k candidates, nearest by LPIPS distance
            perceptual.append(metrics.identification_hits(r, o, chunk, lpips))
    out = {"id_pixel": torch.cat(pixel)}
    if lpips is not None:
        out["id_lpips"] = torch.cat(perceptual)
    return out


def headline_id(
    space: str, record: dict[str, Any], per_image: dict[str, torch.Tensor], evaluated: dict[str, torch.Tensor]
) -> None:
    """Set a scored pair's ``id_accuracy`` (mean in ``record``, per-image values in ``per_image``) and ``id_space``
    to the identification of ``space`` (as ``check_id_space`` returned it).

    Args:
        space: ``pixel``, ``lpips`` or ``evaluator:LABEL``.
        record: the pair's record: ``id_pixel``/``id_lpips`` means, and ``evaluators[LABEL]["id_accuracy"]``.
        per_image: the pair's per-image values (``id_pixel``, ``id_lpips``); ``id_accuracy`` is added.
        evaluated: the evaluators' per-image values, ``"eval:LABEL:id_accuracy"`` among them.
    """
    record["id_space"] = space
    if space.startswith("evaluator:"):
        label = space.partition(":")[2]
        record["id_accuracy"] = record["evaluators"][label]["id_accuracy"]
        if f"eval:{label}:id_accuracy" in evaluated:
            per_image["id_accuracy"] = evaluated[f"eval:{label}:id_accuracy"]
        return
    key = f"id_{space}"
    record["id_accuracy"] = record.get(key)
    per_image["id_accuracy"] = per_image[key]
