"""Label-free quality and collapse indicators of an embedding matrix."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from labelless.evaluate.knn import ArrayLike, as_float_tensor

RANKME_MAX_SAMPLES = 25_600


def effective_rank(values: torch.Tensor, eps: float) -> float:
    """``exp(-sum_k p_k log p_k)`` with ``p_k = v_k / ||v||_1 + eps`` (Roy & Vetterli 2007).

    ``values`` are non-negative spectrum values (singular values or eigenvalues), float64.
    """
    p = values / values.sum().clamp_min(torch.finfo(torch.float64).tiny) + eps
    return float(torch.exp(-(p * p.log()).sum()))


def seeded_rows(matrix: torch.Tensor, max_samples: int, seed: int = 0) -> torch.Tensor:
    """At most ``max_samples`` rows of ``matrix``: a fixed, seeded subset when there are more."""
    if len(matrix) <= max_samples:
        return matrix
    generator = torch.Generator().manual_seed(seed)
    rows = torch.randperm(len(matrix), generator=generator)[:max_samples]
    return matrix[rows.to(matrix.device)]


def rankme(z: ArrayLike, eps: float = 1e-7, max_samples: int = RANKME_MAX_SAMPLES) -> float:
    """Effective rank of ``z: [N, D]`` embeddings, RankMe (Garrido et al. 2023, Eq. 1).

    ``exp(-sum_k p_k log p_k)`` with ``p_k = sigma_k / ||sigma||_1 + eps`` over the singular
    values of ``z``. Ranges from ~1 (collapsed to one direction) to ``min(N, D)`` (all directions
    equally used). When ``N > max_samples`` (default 25,600, the paper's count) a fixed, seeded
    subset of rows is used, so the value is deterministic.
    """
    matrix = seeded_rows(as_float_tensor(z, "embeddings"), max_samples)
    return effective_rank(torch.linalg.svdvals(matrix.double()), eps)


def embedding_std(z: ArrayLike) -> float:
    """Mean per-dimension std of L2-normalised ``z: [N, D]`` (SimSiam, Chen & He 2021, Sec. 4.1).

    About ``1 / sqrt(D)`` when embeddings spread over the sphere, 0 when they have collapsed
    to a single point.
    """
    matrix = as_float_tensor(z, "embeddings")
    if len(matrix) < 2:
        return 0.0
    return float(F.normalize(matrix, dim=1).std(dim=0).mean())
