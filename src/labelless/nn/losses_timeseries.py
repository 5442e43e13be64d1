"""Time-series self-supervised losses as plain functions over per-timestamp representations.

``z: [B, T, D]`` is a batch of B series, T timestamps, D features (what ``forward_sequence`` of a
time-series backbone returns). The TS2Vec losses use raw dot products (no normalisation, no
temperature), as in the paper; TS-TCC's contextual loss is the NT-Xent of ``nn.losses.info_nce``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _check(z1: torch.Tensor, z2: torch.Tensor) -> None:
    if z1.shape != z2.shape or z1.ndim != 3:
        raise ValueError(
            f"expected two [B, T, D] tensors of the same shape, got {tuple(z1.shape)} and "
            f"{tuple(z2.shape)}"
        )


def paired_contrast(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean cross entropy of each of the 2N anchors of ``G`` independent groups picking its pair.

    ``a, b: [G, N, D]``: in group g, ``a[g, i]`` and ``b[g, i]`` are a positive pair and the other
    ``2N - 2`` vectors of the group are negatives; logits are dot products, the anchor itself is
    excluded:

        l(g, i) = -log( exp(a_i . b_i) / sum_{k != i} exp(u_i . u_k) ),  u = [a; b]

    averaged over the 2N anchors and the G groups. Returns 0 when N == 1 (no negatives).
    """
    groups, count = a.shape[0], a.shape[1]
    if count < 2:
        return a.new_zeros(())
    u = torch.cat([a, b], dim=1)  # [G, 2N, D]
    logits = u @ u.transpose(1, 2)  # [G, 2N, 2N]
    eye = torch.eye(2 * count, dtype=torch.bool, device=a.device)
    logits = logits.masked_fill(eye, float("-inf"))
    index = torch.arange(count, device=a.device)
    positive = torch.cat([index + count, index]).expand(groups, -1)  # [G, 2N]
    log_prob = F.log_softmax(logits, dim=-1)
    return -log_prob.gather(-1, positive.unsqueeze(-1)).mean()


def instance_contrastive_loss(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """TS2Vec instance-wise contrast (Yue et al. 2022, eq. 2): at every timestamp t, the same
    series in the other view is the positive and the other 2B - 2 series of both views at t are
    negatives. ``z1, z2: [B, T, D]`` aligned views; 0 when B == 1."""
    _check(z1, z2)
    return paired_contrast(z1.transpose(0, 1), z2.transpose(0, 1))


def temporal_contrastive_loss(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """TS2Vec temporal contrast (Yue et al. 2022, eq. 1): for each series, the same timestamp in
    the other view is the positive and the other 2T - 2 timestamps of both views are negatives.
    ``z1, z2: [B, T, D]`` aligned views; 0 when T == 1."""
    _check(z1, z2)
    return paired_contrast(z1, z2)


def hierarchical_contrastive_loss(
    z1: torch.Tensor, z2: torch.Tensor, alpha: float = 0.5, temporal_unit: int = 0
) -> torch.Tensor:
    """TS2Vec's hierarchical contrastive loss (Yue et al., AAAI 2022, Algorithm 1).

    ``z1, z2: [B, T, D]`` representations of the overlapping timestamps of two views. At level
    d = 0, 1, ... the loss adds ``alpha * instance + (1 - alpha) * temporal`` (the temporal term
    only from level ``temporal_unit`` on), then max-pools both along time with kernel 2 and
    stride 2 (a trailing odd timestamp is dropped), until one timestamp is left, where only the
    instance term is added. The sum is divided by the number of levels.
    """
    _check(z1, z2)
    total = z1.new_zeros(())
    level = 0
    while z1.shape[1] > 1:
        if alpha != 0:
            total = total + alpha * instance_contrastive_loss(z1, z2)
        if level >= temporal_unit and alpha != 1:
            total = total + (1 - alpha) * temporal_contrastive_loss(z1, z2)
        level += 1
        z1 = F.max_pool1d(z1.transpose(1, 2), kernel_size=2).transpose(1, 2)
        z2 = F.max_pool1d(z2.transpose(1, 2), kernel_size=2).transpose(1, 2)
    if z1.shape[1] == 1:
        if alpha != 0:
            total = total + alpha * instance_contrastive_loss(z1, z2)
        level += 1
    return total / level


def future_prediction_nce(predictions: torch.Tensor, future: torch.Tensor) -> torch.Tensor:
    """TS-TCC temporal contrasting (Eldele et al., IJCAI 2021, eq. 3), a CPC-style InfoNCE.

    ``predictions: [B, K, D]`` = ``W_k c_t`` (the context of one view mapped by the k-th step's
    linear predictor), ``future: [B, K, D]`` = ``z_{t+k}`` of the other view. For each step k and
    sample i the positive is ``future[i, k]`` and the other samples' ``future[j, k]`` are the
    negatives, with dot-product logits:

        L = -1/(B K) sum_{i, k} log( exp(p_ik . z_ik) / sum_j exp(p_ik . z_jk) )
    """
    if predictions.shape != future.shape or predictions.ndim != 3:
        raise ValueError(
            f"predictions and future must both be [B, K, D], got {tuple(predictions.shape)} and "
            f"{tuple(future.shape)}"
        )
    batch, steps = predictions.shape[:2]
    logits = torch.einsum("ikd,jkd->kij", predictions, future)  # [K, B, B]
    target = torch.arange(batch, device=predictions.device).repeat(steps)
    return F.cross_entropy(logits.reshape(steps * batch, batch), target)


def forecast_mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the finite entries of ``target`` (NaN marks a missing value)."""
    if prediction.shape != target.shape:
        raise ValueError(
            f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ"
        )
    finite = torch.isfinite(target)
    if not finite.any():
        return prediction.sum() * 0.0
    return ((prediction - torch.nan_to_num(target)) ** 2)[finite].mean()
