"""A named layer's activations from any network, through a forward hook: what ``Classifier.features`` runs.

A layer is named as ``dict(network.named_modules())`` names it (``features.3``, ``stages.2.1``, ``fc``), or
``"penultimate"``: the input of the **last** ``nn.Linear`` the forward pass calls (the classifier head of every
built-in network: smallcnn's ``head.3``, resnet18s' and vgg11s' ``fc``, torchvision/timm ResNets' ``fc``, timm
ViTs' ``head``). Which module that is is found once per network by running one image with a pre-hook on every
``nn.Linear`` and keeping the last one called, so the rule needs no per-architecture table.

The hook copies the activation and, when the logits are not wanted, stops the forward pass right there (nothing
after the layer runs, so an in-place ReLU after it cannot change the copy either). Gradients flow from the
activation to the input images. Modules that return a tuple give their first element.
"""

from __future__ import annotations

import difflib

import torch
from torch import nn

from ..errors import InputError

PENULTIMATE = "penultimate"  # the input of the last nn.Linear the forward pass calls


class _Captured(Exception):
    """Raised by the hook to end the forward pass once the activation is copied (nothing after it is needed)."""


def layer_names(network: nn.Module) -> list[str]:
    """The usual layer names of ``network``: ``"penultimate"``, then every named module of the first two levels
    (``features``, ``features.0``, ..., ``head.3``; ``layer1``, ``layer1.0``, ...), in registration order.

    Deeper modules (``stages.0.1.conv2``) are valid layers too: any name of ``network.named_modules()`` is.
    """
    return [PENULTIMATE] + [name for name, _ in network.named_modules() if name and name.count(".") <= 1]


def find_module(network: nn.Module, layer: str, owner: str) -> nn.Module:
    """The module called ``layer`` in ``network``.

    Raises:
        InputError: no module has that name; the message lists the nearest names (difflib).
    """
    modules = {name: m for name, m in network.named_modules() if name}
    if layer in modules:
        return modules[layer]
    near = difflib.get_close_matches(str(layer), list(modules) + [PENULTIMATE], n=5, cutoff=0.4)
    hint = f"nearest: {', '.join(near)}" if near else f"some: {', '.join(layer_names(network)[:8])}"
    raise InputError(f"{owner}: no layer '{layer}' ({hint}); Classifier.layer_names() lists the usual ones.")


def penultimate_module(network: nn.Module, example: torch.Tensor, owner: str) -> nn.Module:
    """The last ``nn.Linear`` that a forward pass of ``network`` on ``example[:1]`` calls (its input is the
    penultimate layer's output).

    Raises:
        InputError: the forward pass calls no ``nn.Linear`` (a head built from convolutions): name a layer.
    """
    called: list[nn.Module] = []
    handles = [
        m.register_forward_pre_hook(lambda module, args: called.append(module))
        for m in network.modules()
        if isinstance(m, nn.Linear)
    ]
    try:
        with torch.no_grad():
            network(example[:1].detach())
    finally:
        for h in handles:
            h.remove()
    if not called:
        raise InputError(
            f"{owner}: its network calls no nn.Linear, so it has no 'penultimate' layer by invkit's rule (the input "
            "of the last nn.Linear); name a layer instead (Classifier.layer_names())."
        )
    return called[-1]


def capture(
    network: nn.Module, x: torch.Tensor, module: nn.Module, *, of_input: bool, logits: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Run ``network(x)`` and copy ``module``'s output (or, with ``of_input``, its first input) at its first call.

    Args:
        network: the network, fed ``x`` as it is.
        x: the network's input batch.
        module: a module of ``network``.
        of_input: copy what goes into ``module`` instead of what comes out.
        logits: run the whole network and return its output too; otherwise stop right after the copy.

    Returns:
        ``(activation, network output or None)``; the activation keeps the graph to ``x``.

    Raises:
        InputError: the forward pass never calls ``module``.
    """
    box: list[torch.Tensor] = []

    def keep(value: object) -> None:
        if box:
            return
        value = value[0] if isinstance(value, tuple | list) else value
        box.append(value.clone())
        if not logits:
            raise _Captured

    if of_input:
        handle = module.register_forward_pre_hook(lambda m, args: keep(args))
    else:
        handle = module.register_forward_hook(lambda m, args, out: keep(out))
    out = None
    try:
        out = network(x)
    except _Captured:
        pass
    finally:
        handle.remove()
    if not box:
        raise InputError("the forward pass did not call the requested layer; name another (Classifier.layer_names()).")
    return box[0], out


def pool(activation: torch.Tensor) -> torch.Tensor:
    """Global average pooling to ``(N, C)``: ``(N, C, H, W)`` over H and W, ``(N, L, D)`` (tokens) over L; a
    ``(N, D)`` activation is returned as is, anything else flattened to ``(N, -1)``."""
    if activation.dim() == 4:
        return activation.mean(dim=(2, 3))
    if activation.dim() == 3:
        return activation.mean(dim=1)
    return activation if activation.dim() == 2 else activation.flatten(1)
