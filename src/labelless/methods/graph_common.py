"""What the graph methods share: the level a backbone works at, its node encoder, its input width,
the graph a step's clean embedding comes from, and MLP projectors.

A graph backbone is either a node encoder (``GNNEncoder``: ``Graph -> [N, D]``, node-level data)
or a graph encoder (``GraphEncoder``: ``Graph -> [num_graphs, D]`` pooled, ``forward_nodes`` for
the ``[N, D]`` node embeddings it pools, ``nodes`` its node encoder; graph-level data). A method
names the levels it supports in ``graph_backbones`` and checks its backbone with
``require_level``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from labelless.data.graph import Graph
from labelless.errors import ConfigError
from labelless.nn.heads import mlp

LEVELS = ("node", "graph")
#: The TU-set encoder GraphCL and InfoGraph share: GIN with batch norm and ReLU, every layer's
#: sum readout concatenated (their papers use 4-5 layers of 32; 3 of 128 measured better here,
#: see each method's note).
TU_GIN: dict[str, Any] = {
    "hidden_dim": 128,
    "num_layers": 3,
    "norm": "batch",
    "activation": "relu",
    "readout": "sum",
    "concat_layers": True,
}
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "elu": nn.ELU,
    "prelu": nn.PReLU,
    "relu": nn.ReLU,
}


def is_graph_level(backbone: nn.Module) -> bool:
    """True for a graph encoder (it has a ``readout``: one embedding per graph), False for a node
    encoder (one embedding per node)."""
    return hasattr(backbone, "readout")


def level_of(backbone: nn.Module) -> str:
    """``"graph"`` or ``"node"`` (``is_graph_level``)."""
    return "graph" if is_graph_level(backbone) else "node"


def require_level(method: str, backbone: nn.Module, levels: Iterable[str]) -> str:
    """The backbone's level, or a ConfigError when ``method`` does not support it."""
    level, supported = level_of(backbone), tuple(levels)
    if level not in supported:
        fix = (
            "give the backbone a readout (e.g. --set backbone.kwargs.readout=sum) for whole graphs"
            if level == "node"
            else "use a node encoder (no readout) on node-classification data"
        )
        raise ConfigError(
            f"{method} trains on {' and '.join(supported)}-level graph data only, but the "
            f"backbone is a {level}-level encoder; {fix}"
        )
    return level


def node_encoder(backbone: nn.Module) -> nn.Module:
    """The ``GNNEncoder`` that computes node embeddings: the backbone itself at node level, the
    graph encoder's ``nodes`` (or ``gnn``) at graph level."""
    if not is_graph_level(backbone):
        return backbone
    for name in ("nodes", "gnn"):
        inner = getattr(backbone, name, None)
        if isinstance(inner, nn.Module):
            return inner
    raise ConfigError(f"graph encoder {type(backbone).__name__} exposes no node encoder (.nodes)")


def node_embeddings(backbone: nn.Module, graph: Graph) -> Tensor:
    """``[N, backbone.embed_dim]`` node embeddings at either level (``forward_nodes`` for a graph
    encoder: what its readout pools)."""
    if is_graph_level(backbone):
        return backbone.forward_nodes(graph)
    return backbone(graph)


def input_dim(backbone: nn.Module) -> int:
    """The number of node features the backbone reads (``meta.in_channels``, or the width of the
    first linear map of its first layer)."""
    meta = getattr(backbone, "meta", None)
    if meta is not None and getattr(meta, "in_channels", 0):
        return int(meta.in_channels)
    for module in node_encoder(backbone).modules():
        if isinstance(module, nn.Linear):
            return int(module.in_features)
    raise ConfigError(f"cannot tell the input width of {type(backbone).__name__}")


def input_graph(views: Sequence[Graph], batch: Any) -> Graph:
    """The step's uncorrupted graph: ``batch["inputs"]`` when the batch carries one, else the
    first view."""
    inputs = batch.get("inputs") if isinstance(batch, dict) else None
    return inputs if isinstance(inputs, Graph) else views[0]


def clean_embedding(backbone: nn.Module, views: Sequence[Graph], batch: Any) -> Tensor:
    """The backbone's output for the uncorrupted graph without gradient (``[N, D]`` nodes or
    ``[B, D]`` graphs): what monitors read from a method whose views are all corrupted."""
    with torch.no_grad():
        return backbone(input_graph(views, batch)).detach()


def projector(dims: Sequence[int], activation: str = "elu", norm: str = "none") -> nn.Sequential:
    """An MLP head ``dims[0] -> ... -> dims[-1]`` with ``activation`` (elu, prelu, relu) and
    ``norm`` ("bn", "ln", "none") between layers, biases throughout when there is no norm:
    GRACE's projection head is ``projector([D, H, D], "elu")``, BGRL's predictor
    ``projector([D, H, D], "prelu", "bn")``."""
    if activation not in ACTIVATIONS:
        raise ConfigError(
            f"unknown projector activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}"
        )
    return mlp(dims, norm=norm, activation=ACTIVATIONS[activation])
