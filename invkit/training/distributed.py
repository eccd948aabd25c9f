"""Distributed data parallel under ``torchrun``: joining the process group, and what the ranks share.

The environment decides (``RANK``/``WORLD_SIZE``/``LOCAL_RANK``, checked by ``launch_env``); the backend is gloo
on CPU, nccl on CUDA, and the process group is torn down at the end only if this run set it up (``_Dist.owned``).
Only rank 0 writes files and reports progress; its decisions (stop on a signal, a failed health check) reach every
rank through ``_broadcast_flag``, and the losses are averaged over ranks (``_mean_over_ranks``) so that every rank
sees a NaN on any rank and all stop together. The trainer's networks are wrapped in ``DistributedDataParallel`` by
the ``wrap`` that ``ddp_wrap`` makes (their batch norms first made global over the ranks, ``sync_batchnorm``) and
``invkit.training.loop._setup_trainer`` hands to ``InverterTrainer.distribute``; an ``Inverter`` becomes a
``DistributedInverter``, whose ``invert`` (the inverter API) runs through DDP like its ``forward``, so gradients are
averaged whichever a trainer calls. Elsewhere: each global
batch is sharded over the ranks by ``invkit.training.source.BatchStream``; every rank's RNG states go into each
checkpoint through ``invkit.training.resume._gather_rng``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..core.inverter import Inverter
from ..errors import InputError


@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owned: bool = False  # whether this module initialised the process group (and tears it down)

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int, low: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if value < low:
        raise InputError(
            f"the environment variable {name}={os.environ[name]!r} is not a whole number >= {low}; torchrun sets it "
            f"for each process: unset it for a run of one process, or start the run with torchrun."
        )
    return value


def launch_env() -> tuple[int, int, int]:
    """``(rank, world size, local rank)`` from the environment a launcher such as ``torchrun`` sets, checked.

    No ``WORLD_SIZE`` (or 1) is a run of one process (rank 0). ``WORLD_SIZE`` above 1 needs ``RANK`` below it and the
    rendezvous address torch joins through (``MASTER_ADDR``, ``MASTER_PORT``), which only a launcher provides: a
    ``WORLD_SIZE=2`` left in the shell would otherwise end in a traceback or wait for processes that never come.

    Raises:
        InputError: one of them is not a whole number, is out of range, or is missing; one line saying which and
            what to do.
    """
    world = _env_int("WORLD_SIZE", 1, 1)
    rank = _env_int("RANK", 0, 0)
    local = _env_int("LOCAL_RANK", 0, 0)
    if world == 1:
        return 0, 1, 0  # one process: rank 0, whatever RANK a shell left behind
    missing = [v for v in ("RANK", "MASTER_ADDR", "MASTER_PORT") if not os.environ.get(v, "").strip()]
    if missing:
        raise InputError(
            f"WORLD_SIZE={world} asks for {world} processes, but {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not set, so this is not a torchrun process; unset WORLD_SIZE "
            "for a run of one process, or start the run with torchrun --nproc_per_node=N."
        )
    if rank >= world:
        raise InputError(
            f"RANK={rank} but WORLD_SIZE={world} (ranks are 0 to {world - 1}); start the run with torchrun, which "
            "sets both."
        )
    return rank, world, local


def _init_distributed(device_name: str) -> _Dist:
    """Join the ``torchrun`` process group if the environment asks for one (``launch_env``)."""
    import torch.distributed as dist

    _, world, local = launch_env()
    if world <= 1:
        return _Dist()
    owned = False
    if not dist.is_initialized():
        cuda = device_name.startswith("cuda")
        if cuda:
            torch.cuda.set_device(local)
        dist.init_process_group(backend="nccl" if cuda else "gloo")
        owned = True
    return _Dist(rank=dist.get_rank(), world=dist.get_world_size(), local_rank=local, owned=owned)


def _broadcast_flag(d: _Dist, flag: bool, device: torch.device) -> bool:
    """Rank 0's decision, on every rank."""
    if not d.active:
        return flag
    import torch.distributed as dist

    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.broadcast(t, src=0)
    return bool(t.item())


def _mean_over_ranks(d: _Dist, losses: dict[str, float], device: torch.device) -> dict[str, float]:
    """Losses averaged over ranks (so every rank sees a NaN on any rank and stops together)."""
    if not d.active:
        return {k: float(v) for k, v in losses.items()}
    import torch.distributed as dist

    keys = sorted(losses)
    t = torch.tensor([float(losses[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return {k: float(v) / d.world for k, v in zip(keys, t.tolist())}


class _InverterCalls(nn.Module):
    """What DDP wraps for an inverter: ``forward`` runs the inverter's ``invert`` or its own ``forward``.

    DDP averages gradients only for the passes that go through its own ``forward``; routing both methods through
    this one module lets ``DistributedInverter.invert`` be such a pass. Its parameters are the inverter's (the
    same tensors), so optimisers built on ``inverter.parameters()`` and the saved weights are unchanged.
    """

    def __init__(self, inverter: Inverter):
        super().__init__()
        self.inverter = inverter

    def forward(self, *args: Any, _invkit_method: str = "forward", **kwargs: Any) -> Any:
        if _invkit_method == "invert":
            return self.inverter.invert(*args, **kwargs)
        return self.inverter(*args, **kwargs)


class DistributedInverter(DistributedDataParallel):
    """An ``Inverter`` in ``DistributedDataParallel`` that keeps the inverter API (what ``wrap(inverter)`` returns).

    ``wrapped.invert(logits, noise=None, generator=None)`` calls the inverter's ``invert`` through DDP and
    ``wrapped(*args)`` its ``forward`` (``Inverter.forward`` is ``invert`` unless the subclass defines its raw network
    there), both with gradients averaged over the ranks. ``wrapped.inverter`` is the inverter itself; other
    attributes (``config``, ``noise_dim``, ``image_shape``, ``num_classes``) are read from it.
    """

    def __init__(self, inverter: Inverter, **kwargs: Any):
        super().__init__(_InverterCalls(inverter), **kwargs)

    @property
    def inverter(self) -> Inverter:
        return self.module.inverter

    def invert(
        self, logits: torch.Tensor, noise: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """The inverter's ``invert`` (see ``Inverter.invert``), through DDP so that its gradients are averaged."""
        return self(logits, noise=noise, generator=generator, _invkit_method="invert")

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name in ("module", "_modules", "_parameters", "_buffers"):
                raise
            return getattr(self.module.inverter, name)


def ddp_wrap(device: torch.device, sync_bn: bool = False) -> Callable[..., nn.Module]:
    """The ``wrap`` handed to ``InverterTrainer.distribute``: a module in ``DistributedDataParallel`` on ``device``.

    Args:
        device: this rank's device (CUDA: its index is the DDP device; CPU: gloo, no device ids).
        sync_bn: first turn every ``nn.BatchNorm1d/2d/3d`` inside the module (in place, names and tensors kept) into
            a ``GlobalBatchNorm``, which normalises over the global batch of all ranks in training mode
            (``invkit.training.sync_batchnorm``; compare_gan's cross-replica batch norm). Copies the trainer made
            before (an EMA copy) keep plain batch norms.

    Returns:
        ``wrap(module, **ddp_kwargs)``: a ``DistributedInverter`` for an ``Inverter``, a plain
        ``DistributedDataParallel`` for any other module (a discriminator, a generator network). Needs the
        process group (``_init_distributed``).
    """

    def wrap(module: nn.Module, **kwargs: Any) -> nn.Module:
        ids = [device.index] if device.type == "cuda" else None
        if sync_bn:
            from .sync_batchnorm import convert_batchnorms

            module = convert_batchnorms(module)
        if isinstance(module, Inverter):
            return DistributedInverter(module, device_ids=ids, **kwargs)
        return DistributedDataParallel(module, device_ids=ids, **kwargs)

    return wrap
