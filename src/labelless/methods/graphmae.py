"""GraphMAE: Hou, Liu, Cen, Dong, Yang, Wang, Tang. "GraphMAE: Self-Supervised Masked Graph
Autoencoders", KDD 2022."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from labelless.backbones.gnn import Adjacency, GATConv, GCNConv, GINConv
from labelless.data.graph import Graph
from labelless.errors import ConfigError
from labelless.methods.base import Method, register_method
from labelless.methods.graph_common import (
    input_dim,
    input_graph,
    node_embeddings,
    node_encoder,
    require_level,
)
from labelless.nn import sampling
from labelless.nn.graph_losses import sce

#: The scaled cosine error's exponent when none is given: the paper's Cora / PubMed value at node
#: level, its MUTAG / NCI1 value at graph level.
DEFAULT_ALPHA = {"node": 3.0, "graph": 2.0}


def draw_node_mask(
    num_nodes: int,
    mask_rate: float,
    replace_rate: float,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """GraphMAE's corruption draw (sec. 3.2): ``int(mask_rate * N)`` masked nodes (at least one),
    of which ``int(replace_rate * masked)`` get the features of random nodes and the rest the
    [MASK] token. Returns ``(masked, token, noise, sources)`` index tensors: ``token`` and ``noise``
    split ``masked``; ``noise`` node i takes the features of node ``sources[i]``."""
    count = max(1, int(mask_rate * num_nodes)) if num_nodes else 0
    masked = sampling.randperm(num_nodes, generator=generator, device=device)[:count]
    num_noise = int(replace_rate * count)
    if num_noise == 0:
        return masked, masked, masked[:0], masked[:0]
    order = sampling.randperm(count, generator=generator, device=device)
    token, noise = masked[order[: count - num_noise]], masked[order[count - num_noise :]]
    sources = sampling.randperm(num_nodes, generator=generator, device=device)[:num_noise]
    return masked, token, noise, sources


class _GINDecoder(nn.Module):
    """One GIN layer whose MLP maps ``D -> D -> F`` (GraphMAE's graph-level decoder)."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        mlp = nn.Sequential(nn.Linear(in_dim, in_dim), nn.PReLU(), nn.Linear(in_dim, out_dim))
        self.conv = GINConv(mlp)

    def forward(self, x: Tensor, structure: Adjacency) -> Tensor:
        return self.conv(x, structure)


def _decoder(kind: str, in_dim: int, out_dim: int) -> nn.Module:
    """A one-layer GNN of the encoder's ``kind`` mapping codes back to features (no activation)."""
    if kind == "gat":
        return GATConv(in_dim, out_dim, heads=1)
    if kind == "gcn":
        return GCNConv(in_dim, out_dim)
    if kind == "gin":
        return _GINDecoder(in_dim, out_dim)
    raise ConfigError(f"graphmae has no decoder for a {kind!r} encoder; use gat, gcn or gin")


@register_method("graphmae")
class GraphMAE(Method):
    """Masked feature reconstruction with re-masking and the scaled cosine error.

    Each step replaces the features of ``mask_rate`` of the nodes: a learnt [MASK] token for most
    of them, the features of random other nodes for ``replace_rate`` of them (from the step's
    generator). The backbone encodes the corrupted graph; a bias-free linear map takes its codes
    to the decoder's input, where the masked nodes' codes are zeroed again (re-masking), and a
    one-layer GNN of the encoder's kind (GAT in the paper at node level, GIN at graph level)
    reconstructs the features. The loss is the scaled cosine error
    ``mean_{masked} (1 - cos(x_i, z_i))^alpha`` over the masked nodes only.

    Node level: the backbone is a node encoder and the embedding its output for the uncorrupted
    graph. Graph level: the backbone is a graph encoder; a batch of graphs is masked as one
    block-diagonal graph, features are decoded from ``forward_nodes`` and the embedding is the
    pooled readout. ``alpha`` defaults to 3 at node level and 2 at graph level (the paper's
    Cora and MUTAG values; it uses 1 on CiteSeer and PROTEINS). The uncorrupted embedding costs a
    second forward, made only when ``wants_embedding``.
    """

    modality = "graph"
    default_views = "none"
    summary = "masked node-feature reconstruction, re-masked GNN decoder, SCE (Hou et al. 2022)"
    #: The paper's settings made lighter for a CPU: Cora's GAT (2 layers, 4 heads) at 256 wide
    #: instead of 512; at graph level PROTEINS' GIN (3 layers, batch norm) at 128 instead of 512.
    graph_backbones: ClassVar[dict[str, tuple[str, dict[str, Any]]]] = {
        "node": (
            "gat",
            {"hidden_dim": 256, "num_layers": 2, "heads": 4, "dropout": 0.2, "activation": "prelu"},
        ),
        "graph": (
            "gin",
            {
                "hidden_dim": 128,
                "num_layers": 3,
                "norm": "batch",
                "activation": "prelu",
                "dropout": 0.2,
                "readout": "sum",
            },
        ),
    }

    def __init__(
        self,
        backbone: nn.Module,
        *,
        mask_rate: float = 0.5,
        replace_rate: float = 0.05,
        alpha: float | None = None,
        decoder_dropout: float | None = None,
    ) -> None:
        super().__init__(backbone)
        level = require_level("graphmae", backbone, self.graph_backbones)
        if not 0.0 < mask_rate < 1.0 or not 0.0 <= replace_rate < 1.0:
            raise ConfigError(
                f"graphmae: mask_rate must lie in (0, 1) and replace_rate in [0, 1), got "
                f"{mask_rate} and {replace_rate}"
            )
        alpha = DEFAULT_ALPHA[level] if alpha is None else float(alpha)
        if alpha < 1.0:
            raise ConfigError(f"graphmae: alpha must be >= 1 (the SCE exponent), got {alpha}")
        self.mask_rate, self.replace_rate, self.alpha = mask_rate, replace_rate, alpha
        encoder = node_encoder(backbone)
        features = input_dim(backbone)
        self.decoder_dropout = (
            float(getattr(encoder, "dropout", 0.0)) if decoder_dropout is None else decoder_dropout
        )
        self.mask_token = nn.Parameter(torch.zeros(1, features))
        self.encoder_to_decoder = nn.Linear(self.embed_dim, self.embed_dim, bias=False)
        self.decoder = _decoder(getattr(encoder, "kind", "gcn"), self.embed_dim, features)

    def corrupt(
        self, graph: Graph, generator: torch.Generator | None = None
    ) -> tuple[Graph, Tensor]:
        """``graph`` with masked features (token or random other nodes'), and the masked nodes."""
        x = graph.x
        masked, token, noise, sources = draw_node_mask(
            graph.num_nodes, self.mask_rate, self.replace_rate, generator, x.device
        )
        corrupted = x.clone()
        corrupted[noise] = x[sources]
        corrupted[token] = self.mask_token.to(x.dtype).expand(len(token), -1)
        return replace(graph, x=corrupted), masked

    def reconstruct(self, graph: Graph, codes: Tensor, masked: Tensor) -> Tensor:
        """Decoded features ``[N, F]`` from node codes ``[N, D]``, the masked nodes' re-masked."""
        hidden = self.encoder_to_decoder(codes).index_fill(0, masked, 0.0)
        hidden = F.dropout(hidden, self.decoder_dropout, self.training)
        adjacency = node_encoder(self.backbone).adjacency(graph)
        return self.decoder(hidden, adjacency)

    def forward(self, views, batch, *, generator=None):
        graph = views[0]
        corrupted, masked = self.corrupt(graph, generator)
        codes = node_embeddings(self.backbone, corrupted)
        reconstruction = self.reconstruct(corrupted, codes, masked)
        loss = sce(reconstruction[masked], graph.x[masked], alpha=self.alpha)
        out = {"loss": loss}
        if self.wants_embedding:
            with torch.no_grad():
                out["embedding"] = self.backbone(input_graph(views, batch)).detach()
        return out
