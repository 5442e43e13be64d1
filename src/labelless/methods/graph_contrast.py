"""Two-view node methods on a shared encoder:

- GRACE: Zhu, Xu, Yu, Liu, Wu, Wang. "Deep Graph Contrastive Representation Learning", ICML
  workshop on Graph Representation Learning and Beyond, 2020.
- CCA-SSG: Zhang, Wu, Yang, Wipf, Yu. "From Canonical Correlation Analysis to Self-supervised
  Graph Neural Networks", NeurIPS 2021.
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import nn

from labelless.methods.base import Method, check_positive_options, register_method
from labelless.methods.graph_common import clean_embedding, projector, require_level
from labelless.nn.graph_losses import cca_ssg, grace


@register_method("grace")
class GRACE(Method):
    """Node-level contrast between two corrupted views of the graph.

    Each view drops edges and masks feature columns (recipe ``grace``, the paper's Cora
    probabilities); both go through the backbone and a projection head (``Linear -> ELU ->
    Linear``), and each node's two projections are positives against every other node of both
    views at ``temperature`` (``nn.graph_losses.grace``). The uncorrupted embedding costs a third
    forward, made only when ``wants_embedding``.
    """

    modality = "graph"
    default_views = "grace"
    summary = "node contrast across two edge-dropped, feature-masked views (Zhu et al. 2020)"
    #: The paper's Cora encoder: 2 GCN layers, 2 * 128 then 128 wide, ReLU.
    graph_backbones: ClassVar[dict[str, tuple[str, dict[str, Any]]]] = {
        "node": ("gcn", {"hidden_dim": 256, "out_dim": 128, "num_layers": 2, "activation": "relu"}),
    }

    def __init__(
        self,
        backbone: nn.Module,
        *,
        proj_hidden_dim: int = 128,
        proj_dim: int | None = None,
        temperature: float = 0.4,
    ) -> None:
        super().__init__(backbone)
        require_level("grace", backbone, self.graph_backbones)
        check_positive_options("method.kwargs", type(self), temperature=temperature)
        self.temperature = temperature
        out_dim = self.embed_dim if proj_dim is None else proj_dim
        self.projector = projector([self.embed_dim, proj_hidden_dim, out_dim], "elu")

    def forward(self, views, batch, *, generator=None):
        z1, z2 = (self.projector(self.backbone(view)) for view in views[:2])
        out = {"loss": grace(z1, z2, self.temperature)}
        if self.wants_embedding:
            out["embedding"] = clean_embedding(self.backbone, views, batch)
        return out


@register_method("ccassg")
class CCASSG(Method):
    """Canonical-correlation objective on two views: no negatives, no projector, no predictor.

    Both views (edge dropping and feature masking, the same probabilities for the two in the
    paper) go through the backbone; each view's output is standardised per dimension over the
    nodes and the loss is ``-tr(Z1^T Z2) / N + lambd * (||Z1^T Z1 / N - I||^2 + ||Z2^T Z2 / N -
    I||^2)`` (``nn.graph_losses.cca_ssg``). The paper's encoder is a GCN whose last layer has no
    activation. The uncorrupted embedding costs a third forward, made only when
    ``wants_embedding``.
    """

    modality = "graph"
    default_views = "bgrl"
    summary = "invariance + feature decorrelation of two standardised views (Zhang et al. 2021)"
    #: The paper's Cora encoder: 2 GCN layers of 512, ReLU between them, none after the last.
    graph_backbones: ClassVar[dict[str, tuple[str, dict[str, Any]]]] = {
        "node": (
            "gcn",
            {
                "hidden_dim": 512,
                "out_dim": 512,
                "num_layers": 2,
                "activation": "relu",
                "last_activation": False,
            },
        ),
    }

    def __init__(self, backbone: nn.Module, *, lambd: float = 1e-3) -> None:
        super().__init__(backbone)
        require_level("ccassg", backbone, self.graph_backbones)
        check_positive_options("method.kwargs", type(self), lambd=lambd)
        self.lambd = lambd

    def forward(self, views, batch, *, generator=None):
        h1, h2 = (self.backbone(view) for view in views[:2])
        out = {"loss": cca_ssg(h1, h2, self.lambd)}
        if self.wants_embedding:
            out["embedding"] = clean_embedding(self.backbone, views, batch)
        return out
