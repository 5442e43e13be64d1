"""Top-k cosine neighbour search for the kNN and retrieval protocols: exact, or IVF at scale.

Backends: a chunked torch search (exact: one ``[chunk, N]`` similarity block at a time, written
into a buffer that is reused for every chunk, since fresh memory is slow to first-touch on small
VMs, then ``topk``) and faiss (Johnson et al. 2019, "Billion-scale similarity search with
GPUs"; optional, ``pip install 'labelless[faiss]'``, imported lazily). faiss searches a flat
inner-product index (exact, the same neighbours as torch) below ``ivf_min_rows`` references and
an inverted-file index above (``IndexIVFFlat``: ``nlist ~ sqrt(N)`` spherical k-means cells, the
``nprobe`` nearest of them searched per query), which is approximate: its recall@k against the
exact torch search on a seeded subsample of the queries is measured and returned with the
neighbours (``search``), so that the protocol records it next to the number.
"""

from __future__ import annotations

import contextlib
import importlib
import math
from typing import Any, Literal

import numpy as np
import torch

from labelless.errors import ConfigError
from labelless.progress import SILENT, Task, task

Backend = Literal["auto", "torch", "faiss"]
BLOCK_BYTES = 256 * 2**20  # similarity block of the torch search (float32); 1,342 x 50,000
IVF_MIN_ROWS = 1_000_000  # faiss uses IVF for reference sets of at least this many rows
DEFAULT_NPROBE = 32  # IVF cells searched per query
RECALL_QUERIES = 1000  # queries of the seeded subsample that measures an IVF search's recall
FAISS_HINT = "pip install 'labelless[faiss]'"


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
            f"the faiss kNN backend was asked for but faiss is not installed: {FAISS_HINT} "
            "(faiss-cpu), or use the torch backend (exact, the same neighbours as faiss's flat "
            "index)"
        )
    return "faiss" if available and device.type == "cpu" else "torch"


def check_search_options(nprobe: int, ivf_min_rows: int | None) -> None:
    """A ConfigError for an ``nprobe`` or ``ivf_min_rows`` below 1."""
    for name, value in (("nprobe", nprobe), ("ivf_min_rows", ivf_min_rows)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ConfigError(f"{name} must be a whole number >= 1, got {value!r}")
        if value is not None and value < 1:
            raise ConfigError(f"{name} must be >= 1, got {value}")


def check_knn_search(options: dict[str, Any]) -> None:
    """A ConfigError, before any work, for kNN search options that would fail later: an unknown
    key, an unknown backend, faiss asked for and not installed, ``nprobe`` or ``ivf_min_rows``
    below 1."""
    unknown = sorted(set(options) - {"backend", "nprobe", "ivf_min_rows", "seed"})
    if unknown:
        raise ConfigError(
            f"unknown kNN search option(s) {unknown}: use backend, nprobe or ivf_min_rows"
        )
    resolve_backend(options.get("backend", "auto"), torch.device("cpu"))
    check_search_options(options.get("nprobe", DEFAULT_NPROBE), options.get("ivf_min_rows"))


def _torch_search(
    queries: torch.Tensor,
    references: torch.Tensor,
    k: int,
    own: torch.Tensor | None,
    chunk_size: int,
    bar: Task = SILENT,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact search; ``own[i]`` (when given) is query i's own row in ``references``, skipped."""
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
        if own is not None:
            rows = torch.arange(stop - start, device=queries.device)
            similarity[rows, own[start:stop].to(queries.device)] = float("-inf")
        torch.topk(similarity, k, dim=1, out=(values[start:stop], indices[start:stop]))
        bar.advance()
    return values, indices


def _ivf_index(faiss, references: np.ndarray, nprobe: int, seed: int):
    """An ``IndexIVFFlat`` over ``references`` (inner product, spherical k-means cells)."""
    num_refs, dim = references.shape
    nlist = max(1, min(round(math.sqrt(num_refs)), num_refs // 39))  # faiss: >= 39 rows a cell
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed, index.cp.spherical = seed, True
    rows = np.random.default_rng(seed).permutation(num_refs)[: nlist * 256]  # faiss's own cap
    index.train(references[np.sort(rows)])
    index.add(references)
    index.nprobe = min(nprobe, nlist)
    return index, {"index": "ivf", "nlist": nlist, "nprobe": int(index.nprobe)}


def _faiss_search(
    faiss,
    queries: torch.Tensor,
    references: torch.Tensor,
    k: int,
    self_offset: int | None,
    ivf: bool,
    nprobe: int,
    seed: int,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    faiss.omp_set_num_threads(torch.get_num_threads())
    base = references.contiguous().numpy()
    if ivf:
        index, record = _ivf_index(faiss, base, nprobe, seed)
    else:
        index, record = faiss.IndexFlatIP(references.shape[1]), {"index": "flat"}
        index.add(base)
    extra = 0 if self_offset is None else 1
    values, indices = index.search(queries.contiguous().numpy(), k + extra)
    values, indices = torch.from_numpy(values), torch.from_numpy(indices).long()
    values[indices < 0] = float("-inf")  # IVF: the probed cells held fewer than k rows
    if self_offset is not None:
        # Drop each query's own entry; a row without it (ties) drops its last neighbour instead.
        own_rows = torch.arange(self_offset, self_offset + len(queries))
        own = indices == own_rows.unsqueeze(1)
        own[:, -1] |= ~own.any(dim=1)
        keep = ~own
        values = values[keep].reshape(len(queries), k)
        indices = indices[keep].reshape(len(queries), k)
    return values, indices, record


def recall_at_k(found: torch.Tensor, exact: torch.Tensor) -> float:
    """Mean fraction of each row of ``exact [M, k]`` (neighbour indices) that ``found [M, k]``
    holds: the recall@k of an approximate search."""
    exact_sorted = exact.sort(dim=1).values
    position = torch.searchsorted(exact_sorted, found).clamp_(max=exact.shape[1] - 1)
    hits = exact_sorted.gather(1, position) == found
    return float(hits.float().sum(dim=1).div_(exact.shape[1]).mean())


def _measure_recall(
    queries: torch.Tensor,
    references: torch.Tensor,
    indices: torch.Tensor,
    own: torch.Tensor | None,
    seed: int,
) -> dict[str, Any]:
    """Recall@k of ``indices`` against the exact torch search on a seeded query subsample."""
    count = min(RECALL_QUERIES, len(queries))
    rows = torch.from_numpy(np.sort(np.random.default_rng(seed).permutation(len(queries))[:count]))
    k = indices.shape[1]
    _, exact = _torch_search(queries[rows], references, k, None if own is None else own[rows], 0)
    return {"recall_at_k": recall_at_k(indices[rows], exact), "recall_queries": count}


def search(
    queries: torch.Tensor,
    references: torch.Tensor,
    k: int,
    *,
    self_offset: int | None = None,
    backend: Backend = "auto",
    chunk_size: int = 0,
    ivf_min_rows: int | None = None,
    nprobe: int = DEFAULT_NPROBE,
    seed: int = 0,
    description: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """The ``k`` largest inner products of each query with the references, best first, and a
    record of the search.

    Args:
        queries: ``[M, D]`` float32 (L2-normalise both sides for cosine similarity).
        references: ``[N, D]`` float32 on the same device.
        k: neighbours per query, ``1 <= k <= N`` (``N - 1`` with ``self_offset``).
        self_offset: the queries are rows ``self_offset ..`` of ``references`` (a leave-one-out
            search, e.g. a chunk of a test split against the whole split); a query then never
            finds its own row.
        backend: ``auto`` (faiss when installed and on CPU, else torch), ``torch`` or ``faiss``.
        chunk_size: queries per similarity block of the torch search; 0 sizes blocks to 256 MiB.
        ivf_min_rows: faiss searches an IVF index (approximate) when ``N >= ivf_min_rows``;
            None keeps every search exact.
        nprobe: IVF cells searched per query (more: slower, higher recall).
        seed: seed of the IVF k-means and of the recall subsample.
        description: when given, a progress line (``labelless.progress``) over the blocks.

    Returns:
        ``(values [M, k], indices [M, k], record)``, sorted by decreasing similarity. ``record``:
        ``backend`` (``torch`` / ``faiss``), ``index`` (``exact`` for torch, ``flat`` or
        ``ivf``), and for IVF ``nlist``, ``nprobe``, ``recall_at_k`` (against the exact search
        on ``recall_queries`` seeded queries) and ``recall_seed``. An IVF query whose probed
        cells hold fewer than k rows gets ``-inf`` similarities and index -1 for the rest.
    """
    if self_offset is not None and not 0 <= self_offset <= len(references) - len(queries):
        raise ConfigError(
            f"self_offset={self_offset} puts {len(queries)} queries outside the "
            f"{len(references)} references: the queries must be rows of the references"
        )
    check_search_options(nprobe, ivf_min_rows)
    own = None
    if self_offset is not None:
        own = torch.arange(self_offset, self_offset + len(queries), device=queries.device)
    with task(description) if description else contextlib.nullcontext(SILENT) as bar:
        if resolve_backend(backend, queries.device) == "torch":
            values, indices = _torch_search(queries, references, k, own, chunk_size, bar)
            return values, indices, {"backend": "torch", "index": "exact"}
        queries, references = queries.cpu(), references.cpu()
        ivf = ivf_min_rows is not None and len(references) >= ivf_min_rows
        values, indices, record = _faiss_search(
            load_faiss(), queries, references, k, self_offset, ivf, nprobe, seed
        )
        record = {"backend": "faiss", **record}
        if ivf:
            own = None if own is None else own.cpu()
            record.update(_measure_recall(queries, references, indices, own, seed))
            record["recall_seed"] = seed
        return values, indices, record


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
    """Exact top-k: ``(values [M, k], indices [M, k])`` of :func:`search` without IVF."""
    values, indices, _ = search(
        queries,
        references,
        k,
        self_offset=self_offset,
        backend=backend,
        chunk_size=chunk_size,
        description=description,
    )
    return values, indices
