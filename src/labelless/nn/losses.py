"""Self-supervised losses as plain functions over embeddings.

Every loss here gathers across processes (with gradient) when it needs the whole batch, so a run on
P processes with batch B computes the same value as one process with batch P * B.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from labelless.nn.distributed import gather, rank


def info_nce(z0: torch.Tensor, z1: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """NT-Xent, the normalised temperature-scaled cross entropy of SimCLR (Chen et al. 2020, eq. 1).

    ``z0, z1: [B, D]`` embeddings of two views of the same B samples (normalised here). With the
    2N views of the (gathered) batch, for the positive pair (i, j):

        l(i, j) = -log( exp(sim(z_i, z_j) / t) / sum_{k != i} exp(sim(z_i, z_k) / t) )

    averaged over all 2N anchors. Negatives come from every process; the gradient flows through
    the gathered copies.
    """
    if z0.shape != z1.shape:
        raise ValueError(
            f"views must have the same shape, got {tuple(z0.shape)} and {tuple(z1.shape)}"
        )
    local = z0.shape[0]
    z0 = F.normalize(z0, dim=1)
    z1 = F.normalize(z1, dim=1)
    all0, all1 = gather(z0), gather(z1)
    total = all0.shape[0]
    candidates = torch.cat([all0, all1], dim=0)  # [2N, D]
    anchors = torch.cat([z0, z1], dim=0)  # [2B, D], this process's anchors
    logits = anchors @ candidates.T / temperature  # [2B, 2N]
    offset = rank() * local
    own = torch.arange(local, device=z0.device) + offset
    self_index = torch.cat([own, own + total])
    positive_index = torch.cat([own + total, own])
    rows = torch.arange(2 * local, device=z0.device)
    logits[rows, self_index] = float("-inf")
    return F.cross_entropy(logits, positive_index)


def negative_cosine(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Negative cosine similarity ``-mean_i cos(p_i, stopgrad(z_i))`` (SimSiam, Chen & He 2021).

    ``p: [B, D]`` predictions, ``z: [B, D]`` targets (detached here). BYOL's normalised MSE
    (Grill et al. 2020, eq. 2) equals ``2 + 2 * negative_cosine(p, z)``.
    """
    return -F.cosine_similarity(p, z.detach(), dim=-1).mean()


def byol(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """BYOL's regression loss ``mean_i || p_i/|p_i| - z_i/|z_i| ||^2`` with stop-gradient on z
    (Grill et al. 2020, eq. 2); ``p, z: [B, D]``."""
    return 2.0 + 2.0 * negative_cosine(p, z)
