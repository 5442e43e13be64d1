"""The node classifier of ``labelless.semi.graph_train``: a ``GNNEncoder`` (from the backbone
registry) whose last layer gives class logits, with the hidden layer the auxiliary tasks read
and input dropout on the non-zero features only. Kipf & Welling's GCN (ICLR 2017) by default:
two GCN layers, ReLU, dropout before each layer, no activation on the logits."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from labelless.backbones import create_backbone
from labelless.data.graph import Graph
from labelless.errors import ConfigError
from labelless.nn import sampling
from labelless.semi.graph_tasks import dropout

SPARSE_INPUT_DENSITY = 0.5  # inputs with fewer non-zeros get dropout on the non-zeros only


class NodeClassifier(nn.Module):
    """A ``GNNEncoder`` whose last layer outputs class logits. ``forward_hidden`` also returns
    layer ``hidden_layer``'s output (what the auxiliary heads read). The input dropout touches
    only the non-zero entries of sparse features (the same distribution as dense dropout, which
    on Cora's bag-of-words costs 40 ms a step on one thread); every mask comes from
    ``generator``."""

    def __init__(
        self, encoder: nn.Module, hidden_layer: int = 0, input_dropout: float | None = None
    ) -> None:
        super().__init__()
        self.encoder, self.hidden_layer = encoder, hidden_layer
        self.input_dropout = encoder.dropout if input_dropout is None else float(input_dropout)
        self.hidden_dim = int(encoder.layer_dims[hidden_layer])
        self._support: tuple[Tensor, Tensor] | None = None

    def _input_dropout(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        p = self.input_dropout
        if not self.training or p <= 0.0:
            return x
        if self._support is None or self._support[0] is not x:
            nonzero = torch.nonzero(x, as_tuple=True)
            dense = nonzero[0].numel() > SPARSE_INPUT_DENSITY * x.numel()
            self._support = (x, None if dense else nonzero)
        nonzero = self._support[1]
        if nonzero is None:
            return dropout(x, p, True, generator)
        keep = sampling.rand((nonzero[0].numel(),), generator=generator, device=x.device) >= p
        rows, columns = nonzero[0][keep], nonzero[1][keep]
        out = torch.zeros_like(x)
        out[rows, columns] = x[rows, columns] / (1.0 - p)
        return out

    def forward_hidden(
        self, graph: Graph, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """``(hidden [N, hidden_dim], logits [N, C])``; the layer loop of ``GNNEncoder``
        (dropout -> conv -> norm -> activation, plus the skip) with generator-drawn masks."""
        encoder = self.encoder
        adjacency = encoder.adjacency(graph)
        h, outputs = graph.x, []
        layers = zip(encoder.convs, encoder.norms, encoder.activations, encoder.skips, strict=True)
        for index, (conv, norm, act, skip) in enumerate(layers):
            if index == 0:
                inputs = self._input_dropout(h, generator)
            else:
                inputs = dropout(h, encoder.dropout, self.training, generator)
            out = act(norm(conv(inputs, adjacency)))
            h = out if skip is None else out + skip(h)
            outputs.append(h)
        return outputs[self.hidden_layer], outputs[-1]

    def forward(self, graph: Graph) -> Tensor:
        return self.forward_hidden(graph)[1]


def build_classifier(
    in_channels: int,
    num_classes: int,
    *,
    backbone: str = "gcn",
    hidden_dim: int = 64,
    num_layers: int = 2,
    dropout: float = 0.5,
    aux_layer: int = 0,
    input_dropout: float | None = None,
    **backbone_kwargs: Any,
) -> NodeClassifier:
    """``create_backbone(backbone)`` with ``num_layers`` layers, ReLU, the last one giving
    ``num_classes`` logits without activation, wrapped as a ``NodeClassifier``."""
    if num_layers < 2:
        raise ConfigError(f"the node classifier needs num_layers >= 2, got {num_layers}")
    options = {"activation": "relu", **backbone_kwargs}
    encoder = create_backbone(
        backbone,
        in_channels=in_channels,
        hidden_dim=hidden_dim,
        num_layers=num_layers,
        out_dim=num_classes,
        dropout=dropout,
        last_activation=False,
        **options,
    )
    return NodeClassifier(encoder, hidden_layer=aux_layer, input_dropout=input_dropout)
