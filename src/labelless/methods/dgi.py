"""DGI: Velickovic, Fedus, Hamilton, Lio, Bengio, Hjelm. "Deep Graph Infomax", ICLR 2019."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

import torch
from torch import nn

from labelless.methods.base import Method, register_method
from labelless.methods.graph_common import require_level
from labelless.nn import sampling
from labelless.nn.graph_losses import dgi


@register_method("dgi")
class DGI(Method):
    """Mutual information between node embeddings and a graph summary.

    The backbone encodes the graph (positives) and a corruption of it whose feature rows are
    shuffled across nodes with the structure kept (negatives; the permutation comes from the
    step's generator). The summary is ``sigmoid(mean of the clean node embeddings)``; a bilinear
    discriminator ``h^T W s`` scores each node of either graph against it, and the loss is binary
    cross-entropy with the clean nodes as positives (``nn.graph_losses.dgi``). The clean
    embeddings are computed every step, so ``embedding`` is always returned.
    """

    modality = "graph"
    default_views = "none"
    summary = "node embeddings vs a graph summary, shuffled-feature negatives (Velickovic 2019)"
    #: The paper's transductive encoder: one GCN layer of 512 with PReLU.
    graph_backbones: ClassVar[dict[str, tuple[str, dict[str, Any]]]] = {
        "node": ("gcn", {"hidden_dim": 512, "num_layers": 1, "activation": "prelu"}),
    }

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__(backbone)
        require_level("dgi", backbone, self.graph_backbones)
        self.discriminator = nn.Bilinear(self.embed_dim, self.embed_dim, 1)
        nn.init.xavier_uniform_(self.discriminator.weight)
        nn.init.zeros_(self.discriminator.bias)

    def forward(self, views, batch, *, generator=None):
        graph = views[0]
        order = sampling.randperm(graph.num_nodes, generator=generator, device=graph.x.device)
        nodes = self.backbone(graph)
        shuffled = self.backbone(replace(graph, x=graph.x[order]))
        summary = torch.sigmoid(nodes.mean(dim=0, keepdim=True)).expand_as(nodes)
        positive = self.discriminator(nodes, summary).squeeze(-1)
        negative = self.discriminator(shuffled, summary).squeeze(-1)
        return {"loss": dgi(positive, negative), "embedding": nodes.detach()}
