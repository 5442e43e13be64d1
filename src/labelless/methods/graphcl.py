"""GraphCL: You, Chen, Sui, Chen, Wang, Shen. "Graph Contrastive Learning with Augmentations",
NeurIPS 2020."""

from __future__ import annotations

from typing import Any, ClassVar

from torch import nn

from labelless.errors import ConfigError
from labelless.methods.base import Method, check_positive_options, register_method
from labelless.methods.graph_common import TU_GIN, projector, require_level
from labelless.nn.losses import info_nce


@register_method("graphcl")
class GraphCL(Method):
    """Whole-graph contrast: two random views of every graph in the batch (node dropping and a
    BFS subgraph, the ``graphcl`` view recipe, drawn from the step's generator), a GIN encoder
    whose readout sums every layer's node embeddings and concatenates them, a two-layer ReLU
    projection head ``[D, D, D]`` (the paper's), and NT-Xent (``nn.losses.info_nce``, the
    paper's eq. 3) over the batch: a graph's other view is its positive, the other graphs of
    the batch in both views its negatives, at temperature 0.2.

    The embedding is the readout of view 0 (a corrupted view of each graph, as SimCLR returns
    its first view's features), so it comes free with the step.
    """

    modality = "graph"
    default_views = "graphcl"
    summary = "graph-level contrast: NT-Xent between two augmented views of each graph (You 2020)"
    #: The papers' TU encoder (GIN, batch norm, ReLU, every layer's sum readout concatenated),
    #: 128 wide instead of 32: MUTAG 0.886 vs 0.852 (3 seeds, 20 epochs of Adam 0.01, batch
    #: 128; bench/graph_level_tuning.py).
    graph_backbones: ClassVar[dict[str, tuple[str, dict[str, Any]]]] = {
        "graph": ("gin", dict(TU_GIN)),
    }

    def __init__(
        self,
        backbone: nn.Module,
        *,
        proj_dim: int | None = None,
        temperature: float = 0.2,
    ) -> None:
        super().__init__(backbone)
        require_level("graphcl", backbone, self.graph_backbones)
        check_positive_options("method.kwargs", type(self), temperature=temperature)
        width = self.embed_dim if proj_dim is None else int(proj_dim)
        self.projector = projector([self.embed_dim, width, width], "relu")
        self.temperature = temperature

    def forward(self, views, batch, *, generator=None):
        if len(views) < 2:
            raise ConfigError(
                "graphcl contrasts two views of each graph; use a two-view recipe (the default, "
                "graphcl)"
            )
        features = [self.backbone(view) for view in views[:2]]
        z0, z1 = (self.projector(f) for f in features)
        loss = info_nce(z0, z1, self.temperature)
        return {"loss": loss, "embedding": features[0].detach()}
