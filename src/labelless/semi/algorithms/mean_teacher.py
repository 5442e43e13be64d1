"""``mean_teacher``: consistency with an EMA teacher."""

from __future__ import annotations

import torch

from labelless.errors import ConfigError
from labelless.semi.algorithms.base import SemiAlgorithm, register_algorithm
from labelless.semi.losses import linear_rampup, sigmoid_rampup, softmax_mse

RAMPUPS = {"linear": linear_rampup, "sigmoid": sigmoid_rampup}


@register_algorithm("mean_teacher")
class MeanTeacher(SemiAlgorithm):
    """Mean Teacher (Tarvainen & Valpola 2017, "Mean teachers are better role models:
    Weight-averaged consistency targets improve semi-supervised deep learning results").

    The teacher is the EMA of the student (the model that is evaluated). Each unlabelled sample
    gets two weak views: the student's class probabilities on the first are pulled towards the
    teacher's on the second by a squared-error consistency cost (mean over classes and
    samples), weighted by ``unsup_weight`` (50) ramped up over the first ``rampup`` (0.4) of the
    run: linearly as the authors' code (USB ``meanteacher.py``, ``unsup_warm_up``) by default,
    ``rampup_shape="sigmoid"`` for the paper's ``exp(-5 (1 - t)^2)``. The gradient of the
    consistency term flows into the student (only the teacher side is detached); USB feeds the
    teacher's logits in the student's place, which leaves the term without gradient: that bug is
    not reproduced (docs/methods/mean_teacher.md).
    """

    unlabelled_views = ("weak", "weak")
    summary = "consistency with an EMA teacher (Tarvainen & Valpola 2017)"

    def __init__(
        self,
        backbone,
        num_classes,
        state,
        *,
        unsup_weight: float = 50.0,
        rampup: float = 0.4,
        rampup_shape: str = "linear",
        **kwargs,
    ):
        super().__init__(backbone, num_classes, state, unsup_weight=unsup_weight, **kwargs)
        if rampup_shape not in RAMPUPS:
            raise ConfigError(
                f"mean_teacher rampup_shape must be one of {sorted(RAMPUPS)}, got "
                f"{rampup_shape!r}: 'linear' is the authors' code (USB), 'sigmoid' the paper"
            )
        self.rampup, self.rampup_shape = float(rampup), rampup_shape

    def forward(self, labelled, unlabelled, progress, *, generator=None):
        student_view, teacher_view = unlabelled["views"]
        logits_l, logits_student = self.forward_all(
            labelled, {**unlabelled, "views": [student_view]}
        )
        with torch.no_grad():
            logits_teacher = self.ema_model(teacher_view)
        sup_loss = self.supervised_loss(logits_l, labelled)
        unsup_loss = softmax_mse(logits_student, logits_teacher)
        weight = self.unsup_weight * RAMPUPS[self.rampup_shape](progress, self.rampup)
        pseudo = logits_teacher.argmax(dim=-1)
        return self.result(
            sup_loss,
            unsup_loss,
            mask=torch.ones_like(pseudo, dtype=torch.float32),
            pseudo_labels=pseudo,
            unlabelled=unlabelled,
            weight=weight,
        )
