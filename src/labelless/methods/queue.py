"""A first-in-first-out queue of embeddings shared by the queue-based methods (MoCo, NNCLR)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from labelless.nn.distributed import gather


class EmbeddingQueue(nn.Module):
    """``size`` rows of ``dim``-wide embeddings, overwritten oldest first.

    The rows, the write pointer and the count of filled rows are buffers, so a checkpoint holds the
    queue and a resumed run continues with it. ``push`` gathers the keys of every process (without
    gradient) before writing, so each process writes the same rows and the queues stay identical.
    """

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        if size < 1:
            raise ValueError(f"queue size must be >= 1, got {size}")
        self.register_buffer("rows", torch.zeros(size, dim))
        self.register_buffer("pointer", torch.zeros((), dtype=torch.long))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    @property
    def size(self) -> int:
        return self.rows.shape[0]

    def filled(self) -> torch.Tensor:
        """The rows written so far, ``[min(count, size), dim]`` (order does not matter)."""
        return self.rows[: int(self.count)]

    @torch.no_grad()
    def push(self, keys: torch.Tensor) -> None:
        """Write ``keys [B, dim]`` from every process at the pointer, wrapping around."""
        keys = gather(keys.detach()).to(self.rows.dtype)
        keys = keys[-self.size :]  # a batch larger than the queue keeps its newest rows
        index = (self.pointer + torch.arange(len(keys), device=keys.device)) % self.size
        self.rows[index] = keys
        self.pointer.copy_((self.pointer + len(keys)) % self.size)
        self.count.copy_(torch.clamp(self.count + len(keys), max=self.size))


def nearest_neighbours(queries: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
    """For each row of ``queries [B, D]``, the row of ``support [M, D]`` with the highest cosine
    similarity (NNCLR, Dwibedi et al. 2021, eq. 2); returns ``[B, D]`` without gradient."""
    with torch.no_grad():
        similarity = F.normalize(queries, dim=1) @ F.normalize(support, dim=1).T
        return support[similarity.argmax(dim=1)]
