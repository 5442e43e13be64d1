"""``data-scan``: poisoned samples in a training set, found from embeddings and from pixels.

- Spectral signatures (Tran, Li & Madry, NeurIPS 2018, "Spectral Signatures in Backdoor
  Attacks"): within a class, the samples carrying a backdoor trigger shift the representation
  along one direction, so they stand out on the top singular vector of the class's centred
  embeddings. Per group (the labels when given, else k-means clusters of the embeddings,
  ``curate.kmeans``): centre the embeddings, take the top right singular vector ``v``; a sample's
  outlier score is ``((z - mean) . v)^2``.
- Frequency-domain outliers (``audit.frequency``): per image, the largest robust z-score over
  the set of its high-frequency band shares (YCbCr for RGB), which CTRL's chroma trigger (Li et
  al., ICCV 2023) and patches with sharp edges lift.

Robust z-scores are Iglewicz & Hoaglin's (1993, "How to Detect and Handle Outliers") modified
z-score ``0.6745 (x - median) / MAD``; a sample is flagged above ``z_threshold`` (3.5, their
recommendation), or, with ``top_fraction``, when it is among that fraction of the highest
scores (of its group for spectral signatures: Tran et al. remove 1.5 times the expected poisoned
fraction of every class).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from labelless.audit.frequency import (
    BANDS,
    HIGH_FREQUENCY_CUTOFF,
    FrequencyScores,
    frequency_outliers,
    robust_z,
)
from labelless.curate.kmeans import check_embeddings, kmeans
from labelless.errors import ConfigError, DataError

Z_THRESHOLD = 3.5  # Iglewicz & Hoaglin's cut for the modified z-score
SMALL_CLUSTER = 0.25  # a k-means cluster under a quarter of the median cluster's size is "small"


@dataclass
class ClusterSummary:
    """One group of the spectral-signature scan: its ``size``, top two singular values of its
    centred embeddings (``spectral_gap = (s1 / s2)^2``, large when one direction, e.g. a trigger,
    dominates; inf when the spread is rank 1, 1 when there is none), how many of its samples
    were flagged and the lowest spectral score among them (None when none).

    ``relative_size`` is the size over the median group's; ``small`` marks a k-means cluster
    under ``SMALL_CLUSTER`` of it. A trigger strong enough to dominate the embedding makes its
    samples a cluster of their own, inside which spectral signatures see nothing to separate:
    such a cluster is the sign to look at, not its members' scores.
    """

    cluster: int
    size: int
    relative_size: float
    small: bool
    top_singular_value: float
    spectral_gap: float
    flagged: int
    lowest_flagged_score: float | None


@dataclass
class SpectralSignatures:
    """Tran et al.'s outlier scores: ``score [N]`` (squared projection on the group's top
    singular vector), ``z [N]`` (|modified z-score| of the signed projection within the group),
    ``cluster [N]`` (group id: the label, or the k-means cluster), ``source`` (``"labels"`` or
    ``"kmeans"``), and per group (``groups [G]``, ascending) ``sizes [G]`` and the top two
    singular values ``singular_values [G, 2]``."""

    score: Tensor
    z: Tensor
    cluster: Tensor
    source: str
    groups: Tensor
    sizes: Tensor
    singular_values: Tensor


@dataclass
class DataScan:
    """A data scan of ``N`` training samples (tensors on the CPU).

    ``spectral``: Tran et al.'s scores per sample and group; ``clusters``: one summary per
    group; ``frequency``: the frequency scores (``frequency.FrequencyScores``: ``share [N, C]``,
    ``z [N]``, ``peak [N, 3]``); ``flagged_spectral`` / ``flagged_frequency``: sorted sample
    indices; ``thresholds``: the rule applied (``z_threshold`` or ``top_fraction``; the other is
    None), ``high_frequency_cutoff``, ``frequency_bands`` and, for k-means groups,
    ``small_cluster``.
    """

    spectral: SpectralSignatures
    clusters: list[ClusterSummary]
    frequency: FrequencyScores
    flagged_spectral: Tensor
    flagged_frequency: Tensor
    thresholds: dict[str, float | None]

    @property
    def flagged(self) -> Tensor:
        """Samples flagged by either check, sorted."""
        return torch.unique(torch.cat([self.flagged_spectral, self.flagged_frequency]))

    @property
    def small_clusters(self) -> list[int]:
        """Ids of the k-means clusters marked ``small`` (candidates for a trigger's samples)."""
        return [summary.cluster for summary in self.clusters if summary.small]


def _groups(z: Tensor, labels, clusters: int, seed: int) -> tuple[Tensor, str]:
    if labels is None:
        return kmeans(z, clusters, seed=seed).assignment, "kmeans"
    groups = torch.as_tensor(np.asarray(labels)).long().reshape(-1)
    if len(groups) != len(z):
        raise DataError(f"{len(groups)} labels for {len(z)} embeddings: pass one label a sample")
    if bool((groups < 0).any()):
        raise DataError(
            f"{int((groups < 0).sum())} of {len(groups)} samples are unlabelled (-1): pass "
            "labels=None to group every sample by k-means, or label every sample"
        )
    return groups, "labels"


def spectral_signatures(
    embeddings: Tensor | np.ndarray,
    *,
    labels: Tensor | np.ndarray | None = None,
    clusters: int = 10,
    seed: int = 0,
) -> SpectralSignatures:
    """Spectral-signature scores (Tran et al. 2018) of ``embeddings [N, D]``, grouped by
    ``labels`` when given (every sample labelled), else by seeded k-means into ``clusters``.

    A group of one sample scores 0. Costs one thin SVD per group (``O(n D min(n, D))``).
    """
    z = check_embeddings(embeddings)
    cluster, source = _groups(z, labels, clusters, seed)
    groups = torch.unique(cluster)
    score, robust = torch.zeros(len(z)), torch.zeros(len(z))
    sizes = torch.zeros(len(groups), dtype=torch.long)
    singular = torch.zeros(len(groups), 2)
    for row, group in enumerate(groups.tolist()):
        members = torch.nonzero(cluster == group).squeeze(1)
        sizes[row] = len(members)
        if len(members) < 2:
            continue
        centred = z[members] - z[members].mean(dim=0)
        _, values, vh = torch.linalg.svd(centred, full_matrices=False)
        projection = centred @ vh[0]
        score[members] = projection.square()
        robust[members] = robust_z(projection).abs()
        singular[row, : min(2, len(values))] = values[:2]
    return SpectralSignatures(score, robust, cluster, source, groups, sizes, singular)


def _top(scores: Tensor, fraction: float) -> Tensor:
    """Positions of the ``ceil(fraction * n)`` highest ``scores``."""
    count = min(len(scores), math.ceil(fraction * len(scores)))
    return torch.topk(scores, count).indices if count else torch.zeros(0, dtype=torch.long)


def _flag_spectral(signatures: SpectralSignatures, z_threshold: float, top_fraction):
    """Flagged sample indices and one ``ClusterSummary`` per group."""
    flagged, summaries = [], []
    median_size = float(signatures.sizes.double().median())
    for row, group in enumerate(signatures.groups.tolist()):
        members = torch.nonzero(signatures.cluster == group).squeeze(1)
        if top_fraction is None:
            chosen = members[signatures.z[members] > z_threshold]
        else:
            chosen = members[_top(signatures.score[members], top_fraction)]
        flagged.append(chosen)
        first, second = signatures.singular_values[row].tolist()
        lowest = float(signatures.score[chosen].min()) if len(chosen) else None
        gap = (first / second) ** 2 if second > 0 else (math.inf if first > 0 else 1.0)
        relative = len(members) / median_size
        small = signatures.source == "kmeans" and relative < SMALL_CLUSTER
        summaries.append(
            ClusterSummary(
                int(group), len(members), relative, small, first, gap, len(chosen), lowest
            )
        )
    return torch.sort(torch.cat(flagged)).values, summaries


def _check_rule(z_threshold: float, top_fraction: float | None) -> None:
    if top_fraction is not None and not 0.0 < top_fraction < 1.0:
        raise ConfigError(
            f"top_fraction is the share of samples to flag, in (0, 1), got {top_fraction} "
            "(e.g. 0.015: Tran et al. flag 1.5x the expected poisoned fraction)"
        )
    if not z_threshold > 0:
        raise ConfigError(f"z_threshold must be > 0, got {z_threshold} (3.5 is the usual cut)")


def scan_training_data(
    images: Tensor | np.ndarray,
    embeddings: Tensor | np.ndarray,
    *,
    labels: Tensor | np.ndarray | None = None,
    clusters: int = 10,
    z_threshold: float = Z_THRESHOLD,
    top_fraction: float | None = None,
    cutoff: float = HIGH_FREQUENCY_CUTOFF,
    bands: int = BANDS,
    seed: int = 0,
) -> DataScan:
    """Both scans of a training set: ``images`` (uint8 or float [0, 1], ``[N, C, H, W]``) and
    their ``embeddings [N, D]`` by the encoder under audit, in the same order.

    Flags: spectral ``z > z_threshold`` within the group, frequency ``z > z_threshold`` over the
    set; with ``top_fraction``, the top fraction of each group's spectral scores and of the
    set's frequency scores instead (``z_threshold`` is then not used).
    """
    _check_rule(z_threshold, top_fraction)
    if len(embeddings) != len(images):
        raise DataError(
            f"{len(images)} images but {len(embeddings)} embeddings: embed every image once, "
            "in order"
        )
    signatures = spectral_signatures(embeddings, labels=labels, clusters=clusters, seed=seed)
    flagged_spectral, summaries = _flag_spectral(signatures, z_threshold, top_fraction)
    frequency = frequency_outliers(images, cutoff=cutoff, bands=bands)
    if top_fraction is None:
        flagged_frequency = torch.nonzero(frequency.z > z_threshold).squeeze(1)
    else:
        flagged_frequency = torch.sort(_top(frequency.z, top_fraction)).values
    thresholds = {
        "z_threshold": z_threshold if top_fraction is None else None,
        "top_fraction": top_fraction,
        "high_frequency_cutoff": cutoff,
        "frequency_bands": bands,
        "small_cluster": SMALL_CLUSTER if signatures.source == "kmeans" else None,
    }
    return DataScan(
        signatures, summaries, frequency, flagged_spectral, flagged_frequency, thresholds
    )
