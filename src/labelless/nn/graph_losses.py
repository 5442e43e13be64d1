"""Losses of self-supervised graph methods, as plain functions over node or graph embeddings.

``sce`` (GraphMAE), ``grace`` (GRACE), ``dgi`` (Deep Graph Infomax), ``bgrl`` (BGRL) and
``cca_ssg`` (CCA-SSG). Node embeddings are not gathered across processes: a node's negatives are
the nodes of the batch this process holds (the graph or graphs it sampled).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from labelless.nn.losses import negative_cosine


def _check_pair(a: Tensor, b: Tensor, what: str) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"{what} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )


def sce(
    reconstruction: Tensor, target: Tensor, alpha: float = 2.0, mask: Tensor | None = None
) -> Tensor:
    """GraphMAE's scaled cosine error (Hou et al., "GraphMAE: Self-Supervised Masked Graph
    Autoencoders", KDD 2022, eq. 2):

        L = 1/|M| sum_{i in M} (1 - x_i . z_i / (|x_i| |z_i|)) ^ alpha,   alpha >= 1

    ``reconstruction: [N, F]`` decoded features z, ``target: [N, F]`` original features x;
    ``mask: [N]`` bool selects the masked nodes M (``None``: every row is a masked node).
    """
    _check_pair(reconstruction, target, "reconstruction and target")
    if alpha < 1.0:
        raise ValueError(f"GraphMAE's scaling exponent alpha must be >= 1, got {alpha}")
    if mask is not None:
        reconstruction, target = reconstruction[mask], target[mask]
    cosine = F.cosine_similarity(reconstruction, target, dim=-1)
    return (1.0 - cosine).pow(alpha).mean()


def grace(z1: Tensor, z2: Tensor, temperature: float = 0.5) -> Tensor:
    """GRACE's contrastive loss (Zhu et al., "Deep Graph Contrastive Representation Learning",
    2020, eqs. 1-2). ``z1, z2: [N, D]`` projected embeddings of the same N nodes in two views
    (normalised here), theta the cosine similarity, t the temperature:

        l(u_i, v_i) = -log e^{theta(u_i, v_i)/t} / (e^{theta(u_i, v_i)/t}
                      + sum_{k != i} e^{theta(u_i, v_k)/t} + sum_{k != i} e^{theta(u_i, u_k)/t})
        J = 1/(2N) sum_i (l(u_i, v_i) + l(v_i, u_i))

    with inter-view (v_k) and intra-view (u_k) negatives, symmetric over the views. On one
    process this is NT-Xent (``losses.info_nce``) over the nodes.
    """
    _check_pair(z1, z2, "the two views' node embeddings")
    count = z1.shape[0]
    nodes = F.normalize(torch.cat([z1, z2]), dim=1)  # [2N, D]: u_1..u_N, v_1..v_N
    logits = nodes @ nodes.T / temperature
    logits.fill_diagonal_(float("-inf"))
    rows = torch.arange(2 * count, device=z1.device)
    positive = (rows + count) % (2 * count)
    return F.cross_entropy(logits, positive)


def dgi(positive_scores: Tensor, negative_scores: Tensor) -> Tensor:
    """Deep Graph Infomax's discriminator loss (Velickovic et al., "Deep Graph Infomax", ICLR
    2019, eq. 1): binary cross-entropy with the N (node, summary) pairs of the graph as positives
    and the M pairs of the corrupted graph as negatives,

        L = -1/(N + M) (sum_i log D(h_i, s) + sum_j log(1 - D(h~_j, s))),

    ``positive_scores: [N]``, ``negative_scores: [M]`` the discriminator's logits (D = sigmoid of
    them, e.g. the bilinear ``h^T W s``)."""
    scores = torch.cat([positive_scores.reshape(-1), negative_scores.reshape(-1)])
    targets = torch.cat(
        [
            torch.ones_like(positive_scores.reshape(-1)),
            torch.zeros_like(negative_scores.reshape(-1)),
        ]
    )
    return F.binary_cross_entropy_with_logits(scores, targets)


def bgrl(predictions: Tensor, targets: Tensor) -> Tensor:
    """BGRL's loss for one direction (Thakoor et al., "Large-Scale Representation Learning on
    Graphs via Bootstrapping", ICLR 2022, section 3.1):

        l = -2/N sum_i p_i . h_i / (|p_i| |h_i|)

    ``predictions: [N, D]`` the online predictor's output for one view, ``targets: [N, D]`` the
    target encoder's embeddings of the other view (detached here). The paper symmetrises:
    ``bgrl(p1, h2) + bgrl(p2, h1)``.
    """
    _check_pair(predictions, targets, "predictions and targets")
    return 2.0 * negative_cosine(predictions, targets)


def cca_ssg(h1: Tensor, h2: Tensor, lambd: float = 1e-3) -> Tensor:
    """CCA-SSG's loss (Zhang et al., "From Canonical Correlation Analysis to Self-supervised
    Graph Neural Networks", NeurIPS 2021, eq. 6). ``h1, h2: [N, D]`` the encoder's outputs for
    the two views, each standardised per dimension over the N nodes (unbiased std, as the
    authors' code), ``z = (h - mean) / std``:

        L = -tr(Z1^T Z2) / N + lambd (||Z1^T Z1 / N - I||_F^2 + ||Z2^T Z2 / N - I||_F^2)

    the invariance term pulls the views together; the decorrelation term pushes each view's
    dimensions towards an identity covariance (no collapse, no negatives)."""
    _check_pair(h1, h2, "the two views' node embeddings")
    count, dim = h1.shape
    z1 = (h1 - h1.mean(0)) / h1.std(0)
    z2 = (h2 - h2.mean(0)) / h2.std(0)
    identity = torch.eye(dim, device=h1.device, dtype=h1.dtype)
    invariance = -(z1 * z2).sum() / count
    decorrelation = (identity - z1.T @ z1 / count).pow(2).sum()
    decorrelation = decorrelation + (identity - z2.T @ z2 / count).pow(2).sum()
    return invariance + lambd * decorrelation
