"""Losses of the table methods (SCARF, VIME, T-JEPA) as plain functions over tensors."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from labelless.nn.distributed import gather, rank


def scarf_info_nce(
    anchors: torch.Tensor, positives: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """SCARF's InfoNCE (Bahri, Jiang, Tay, Metzler, ICLR 2022, sec. 2): each anchor's positive
    is the corrupted view of the same row, its negatives the corrupted views of the other rows.

    ``anchors, positives: [B, D]`` projections (L2-normalised here). With ``s`` the cosine
    similarity and N rows in the (gathered) batch:

        l_i = -log( exp(s(a_i, p_i) / t) / sum_{k=1..N} exp(s(a_i, p_k) / t) )

    averaged over this process's anchors; positives are gathered across processes with gradient.
    """
    if anchors.shape != positives.shape:
        raise ValueError(f"views differ in shape: {tuple(anchors.shape)}, {tuple(positives.shape)}")
    anchors = F.normalize(anchors, dim=1)
    candidates = gather(F.normalize(positives, dim=1))
    logits = anchors @ candidates.T / temperature  # [B, N]
    own = torch.arange(len(anchors), device=anchors.device) + rank() * len(anchors)
    return F.cross_entropy(logits, own)


def mask_estimation_loss(mask_logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """VIME's mask estimation loss (Yoon, Zhang, Jordan, van der Schaar, NeurIPS 2020, eq. 4):
    binary cross-entropy between the predicted probability ``sigmoid(mask_logits) [B, F]`` that
    each feature was corrupted and the mask ``[B, F]`` (1 = corrupted), averaged over entries."""
    return F.binary_cross_entropy_with_logits(mask_logits, mask.to(mask_logits.dtype))


def feature_reconstruction_loss(
    numeric_prediction: torch.Tensor,
    numeric_target: torch.Tensor,
    category_logits: torch.Tensor | None = None,
    category_target: torch.Tensor | None = None,
) -> torch.Tensor:
    """VIME's feature reconstruction loss (eq. 4): squared error for each numeric column
    (``[B, Fn]`` predictions and targets) and cross-entropy for each categorical column
    (``category_logits [B, Fc, K]``, invalid codes set to -inf, ``category_target [B, Fc]``
    int codes), summed over columns, divided by the number of columns and averaged over rows."""
    per_row = ((numeric_prediction - numeric_target) ** 2).sum(dim=1)
    columns = numeric_target.shape[1]
    if category_logits is not None and category_logits.shape[1] > 0:
        ce = F.cross_entropy(category_logits.transpose(1, 2), category_target, reduction="none")
        per_row = per_row + ce.sum(dim=1)
        columns += category_logits.shape[1]
    return per_row.mean() / max(columns, 1)


def latent_prediction_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """T-JEPA's loss (Thimonier, De Melo Costa, Popineau, Rimmel, Doan, ICLR 2025, eq. 2):
    the squared L2 distance between predicted and target-encoder token representations
    ``[N, K, D]``, averaged over tokens and divided by ``D`` (a mean squared error)."""
    if prediction.shape != target.shape:
        raise ValueError(f"shapes differ: {tuple(prediction.shape)}, {tuple(target.shape)}")
    return ((prediction - target) ** 2).mean()
