"""Distillation losses over embeddings: a student learns from a frozen teacher without labels.

Plain functions, no framework; the teacher's side never carries gradient.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def seed_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    queue: torch.Tensor,
    student_temperature: float = 0.2,
    teacher_temperature: float = 1e-4,
) -> torch.Tensor:
    """SEED's similarity-distribution matching (Fang et al. 2021, "SEED: Self-supervised
    Distillation for Visual Representation", ICLR, eq. 2-4).

    ``student, teacher: [B, D]`` embeddings of the same view (the student's after its projector,
    in the teacher's width), ``queue: [K, D]`` teacher embeddings of earlier batches; all are
    L2-normalised here and the teacher's side is detached. Each sample's anchors are its own
    teacher embedding ``t_i`` followed by the queue, ``D+ = [t_i, q_1 .. q_K]``:

        p^T_i = softmax([t_i . t_i, t_i . q_1, ..., t_i . q_K] / teacher_temperature)
        p^S_i = softmax([s_i . t_i, s_i . q_1, ..., s_i . q_K] / student_temperature)
        loss  = mean_i  sum_j  -p^T_ij log p^S_ij

    (the cross-entropy of the student's distribution under the teacher's; it differs from the
    KL divergence by the teacher's entropy, a constant for the student). With an empty queue
    both distributions are one-hot on ``t_i`` and the loss is 0.
    """
    student = F.normalize(student, dim=1)
    teacher = F.normalize(teacher.detach(), dim=1)
    queue = F.normalize(queue.detach(), dim=1).to(student.dtype)
    student_logits = torch.cat(
        [(student * teacher).sum(dim=1, keepdim=True), student @ queue.T], dim=1
    )
    teacher_logits = torch.cat(
        [(teacher * teacher).sum(dim=1, keepdim=True), teacher @ queue.T], dim=1
    )
    targets = F.softmax(teacher_logits / teacher_temperature, dim=1)
    log_probs = F.log_softmax(student_logits / student_temperature, dim=1)
    return -(targets * log_probs).sum(dim=1).mean()
