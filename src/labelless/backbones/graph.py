"""Graph encoders in the backbone registry: ``gcn``, ``gat``, ``gin`` (``labelless.backbones.gnn``).

Each maps a ``Graph`` to node embeddings ``[N, embed_dim]``, or with ``readout`` to graph
embeddings ``[num_graphs, embed_dim]`` (``GraphEncoder``). ``in_channels`` is the number of node
features. ``gcn`` is the graph modality's default; methods name their own per level (node or
graph data) in ``graph_backbones``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from labelless.backbones.gnn import KINDS, GNNEncoder, GraphEncoder
from labelless.backbones.meta import EncoderMeta
from labelless.backbones.registry import register_backbone
from labelless.errors import ConfigError

_DEFAULTS: dict[str, Any] = {
    "hidden_dim": 512,
    "num_layers": 2,
    "out_dim": None,
    "activation": "prelu",
    "dropout": 0.0,
    "norm": "none",
    "residual": False,
    "heads": 8,
    "train_eps": False,
    "last_activation": True,
    "readout": None,
    "concat_layers": False,
}
_ONLY_FOR = {"heads": "gat", "train_eps": "gin"}


def _defaults(kind: str) -> dict[str, Any]:
    return {key: value for key, value in _DEFAULTS.items() if _ONLY_FOR.get(key, kind) == kind}


def _builder(kind: str) -> Callable[..., nn.Module]:
    def build(in_channels: int, **kwargs: Any) -> nn.Module:
        defaults = _defaults(kind)
        unknown = sorted(set(kwargs) - set(defaults))
        if unknown:
            raise ConfigError(f"{kind} takes only {', '.join(defaults)}, got {unknown}")
        options = {**defaults, **kwargs}
        readout, concat_layers = options.pop("readout"), options.pop("concat_layers")
        if readout is None and concat_layers:
            raise ConfigError(f"{kind}: concat_layers needs a readout (sum, mean or max)")
        model: nn.Module = GNNEncoder(in_channels, kind=kind, **options)
        if readout is not None:
            model = GraphEncoder(model, readout=readout, concat_layers=concat_layers)
        model.meta = EncoderMeta(
            architecture=kind,
            kwargs={**options, "readout": readout, "concat_layers": concat_layers},
            embed_dim=int(model.embed_dim),
            in_channels=in_channels,
            input_size=0,  # any number of nodes
            mean=[],
            std=[],
            modality="graph",
        )
        return model

    listed = ", ".join(f"{key} ({value})" for key, value in _defaults(kind).items())
    build.__doc__ = (
        f"A {kind.upper()} encoder over ``in_channels`` node features; kwargs (defaults): "
        f"{listed}. ``readout`` sum / mean / max gives graph embeddings (``concat_layers``: "
        "every layer's readout concatenated, as InfoGraph and GraphCL do with GIN)."
    )
    return build


for _kind in KINDS:
    register_backbone(_kind, "graph", default=_kind == "gcn")(_builder(_kind))
