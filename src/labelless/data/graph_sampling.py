"""Mini-batches of subgraphs for node-level training on graphs too large for a full-batch step.

GraphSAINT's random-walk sampler (Zeng et al. 2020, "GraphSAINT: Graph Sampling Based Inductive
Learning Method"): each step starts short random walks from random root nodes and trains on the
subgraph induced by the nodes they visit, which keeps the neighbourhoods a GNN layer reads far
better than a random node subset does. The walks run for all roots at once on the CSR adjacency
(one gather per hop, no per-node Python), from a generator seeded by ``(seed, epoch, step)``, so a
resumed run draws the same subgraphs. Every method trains on them unchanged: a step's ``inputs``
is a node-level ``Graph`` like the whole one. (GraphSAINT's loss normalisation for the sampling
bias is not applied: self-supervised losses here average over the subgraph's nodes.)

``memory_check`` estimates what a full-batch step needs and, when it exceeds the free memory,
names the option that turns sampling on (``data.options.subgraph_nodes``).
"""

from __future__ import annotations

import math
import os
from typing import Any

import torch

from labelless.data.graph import Graph
from labelless.errors import DataError

WALK_LENGTH = 4  # hops of each random walk (GraphSAINT's Cora-to-Reddit setting is 2-4)


def random_walk_nodes(
    rowptr: torch.Tensor,
    columns: torch.Tensor,
    roots: torch.Tensor,
    length: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """Sorted distinct nodes visited by walks of ``length`` hops from ``roots`` on the CSR
    adjacency ``(rowptr, columns)``; a walk at a node without neighbours stays there."""
    visited, current = [roots], roots
    for _ in range(length):
        degree = rowptr[current + 1] - rowptr[current]
        pick = (torch.rand(len(current), generator=generator) * degree).long()
        step = columns[(rowptr[current] + pick).clamp(max=max(len(columns) - 1, 0))]
        current = torch.where(degree > 0, step, current) if len(columns) else current
        visited.append(current)
    return torch.unique(torch.cat(visited))


def induced(graph: Graph, nodes: torch.Tensor, labels: torch.Tensor) -> Graph:
    """The subgraph on ``nodes`` (sorted ids), renumbered ``0..len-1``, with their ``labels``."""
    keep = torch.zeros(graph.num_nodes, dtype=torch.bool)
    keep[nodes] = True
    new_id = torch.cumsum(keep, 0) - 1
    inside = keep[graph.edge_index[0]] & keep[graph.edge_index[1]]
    edges = new_id[graph.edge_index[:, inside]]
    return Graph(graph.x[nodes], edges, None, 1, labels[nodes])


class SubgraphBatches:
    """Node-level training on random-walk subgraphs of about ``subgraph_nodes`` nodes; an epoch
    is ``ceil(N / subgraph_nodes)`` steps. ``index`` holds the original ids of a step's nodes."""

    def __init__(self, graph: Graph, labels: torch.Tensor, subgraph_nodes: int, seed: int = 0):
        if subgraph_nodes < 2 * (WALK_LENGTH + 1):
            raise DataError(
                f"data.options.subgraph_nodes={subgraph_nodes} is too small: give at least "
                f"{2 * (WALK_LENGTH + 1)} nodes per step (e.g. a few thousand)"
            )
        self.graph, self.labels, self.seed = graph, labels, int(seed)
        order = torch.argsort(graph.edge_index[0], stable=True)
        self.columns = graph.edge_index[1, order]
        counts = torch.bincount(graph.edge_index[0], minlength=graph.num_nodes)
        self.rowptr = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(counts, 0)])
        self.roots = max(1, int(subgraph_nodes) // (WALK_LENGTH + 1))
        self.num_batches = max(1, math.ceil(graph.num_nodes / int(subgraph_nodes)))

    def batch(self, epoch: int, index: int) -> dict[str, Any]:
        seed = (self.seed * 1_000_003 + int(epoch)) * 100_003 + int(index)
        generator = torch.Generator().manual_seed(seed)
        roots = torch.randint(self.graph.num_nodes, (self.roots,), generator=generator)
        nodes = random_walk_nodes(self.rowptr, self.columns, roots, WALK_LENGTH, generator)
        return {
            "inputs": induced(self.graph, nodes, self.labels),
            "index": nodes,
            "label": self.labels[nodes],
        }


def free_memory_bytes() -> int | None:
    """Memory available to this process now (Linux ``/proc/meminfo`` MemAvailable), else None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    pages = getattr(os, "sysconf", None)
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")) if pages else None
    except (ValueError, OSError):
        return None


def full_batch_bytes(graph: Graph, layer_dims: list[int], views: int = 2) -> int:
    """A rough size of one full-batch training step: per view, the node features and every
    layer's activations kept for the backward (x3: output, pre-activation, gradient), plus the
    edges and their sparse operators."""
    per_view = graph.num_nodes * (graph.num_features + 3 * sum(layer_dims)) * 4
    edges = graph.num_edges * 8 * 6
    return int(views * (per_view + edges))


def memory_check(graph: Graph, layer_dims: list[int], free: int | None = None) -> None:
    """A DataError when a full-batch step of ``graph`` would not fit in the free memory (with a
    2x margin), naming the option for mini-batches."""
    free = free_memory_bytes() if free is None else free
    need = full_batch_bytes(graph, layer_dims)
    if free is None or 2 * need <= free:
        return
    suggestion = max(1024, int(graph.num_nodes * free / (4 * need)))
    suggestion = 2 ** int(math.log2(suggestion))
    raise DataError(
        f"full-batch training on this graph ({graph.num_nodes:,} nodes, {graph.num_edges:,} "
        f"stored edges) needs about {need / 2**30:.1f} GiB per step but {free / 2**30:.1f} GiB "
        f"are free: train on random-walk subgraphs with --set data.options.subgraph_nodes="
        f"{suggestion} (nodes per step), or use a smaller encoder "
        "(--set backbone.kwargs.hidden_dim=...)"
    )
