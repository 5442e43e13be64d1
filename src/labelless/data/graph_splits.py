"""Edge splits for link prediction (GAE, Kipf & Welling 2016; the split of PyG's
``RandomLinkSplit``): held-out undirected edges and sampled non-edges.

An undirected edge ``{u, v}`` is held out in both directions, so the training graph (on which an
encoder is trained and embeds) never contains a validation or test edge. Negatives are node pairs
``u < v`` that are not edges of the *full* graph (no held-out positive can be drawn as a
negative), never self-pairs, all distinct; validation and test negatives are disjoint. Drawn with
tensor ops from a seeded generator: uniform pairs, rejected when they are edges, repeated until
enough remain.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor

from labelless.data.graph import Graph
from labelless.errors import ConfigError, DataError


@dataclass(frozen=True)
class EdgeSplit:
    """``train_graph`` (the graph without the held-out edges, both directions removed) and the
    ``[2, M]`` node pairs (``u < v``) ``val_pos``, ``test_pos``, ``val_neg``, ``test_neg``.
    Unpacks as that 5-tuple; ``protocol`` records the fractions, counts and seed."""

    train_graph: Graph
    val_pos: Tensor
    test_pos: Tensor
    val_neg: Tensor
    test_neg: Tensor
    protocol: dict[str, Any] = field(default_factory=dict)

    def __iter__(self):
        return iter((self.train_graph, self.val_pos, self.test_pos, self.val_neg, self.test_neg))


def undirected_pairs(graph: Graph) -> Tensor:
    """The distinct undirected edges ``[2, E_u]`` with ``u < v`` (self loops left out); a
    DataError when some edge is stored in one direction only."""
    n = graph.num_nodes
    source, target = graph.edge_index
    forward = torch.unique(source * n + target)
    backward = torch.unique(target * n + source)
    if forward.shape != backward.shape or not torch.equal(forward, backward):
        raise DataError(
            "link prediction splits undirected edges, but some edges of this graph are stored "
            "in one direction only: store both directions (the built-in and file loaders do "
            "for undirected graphs)"
        )
    low, high = torch.minimum(source, target), torch.maximum(source, target)
    keys = torch.unique(low[low != high] * n + high[low != high])
    return torch.stack([keys // n, keys % n])


def sample_non_edges(
    num_nodes: int, edge_keys: Tensor, count: int, generator: torch.Generator
) -> Tensor:
    """``count`` distinct pairs ``[2, count]`` with ``u < v`` whose key ``u * N + v`` is not in
    ``edge_keys``, uniformly over such pairs (rejection sampling in rounds)."""
    total = num_nodes * (num_nodes - 1) // 2
    if count > total - len(edge_keys):
        raise DataError(
            f"the graph has only {total - len(edge_keys)} non-adjacent pairs, {count} "
            "negatives are needed: hold out fewer edges"
        )
    found = torch.empty(0, dtype=torch.long)
    while len(found) < count:
        draws = 2 * (count - len(found)) + 64
        a = torch.randint(0, num_nodes, (draws,), generator=generator)
        b = torch.randint(0, num_nodes, (draws,), generator=generator)
        keep = a != b
        keys = torch.minimum(a, b)[keep] * num_nodes + torch.maximum(a, b)[keep]
        keys = keys[~torch.isin(keys, edge_keys) & ~torch.isin(keys, found)]
        # Distinct keys in order of first draw (unique sorts them; keep the draw order).
        unique, inverse = torch.unique(keys, return_inverse=True)
        first = torch.full((len(unique),), len(keys), dtype=torch.long)
        first = first.scatter_reduce(0, inverse, torch.arange(len(keys)), "amin")
        found = torch.cat([found, keys[first.sort().values]])
    found = found[:count]
    return torch.stack([found // num_nodes, found % num_nodes])


def split_edges(
    graph: Graph, val_fraction: float = 0.05, test_fraction: float = 0.1, seed: int = 0
) -> EdgeSplit:
    """Hold out ``val_fraction`` and ``test_fraction`` of the undirected edges (rounded down,
    at least one each) and as many non-edges; see the module docstring. Self loops stay in the
    training graph; isolated nodes may appear there (as in GAE's split)."""
    if graph.batch is not None and graph.num_graphs > 1:
        raise ConfigError("split_edges takes one graph, not a batch of graphs")
    if val_fraction < 0 or test_fraction <= 0 or val_fraction + test_fraction >= 1:
        raise ConfigError(
            f"val_fraction ({val_fraction}) and test_fraction ({test_fraction}) must be >= 0 "
            "and > 0, and hold out less than all edges together"
        )
    pairs = undirected_pairs(graph)
    num_pairs, n = pairs.shape[1], graph.num_nodes
    num_val, num_test = int(val_fraction * num_pairs), max(1, int(test_fraction * num_pairs))
    num_val = max(1, num_val) if val_fraction > 0 else 0
    if num_val + num_test >= num_pairs:
        raise DataError(f"the graph has {num_pairs} undirected edges: too few to hold out")
    generator = torch.Generator().manual_seed(int(seed))
    order = torch.randperm(num_pairs, generator=generator)
    val_pos = pairs[:, order[:num_val]]
    test_pos = pairs[:, order[num_val : num_val + num_test]]
    held_out = torch.cat([val_pos, test_pos], dim=1)
    held_keys = torch.cat([held_out[0] * n + held_out[1], held_out[1] * n + held_out[0]])
    source, target = graph.edge_index
    keep = ~torch.isin(source * n + target, held_keys)
    train_graph = replace(graph, edge_index=graph.edge_index[:, keep])
    negatives = sample_non_edges(n, pairs[0] * n + pairs[1], num_val + num_test, generator)
    protocol = {
        "split": "undirected edges held out in both directions; negatives = uniform node pairs "
        "u < v that are not edges of the full graph, distinct, no self-pairs, val / test "
        "disjoint",
        "val_fraction": val_fraction,
        "test_fraction": test_fraction,
        "seed": int(seed),
        "undirected_edges": num_pairs,
        "train_edges": num_pairs - num_val - num_test,
        "val_edges": num_val,
        "test_edges": num_test,
    }
    return EdgeSplit(
        train_graph, val_pos, test_pos, negatives[:, :num_val], negatives[:, num_val:], protocol
    )
