"""Losses and thresholds of the semi-supervised algorithms, as plain functions over tensors.

Shapes: ``logits [B, C]``, ``probs [B, C]`` (softmax outputs), ``mask [B]`` per-sample weights
in [0, 1]. Every function here is checked against a hand computation in
``tests/unit/semi/test_losses.py``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from labelless.errors import ConfigError
from labelless.nn import sampling


def cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """Per-sample cross-entropy ``[B]``; ``targets``: class indices ``[B]`` or soft ``[B, C]``."""
    if targets.dtype.is_floating_point:
        return -(targets * F.log_softmax(logits, dim=-1)).sum(dim=-1)
    return F.cross_entropy(logits, targets, reduction="none")


def confidence_mask(probs: Tensor, threshold: Tensor | float) -> tuple[Tensor, Tensor, Tensor]:
    """Pseudo-labels ``argmax p``, their confidence ``max p`` and the mask ``max p >= tau``.

    ``threshold`` is one value or per class ``[C]`` (then the pseudo-label's class threshold
    applies). Returns ``(mask [B] float, pseudo_labels [B], confidence [B])``.
    """
    confidence, pseudo = probs.max(dim=-1)
    if isinstance(threshold, Tensor) and threshold.ndim == 1:
        threshold = threshold[pseudo]
    return (confidence >= threshold).float(), pseudo, confidence


def masked_consistency(logits_strong: Tensor, targets: Tensor, mask: Tensor) -> Tensor:
    """FixMatch's unlabelled loss (Sohn et al. 2020, eq. 2): ``mean_b mask_b * H(target_b,
    p(strong_b))``, averaged over the whole unlabelled batch (not only the masked samples)."""
    return (cross_entropy(logits_strong, targets) * mask).mean()


def convex_mapping(beta: Tensor) -> Tensor:
    """FlexMatch's non-linear mapping ``M(x) = x / (2 - x)`` (Zhang et al. 2021, eq. 7)."""
    return beta / (2.0 - beta)


def flexmatch_thresholds(
    status: Tensor, num_classes: int, threshold: float, *, warmup: bool = True
) -> Tensor:
    """Curriculum thresholds ``T_c = M(beta_c) * tau`` (Zhang et al. 2021, FlexMatch, eq. 6-7, 11).

    ``status [N_u]`` holds, for each unlabelled sample, the class it was last predicted as with
    confidence above ``tau``, or -1 (unused). ``sigma_c`` counts samples of status c; the learning
    effect is ``beta_c = sigma_c / max(max_c sigma, N_unused)`` with threshold warm-up (eq. 11),
    else ``sigma_c / max_c sigma``; ``M`` is the convex mapping. Returns ``[C]``.
    """
    used = status[status >= 0]
    sigma = torch.bincount(used, minlength=num_classes)[:num_classes].float()
    denominator = sigma.max()
    if warmup:
        denominator = torch.maximum(denominator, (status < 0).sum().float())
    beta = sigma / denominator.clamp_min(1.0)
    return convex_mapping(beta) * threshold


def ema_(value: Tensor, new: Tensor, momentum: float) -> Tensor:
    """In-place exponential moving average ``value = m * value + (1 - m) * new``."""
    return value.mul_(momentum).add_(new.detach(), alpha=1.0 - momentum)


def freematch_thresholds(global_threshold: Tensor, class_probs: Tensor) -> Tensor:
    """Self-adaptive class thresholds ``tau_t(c) = MaxNorm(p_t)(c) * tau_t`` (Wang et al. 2023,
    FreeMatch, eq. 8): the EMA of the mean class probability ``class_probs [C]``, divided by its
    maximum, times the global threshold (the EMA of the mean confidence)."""
    return class_probs / class_probs.max() * global_threshold


def freematch_fairness(
    probs_strong: Tensor,
    mask: Tensor,
    class_probs: Tensor,
    class_hist: Tensor,
    *,
    cross_entropy: bool = False,
) -> Tensor:
    """FreeMatch's self-adaptive fairness term (Wang et al. 2023, eq. 11): ``L_f = -H(SumNorm(p_t
    / h_t), SumNorm(p_bar / h_bar))`` with ``H`` the cross-entropy, ``p_t / h_t`` the EMA class
    probabilities over the EMA histogram of weak predictions (a fixed target) and ``p_bar /
    h_bar`` the mean strong-view probabilities of the masked samples over the histogram of their
    predictions. As USB's ``entropy_loss`` (``freematch/freematch.py``) the value is negative
    and minimised; ``cross_entropy=True`` returns ``+H`` (labelless before issue 23). Zero when
    no sample is masked."""
    keep = mask > 0
    if not bool(keep.any()):
        return probs_strong.sum() * 0.0
    probs = probs_strong[keep]
    mean_probs = probs.mean(dim=0)
    hist = torch.bincount(probs.argmax(dim=-1), minlength=probs.shape[1]).float()
    hist = hist / hist.sum()
    batch_ratio = torch.where(hist > 0, mean_probs / hist.clamp_min(1e-12), 0.0)
    batch_ratio = batch_ratio / batch_ratio.sum().clamp_min(1e-12)
    target = class_probs / class_hist.clamp_min(1e-12)
    target = (target / target.sum()).detach()
    value = (target * torch.log(batch_ratio + 1e-12)).sum()
    return -value if cross_entropy else value


def softmatch_weights(
    confidence: Tensor,
    mean: Tensor | float,
    variance: Tensor | float,
    max_weight: float = 1.0,
    n_sigma: float = 1.0,
) -> Tensor:
    """SoftMatch's truncated-Gaussian sample weights (Chen et al. 2023, eq. 7):
    ``lambda_max * exp(-(max p - mu_t)^2 / (2 sigma_t^2 / n_sigma^2))`` below the mean confidence
    ``mu_t``, ``lambda_max`` above it. ``n_sigma = 1`` is the paper's equation; the authors'
    code (USB, ``SoftMatchWeightingHook``) divides the variance by ``n_sigma^2`` with
    ``n_sigma = 2``, a Gaussian half as wide."""
    below = torch.clamp(confidence - mean, max=0.0)
    return max_weight * torch.exp(-(below**2) / (2.0 * variance / n_sigma**2))


def uniform_alignment(probs: Tensor, class_probs: Tensor, epsilon: float = 1e-6) -> Tensor:
    """SoftMatch's uniform alignment (Chen et al. 2023, eq. 9): ``Normalize(p * (u + eps) /
    (p_hat + eps))`` with ``u`` uniform and ``p_hat [C]`` the EMA of the model's mean prediction
    (``eps = 1e-6`` as USB's ``DistAlignEMAHook``)."""
    uniform = 1.0 / probs.shape[-1]
    aligned = probs * (uniform + epsilon) / (class_probs + epsilon)
    return aligned / aligned.sum(dim=-1, keepdim=True)


def sharpen(probs: Tensor, temperature: float) -> Tensor:
    """MixMatch's sharpening ``p_i^(1/T) / sum_j p_j^(1/T)`` (Berthelot et al. 2019, eq. 7)."""
    powered = probs ** (1.0 / temperature)
    return powered / powered.sum(dim=-1, keepdim=True)


def mixup(
    inputs: Tensor, targets: Tensor, alpha: float, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor, float]:
    """MixMatch's MixUp (Berthelot et al. 2019, eq. 8-11): ``lambda ~ Beta(alpha, alpha)``,
    ``lambda' = max(lambda, 1 - lambda)``, each row mixed with a random permutation of the
    batch, so that a mixed sample stays closer to its own input. Returns mixed inputs, mixed
    soft targets and ``lambda'``. Draws go through ``generator`` (reproducible, resumable)."""
    lam = sampling.beta(alpha, generator)
    lam = max(lam, 1.0 - lam)
    order = sampling.randperm(len(inputs), generator=generator, device=inputs.device)
    mixed = lam * inputs + (1.0 - lam) * inputs[order]
    mixed_targets = lam * targets + (1.0 - lam) * targets[order]
    return mixed, mixed_targets, lam


def softmax_mse(student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
    """Mean Teacher's consistency cost (Tarvainen & Valpola 2017, sec. 2): the squared distance
    between the student's and the teacher's class probabilities, averaged over classes and
    samples. The teacher side is detached; the student side keeps its gradient."""
    student = F.softmax(student_logits, dim=-1)
    teacher = F.softmax(teacher_logits.detach(), dim=-1)
    return ((student - teacher) ** 2).mean()


def sigmoid_rampup(progress: float, length: float) -> float:
    """``exp(-5 (1 - t)^2)`` with ``t = progress / length`` clipped to [0, 1] (Laine & Aila 2017;
    Tarvainen & Valpola 2017): the ramp-up of consistency weights."""
    if length <= 0:
        return 1.0
    t = min(max(progress / length, 0.0), 1.0)
    return math.exp(-5.0 * (1.0 - t) ** 2)


def linear_rampup(progress: float, length: float) -> float:
    """``min(1, progress / length)``: the linear ramp of the unsupervised weight of MixMatch,
    Pseudo-Label and Mean Teacher (USB's ``unsup_warm_up``)."""
    if length <= 0:
        return 1.0
    return min(max(progress / length, 0.0), 1.0)


def one_vs_all_loss(binary_logits: Tensor, labels: Tensor) -> Tensor:
    """Loss of K one-vs-all binary classifiers on labelled data (Saito et al. 2021, OpenMatch;
    used by IOMatch): ``-log o_y - min_{k != y} log(1 - o_k)`` per sample, mean over the batch.
    ``binary_logits [B, 2, K]``: index 1 is "inlier of class k", index 0 "not class k"."""
    probs = F.softmax(binary_logits, dim=1)
    positive = probs[:, 1, :].gather(1, labels[:, None]).squeeze(1)
    negatives = probs[:, 0, :].scatter(1, labels[:, None], 1.0)  # own class excluded
    hardest = negatives.min(dim=1).values
    return (-torch.log(positive + 1e-8) - torch.log(hardest + 1e-8)).mean()


def open_set_targets(closed_probs: Tensor, binary_probs: Tensor) -> Tensor:
    """IOMatch's open-set targets (Li et al. 2023, eq. 3): ``q_k = p_k * o_k`` for the K seen
    classes and ``q_{K+1} = sum_k p_k (1 - o_k)`` for "outlier", from the closed-set
    probabilities ``p [B, K]`` and the binary inlier probabilities ``o [B, K]``. Rows sum to 1."""
    inlier = closed_probs * binary_probs
    outlier = (closed_probs * (1.0 - binary_probs)).sum(dim=-1, keepdim=True)
    return torch.cat([inlier, outlier], dim=-1)


def head_disagreement(head_probs: Tensor) -> Tensor:
    """Disagreement of H heads ``[H, B, C]``: the mutual information between the prediction and
    the head, ``H(mean_h p_h) - mean_h H(p_h)`` per sample ``[B]`` (zero when every head agrees)."""
    mean = head_probs.mean(dim=0)
    entropy_of_mean = -(mean * torch.log(mean + 1e-12)).sum(dim=-1)
    mean_entropy = -(head_probs * torch.log(head_probs + 1e-12)).sum(dim=-1).mean(dim=0)
    return entropy_of_mean - mean_entropy


def head_agreement(head_probs: Tensor, temperature: float = 1.0) -> Tensor:
    """DAC's agreement of H heads ``[B, H, C]`` (Kong et al. 2025; heejokong/DivCon
    ``SoftWeightingHook.get_disagree_scores``, mode "l1"): ``exp(-mean_{h, g, c} |p_hc - p_gc|
    / T)`` per sample ``[B]``, the mean over all H x H ordered pairs (the diagonal included) and
    the classes; 1 when every head agrees."""
    gaps = (head_probs.unsqueeze(1) - head_probs.unsqueeze(2)).abs().mean(dim=(-3, -2, -1))
    return torch.exp(-gaps / temperature)


def pairwise_mutual_information(head_probs: Tensor) -> Tensor:
    """DAC's diversity loss (Kong et al. 2025; heejokong/DivCon ``DiverseLoss``): the mutual
    information between the predictions of every two heads over the batch, ``KL(P(y_h, y_g) ||
    P(y_h) P(y_g))`` with the joint ``mean_b p_bh p_bg^T`` and the marginals ``mean_b p_bh``,
    averaged over the pairs ``h < g``. ``head_probs [B, H, C]``; minimised, it decorrelates
    the heads."""
    heads = head_probs.shape[1]
    marginal = head_probs.mean(dim=0)  # [H, C]
    independent = torch.einsum("hd,ge->hgde", marginal, marginal)
    joint = torch.einsum("bhd,bge->hgde", head_probs, head_probs) / len(head_probs)
    information = (joint * (joint.log() - independent.log())).sum(dim=(-2, -1))  # [H, H]
    first, second = torch.triu_indices(heads, heads, offset=1, device=head_probs.device)
    return information[first, second].mean()


def check_threshold(name: str, value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name} must be in [0, 1], got {value}: it is a confidence")
    return float(value)
