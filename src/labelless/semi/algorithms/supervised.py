"""``supervised``: the labelled samples only, the floor every semi-supervised method must beat."""

from __future__ import annotations

from labelless.semi.algorithms.base import SemiAlgorithm, register_algorithm


@register_algorithm("supervised")
class Supervised(SemiAlgorithm):
    """Cross-entropy on the weak view of the labelled batch; the unlabelled pool is ignored.
    Same backbone, views, optimiser and EMA evaluation as the other algorithms, so that the gap
    to them is what the unlabelled data bought (Oliver et al. 2018, "Realistic Evaluation of
    Deep Semi-Supervised Learning Algorithms")."""

    unlabelled_views = ()
    summary = "labelled samples only (the floor)"

    def forward(self, labelled, unlabelled, progress, *, generator=None):
        logits = self.logits(labelled["views"][0])
        loss = self.supervised_loss(logits, labelled)
        return self.result(loss, loss.detach() * 0.0)
