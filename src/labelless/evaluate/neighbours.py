"""Exact top-k cosine neighbour search for the kNN and retrieval protocols.

faiss (Johnson et al. 2019, "Billion-scale similarity search with GPUs") is used when it is
installed and asked for; it is optional, imported lazily, and the default fallback is a chunked
torch search: one ``[chunk, N]`` similarity block at a time, written into a buffer that is reused
for every chunk (fresh memory is slow to first-touch on small VMs), then ``topk``. Both are exact.
"""

from __future__ import annotations

import contextlib
import importlib
from typing import Literal

import torch

from labelless.errors import ConfigError
from labelless.progress import SILENT, Task, task

Backend = Literal["auto", "torch", "faiss"]
BLOCK_BYTES = 256 * 2**20  # similarity block of the torch search (float32); 1,342 x 50,000


def load_faiss():
    """The ``faiss`` module, or None when it is not installed (never raises for a missing one)."""
    try:
        return importlib.import_module("faiss")
    except ImportError:
        return None


def resolve_backend(backend: Backend, device: torch.device) -> str:
    """``"faiss"`` or ``"torch"``: ``auto`` takes faiss on CPU tensors when it is installed."""
    if backend not in ("auto", "torch", "faiss"):
        raise ConfigError(f"unknown neighbour backend {backend!r}; choose auto, torch or faiss")
    if backend == "torch":
        return "torch"
    available = load_faiss() is not None
    if backend == "faiss" and not available:
        raise ConfigError(
            "backend='faiss' but faiss is not installed: pip install labelless[faiss] "
            "(faiss-cpu), or use backend='torch' (exact, same results)"
        )
    return "faiss" if available and device.type == "cpu" else "torch"


def _torch_search(
    queries: torch.Tensor,
    references: torch.Tensor,
    k: int,
    self_offset: int | None,
    chunk_size: int,
    bar: Task = SILENT,
) -> tuple[torch.Tensor, torch.Tensor]:
    num_queries, num_refs = len(queries), len(references)
    if chunk_size <= 0:
        chunk_size = max(1, min(num_queries, BLOCK_BYTES // (4 * num_refs)))
    bar.update(total=-(-num_queries // chunk_size), counted=True)
    block = torch.empty(min(chunk_size, num_queries), num_refs, device=queries.device)
    values = torch.empty(num_queries, k, device=queries.device)
    indices = torch.empty(num_queries, k, dtype=torch.long, device=queries.device)
    for start in range(0, num_queries, chunk_size):
        stop = min(start + chunk_size, num_queries)
        similarity = block[: stop - start]
        torch.mm(queries[start:stop], references.T, out=similarity)
        if self_offset is not None:  # query i is reference self_offset + i
            similarity.diagonal(offset=self_offset + start).fill_(float("-inf"))
        torch.topk(similarity, k, dim=1, out=(values[start:stop], indices[start:stop]))
        bar.advance()
    return values, indices


def _faiss_search(
    faiss, queries: torch.Tensor, references: torch.Tensor, k: int, self_offset: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    index = faiss.IndexFlatIP(references.shape[1])
    index.add(references.contiguous().numpy())
    extra = 0 if self_offset is None else 1
    values, indices = index.search(queries.contiguous().numpy(), k + extra)
    values, indices = torch.from_numpy(values), torch.from_numpy(indices).long()
    if self_offset is not None:
        # Drop each query's own entry; a row without it (ties) drops its last neighbour instead.
        own_rows = torch.arange(self_offset, self_offset + len(queries))
        own = indices == own_rows.unsqueeze(1)
        own[:, -1] |= ~own.any(dim=1)
        keep = ~own
        values = values[keep].reshape(len(queries), k)
        indices = indices[keep].reshape(len(queries), k)
    return values, indices


def top_k_similar(
    queries: torch.Tensor,
    references: torch.Tensor,
    k: int,
    *,
    self_offset: int | None = None,
    backend: Backend = "auto",
    chunk_size: int = 0,
    description: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` largest inner products of each query with the references, best first.

    Args:
        queries: ``[M, D]`` float32 (L2-normalise both sides for cosine similarity).
        references: ``[N, D]`` float32 on the same device.
        k: neighbours per query, ``1 <= k <= N`` (``N - 1`` with ``self_offset``).
        self_offset: the queries are rows ``self_offset ..`` of ``references`` (a leave-one-out
            search, e.g. a chunk of a test split against the whole split); a query then never
            finds its own row.
        backend: ``auto`` (faiss when installed and on CPU, else torch), ``torch`` or ``faiss``.
        chunk_size: queries per similarity block of the torch search; 0 sizes blocks to 256 MiB.
        description: when given, a progress line (``labelless.progress``) over the blocks.

    Returns:
        ``(values [M, k], indices [M, k])``, sorted by decreasing similarity.
    """
    if self_offset is not None and not 0 <= self_offset <= len(references) - len(queries):
        raise ConfigError(
            f"self_offset={self_offset} puts {len(queries)} queries outside the "
            f"{len(references)} references: the queries must be rows of the references"
        )
    with task(description) if description else contextlib.nullcontext(SILENT) as bar:
        if resolve_backend(backend, queries.device) == "faiss":
            return _faiss_search(load_faiss(), queries.cpu(), references.cpu(), k, self_offset)
        return _torch_search(queries, references, k, self_offset, chunk_size, bar)
