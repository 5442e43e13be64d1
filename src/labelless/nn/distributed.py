"""Gathering tensors across processes with gradient, for losses that need the whole batch."""

from __future__ import annotations

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward sends each process the gradient of its own slice.

    The gradient of every gathered copy is summed over processes (each process computes the loss on
    the full gathered batch), so the result equals the single-process gradient of the summed loss.
    """

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        ctx.batch = tensor.shape[0]
        parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = dist.get_rank() * ctx.batch
        return grad[start : start + ctx.batch]


def gather(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor [B, ...]`` from every process along dim 0, keeping the gradient.

    Single-process: returns the tensor unchanged. All processes must pass the same batch size.
    """
    if not is_distributed():
        return tensor
    return _GatherWithGrad.apply(tensor)


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """Mean of ``tensor`` over processes (no gradient), for statistics such as centres."""
    if not is_distributed():
        return tensor
    tensor = tensor.detach().clone()
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor / dist.get_world_size()


class _AllReduceSumWithGrad(torch.autograd.Function):
    """all_reduce(SUM) whose backward sums the incoming gradients over processes.

    Every process computes its loss from the same reduced value, so, as for ``gather``, the gradient
    reaching each process is the sum over processes of the per-process gradients.
    """

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.detach().clone().contiguous()
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.detach().clone().contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum of ``tensor`` over processes, keeping the gradient (for sufficient statistics).

    Single-process: returns the tensor unchanged.
    """
    if not is_distributed():
        return tensor
    return _AllReduceSumWithGrad.apply(tensor)
