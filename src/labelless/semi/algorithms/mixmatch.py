"""``mixmatch``: sharpened label guesses over K augmentations, MixUp of everything."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from labelless.methods.base import check_positive_options
from labelless.semi.algorithms.base import SemiAlgorithm, register_algorithm
from labelless.semi.losses import cross_entropy, linear_rampup, mixup, sharpen


@register_algorithm("mixmatch")
class MixMatch(SemiAlgorithm):
    """MixMatch (Berthelot et al. 2019, "MixMatch: A Holistic Approach to Semi-Supervised
    Learning"), with the defaults of the authors' code (USB, semilearn ``algorithms/mixmatch``).

    Each unlabelled sample gets ``K`` weak views (``num_views``, 2); its label guess is the mean
    prediction over them, sharpened with temperature ``T`` (0.5). Labelled samples (one-hot
    targets) and every unlabelled view (the guess) are mixed with a random permutation of the
    whole set by MixUp with ``lambda' = max(lambda, 1 - lambda)``, ``lambda ~ Beta(alpha,
    alpha)`` (0.5, USB's ``mixup_alpha``; the paper's 0.75 is an option). Loss: cross-entropy
    on the mixed labelled part plus ``lambda_u`` (100, USB's ``ulb_loss_ratio``; the paper's
    CIFAR-10 value is 75) times the squared error between predicted and mixed guessed
    distributions (mean over classes and samples), ``lambda_u`` ramped up linearly over the
    first ``rampup`` (0.4) of the run. One forward over the whole mixed batch plays
    the role of the paper's interleaving (BatchNorm sees labelled and unlabelled together). The
    MixUp coefficient and permutation are drawn from the step's ``generator``.
    """

    summary = "sharpened guesses over K views, MixUp (Berthelot et al. 2019)"

    def __init__(
        self,
        backbone,
        num_classes,
        state,
        *,
        num_views: int = 2,
        temperature: float = 0.5,
        alpha: float = 0.5,
        unsup_weight: float = 100.0,
        rampup: float = 0.4,
        **kwargs,
    ):
        check_positive_options("semi.kwargs", type(self), temperature=temperature)
        super().__init__(backbone, num_classes, state, unsup_weight=unsup_weight, **kwargs)
        self.unlabelled_views = ("weak",) * int(num_views)
        self.temperature, self.alpha, self.rampup = float(temperature), float(alpha), rampup

    def forward(self, labelled, unlabelled, progress, *, generator=None):
        views = unlabelled["views"]
        with torch.no_grad():
            guesses = torch.stack([F.softmax(self.logits(v).float(), -1) for v in views])
            guess = sharpen(guesses.mean(dim=0), self.temperature)
        x = labelled["views"][0]
        onehot = F.one_hot(labelled["label"], self.num_classes).float()
        inputs = torch.cat([x, *views])
        targets = torch.cat([onehot, *([guess] * len(views))])
        mixed, mixed_targets, _ = mixup(inputs, targets, self.alpha, generator)
        logits = self.logits(mixed.contiguous(memory_format=torch.channels_last))
        n = len(x)
        sup_loss = cross_entropy(logits[:n], mixed_targets[:n]).mean()
        probs_u = F.softmax(logits[n:], dim=-1)
        unsup_loss = ((probs_u - mixed_targets[n:]) ** 2).mean()
        weight = self.unsup_weight * linear_rampup(progress, self.rampup)
        pseudo = guess.argmax(dim=-1)
        return self.result(
            sup_loss,
            unsup_loss,
            mask=torch.ones_like(pseudo, dtype=torch.float32),
            pseudo_labels=pseudo,
            unlabelled=unlabelled,
            weight=weight,
        )
