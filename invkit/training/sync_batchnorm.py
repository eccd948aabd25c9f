"""Batch norm over the global batch under ``torchrun``: what compare_gan does on a TPU (cross-replica batch norm).

compare_gan's ``standardize_batch`` (``architectures/arch_ops.py``), the normalisation under every batch norm of the
paper's generator, computes its moments with ``tpu_ops.cross_replica_moments(parallel=True)`` on a TPU: the mean of
``x`` and of ``x ** 2`` over all replicas, variance ``E[x^2] - E[x]^2``. Plain DDP normalises each process' shard on
its own, so the statistics (and the images) depend on how many processes share a batch.

``GlobalBatchNorm`` does what compare_gan does with ``torch.distributed``: in training mode, under an initialised
process group of more than one process, one all-reduce of ``[count, sum x, sum x^2]`` per channel (in float32;
differentiable: the gradients are summed over the ranks in the backward pass), then
``(x - mean) / sqrt(var + eps)``, the affine part if any, and the running statistics updated as
``nn.BatchNorm2d`` updates them (unbiased variance over the global count). Elsewhere (one process, eval mode) it is
the plain batch norm it subclasses. ``convert_batchnorms`` swaps it in for every ``nn.BatchNorm1d/2d/3d`` of a module
(buffers, parameters and names unchanged, so checkpoints load either way).

Why not ``torch.nn.SyncBatchNorm``: in torch 2.14.1 its forward refuses CPU tensors (``SyncBatchNorm expected input
tensor to be on GPU or XPU``), so gloo runs on CPUs, which invkit supports and tests, could not use it; this module
runs on any device. Its one all-reduce per batch norm is what SyncBatchNorm also costs (it all-gathers mean,
invstd and count).
"""

from __future__ import annotations

import torch
from torch import nn


class _SumOverRanks(torch.autograd.Function):
    """``all_reduce(SUM)`` with its gradient: every rank's loss depends on every rank's contribution, so the
    gradient of a contribution is the sum of the ranks' gradients (an all-reduce again). Written here because
    ``torch.distributed.nn.functional.all_reduce`` is deprecated in torch 2.14 and its suggested replacement
    (``_functional_collectives``, private) has no differentiable all-reduce."""

    @staticmethod
    def forward(ctx: object, x: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        out = x.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: object, grad: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad


def _world() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class GlobalBatchNorm(nn.BatchNorm2d):
    """Batch norm whose training statistics are those of the global batch, over every process of the group.

    Input ``(N, C, ...)`` (any number of spatial dimensions, as ``nn.BatchNorm1d/2d/3d``), output the same shape and
    dtype. Statistics are reduced in float32 over the batch and spatial dimensions of every rank's input; each rank
    may hold a different ``N``. Every rank must call it the same number of times (a collective per call).
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input (N, C, ...), got {input.dim()}-D")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(input)
        use_batch = self.training or self.running_mean is None
        if not (use_batch and self.training and _world() > 1):
            return super().forward(input)
        dims = [0, *range(2, input.dim())]
        x = input.float()
        count = torch.full((1,), input.numel() / input.shape[1], dtype=torch.float32, device=input.device)
        stats = _SumOverRanks.apply(torch.cat([count, x.sum(dims), (x * x).sum(dims)]))  # over ranks, differentiable
        n = stats[0]
        mean = stats[1 : 1 + self.num_features] / n
        var = (stats[1 + self.num_features :] / n - mean * mean).clamp_min(0)  # biased, as compare_gan's
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                unbiased = var.detach() * (n / (n - 1).clamp_min(1))
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), momentum)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), momentum)
        shape = [1, -1] + [1] * (input.dim() - 2)
        out = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out.to(input.dtype)


def convert_batchnorms(module: nn.Module) -> nn.Module:
    """Replace every ``nn.BatchNorm1d/2d/3d`` inside ``module`` (and ``module`` itself) with a ``GlobalBatchNorm``.

    The replacement holds the same parameters and buffers (the same tensors) under the same names and keeps the
    original's mode, so optimisers built on the old parameters and saved state dicts are unchanged. Children are
    replaced in place; modules already converted, and ``torch.nn.SyncBatchNorm``, are left as they are.

    Args:
        module: any module, e.g. a generator whose conditional batch norms hold an ``nn.BatchNorm2d``.

    Returns:
        ``module`` (converted in place), or its replacement when ``module`` is itself a batch norm.
    """
    plain = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
    if isinstance(module, plain) and not isinstance(module, GlobalBatchNorm):
        new = GlobalBatchNorm.__new__(GlobalBatchNorm)
        new.__dict__ = module.__dict__.copy()  # parameters, buffers, hooks and settings: the same objects
        new._parameters, new._buffers = dict(module._parameters), dict(module._buffers)
        new._modules = dict(module._modules)
        return new
    for name, child in list(module.named_children()):
        converted = convert_batchnorms(child)
        if converted is not child:
            setattr(module, name, converted)
    return module


def global_batchnorms(module: nn.Module) -> list[GlobalBatchNorm]:
    """The ``GlobalBatchNorm`` modules inside ``module``."""
    return [m for m in module.modules() if isinstance(m, GlobalBatchNorm)]


def batch_moments(input: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and biased variance of ``(N, C, ...)`` over all but the channel dimension (float32); the
    statistics a batch norm in training mode normalises with (for tests and checks)."""
    x = input.float().transpose(0, 1).reshape(input.shape[1], -1)
    return x.mean(1), x.var(1, unbiased=False)


__all__ = ["GlobalBatchNorm", "batch_moments", "convert_batchnorms", "global_batchnorms"]
