"""What an inverter observes of a classifier, and the one check that it is what the inverter was made for.

An inverter inverts one *observation* of an image, either

* an observation channel applied to the classifier's logits (``invkit.core.channels``: ``logits``, the paper's
  setting and the default, ``probs``, ``topk:K``, ``round:D``, ``label``, ``noise:SIGMA``), or
* the activations of one named layer of the classifier, globally pooled to a vector
  (``Classifier.features(images, layer, pooled=True)``: a convolution's ``(N, C, H, W)`` averaged over H and W to
  ``(N, C)``, tokens ``(N, L, D)`` over L; ``"penultimate"`` is the input of the last ``nn.Linear``), as
  Dosovitskiy & Brox (CVPR 2016) invert every AlexNet layer and Engstrom et al. (2019) the penultimate one.

Every inverter carries its observation as ``Inverter.channel`` (a channel spec) and ``Inverter.layer`` (a layer
name, or None for a channel); ``Inverter.save`` records both in ``config.json`` and ``load_inverter`` reads them back
(a checkpoint written before they were recorded is a ``logits`` checkpoint). ``choose_observation`` is what every
command's ``--channel``/``--layer`` goes through: the checkpoint's own observation is the default, another one is
refused in one line naming both, and a fresh inverter (``optim``) takes the one asked for. ``observe`` computes the
observation of a batch of images, the vector an inverter is given.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import CheckpointError, InputError
from .channels import DEFAULT_CHANNEL, Channel, create_channel

__all__ = ["choose_observation", "describe", "layer_width", "needs_images", "observation_of", "observe"]


def describe(channel: str, layer: str | None) -> str:
    """How messages and labels name an observation: ``layer 'fc'`` or ``channel 'topk:5'``."""
    return f"layer '{layer}'" if layer else f"channel '{channel}'"


def observation_of(inverter: Any) -> tuple[str, str | None]:
    """``(channel spec, layer or None)`` that ``inverter`` observes (``logits`` for an object without the fields)."""
    return str(getattr(inverter, "channel", None) or DEFAULT_CHANNEL), getattr(inverter, "layer", None) or None


def _normalised(spec: str) -> str:
    """A channel spec as its channel writes it (``noise:1`` -> ``noise:1.0``), so equal specs compare equal."""
    return create_channel(spec).spec


def layer_width(classifier: Any, layer: str) -> int:
    """How many values ``layer`` of ``classifier`` gives per image once globally pooled (its channel count).

    Runs ``Classifier.features`` on two black images of the classifier's input size, in eval mode.

    Args:
        classifier: an ``invkit.Classifier``.
        layer: a module name of its network, or ``"penultimate"``.

    Returns:
        The width D of ``features(images, layer, pooled=True)``, ``(N, D)``.

    Raises:
        InputError: no layer of that name (the message lists the nearest names); ``"penultimate"`` for a network
            that calls no ``nn.Linear``.
    """
    c, h, w = classifier.config.input_size
    device = next((t.device for t in classifier.parameters()), torch.device("cpu"))
    was_training = classifier.training
    classifier.eval()
    try:
        with torch.no_grad():
            return int(classifier.features(torch.zeros(2, c, h, w, device=device), layer, pooled=True).shape[1])
    finally:
        classifier.train(was_training)


def choose_observation(
    inverter: Any, classifier: Any, channel: str | None = None, layer: str | None = None, where: str = ""
) -> Channel | None:
    """Set and check what ``inverter`` observes of ``classifier``: ``--channel``/``--layer`` of every command.

    An inverter loaded from a checkpoint (``checkpoint_dir`` set) observes what it was trained on: that is the
    default, and asking for another channel or layer is refused. An inverter built fresh (``optim``, or a learned
    one about to be trained) takes what is asked for (``logits`` when nothing is).

    Args:
        inverter: the inverter; its ``channel`` and ``layer`` are set here when it was built fresh.
        classifier: the classifier it inverts.
        channel: a channel spec (``topk:5``), or None for the inverter's own.
        layer: a layer name of the classifier (or ``penultimate``), or None for the inverter's own.
        where: names the inverter in messages (default: its registry name and checkpoint folder).

    Returns:
        The channel the inverter observes through, built and checked against ``classifier.num_classes``; None when
        it observes a layer.

    Raises:
        InputError: both ``channel`` and ``layer``; a checkpoint used with another channel or layer than it was
            trained on (naming both); a malformed or refused channel spec (K above the number of classes, D < 0,
            SIGMA not finite); a layer the classifier does not have (with the nearest names).
        UnknownNameError: an unknown channel name (with the closest names).
        CheckpointError: a learned inverter whose input width does not fit the layer's (or the logits') width.
    """
    if channel is not None and layer is not None:
        raise InputError(
            f"--channel {channel} and --layer {layer} are exclusive: an inverter sees a channel of the logits or one "
            "layer's activations, not both; give one."
        )
    rec_channel, rec_layer = observation_of(inverter)
    folder = getattr(inverter, "checkpoint_dir", None)
    who = where or (f"checkpoint '{folder}'" if folder is not None else getattr(inverter, "registry_name", "inverter"))
    if channel is not None or layer is not None:
        # the spec is checked first (unknown name, K above the classes, ...): that is the error to report then
        asked = (
            create_channel(channel, classifier.num_classes).spec if channel is not None else DEFAULT_CHANNEL,
            layer,
        )
        if folder is not None and asked != (_normalised(rec_channel), rec_layer):
            raise InputError(
                f"{who} was trained on {describe(rec_channel, rec_layer)}, not {describe(*asked)}; drop "
                f"--channel/--layer (the checkpoint's own is the default) or pass a checkpoint trained on "
                f"{describe(*asked)}."
            )
        rec_channel, rec_layer = asked
    inverter.channel, inverter.layer = rec_channel, rec_layer
    learned = bool(getattr(inverter, "trainable", False))
    if rec_layer is not None:
        width = layer_width(classifier, rec_layer)
        if learned and inverter.num_classes != width:
            raise CheckpointError(
                f"{who} takes vectors of {inverter.num_classes} values but layer '{rec_layer}' of {classifier.name} "
                f"gives {width} once pooled; use the checkpoint trained on this classifier's layer."
            )
        return None
    return create_channel(rec_channel, num_classes=classifier.num_classes)


@torch.no_grad()
def needs_images(inverter: Any) -> bool:
    """Whether ``observe`` needs the images themselves for ``inverter`` (a layer's activations, or the inverter's
    own ``targets``), not only the classifier's logits of them."""
    channel, layer = observation_of(inverter)
    return layer is not None or (channel == DEFAULT_CHANNEL and hasattr(inverter, "targets"))


def observe(
    inverter: Any,
    classifier: Any,
    images: torch.Tensor | None,
    logits: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    batch_size: int = 64,
) -> torch.Tensor:
    """The vector ``inverter`` is given for ``images``: its channel of the classifier's logits, or its layer's
    pooled activations. An inverter that inverts another representation of its own (``optim.robust``: the
    penultimate layer, ``inverter.targets``) gets that when it observes plain ``logits``.

    Args:
        inverter: the inverter (its ``channel`` and ``layer``, see ``choose_observation``).
        classifier: the classifier it inverts.
        images: ``(N, C, H, W)`` images in [0, 1] (the inverter's target images); may be None when ``logits`` are
            given and the inverter observes a channel of them (``needs_images`` is False).
        logits: the classifier's ``(N, num_classes)`` logits of ``images`` when already computed.
        generator: seeds a random channel (``noise``), on the device of the logits.
        batch_size: images per classifier call.

    Returns:
        ``(N, D)`` float32 without gradient: D = ``num_classes`` for a channel, the layer's width for a layer.

    Raises:
        InputError, UnknownNameError: as ``choose_observation`` (a spec that cannot be built); no ``images`` where
            they are needed.
    """
    channel, layer = observation_of(inverter)
    if images is None and (logits is None or needs_images(inverter)):
        raise InputError("observe: this observation is computed from the images; pass them.")
    chunks = range(0, len(images if images is not None else logits), batch_size)
    if layer is not None:
        return torch.cat([classifier.features(images[i : i + batch_size], layer, pooled=True) for i in chunks]).float()
    if channel == DEFAULT_CHANNEL and hasattr(inverter, "targets"):
        return inverter.targets(images)
    if logits is None:
        logits = torch.cat([classifier.logits(images[i : i + batch_size]) for i in chunks])
    if channel == DEFAULT_CHANNEL:
        return logits  # the paper's setting: the logits as they are
    return create_channel(channel, num_classes=logits.shape[1])(logits, generator)
