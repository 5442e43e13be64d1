"""Gathering tensors across processes with gradient, for losses that need the whole batch, and
shuffling a batch across processes (MoCo's shuffling BN)."""

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


def _gather_no_grad(tensor: torch.Tensor) -> torch.Tensor:
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts, dim=0)


@torch.no_grad()
def shuffle_across_processes(
    tensor: torch.Tensor, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Shuffling BN (He et al. 2020, MoCo, sec. 3.3): the rows of ``tensor [B, ...]`` of every
    process are gathered into the global batch ``[P * B, ...]``, permuted by one permutation
    shared by all processes (drawn on each from ``generator``, rank 0's broadcast, as the
    reference code's ``_batch_shuffle_ddp``), and this process gets rows ``rank * B`` to
    ``(rank + 1) * B`` of the permuted batch: B samples drawn from every process's batch. Returns
    them with the index that ``unshuffle_across_processes`` undoes it with.

    Without gradient (the momentum encoder's branch). All processes must pass the same ``B``.
    Single process: the tensor unchanged and None (a permutation within one BatchNorm batch
    leaves its statistics as they are).
    """
    if not is_distributed():
        return tensor, None
    gathered = _gather_no_grad(tensor)
    device = tensor.device if generator is None else generator.device
    permutation = torch.randperm(len(gathered), generator=generator, device=device)
    permutation = permutation.to(tensor.device)
    dist.broadcast(permutation, src=0)
    batch = tensor.shape[0]
    mine = permutation[rank() * batch : (rank() + 1) * batch]
    return gathered[mine], torch.argsort(permutation)


@torch.no_grad()
def unshuffle_across_processes(
    tensor: torch.Tensor, unshuffle: torch.Tensor | None
) -> torch.Tensor:
    """The outputs ``tensor [B, ...]`` of a batch from ``shuffle_across_processes`` put back in
    the order of this process's own samples: row ``i`` belongs to the sample that was row ``i``
    here before the shuffle. ``unshuffle=None`` (one process): ``tensor`` unchanged."""
    if unshuffle is None:
        return tensor
    gathered = _gather_no_grad(tensor)
    batch = tensor.shape[0]
    return gathered[unshuffle[rank() * batch : (rank() + 1) * batch]]
