"""SAS: the samples that contribute most to contrastive learning.

Joshi & Mirzasoleiman 2023, "Data-efficient contrastive self-supervised learning: most
beneficial examples for supervised learning contribute the least" (ICML): the examples worth
keeping are those whose augmented views are, in expectation, most similar to the views of the
other examples of their (approximate) latent class. The latent classes come from k-means on a
proxy encoder's embeddings; inside each class the subset is the greedy maximiser of the
submodular objective of the authors' code,

    F(S) = sum_{i in S} c_i - sum_{{i, j} in S} s_ij,   c_i = sum_{j in V_c, j != i} max(s_ij, 0)

(a sample's gain is its positive similarity to its class, less its similarity to what is
already chosen: the greedy gain of adding i is ``c_i - sum_{j in S} s_ij``),
where ``s_ij`` is the expected cosine similarity between a view of i and a view of j. Each class
keeps its share of the budget (largest remainders), as the authors keep a fraction per class.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from labelless.errors import ConfigError

SAS_VIEWS = 2  # augmented views per sample (one pass of a two-view recipe)


def view_embeddings(
    encoder: nn.Module,
    images,
    pipeline,
    *,
    batch_size: int = 256,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """``[V, N, D]`` embeddings of the ``V`` augmented views that ``pipeline`` (a
    ``labelless.augment.ViewPipeline``) makes of ``images`` (``uint8 [N, C, H, W]``), batch by
    batch on the encoder's device, every random draw from one generator seeded with ``seed``."""
    from labelless.progress import task

    images = torch.as_tensor(images)
    if device is None:
        parameter = next(encoder.parameters(), None)
        device = parameter.device if parameter is not None else torch.device("cpu")
    generator = torch.Generator(device=device).manual_seed(int(seed))
    was_training, outputs = encoder.training, []
    encoder.eval()
    starts = range(0, len(images), batch_size)
    label = f"embedding augmented views of {len(images):,} samples"
    try:
        with torch.inference_mode(), task(label, len(starts)) as bar:
            for start in starts:
                views = pipeline(images[start : start + batch_size].to(device), generator)
                outputs.append(torch.stack([encoder(view).float().cpu() for view in views]))
                bar.advance()
    finally:
        encoder.train(was_training)
    return torch.cat(outputs, dim=1)


def augmentation_similarity(views: torch.Tensor) -> torch.Tensor:
    """``[n, n]`` expected cosine similarity between a view of i and another view of j, from
    ``views [V, n, D]``: the mean of ``z_i^a . z_j^b`` over view pairs ``a != b`` (for V = 1,
    ``z_i . z_j``). One matmul of the view sums, minus the same-view terms."""
    z = F.normalize(views.float(), dim=2)
    count = z.shape[0]
    total = z.sum(dim=0)
    if count == 1:
        return total @ total.T
    same = torch.einsum("vid,vjd->ij", z, z)
    return (total @ total.T - same) / (count * (count - 1))


def _greedy(similarity: torch.Tensor, count: int) -> torch.Tensor:
    """``count`` rows chosen greedily for ``F`` above: gain ``c_i - sum_{j in S} s_ij``."""
    gain = similarity.clamp_min(0).fill_diagonal_(0).sum(dim=1)
    chosen = torch.empty(count, dtype=torch.long)
    for step in range(count):  # one [n] update per chosen row
        best = int(gain.argmax())
        chosen[step] = best
        gain -= similarity[:, best]
        gain[best] = float("-inf")
    return chosen


def class_quotas(sizes: torch.Tensor, keep: int) -> torch.Tensor:
    """Per-class counts proportional to ``sizes`` that sum to ``keep`` (largest remainders)."""
    exact = sizes.double() * keep / sizes.sum()
    quota = exact.floor().long()
    short = keep - int(quota.sum())
    if short > 0:
        quota[torch.sort(quota.double() - exact, stable=True).indices[:short]] += 1
    return quota


def sas_subset(views: torch.Tensor, latent: torch.Tensor, keep: int) -> torch.Tensor:
    """``keep`` sample indices (sorted) by SAS from ``views [V, N, D]`` (augmented-view
    embeddings) and ``latent [N]`` (approximate latent class of each sample, e.g. k-means of a
    proxy encoder's embeddings). Cost: O(sum_c n_c^2 D) for the class similarity matrices."""
    if views.ndim != 3 or views.shape[1] != len(latent):
        raise ConfigError(
            f"views must be [V, N, D] with N = {len(latent)} latent labels, got "
            f"{tuple(views.shape)}"
        )
    latent = torch.as_tensor(latent).long()
    if not 1 <= keep <= len(latent):
        raise ConfigError(f"keep must be between 1 and {len(latent)}, got {keep}")
    classes, inverse = torch.unique(latent, return_inverse=True)
    quota = class_quotas(torch.bincount(inverse), keep)
    chosen = []
    for number in range(len(classes)):  # one similarity matrix per latent class
        members = torch.nonzero(inverse == number).squeeze(1)
        if int(quota[number]) > 0:
            similarity = augmentation_similarity(views[:, members])
            chosen.append(members[_greedy(similarity, int(quota[number]))])
    return torch.sort(torch.cat(chosen)).values
