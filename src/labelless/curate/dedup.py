"""Near-duplicate removal: cosine similarity above a threshold links two samples, linked samples
form groups (connected components), and each group keeps one representative.

Small pools are searched exactly: one ``[chunk, N]`` block of the similarity matrix at a time
(chunked matmul on L2-normalised embeddings), every pair above the threshold kept. Pools of at
least ``exact_max_rows`` samples, when faiss is installed, go through
``labelless.evaluate.neighbours.search`` with an IVF index: each sample's ``neighbours`` most
similar others are compared with the threshold (a group member outside them is still linked
through a chain), and the search's recall@k against the exact search is recorded. As in
SemDeDup (Abbas et al. 2023, "SemDeDup: data-efficient learning at web-scale through semantic
deduplication"), the duplicates are decided in embedding space, so augmented copies (crops,
colour changes) are found as well as exact ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from labelless.curate.kmeans import check_embeddings
from labelless.errors import ConfigError

BLOCK_BYTES = 256 * 2**20  # float32 similarity block of the exact search
EXACT_MAX_ROWS = 200_000  # from this many rows (and faiss installed) the search is IVF
NEIGHBOURS = 16  # neighbours per sample compared with the threshold in the IVF search


@dataclass
class DuplicateGroups:
    """Groups of near-duplicates (each of at least 2 samples).

    ``group [N]``: group id of each sample, -1 for a sample without a duplicate;
    ``representatives``: the kept sample of each group (its smallest index), ``groups[g]`` the
    members of group g (sorted, representative first); ``keep [N]`` (bool): the samples left
    after removal (every sample without a duplicate and one per group); ``search``: how pairs
    were found.
    """

    group: np.ndarray
    groups: list[np.ndarray]
    keep: np.ndarray
    search: dict[str, Any] = field(default_factory=dict)

    @property
    def representatives(self) -> np.ndarray:
        return np.asarray([members[0] for members in self.groups], dtype=np.int64)

    @property
    def removed(self) -> int:
        return int((~self.keep).sum())


def check_threshold(threshold: float) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise ConfigError(f"the duplicate threshold must be a number, got {threshold!r}")
    if not 0.0 < float(threshold) <= 1.0:
        raise ConfigError(
            f"the duplicate threshold is a cosine similarity in (0, 1], got {threshold}; "
            "e.g. 0.95 (higher: only closer copies count)"
        )
    return float(threshold)


def _exact_pairs(z: torch.Tensor, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Every pair ``i < j`` with ``z_i . z_j >= threshold``, one similarity block at a time."""
    rows = max(1, min(len(z), BLOCK_BYTES // (4 * len(z))))
    block = torch.empty(rows, len(z))
    firsts, seconds = [], []
    for start in range(0, len(z), rows):
        stop = min(start + rows, len(z))
        similarity = block[: stop - start]
        torch.mm(z[start:stop], z.T, out=similarity)
        i, j = torch.nonzero(similarity >= threshold, as_tuple=True)
        i = i + start
        upper = j > i
        firsts.append(i[upper].numpy())
        seconds.append(j[upper].numpy())
    return np.concatenate(firsts), np.concatenate(seconds)


def _neighbour_pairs(
    z: torch.Tensor, threshold: float, neighbours: int, seed: int
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Pairs among each row's ``neighbours`` nearest others (faiss IVF, recall recorded)."""
    from labelless.evaluate.neighbours import search

    k = min(neighbours, len(z) - 1)
    values, indices, record = search(
        z, z, k, self_offset=0, backend="faiss", ivf_min_rows=EXACT_MAX_ROWS, seed=seed,
        description=f"near-duplicate search ({len(z):,} samples)",
    )  # fmt: skip
    hit = (values >= threshold) & (indices >= 0)
    rows = torch.arange(len(z)).unsqueeze(1).expand_as(indices)
    return rows[hit].numpy(), indices[hit].numpy(), {**record, "neighbours": k}


def near_duplicates(
    z,
    threshold: float = 0.95,
    *,
    exact_max_rows: int = EXACT_MAX_ROWS,
    neighbours: int = NEIGHBOURS,
    seed: int = 0,
) -> DuplicateGroups:
    """Groups of samples whose embeddings ``z [N, D]`` have cosine similarity >= ``threshold``
    (linked pairs, then connected components). Exact below ``exact_max_rows`` rows or without
    faiss; IVF over each sample's ``neighbours`` nearest above (see the module's doc).
    Deterministic: the representative of a group is its smallest index."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from labelless.evaluate.neighbours import load_faiss

    threshold = check_threshold(threshold)
    z = F.normalize(check_embeddings(z), dim=1)
    count = len(z)
    if count >= exact_max_rows and load_faiss() is not None and count > 1:
        first, second, search = _neighbour_pairs(z, threshold, neighbours, seed)
    else:
        first, second = _exact_pairs(z, threshold)
        search = {"backend": "torch", "index": "exact"}
    graph = coo_matrix((np.ones(len(first), np.int8), (first, second)), shape=(count, count))
    _, component = connected_components(graph, directed=False)
    sizes = np.bincount(component)
    rows = np.flatnonzero(sizes[component] > 1)  # samples with at least one duplicate
    # Groups numbered by their smallest member (deterministic); members ascending.
    smallest = np.full(len(sizes), count, dtype=np.int64)
    np.minimum.at(smallest, component[rows], rows)
    grouped = np.flatnonzero(smallest < count)  # components of 2+ samples
    number = np.full(len(sizes), -1, dtype=np.int64)
    number[grouped[np.argsort(smallest[grouped])]] = np.arange(len(grouped))
    group = np.full(count, -1, dtype=np.int64)
    group[rows] = number[component[rows]]
    order = rows[np.lexsort((rows, group[rows]))]
    groups = np.split(order, np.flatnonzero(np.diff(group[order])) + 1)
    groups = [members for members in groups if len(members)]
    keep = group < 0
    keep[np.asarray([members[0] for members in groups], dtype=np.int64)] = True
    search.update({"threshold": threshold, "pairs": len(first)})
    return DuplicateGroups(group, groups, keep, search)
