"""``mean_teacher``: consistency with an EMA teacher."""

from __future__ import annotations

import torch

from labelless.semi.algorithms.base import SemiAlgorithm, register_algorithm
from labelless.semi.losses import sigmoid_rampup, softmax_mse


@register_algorithm("mean_teacher")
class MeanTeacher(SemiAlgorithm):
    """Mean Teacher (Tarvainen & Valpola 2017, "Mean teachers are better role models:
    Weight-averaged consistency targets improve semi-supervised deep learning results").

    The teacher is the EMA of the student (the model that is evaluated). Each unlabelled sample
    gets two weak views: the student's class probabilities on the first are pulled towards the
    teacher's on the second by a squared-error consistency cost, weighted by
    ``unsup_weight * exp(-5 (1 - t)^2)`` over the first ``rampup`` of the run. The gradient of
    the consistency term flows into the student (only the teacher side is detached); a
    student forward under ``no_grad`` would silently turn this into supervised training.
    """

    unlabelled_views = ("weak", "weak")
    summary = "consistency with an EMA teacher (Tarvainen & Valpola 2017)"

    def __init__(self, backbone, num_classes, state, *, unsup_weight=50.0, rampup=0.3, **kwargs):
        super().__init__(backbone, num_classes, state, unsup_weight=unsup_weight, **kwargs)
        self.rampup = float(rampup)

    def forward(self, labelled, unlabelled, progress, *, generator=None):
        student_view, teacher_view = unlabelled["views"]
        logits_l, logits_student = self.forward_all(
            labelled, {**unlabelled, "views": [student_view]}
        )
        with torch.no_grad():
            logits_teacher = self.ema_model(teacher_view)
        sup_loss = self.supervised_loss(logits_l, labelled)
        unsup_loss = softmax_mse(logits_student, logits_teacher)
        weight = self.unsup_weight * sigmoid_rampup(progress, self.rampup)
        pseudo = logits_teacher.argmax(dim=-1)
        return self.result(
            sup_loss,
            unsup_loss,
            mask=torch.ones_like(pseudo, dtype=torch.float32),
            pseudo_labels=pseudo,
            unlabelled=unlabelled,
            weight=weight,
        )
