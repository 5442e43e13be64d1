"""Batched random views of graphs: edge dropping, feature masking, node dropping, subgraphs.

Every op takes a ``Graph`` (one graph, or a block-diagonal batch with ``batch`` graph ids, see
``data/graph.py``) and returns a new ``Graph``; the input is never changed. Every random number
comes from ``generator`` through ``nn.sampling`` (the training step's generator, so a resumed run
draws the same views), for the whole batch at once with tensor ops: no loop over nodes or graphs
(``subgraph`` loops over hops only).

- ``drop_edges``: each undirected edge removed with probability ``p`` (both stored directions
  together), as in GRACE (Zhu et al. 2020) and GraphCL's edge perturbation (You et al. 2020).
- ``mask_features``: feature columns zeroed with probability ``p`` (GRACE), one mask per graph,
  per batch or per node.
- ``drop_nodes``: nodes removed with probability ``p`` with their edges (GraphCL); no graph is
  emptied.
- ``subgraph``: an induced, BFS-grown subgraph keeping a fraction of each graph's nodes (GraphCL's
  subgraph view).
- ``GraphView`` / ``GraphViews``: a view as data (its probabilities), and a tuple of them;
  ``GraphViews.grace()`` is GRACE's pair ``(pe1, pf1), (pe2, pf2)``.

Labels ``y`` follow the nodes when they are node labels (one per node) and are kept as they are
when they are graph labels (one per graph; with as many graphs as nodes they are read as graph
labels, which is the same thing since no graph is emptied).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor

from labelless.data.graph import Graph
from labelless.errors import ConfigError
from labelless.nn import sampling

FEATURE_MASK_SCOPES = ("graph", "batch", "node")


def _check_probability(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name} is a probability and must lie in [0, 1], got {value}")


def drop_edges(
    graph: Graph,
    p: float,
    generator: torch.Generator | None = None,
    *,
    undirected: bool = True,
) -> Graph:
    """Remove each edge with probability ``p``; never adds one.

    ``undirected=True`` draws once per node pair, so ``(u, v)`` and ``(v, u)`` are kept or dropped
    together (an undirected graph stays undirected; parallel copies of an edge share the draw).
    ``undirected=False`` draws once per stored edge. Returns a ``Graph`` with the kept edges in
    their original order and everything else shared with ``graph``.
    """
    _check_probability("edge drop probability", p)
    edges = graph.edge_index
    if graph.num_edges == 0 or p == 0.0:
        return replace(graph)
    if undirected:
        low, high = torch.minimum(edges[0], edges[1]), torch.maximum(edges[0], edges[1])
        _, pair = torch.unique(low * graph.num_nodes + high, return_inverse=True)
        draws = sampling.rand((int(pair.max()) + 1,), generator=generator, device=edges.device)
        keep = draws[pair] >= p
    else:
        keep = sampling.rand((graph.num_edges,), generator=generator, device=edges.device) >= p
    return replace(graph, edge_index=edges[:, keep])


def mask_features(
    graph: Graph,
    p: float,
    generator: torch.Generator | None = None,
    *,
    per: str = "graph",
) -> Graph:
    """Zero each feature column with probability ``p`` (GRACE's feature masking, Zhu et al. 2020).

    ``per="graph"``: each graph of the batch draws its own column mask, shared by its nodes (on one
    graph this is GRACE exactly); ``"batch"``: one mask for every node; ``"node"``: each node draws
    its own (feature dropout without rescaling). The expected masked fraction is ``p`` in each
    case; values left unmasked are unchanged.
    """
    _check_probability("feature mask probability", p)
    if per not in FEATURE_MASK_SCOPES:
        raise ConfigError(f"feature masking per must be one of {FEATURE_MASK_SCOPES}, got {per!r}")
    x = graph.x
    rows = {"graph": graph.num_graphs, "batch": 1, "node": graph.num_nodes}[per]
    keep = sampling.rand((rows, graph.num_features), generator=generator, device=x.device) >= p
    if per == "graph":
        keep = keep[graph.graph_index()]
    return replace(graph, x=x.masked_fill(~keep, 0.0))


def induced_subgraph(graph: Graph, keep: Tensor) -> Graph:
    """The subgraph on the nodes where ``keep [N]`` (bool) is true: features, graph ids and node
    labels of those nodes, the edges between them re-indexed; ``num_graphs`` unchanged."""
    new_index = torch.cumsum(keep.long(), 0) - 1
    edges = graph.edge_index
    both = keep[edges[0]] & keep[edges[1]]
    y = graph.y
    if y is not None and y.shape[0] == graph.num_nodes and y.shape[0] != graph.num_graphs:
        y = y[keep]
    return replace(
        graph,
        x=graph.x[keep],
        edge_index=new_index[edges[:, both]],
        batch=None if graph.batch is None else graph.batch[keep],
        y=y,
    )


def _graph_sizes(graph: Graph) -> Tensor:
    return torch.bincount(graph.graph_index(), minlength=graph.num_graphs)


def drop_nodes(graph: Graph, p: float, generator: torch.Generator | None = None) -> Graph:
    """Remove each node with probability ``p``, with every edge that touches it (GraphCL's node
    dropping, You et al. 2020); the kept nodes are re-indexed in their original order and keep
    their graph ids. A graph that would lose every node keeps one of them, chosen at random."""
    _check_probability("node drop probability", p)
    if graph.num_nodes == 0:
        return replace(graph)
    groups = graph.graph_index()
    draws = sampling.rand((graph.num_nodes,), generator=generator, device=graph.x.device)
    keep = draws >= p
    kept = torch.bincount(groups[keep], minlength=graph.num_graphs)
    largest = torch.full((graph.num_graphs,), -1.0, device=draws.device)
    largest = largest.scatter_reduce(0, groups, draws, reduce="amax")
    keep |= (kept[groups] == 0) & (draws == largest[groups])
    return induced_subgraph(graph, keep)


def _rank_within(groups: Tensor, scores: Tensor, num_groups: int) -> Tensor:
    """Rank ``[N]`` of each item among the items of its group, by ascending score."""
    order = torch.argsort(scores)
    order = order[torch.argsort(groups[order], stable=True)]
    counts = torch.bincount(groups, minlength=num_groups)
    starts = torch.cumsum(counts, 0) - counts
    ranks = torch.empty_like(order)
    ranks[order] = torch.arange(order.numel(), device=order.device) - starts[groups[order]]
    return ranks


def _take_per_graph(
    candidates: Tensor, groups: Tensor, wanted: Tensor, num_graphs: int, generator
) -> Tensor:
    """A random choice of ``wanted[g]`` candidate nodes of each graph g (all if fewer)."""
    scores = sampling.rand((groups.numel(),), generator=generator, device=groups.device)
    ranked_groups = torch.where(candidates, groups, num_graphs)  # non-candidates rank last
    ranks = _rank_within(ranked_groups, scores, num_graphs + 1)
    return candidates & (ranks < wanted[groups])


def subgraph(graph: Graph, keep_fraction: float, generator: torch.Generator | None = None) -> Graph:
    """An induced subgraph with ``max(1, round(keep_fraction * n))`` of each graph's n nodes,
    grown breadth-first from a random seed node per graph (GraphCL's subgraph view, You et al.
    2020, grown a hop at a time instead of a node at a time).

    Each hop adds, in random order, neighbours of the nodes taken so far until the graph's quota
    is met; a graph whose reachable nodes are exhausted (a disconnected graph) takes a new random
    seed instead. The loop runs over hops (at most the largest quota), never over nodes.
    """
    if not 0.0 < keep_fraction <= 1.0:
        raise ConfigError(f"subgraph keep fraction must lie in (0, 1], got {keep_fraction}")
    groups, num_graphs = graph.graph_index(), graph.num_graphs
    sizes = _graph_sizes(graph)
    quota = torch.where(
        sizes > 0, torch.round(keep_fraction * sizes).long().clamp(min=1), torch.zeros_like(sizes)
    )
    everyone = torch.ones(graph.num_nodes, dtype=torch.bool, device=groups.device)
    taken = _take_per_graph(everyone, groups, torch.ones_like(quota), num_graphs, generator)
    src, dst = graph.edge_index
    while True:
        missing = quota - torch.bincount(groups[taken], minlength=num_graphs)
        if not bool((missing > 0).any()):
            break
        frontier = torch.zeros_like(taken)
        frontier[dst[taken[src]]] = True  # neighbours along either direction of an edge
        frontier[src[taken[dst]]] = True
        frontier &= ~taken
        reachable = torch.bincount(groups[frontier], minlength=num_graphs) > 0
        candidates = torch.where(reachable[groups], frontier, ~taken)
        wanted = torch.where(reachable, missing, missing.clamp(max=1))
        taken |= _take_per_graph(candidates, groups, wanted, num_graphs, generator)
    return induced_subgraph(graph, taken)


@dataclass(frozen=True)
class GraphView:
    """One random view, as data: ``subgraph_keep`` (1 = whole graph), then ``node_drop``, then
    ``edge_drop``, then ``feature_mask`` (masked ``feature_mask_per`` graph, batch or node); an
    op whose probability is 0 draws nothing."""

    edge_drop: float = 0.0
    feature_mask: float = 0.0
    node_drop: float = 0.0
    subgraph_keep: float = 1.0
    feature_mask_per: str = "graph"

    def __call__(self, graph: Graph, generator: torch.Generator | None = None) -> Graph:
        if self.subgraph_keep < 1.0:
            graph = subgraph(graph, self.subgraph_keep, generator)
        if self.node_drop > 0.0:
            graph = drop_nodes(graph, self.node_drop, generator)
        if self.edge_drop > 0.0:
            graph = drop_edges(graph, self.edge_drop, generator)
        if self.feature_mask > 0.0:
            graph = mask_features(graph, self.feature_mask, generator, per=self.feature_mask_per)
        return graph


@dataclass(frozen=True)
class GraphViews:
    """Several views of the same batch, each with its own probabilities, drawn in order from one
    generator: ``GraphViews((GraphView(...), GraphView(...)))(graph, generator) -> [Graph, ...]``.
    """

    views: tuple[GraphView, ...]

    def __call__(self, graph: Graph, generator: torch.Generator | None = None) -> list[Graph]:
        return [view(graph, generator) for view in self.views]

    @classmethod
    def grace(
        cls, pe1: float = 0.2, pf1: float = 0.3, pe2: float = 0.4, pf2: float = 0.4
    ) -> GraphViews:
        """GRACE's two views (Zhu et al. 2020): edge dropping ``pe`` and feature masking ``pf``
        per view; the defaults are the paper's Cora setting."""
        return cls(
            (GraphView(edge_drop=pe1, feature_mask=pf1), GraphView(edge_drop=pe2, feature_mask=pf2))
        )


# View recipes by name: (GraphView options per view). "none" hands the method the batch itself
# (masking methods such as GraphMAE and DGI draw their own corruption from the step's generator).
GRAPH_RECIPES: dict[str, tuple[dict[str, float | str], ...]] = {
    "none": (),
    # GRACE (Zhu et al. 2020), Cora setting: edge dropping and feature masking per view.
    "grace": (
        {"edge_drop": 0.2, "feature_mask": 0.3},
        {"edge_drop": 0.4, "feature_mask": 0.4},
    ),
    # BGRL (Thakoor et al. 2022) and CCA-SSG (Zhang et al. 2021): two views of the same kind.
    "bgrl": (
        {"edge_drop": 0.2, "feature_mask": 0.3},
        {"edge_drop": 0.4, "feature_mask": 0.2},
    ),
    # GraphCL (You et al. 2020) for whole graphs: node dropping and subgraphs (its best pair on
    # the TU sets), masked features per node.
    "graphcl": (
        {"node_drop": 0.2},
        {"subgraph_keep": 0.8},
    ),
}


def graph_views(recipe: str, **overrides: object) -> GraphViews | IdentityViews:
    """The view recipe ``recipe`` (``GRAPH_RECIPES``). ``overrides`` set one option in every view
    (``edge_drop=0.3``) or per view with a suffix (``edge_drop_1=0.2, edge_drop_2=0.4``)."""
    if recipe not in GRAPH_RECIPES:
        raise ConfigError(
            f"unknown graph view recipe {recipe!r}; choose one of: {', '.join(GRAPH_RECIPES)}"
        )
    specs = [dict(spec) for spec in GRAPH_RECIPES[recipe]]
    if not specs:
        if overrides:
            raise ConfigError(
                f"graph view recipe {recipe!r} takes no options, got {sorted(overrides)}"
            )
        return IdentityViews()
    fields = set(GraphView.__dataclass_fields__)
    for key, value in overrides.items():
        name, _, which = key.rpartition("_")
        if which.isdigit() and name in fields and 1 <= int(which) <= len(specs):
            specs[int(which) - 1][name] = value
        elif key in fields:
            for spec in specs:
                spec[key] = value
        else:
            raise ConfigError(
                f"graph view option {key!r} is unknown; options: {', '.join(sorted(fields))} "
                f"(or NAME_1 .. NAME_{len(specs)} for one view)"
            )
    views = tuple(GraphView(**spec) for spec in specs)  # type: ignore[arg-type]
    for view in views:
        for name in ("edge_drop", "feature_mask", "node_drop", "subgraph_keep"):
            _check_probability(name, float(getattr(view, name)))
    return GraphViews(views)


@dataclass(frozen=True)
class IdentityViews:
    """The ``none`` recipe: ``[graph]``, nothing drawn."""

    def __call__(self, graph: Graph, generator: torch.Generator | None = None) -> list[Graph]:
        return [graph]
