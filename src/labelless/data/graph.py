"""The graph container every graph module shares: one graph, or a batch of graphs as one
block-diagonal graph with a graph index per node (the form GNN layers, views and pooling read).

Edges are ``edge_index`` ``[2, E]`` (source row, target row), long, in node order of ``x``; an
undirected graph stores both directions. Nothing here changes a graph silently: checks raise
``DataError`` naming the problem and the fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from labelless.errors import ConfigError, DataError


@dataclass(frozen=True)
class Graph:
    """``x`` ``[N, F]`` float32 node features; ``edge_index`` ``[2, E]`` long; ``batch`` ``[N]``
    long graph id of each node (``None``: a single graph); ``num_graphs``; ``y`` node labels
    ``[N]`` (-1 = unlabelled) or graph labels ``[num_graphs]``, or ``None``."""

    x: Tensor
    edge_index: Tensor
    batch: Tensor | None = None
    num_graphs: int = 1
    y: Tensor | None = None

    @property
    def num_nodes(self) -> int:
        return int(self.x.shape[0])

    @property
    def num_edges(self) -> int:
        return int(self.edge_index.shape[1])

    @property
    def num_features(self) -> int:
        return int(self.x.shape[1])

    def graph_index(self) -> Tensor:
        """``batch``, or zeros for a single graph."""
        if self.batch is not None:
            return self.batch
        return torch.zeros(self.num_nodes, dtype=torch.long, device=self.x.device)

    def to(self, device: torch.device | str) -> Graph:
        return replace(
            self,
            x=self.x.to(device),
            edge_index=self.edge_index.to(device),
            batch=None if self.batch is None else self.batch.to(device),
            y=None if self.y is None else self.y.to(device),
        )

    def check(self) -> Graph:
        """Shapes, dtypes and edge ends in range; returns ``self``."""
        if self.x.ndim != 2:
            raise DataError(
                f"graph node features must be [nodes, features], got {tuple(self.x.shape)}"
            )
        if self.edge_index.ndim != 2 or self.edge_index.shape[0] != 2:
            raise DataError(
                f"edge_index must be [2, edges] (source row, target row), got "
                f"{tuple(self.edge_index.shape)}"
            )
        if self.edge_index.dtype != torch.long:
            raise DataError(f"edge_index must be int64, got {self.edge_index.dtype}")
        if self.num_edges and (
            int(self.edge_index.min()) < 0 or int(self.edge_index.max()) >= self.num_nodes
        ):
            raise DataError(
                f"an edge points past the {self.num_nodes} nodes (ends "
                f"{int(self.edge_index.min())}..{int(self.edge_index.max())}); node ids must be "
                f"0..{self.num_nodes - 1}, in the row order of the features"
            )
        if self.batch is not None and self.batch.shape != (self.num_nodes,):
            raise DataError(
                f"batch must give one graph id per node ({self.num_nodes}), got "
                f"{tuple(self.batch.shape)}"
            )
        return self


def collate_graphs(graphs: Sequence[Graph]) -> Graph:
    """Graphs -> one block-diagonal ``Graph``: nodes concatenated, each graph's edges shifted by
    the nodes before it, ``batch`` the graph id of each node, ``y`` the graphs' labels
    concatenated (graph labels: one per graph) when every graph has one."""
    if not graphs:
        raise DataError("cannot batch zero graphs")
    sizes = torch.tensor([g.num_nodes for g in graphs])
    offsets = torch.cumsum(sizes, 0) - sizes
    edge_index = torch.cat(
        [g.edge_index + int(offset) for g, offset in zip(graphs, offsets, strict=True)], dim=1
    )
    batch = torch.repeat_interleave(torch.arange(len(graphs)), sizes)
    labels = [g.y for g in graphs]
    y = (
        None
        if any(label is None for label in labels)
        else torch.cat([lab.reshape(-1) for lab in labels])
    )
    return Graph(
        x=torch.cat([g.x for g in graphs]),
        edge_index=edge_index,
        batch=batch,
        num_graphs=len(graphs),
        y=y,
    )


def normalise_rows(graph: Graph, row_normalise: bool | None) -> tuple[Graph, str]:
    """Kipf & Welling's feature preprocessing: each node's features divided by their sum (rows
    of zeros stay zero). ``None``: when every feature is >= 0 (bag of words, counts, one-hot),
    else the features as given; ``True`` insists (a ``ConfigError`` on negative features);
    ``False``: as given. Returns the graph and what was done."""
    negative = bool((graph.x < 0).any())
    if row_normalise is False or (row_normalise is None and negative):
        return graph, "as given" + (" (negative values: not row-normalised)" if negative else "")
    if negative:
        raise ConfigError(
            "row_normalise divides each node's features by their sum, which needs non-negative "
            "features (bag of words, counts); set it to false"
        )
    x = graph.x / graph.x.sum(dim=1, keepdim=True).clamp_min(1e-12)
    return replace(graph, x=x), "row-normalised (each node's features sum to 1)"
