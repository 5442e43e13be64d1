"""SCARF: Bahri, Jiang, Tay, Metzler. "SCARF: Self-Supervised Contrastive Learning using Random
Feature Corruption", ICLR 2022."""

from __future__ import annotations

from torch import nn

from labelless.methods.base import Method, check_positive_options, register_method
from labelless.nn.heads import mlp
from labelless.nn.losses_tabular import scarf_info_nce


@register_method("scarf")
class SCARF(Method):
    """Contrastive learning on table rows: the encoder and a pretraining head map a row and a
    copy with ~60% of its features resampled from their empirical marginals (the ``scarf`` view
    recipe) close together, and away from the other rows' corrupted copies (InfoNCE).

    Views: ``[anchor, corrupted]``. The head is a 2-layer ReLU MLP (``proj_hidden_dim``,
    ``proj_dim``); ``temperature`` 1.0 as in the paper. ``symmetric`` adds the loss with the
    roles swapped. ``embedding`` is the encoder's output for the anchor.
    """

    default_views = "scarf"
    modality = "tabular"
    summary = "contrastive on tables: a row vs its randomly feature-corrupted copy (Bahri 2022)"

    def __init__(
        self,
        backbone: nn.Module,
        *,
        proj_hidden_dim: int = 256,
        proj_dim: int = 256,
        temperature: float = 1.0,
        symmetric: bool = False,
    ) -> None:
        super().__init__(backbone)
        check_positive_options("method.kwargs", type(self), temperature=temperature)
        self.projector = mlp([self.embed_dim, proj_hidden_dim, proj_dim], norm="none")
        self.temperature = temperature
        self.symmetric = symmetric

    def forward(self, views, batch, *, generator=None):
        anchor, corrupted = (self.backbone(view) for view in views[:2])
        z0, z1 = self.projector(anchor), self.projector(corrupted)
        loss = scarf_info_nce(z0, z1, self.temperature)
        if self.symmetric:
            loss = 0.5 * (loss + scarf_info_nce(z1, z0, self.temperature))
        return {"loss": loss, "embedding": anchor.detach()}
