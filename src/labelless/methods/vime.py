"""VIME (self-supervised part): Yoon, Zhang, Jordan, van der Schaar. "VIME: Extending the Success
of Self- and Semi-supervised Learning to Tabular Domain", NeurIPS 2020."""

from __future__ import annotations

import torch
from torch import nn

from labelless.errors import ConfigError
from labelless.methods.base import Method, register_method
from labelless.nn.losses_tabular import feature_reconstruction_loss, mask_estimation_loss


def table_layout(backbone: nn.Module, method: str) -> tuple[int, list[int]]:
    """``(num_numeric, cardinalities)`` of a table encoder, from its metadata."""
    kwargs = getattr(getattr(backbone, "meta", None), "kwargs", {}) or {}
    if "num_numeric" not in kwargs or "cardinalities" not in kwargs:
        raise ConfigError(
            f"{method} needs a table encoder that records num_numeric and cardinalities "
            "(backbone 'mlp' or 'ft_transformer' from labelless.backbones)"
        )
    return int(kwargs["num_numeric"]), [int(c) for c in kwargs["cardinalities"]]


@register_method("vime")
class VIME(Method):
    """Mask estimation and feature reconstruction from a corrupted row.

    Views (recipe ``vime``): ``[x, corrupted, mask]``: each feature of ``corrupted`` was
    resampled from its marginal where ``mask`` is 1 (probability 0.3). From the encoder's output
    for the corrupted row, a linear mask estimator predicts ``mask`` (binary cross-entropy) and a
    linear feature estimator reconstructs ``x``: the numeric columns by squared error, the
    categorical codes by cross-entropy over each column's codes. Loss: mask loss + ``alpha`` x
    reconstruction loss (``alpha`` 2.0, the paper's default). ``embedding``: the encoder's
    output for ``x``.
    """

    default_views = "vime"
    modality = "tabular"
    summary = "tables: estimate the corruption mask and reconstruct the row (Yoon et al. 2020)"

    def __init__(self, backbone: nn.Module, *, alpha: float = 2.0) -> None:
        super().__init__(backbone)
        self.num_numeric, self.cardinalities = table_layout(backbone, "vime")
        num_features = self.num_numeric + len(self.cardinalities)
        self.alpha = float(alpha)
        self.mask_head = nn.Linear(self.embed_dim, num_features)
        self.numeric_head = nn.Linear(self.embed_dim, self.num_numeric)
        self.max_codes = max(self.cardinalities, default=0)
        self.category_head = nn.Linear(self.embed_dim, len(self.cardinalities) * self.max_codes)
        codes = torch.arange(self.max_codes)[None, :]
        valid = codes < torch.tensor(self.cardinalities or [0], dtype=torch.long)[:, None]
        self.register_buffer("valid_codes", valid[: len(self.cardinalities)], persistent=False)

    def forward(self, views, batch, *, generator=None):
        x, corrupted, mask = views[:3]
        hidden = self.backbone(corrupted)
        numeric = x[:, : self.num_numeric]
        category_logits = category_target = None
        if self.cardinalities:
            logits = self.category_head(hidden).view(len(x), len(self.cardinalities), -1)
            category_logits = logits.masked_fill(~self.valid_codes, float("-inf"))
            codes = x[:, self.num_numeric :].round().long()
            category_target = torch.where(codes.clamp(min=0) < self.valid_codes.sum(1), codes, 0)
            category_target = category_target.clamp(min=0)
        mask_loss = mask_estimation_loss(self.mask_head(hidden), mask)
        reconstruction = feature_reconstruction_loss(
            self.numeric_head(hidden), numeric, category_logits, category_target
        )
        with torch.no_grad():
            embedding = self.backbone(x)
        return {
            "loss": mask_loss + self.alpha * reconstruction,
            "embedding": embedding,
            "mask_loss": mask_loss.detach(),
            "reconstruction_loss": reconstruction.detach(),
        }
