"""Distributed data parallel under ``torchrun``: joining the process group, and what the ranks share.

The environment decides (``RANK``/``WORLD_SIZE``/``LOCAL_RANK``); the backend is gloo on CPU, nccl on CUDA, and the
process group is torn down at the end only if this run set it up (``_Dist.owned``). Only rank 0 writes files and
reports progress; its decisions (stop on a signal, a failed health check) reach every rank through
``_broadcast_flag``, and the losses are averaged over ranks (``_mean_over_ranks``) so that every rank sees a NaN on
any rank and all stop together. Elsewhere: each global batch is sharded over the ranks by
``invkit.training.source.BatchStream``; every rank's RNG states go into each checkpoint through
``invkit.training.resume._gather_rng``; the trainer's networks are wrapped in ``DistributedDataParallel`` by
``invkit.training.loop._setup_trainer``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


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


def _init_distributed(device_name: str) -> _Dist:
    """Join the ``torchrun`` process group if the environment asks for one (RANK/WORLD_SIZE/LOCAL_RANK)."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    local = int(os.environ.get("LOCAL_RANK", "0"))
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
