"""Self-supervised losses as plain functions over embeddings.

Every loss here that needs the whole batch gathers embeddings, or all-reduces their sufficient
statistics, across processes with gradient, so a run on P processes with batch B computes the same
value as one process with batch P * B (all processes must hold the same batch size). Losses are
averaged over this process's samples; as DDP averages parameter gradients over processes, the
resulting gradient equals the single-process gradient on the whole batch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from labelless.nn.distributed import (
    all_reduce_mean,
    all_reduce_sum,
    gather,
    rank,
    world_size,
)

_BATCH_NORM_EPS = 1e-5  # Barlow Twins standardises with BatchNorm1d(affine=False)
_VICREG_EPS = 1e-4
_VICREG_GAMMA = 1.0


def _check_pair(a: torch.Tensor, b: torch.Tensor, what: str = "views") -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"{what} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )


def _contrastive_logits(
    z0: torch.Tensor, z1: torch.Tensor, temperature: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine logits of this process's 2B anchors against the 2N gathered views.

    Returns ``logits [2B, 2N]`` (each anchor's similarity to itself set to -inf) and the column of
    each anchor's positive ``[2B]``. Candidates are gathered with gradient.
    """
    _check_pair(z0, z1)
    local = z0.shape[0]
    z0 = F.normalize(z0, dim=1)
    z1 = F.normalize(z1, dim=1)
    all0, all1 = gather(z0), gather(z1)
    total = all0.shape[0]
    candidates = torch.cat([all0, all1], dim=0)  # [2N, D]
    anchors = torch.cat([z0, z1], dim=0)  # [2B, D], this process's anchors
    logits = anchors @ candidates.T / temperature  # [2B, 2N]
    own = torch.arange(local, device=z0.device) + rank() * local
    self_index = torch.cat([own, own + total])
    positive_index = torch.cat([own + total, own])
    rows = torch.arange(2 * local, device=z0.device)
    logits[rows, self_index] = float("-inf")
    return logits, positive_index


def info_nce(z0: torch.Tensor, z1: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """NT-Xent, the normalised temperature-scaled cross entropy of SimCLR (Chen et al. 2020, eq. 1).

    ``z0, z1: [B, D]`` embeddings of two views of the same B samples (normalised here). With the
    2N views of the (gathered) batch, for the positive pair (i, j):

        l(i, j) = -log( exp(sim(z_i, z_j) / t) / sum_{k != i} exp(sim(z_i, z_k) / t) )

    averaged over all 2N anchors. Negatives come from every process; the gradient flows through
    the gathered copies.
    """
    logits, positive_index = _contrastive_logits(z0, z1, temperature)
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


def _vmf_weights(positive: torch.Tensor, sigma: float) -> torch.Tensor:
    """DCLW's weights ``2 - N softmax_i(s_ii / sigma)`` over the whole batch (no gradient).

    ``positive: [B]`` cosine similarities of this process's positive pairs; returns ``[B]``.
    """
    everyone = gather(positive.detach())  # [N]
    weights = 2.0 - everyone.shape[0] * torch.softmax(everyone / sigma, dim=0)
    start = rank() * positive.shape[0]
    return weights[start : start + positive.shape[0]]


def dcl(
    z0: torch.Tensor,
    z1: torch.Tensor,
    temperature: float = 0.1,
    weighted: bool = False,
    sigma: float = 0.5,
) -> torch.Tensor:
    """Decoupled contrastive loss, DCL and its weighted form DCLW (Yeh et al., "Decoupled
    Contrastive Learning", ECCV 2022, section 3).

    ``z0, z1: [B, D]`` embeddings of two views of the same B samples (normalised here). For anchor
    ``z_i^(k)`` of view k in the (gathered) batch of N samples, the positive leaves the denominator:

        L_i^(k) = -w_i <z_i^(1), z_i^(2)> / t
                  + log sum_{l in {1,2}, j != i} exp(<z_i^(k), z_j^(l)> / t)

    averaged over the 2N anchors (so ``dcl < info_nce`` at the same temperature). DCL has w_i = 1;
    DCLW (``weighted=True``) uses the negative von Mises-Fisher weight

        w_i = 2 - exp(<z_i^(1), z_i^(2)> / sigma) / E_j[exp(<z_j^(1), z_j^(2)> / sigma)]
            = 2 - N * softmax_i(<z_i^(1), z_i^(2)> / sigma),

    the expectation running over the N positive pairs of the whole batch (weights average to 1;
    sigma -> inf gives DCL). No gradient flows through the weight (the widely used reference code,
    raminnakhli/Decoupled-Contrastive-Learning, lets it through). The paper sums over anchors;
    the mean keeps the scale of ``info_nce``. Negatives come from every process, with gradient.
    """
    logits, positive_index = _contrastive_logits(z0, z1, temperature)
    rows = torch.arange(logits.shape[0], device=logits.device)
    positive = logits[rows, positive_index]  # [2B]
    negatives = logits.clone()
    negatives[rows, positive_index] = float("-inf")
    if weighted:
        weights = _vmf_weights(positive[: z0.shape[0]] * temperature, sigma)
        positive = positive * torch.cat([weights, weights])
    return (torch.logsumexp(negatives, dim=1) - positive).mean()


def _off_diagonal(matrix: torch.Tensor) -> torch.Tensor:
    """The off-diagonal entries of a square ``[D, D]`` matrix, flattened to ``[D * (D - 1)]``."""
    size = matrix.shape[0]
    return matrix[~torch.eye(size, dtype=torch.bool, device=matrix.device)]


def _standardise(z: torch.Tensor, count: int) -> torch.Tensor:
    """``(z - mean) / sqrt(var + eps)`` with the whole batch's mean and biased variance."""
    mean = all_reduce_sum(z.sum(dim=0)) / count
    centred = z - mean
    variance = all_reduce_sum(centred.pow(2).sum(dim=0)) / count
    return centred / torch.sqrt(variance + _BATCH_NORM_EPS)


def barlow_twins(z0: torch.Tensor, z1: torch.Tensor, lambd: float = 5e-3) -> torch.Tensor:
    """Barlow Twins redundancy reduction (Zbontar et al. 2021, eqs. 1-2).

    ``z0, z1: [B, D]`` embeddings of two views. Each is standardised over the whole (all-process)
    batch of N samples, as the authors' BatchNorm1d(affine=False) does: mean, biased variance,
    ``eps = 1e-5`` inside the square root. The cross-correlation ``C = sum_b z0_b z1_b^T / N``
    ``[D, D]`` is summed over processes, and

        L = sum_i (1 - C_ii)^2 + lambd * sum_i sum_{j != i} C_ij^2.

    Every process returns the loss of the whole batch.
    """
    _check_pair(z0, z1)
    count = z0.shape[0] * world_size()
    correlation = _standardise(z0, count).T @ _standardise(z1, count)
    correlation = all_reduce_sum(correlation) / count
    on_diagonal = (1 - torch.diagonal(correlation)).pow(2).sum()
    return on_diagonal + lambd * _off_diagonal(correlation).pow(2).sum()


def _variance_covariance(z: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """VICReg's v(Z) and c(Z) over the whole batch (``count`` samples), from ``z: [B, D]``."""
    mean = all_reduce_sum(z.sum(dim=0)) / count
    centred = z - mean
    covariance = all_reduce_sum(centred.T @ centred) / (count - 1)  # [D, D]
    std = torch.sqrt(torch.diagonal(covariance) + _VICREG_EPS)
    variance_term = F.relu(_VICREG_GAMMA - std).mean()
    covariance_term = _off_diagonal(covariance).pow(2).sum() / z.shape[1]
    return variance_term, covariance_term


def vicreg(
    z0: torch.Tensor,
    z1: torch.Tensor,
    sim_weight: float = 25.0,
    var_weight: float = 25.0,
    cov_weight: float = 1.0,
) -> torch.Tensor:
    """VICReg: variance-invariance-covariance regularisation (Bardes, Ponce & LeCun 2022, eqs. 1-6).

    ``z0, z1: [B, D]`` embeddings of two views (N samples over all processes):

        s(Z, Z') = mean over samples and dimensions of (z_i - z'_i)^2       (invariance, MSE)
        v(Z)     = 1/D sum_j max(0, gamma - sqrt(Var(z^j) + eps)),  gamma = 1, eps = 1e-4
        c(Z)     = 1/D sum_{i != j} Cov(Z)_ij^2,  Cov = 1/(N - 1) sum_b (z_b - zbar)(z_b - zbar)^T
        L        = sim_weight * s + var_weight * (v(Z) + v(Z')) / 2 + cov_weight * (c(Z) + c(Z'))

    Var is unbiased. As in the authors' released code, s is the element-wise MSE (eq. 5 divided
    by D) and the two variance terms are averaged (eq. 6 sums them); the default weights were
    tuned with that form. Mean, variance and covariance use the whole batch across processes;
    the invariance term is this process's mean.
    """
    _check_pair(z0, z1)
    count = z0.shape[0] * world_size()
    if count < 2:
        raise ValueError(f"vicreg needs at least 2 samples for a variance, got {count}")
    invariance = F.mse_loss(z0, z1)
    variance0, covariance0 = _variance_covariance(z0, count)
    variance1, covariance1 = _variance_covariance(z1, count)
    return (
        sim_weight * invariance
        + var_weight * (variance0 + variance1) / 2
        + cov_weight * (covariance0 + covariance1)
    )


def _logsumexp_over_batch(log_q: torch.Tensor) -> torch.Tensor:
    """``log sum_b exp(log_q[:, b])`` over the samples of every process: ``[K, B] -> [K, 1]``."""
    local = torch.logsumexp(log_q, dim=1, keepdim=True)
    return torch.logsumexp(gather(local[None]), dim=0)


def sinkhorn(scores: torch.Tensor, epsilon: float = 0.05, iterations: int = 3) -> torch.Tensor:
    """Soft codes by the Sinkhorn-Knopp algorithm, SwAV (Caron et al. 2020, section 3.1).

    ``scores: [B, K]`` prototype scores (cosine similarities) of this process's samples; returns
    ``codes: [B, K]`` without gradient, each row summing to 1. With N samples over all
    processes, ``Q = exp(scores / epsilon)^T [K, N]`` is scaled to total mass 1, then each
    iteration makes every prototype's mass 1/K (sums over the whole batch, across processes) and
    every sample's mass 1/N; the result is ``N * Q^T``, so each prototype receives about N/K of
    the batch (equipartition). The same iterations run on log Q, so no score range overflows.
    """
    with torch.no_grad():
        working = torch.promote_types(scores.dtype, torch.float32)
        log_q = scores.detach().to(working).T / epsilon  # [K, B]
        prototypes, count = log_q.shape[0], log_q.shape[1] * world_size()
        log_q = log_q - _logsumexp_over_batch(log_q.reshape(1, -1))
        for _ in range(iterations):
            log_q = log_q - _logsumexp_over_batch(log_q) - math.log(prototypes)
            log_q = log_q - torch.logsumexp(log_q, dim=0, keepdim=True) - math.log(count)
        return torch.exp(log_q + math.log(count)).T.to(scores.dtype)


def sinkhorn_with_queue(
    scores: torch.Tensor, queued: torch.Tensor, epsilon: float = 0.05, iterations: int = 3
) -> torch.Tensor:
    """Sinkhorn codes of ``scores: [B, K]`` when earlier samples' scores ``queued: [Q, K]`` join
    the equipartition (SwAV's queue for small batches, Caron et al. 2020, sec. 4 / appendix A):
    ``sinkhorn(cat(scores, queued))`` restricted to the batch's B rows.

    ``queued`` is the same on every process (a gathered queue); each process takes its own
    ``Q // world_size`` slice, so over all processes every queued row counts once.
    """
    share = queued.shape[0] // world_size()
    part = queued[rank() * share : (rank() + 1) * share].to(scores.dtype)
    return sinkhorn(torch.cat([scores, part]), epsilon, iterations)[: scores.shape[0]]


def swav(scores: torch.Tensor, codes: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """SwAV's prediction loss (Caron et al. 2020, eq. 2): the cross-entropy

        l(z, q) = -sum_k q_k log softmax(z^T c / t)_k

    between target ``codes: [B, K]`` (no gradient) and ``scores: [B, K]`` = z^T c of the
    predicting view, averaged over the B samples. The swapped prediction of two views is

        (swav(scores1, sinkhorn(scores0), t) + swav(scores0, sinkhorn(scores1), t)) / 2

    (with more crops, each code is predicted by every other crop, averaged).
    """
    _check_pair(scores, codes, "scores and codes")
    log_probabilities = F.log_softmax(scores / temperature, dim=1)
    return -(codes.detach() * log_probabilities).sum(dim=1).mean()


def dino(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    center: torch.Tensor,
    student_temp: float = 0.1,
    teacher_temp: float = 0.04,
) -> torch.Tensor:
    """DINO's self-distillation loss (Caron et al. 2021, eqs. 1-2), one student/teacher pair:

        H(P_t, P_s) = -sum_k P_t(x)_k log P_s(x')_k,
        P_t = softmax((g_t - center) / teacher_temp)  (no gradient),
        P_s = softmax(g_s / student_temp),

    ``student_logits, teacher_logits: [B, K]``, ``center: [K]`` or ``[1, K]``; mean over B. Sum it
    over the pairs of different crops and divide by their number. Keep ``center`` with
    ``update_center``.
    """
    _check_pair(student_logits, teacher_logits, "student and teacher logits")
    targets = F.softmax((teacher_logits.detach() - center.detach()) / teacher_temp, dim=-1)
    log_probabilities = F.log_softmax(student_logits / student_temp, dim=-1)
    return -(targets * log_probabilities).sum(dim=-1).mean()


def update_center(
    center: torch.Tensor, teacher_logits: torch.Tensor, momentum: float = 0.9
) -> torch.Tensor:
    """DINO's centre update (Caron et al. 2021, eq. 4): ``c <- m c + (1 - m) mean_b g_t(x_b)``.

    ``teacher_logits: [B, K]``; the mean runs over the whole batch on every process (equal batch
    sizes), so centres stay identical across processes. Returns the new centre, shaped like
    ``center`` (``[K]`` or ``[1, K]``), without gradient.
    """
    batch_center = all_reduce_mean(teacher_logits.detach().float().mean(dim=0))
    return momentum * center.detach() + (1 - momentum) * batch_center.reshape(center.shape)


def moco_v3(queries: torch.Tensor, keys: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """MoCo v3's contrastive loss (Chen, Xie & He, "An Empirical Study of Training Self-Supervised
    Vision Transformers", ICCV 2021, Algorithm 1), one direction:

        ctr(q, k) = 2 t * mean_i CE(softmax_j(q_i . k_j / t), j = i)
                  = 2 t * mean_i -log( exp(q_i . k_i / t) / sum_j exp(q_i . k_j / t) )

    ``queries: [B, D]`` predictions of one view (with gradient), ``keys: [B, D]`` momentum-encoder
    projections of the other view (detached here); both L2-normalised here. The candidates k_j
    are the keys of the whole batch, gathered from every process without gradient, so the
    positive of this process's query i sits at column ``rank * B + i``. The ``2 t`` factor makes
    the gradient's scale independent of the temperature. The paper's symmetrised loss is
    ``moco_v3(q0, k1, t) + moco_v3(q1, k0, t)`` (a sum, not a mean).
    """
    _check_pair(queries, keys, "queries and keys")
    queries = F.normalize(queries, dim=1)
    with torch.no_grad():
        candidates = gather(F.normalize(keys.detach(), dim=1))  # [N, D]
    logits = queries @ candidates.T / temperature  # [B, N]
    local = queries.shape[0]
    positive = torch.arange(local, device=queries.device) + rank() * local
    return 2 * temperature * F.cross_entropy(logits, positive)


def update_correlation(
    correlation: torch.Tensor, z: torch.Tensor, rho: float = 0.3
) -> torch.Tensor:
    """DirectPred's moving correlation (Tian, Chen & Ganguli, "Understanding self-supervised
    Learning Dynamics without Contrastive Pairs", ICML 2021, eq. 19):

        F <- rho F + (1 - rho) E_b[z_b z_b^T]

    ``correlation: [D, D]``, ``z: [B, D]`` online projections (the predictor's input). The
    expectation runs over the whole batch on every process (equal batch sizes), so every process
    holds the same F and sets the same predictor. Returns the new F (float32 or wider), no gradient.
    """
    z = z.detach().to(torch.promote_types(z.dtype, torch.float32))
    batch = all_reduce_mean(z.T @ z / z.shape[0])
    return rho * correlation.detach().to(batch.dtype) + (1 - rho) * batch


def directpred_predictor(correlation: torch.Tensor, eps: float = 0.01) -> torch.Tensor:
    """DirectPred's linear predictor from the correlation F (Tian et al. 2021, eq. 18):

        F = U diag(s) U^T,   p_j = sqrt(s_j) / max_k sqrt(s_k) + eps,   W_p = U diag(p) U^T

    ``correlation: [D, D]`` symmetric positive semi-definite; returns ``W_p: [D, D]`` without
    gradient (predictions are ``z @ W_p.T``). Eigenvalues below 0 (round-off) count as 0; an
    all-zero F gives ``eps * I``. Equivalently ``W_p = F^(1/2) / sqrt(s_max) + eps * I``.
    """
    with torch.no_grad():
        # float64 where the device has it: sqrt turns round-off in near-zero eigenvalues into
        # visible weights (1e-8 -> 1e-4).
        working = torch.float32 if correlation.device.type == "mps" else torch.float64
        symmetric = (correlation + correlation.T).to(working) / 2
        eigenvalues, eigenvectors = torch.linalg.eigh(symmetric)
        roots = eigenvalues.clamp(min=0).sqrt()
        scale = roots.max().clamp(min=torch.finfo(working).tiny)
        p = roots / scale + eps
        return ((eigenvectors * p) @ eigenvectors.T).to(correlation.dtype)


def mixed_barlow_twins(
    z_mixed: torch.Tensor,
    z0: torch.Tensor,
    z1: torch.Tensor,
    permutation: torch.Tensor,
    mix: float | torch.Tensor,
) -> torch.Tensor:
    """Mixed Barlow Twins' mixup regulariser (Bandara, De Melo & Patel, "Guarding Barlow Twins
    Against Overfitting with Mixed Samples", arXiv:2312.02151, 2023, sec. 3).

    The mixed images are ``x_m = mix * x0 + (1 - mix) * x1[permutation]``; if embeddings were
    linear in the input, the cross-correlations of the mixed embedding with each view would be

        C(m, 0)_gt = mix * C(0, 0) + (1 - mix) * C(1', 0),
        C(m, 1)_gt = mix * C(0, 1) + (1 - mix) * C(1', 1),   1' = view 1 permuted,

    with ``C(a, b) = sum_b za_b zb_b^T / N`` over the standardised embeddings, and

        L_reg = ||C(m, 0) - C(m, 0)_gt||_F^2 + ||C(m, 1) - C(m, 1)_gt||_F^2.

    The paper weights it by ``lambda_reg * lambda_BT`` and adds it to the Barlow Twins loss. The
    gradient flows through the targets as well (as in the authors' code).

    ``z_mixed, z0, z1: [B, D]`` projections of the mixed images and of the two views,
    ``permutation: [B]`` (long) the local permutation used for mixing, ``mix``: a float or ``[B]``
    per-sample ratios. Standardisation (mean, biased variance, eps 1e-5 as in ``barlow_twins``;
    the authors divide by the unbiased std) and the correlations use the whole batch of N samples
    across processes; every process returns the regulariser of the whole batch.
    """
    _check_pair(z0, z1)
    _check_pair(z_mixed, z0, "mixed and view embeddings")
    count = z0.shape[0] * world_size()
    s0, s1 = _standardise(z0, count), _standardise(z1, count)
    sm = _standardise(z_mixed, count)
    mix = torch.as_tensor(mix, dtype=s0.dtype, device=s0.device).reshape(-1, 1)
    # C(m, v) - C(m, v)_gt = (sm - mix * s0 - (1 - mix) * s1[perm])^T s_v / N: one residual.
    residual = sm - mix * s0 - (1 - mix) * s1[permutation]
    difference0 = all_reduce_sum(residual.T @ s0) / count
    difference1 = all_reduce_sum(residual.T @ s1) / count
    return difference0.pow(2).sum() + difference1.pow(2).sum()


# The losses of tables and time series live beside this file (one room per modality) and are
# re-exported here, so that ``labelless.nn.losses`` names every loss.
from labelless.nn.losses_tabular import (  # noqa: E402, F401
    feature_reconstruction_loss,
    latent_prediction_loss,
    mask_estimation_loss,
    scarf_info_nce,
)
from labelless.nn.losses_timeseries import (  # noqa: E402, F401
    forecast_mse,
    future_prediction_nce,
    hierarchical_contrastive_loss,
    instance_contrastive_loss,
    temporal_contrastive_loss,
)
