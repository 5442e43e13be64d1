"""BGRL: Thakoor, Tallec, Azar, Azabou, Dyer, Munos, Velickovic, Valko. "Large-Scale
Representation Learning on Graphs via Bootstrapping", ICLR 2022."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from labelless.methods.base import Method, register_method
from labelless.methods.graph_common import clean_embedding, projector, require_level
from labelless.nn.ema import EMA
from labelless.nn.graph_losses import bgrl


@register_method("bgrl")
class BGRL(Method):
    """Bootstrapped node representations: an online encoder and predictor regress an EMA
    target encoder's embeddings of the other view, with no negatives.

    Two views (recipe ``bgrl``: edge dropping and feature masking) go through the online
    backbone, a predictor (``Linear -> BatchNorm -> PReLU -> Linear``) maps its node embeddings,
    and the loss is ``bgrl(p1, t2) + bgrl(p2, t1)`` with ``t`` the target encoder's embeddings
    (no gradient). After each optimiser step the target moves towards the online backbone with a
    momentum rising from ``momentum[0]`` to ``momentum[1]`` on a cosine (``nn.ema.EMA``). There is
    no projector: the target is the encoder itself (paper, sec. 3). The uncorrupted embedding
    costs an extra forward, made only when ``wants_embedding``.
    """

    modality = "graph"
    default_views = "bgrl"
    summary = "online GNN + predictor regress an EMA target's node embeddings (Thakoor et al. 2022)"
    #: The paper's transductive encoder (2 GCN layers, batch norm, PReLU), at 512 then 256.
    graph_backbones: ClassVar[dict[str, tuple[str, dict[str, Any]]]] = {
        "node": (
            "gcn",
            {
                "hidden_dim": 512,
                "out_dim": 256,
                "num_layers": 2,
                "norm": "batch",
                "activation": "prelu",
            },
        ),
    }

    def __init__(
        self,
        backbone: nn.Module,
        *,
        pred_hidden_dim: int = 512,
        momentum: Sequence[float] = (0.99, 1.0),
    ) -> None:
        super().__init__(backbone)
        require_level("bgrl", backbone, self.graph_backbones)
        self.predictor = projector([self.embed_dim, pred_hidden_dim, self.embed_dim], "prelu", "bn")
        self.target = EMA(backbone, momentum, schedule="cosine")
        self.current_momentum = self.target.current_momentum

    def forward(self, views, batch, *, generator=None):
        v1, v2 = views[:2]
        p1, p2 = self.predictor(self.backbone(v1)), self.predictor(self.backbone(v2))
        with torch.no_grad():
            t1, t2 = self.target(v1), self.target(v2)
        out = {"loss": bgrl(p1, t2) + bgrl(p2, t1)}
        if self.wants_embedding:
            out["embedding"] = clean_embedding(self.backbone, views, batch)
        return out

    def on_step_end(self, progress: float) -> None:
        self.current_momentum = self.target.step(self.backbone, progress)
