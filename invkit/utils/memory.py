"""Will a training configuration fit in memory? A cheap lower bound, checked before the first step.

A run whose batch cannot fit used to grow until the operating system killed it, without a word. Before the
first step, the training commands measure what one image costs: a forward pass of two images with hooks on
every leaf module adds up the bytes of the tensors they output (the activations that backpropagation keeps).
The estimate is

    weights, gradients and Adam's two moments of the trained network (4x its parameter bytes)
    + batch size x activation bytes per image x 2 (the activations and their gradients)
    + what else the caller counts (an EMA copy, the frozen classifier's weights and activations)

which is a lower bound: it leaves out the framework's workspace, an adversarial discriminator's activations
(only the generator's are measured) and the allocator's fragmentation. When even the lower bound exceeds the
free memory (``/proc/meminfo`` ``MemAvailable`` and the cgroup limit on a CPU, ``torch.cuda.mem_get_info`` on
a GPU), the run stops at once with one line saying the largest batch that could fit. Where free memory cannot
be read (another OS, another accelerator) nothing is checked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

GiB = float(2**30)


def available_bytes(device: torch.device) -> int | None:
    """Free memory on ``device`` in bytes, or None when it cannot be read."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type != "cpu":
        return None
    found: list[int] = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:  # cgroup v2: a container's limit minus what it already uses
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            found.append(int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text()))
    except (OSError, ValueError):
        pass
    return min(found) if found else None


def parameter_bytes(modules: Iterable[nn.Module]) -> int:
    """Bytes of the parameters and buffers of ``modules`` (shared tensors counted once)."""
    seen: dict[int, int] = {}
    for m in modules:
        for t in [*m.parameters(), *m.buffers()]:
            seen[id(t)] = t.numel() * t.element_size()
    return sum(seen.values())


def activation_bytes(modules: Iterable[nn.Module], run: Callable[[], Any]) -> int:
    """Bytes of every tensor that the leaf modules of ``modules`` output while ``run()`` runs (no autograd)."""
    total = [0]

    def count(_module: nn.Module, _inputs: Any, output: Any) -> None:
        stack = [output]
        while stack:
            o = stack.pop()
            if isinstance(o, torch.Tensor):
                total[0] += o.numel() * o.element_size()
            elif isinstance(o, (tuple, list)):
                stack.extend(o)
            elif isinstance(o, dict):
                stack.extend(o.values())

    handles = [
        sub.register_forward_hook(count)
        for m in modules
        for sub in m.modules()
        if next(sub.children(), None) is None  # leaves: a container's output is its last leaf's
    ]
    try:
        with torch.no_grad():
            run()
    finally:
        for h in handles:
            h.remove()
    return total[0]


def check_fits(
    what: str,
    batch_size: int,
    per_image: int,
    fixed: int,
    device: torch.device,
    error: type[Exception],
    scale: int = 1,
) -> None:
    """Raise ``error`` (one line) when ``fixed + batch_size * per_image`` bytes exceed the free memory.

    Args:
        what: the flag that sets the batch, for the message (``--batch-size``).
        batch_size: images per step.
        per_image: estimated bytes per image in the batch.
        fixed: estimated bytes that do not depend on the batch.
        device: where the run will train.
        error: the exception class to raise (``TrainingError``, ``InvkitError``).
        scale: processes the flag's batch is split over; ``batch_size`` is one process's share and the
            message gives the flag's value (``scale`` times the shares).
    """
    free = available_bytes(device)
    need = fixed + batch_size * per_image
    if free is None or need <= free:
        return
    fits = max(0, (free - fixed) // max(per_image, 1)) * scale
    advice = f"use {what} {fits} or less" if fits >= 1 else "even one image does not fit: use a smaller model"
    raise error(
        f"{what} {batch_size * scale} needs at least {need / GiB:.1f} GiB of {device.type} memory (a lower-bound "
        f"estimate: weights, Adam state and activations) but {free / GiB:.1f} GiB is free; {advice}."
    )
