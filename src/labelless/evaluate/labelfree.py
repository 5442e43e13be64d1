"""Label-free quality measures beyond RankMe: alpha-ReQ, LiDAR, alignment and uniformity.

None of them reads a label, so they can rank checkpoints or runs where no labels exist. Their
direction differs: LiDAR (like RankMe) is higher-is-better, uniformity lower-is-better (more
spread), alignment lower-is-better (views closer), and alpha-ReQ has a good range near 1.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from labelless.errors import DataError
from labelless.evaluate.knn import ArrayLike, as_float_tensor
from labelless.evaluate.rankme import RANKME_MAX_SAMPLES, effective_rank, seeded_rows

UNIFORMITY_MAX_SAMPLES = 10_000


def eigenspectrum(z: ArrayLike, max_samples: int = RANKME_MAX_SAMPLES) -> torch.Tensor:
    """Eigenvalues of the empirical covariance of ``z [N, D]``, descending (float64)."""
    matrix = seeded_rows(as_float_tensor(z, "embeddings"), max_samples).double()
    if len(matrix) < 2:
        raise DataError("the eigenspectrum needs at least 2 embeddings")
    centred = matrix - matrix.mean(dim=0)
    return torch.linalg.svdvals(centred).square() / (len(matrix) - 1)


def alpha_req(
    z: ArrayLike,
    *,
    fit_range: tuple[int, int] | None = None,
    rtol: float = 1e-10,
    max_samples: int = RANKME_MAX_SAMPLES,
) -> float:
    """Power-law decay exponent of the covariance eigenspectrum, alpha-ReQ (Agrawal et al. 2022).

    "alpha-ReQ: Assessing Representation Quality in Self-Supervised Learning by measuring
    eigenspectrum decay" (NeurIPS 2022): with ``lambda_1 >= lambda_2 >= ...`` the eigenvalues of
    Cov(z), fit ``log lambda_i = c - alpha log i`` by least squares and return ``alpha``. Small
    alpha: a flat, high-dimensional spectrum (towards noise); large alpha: a few directions
    dominate (towards collapse); the paper reports well-defined intervals of alpha where
    linear readouts are best.

    Args:
        fit_range: 1-based ranks ``(first, last)`` to fit, inclusive; default all ranks whose
            eigenvalue is above ``rtol * lambda_1`` (numerical zeros of a rank-deficient ``z``
            would dominate a log-log fit).
        max_samples: rows used (a fixed seeded subset beyond it), as for RankMe.
    """
    values = eigenspectrum(z, max_samples)
    if fit_range is None:
        first, last = 1, int((values > rtol * values[0]).sum())
    else:
        first, last = fit_range
    if not 1 <= first < last <= len(values) or values[last - 1] <= 0:
        raise DataError(
            f"alpha-ReQ needs at least 2 positive eigenvalues in ranks {first}..{last} of "
            f"{len(values)}: the embeddings are collapsed or fit_range is out of bounds"
        )
    ranks = torch.arange(first, last + 1, dtype=torch.float64)
    x, y = ranks.log(), values[first - 1 : last].log()
    slope = ((x - x.mean()) * (y - y.mean())).sum() / (x - x.mean()).square().sum()
    return float(-slope)


def lidar(z: ArrayLike, *, delta: float = 1e-4, eps: float = 1e-8) -> float:
    """LiDAR, the effective rank of the LDA matrix of surrogate classes (Thilak et al. 2024).

    "LiDAR: Sensing Linear Probing Performance in Joint Embedding SSL Architectures" (ICLR 2024).
    ``z: [n, q, D]`` holds ``q >= 2`` augmented views of each of ``n >= 2`` samples; each sample
    is a class. With class means ``mu_i``, grand mean ``mu``:

        S_b = 1/(n-1) sum_i (mu_i - mu)(mu_i - mu)^T
        S_w = 1/(n(q-1)) sum_ij (z_ij - mu_i)(z_ij - mu_i)^T + delta I
        S   = S_w^{-1/2} S_b S_w^{-1/2}

    and LiDAR is ``exp(-sum_k p_k log p_k)`` with ``p_k = lambda_k / ||lambda||_1 + eps`` over the
    eigenvalues of S: how many directions separate samples more than augmentations move them.
    Between 1 and ``min(n - 1, D)``; higher is better.
    """
    views = torch.as_tensor(z)
    if views.ndim != 3 or views.shape[0] < 2 or views.shape[1] < 2:
        raise DataError(
            f"LiDAR needs embeddings shaped [samples, views, dim] with at least 2 samples and 2 "
            f"views each, got {tuple(views.shape)}: embed several augmented views per sample"
        )
    views = views.double()
    n, q, dim = views.shape
    class_means = views.mean(dim=1)
    between = class_means - class_means.mean(dim=0)
    scatter_b = between.T @ between / (n - 1)
    within = (views - class_means.unsqueeze(1)).reshape(n * q, dim)
    scatter_w = within.T @ within / (n * (q - 1)) + delta * torch.eye(dim, dtype=views.dtype)
    w_values, w_vectors = torch.linalg.eigh(scatter_w)
    inv_sqrt = (w_vectors * w_values.clamp_min(delta).rsqrt()) @ w_vectors.T
    lda = inv_sqrt @ scatter_b @ inv_sqrt
    values = torch.linalg.eigvalsh((lda + lda.T) / 2).clamp_min(0.0)
    return effective_rank(values, eps)


def alignment(z1: ArrayLike, z2: ArrayLike, alpha: float = 2.0) -> float:
    """Mean ``||f(x) - f(y)||^alpha`` over positive pairs on the sphere (Wang & Isola 2020, Eq. 4).

    "Understanding Contrastive Representation Learning through Alignment and Uniformity on the
    Hypersphere" (ICML 2020). ``z1[i]`` and ``z2[i]`` are two views of sample i; both are
    L2-normalised here. 0 when the views coincide, 4 when they are antipodal (alpha = 2).
    """
    a, b = as_float_tensor(z1, "first views"), as_float_tensor(z2, "second views")
    if a.shape != b.shape:
        raise DataError(f"views of different shapes {tuple(a.shape)} and {tuple(b.shape)}")
    distance = (F.normalize(a, dim=1) - F.normalize(b, dim=1)).norm(dim=1)
    return float(distance.double().pow(alpha).mean())


def uniformity(
    z: ArrayLike, t: float = 2.0, max_samples: int = UNIFORMITY_MAX_SAMPLES, chunk_size: int = 1024
) -> float:
    """``log E_{i != j} exp(-t ||f(x_i) - f(x_j)||^2)`` on the sphere (Wang & Isola 2020, Eq. 5).

    Lower is more uniform; ``log 1 = 0`` when every embedding is the same point. Pairs are all
    ordered pairs of distinct rows of a fixed, seeded subset of at most ``max_samples`` rows,
    summed block by block (``||a - b||^2 = 2 - 2 a.b`` for unit vectors).
    """
    matrix = F.normalize(seeded_rows(as_float_tensor(z, "embeddings"), max_samples), dim=1)
    n = len(matrix)
    if n < 2:
        raise DataError("uniformity needs at least 2 embeddings")
    total = 0.0
    for start in range(0, n, chunk_size):
        squared = (2.0 - 2.0 * (matrix[start : start + chunk_size] @ matrix.T)).clamp_min(0.0)
        squared.diagonal(offset=start).fill_(float("inf"))  # i == j is not a pair
        total += float((-t * squared.double()).exp().sum())
    mean = total / (n * (n - 1))
    return math.log(mean) if mean > 0 else float("-inf")


def spectrum_summary(z: ArrayLike) -> dict[str, float]:
    """alpha-ReQ and uniformity of ``z`` (NaN where undefined, e.g. alpha-ReQ of collapse)."""
    try:
        alpha = alpha_req(z)
    except DataError:
        alpha = float("nan")
    return {"alpha_req": alpha, "uniformity": uniformity(z)}
