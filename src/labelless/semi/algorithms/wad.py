"""``wad``: Weight-Aware Distillation under class distribution mismatch (Du et al. 2023).

Pan Du, Suyun Zhao, Zisen Sheng, Cuiping Li, Hong Chen. "Semi-Supervised Learning via
Weight-aware Distillation under Class Distribution Mismatch", ICCV 2023 (arXiv 2308.11874).
The formulas follow the authors' release (github.com/RUC-DWBI-ML/research, ``WAD-master``:
``evals/eval.py`` for the weights and pseudo-labels, ``SSL/train/train.py`` for the loss,
``distillation_main.py`` for the rounds); docs/methods/wad.md lists what we had to fill in.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor

from labelless.errors import ConfigError
from labelless.semi.algorithms.base import SemiAlgorithm, register_algorithm
from labelless.semi.losses import cross_entropy

EMBEDDING = "wad_embedding"  # the teacher's L2-normalised embedding of each sample seen
BANK_LABEL = "wad_bank_label"  # class of a sample in the reference set (-1: not in it)
PSEUDO = "wad_pseudo"  # the last PMI pseudo-label of each unlabelled sample
STUDENT_LOSS = "wad_student_loss"  # the student's last cross-entropy against it (inf: unseen)
TEACHERS = ("init", "ema")


def pmi_scores(embeddings: Tensor, bank: Tensor, bank_labels: Tensor, num_classes: int) -> Tensor:
    """Per-class PMI scores ``[B, K]`` of ``embeddings [B, D]`` against a reference set.

    ``s_k(x) = max_{x' in bank, y(x') = k} cos(z(x), z(x'))`` (authors' ``get_scores``): under
    a contrastive (InfoNCE) teacher the cosine similarity is, up to temperature and a constant,
    an estimate of the point-wise mutual information of the two samples, so ``s_k`` is the PMI
    of ``x`` with its most related reference sample of class ``k``. ``bank [M, D]`` and
    ``embeddings`` are L2-normalised; ``bank_labels [M]`` in ``0..K-1``. A class without
    reference samples scores -1, the lowest cosine.
    """
    similarity = embeddings @ bank.T
    scores = similarity.new_full((len(embeddings), num_classes), -1.0)
    index = bank_labels.view(1, -1).expand_as(similarity)
    return scores.scatter_reduce(1, index, similarity, reduce="amax", include_self=True)


def pmi_weights(scores: Tensor) -> tuple[Tensor, Tensor]:
    """WAD's adaptive weight and pseudo-label from PMI scores ``[B, K]`` (``K >= 2``).

    ``w = s_(1) (1 - s_(2) / s_(1)) = s_(1) - s_(2)``: the gap between the largest and second
    largest class score; ``y_hat = argmax_k s_k``. A sample of a known class is close to one
    class (large gap); one of an unknown class is about as far from all of them (small gap).
    Returns ``(weights [B], pseudo_labels [B])``.
    """
    top = scores.topk(2, dim=-1)
    return top.values[:, 0] - top.values[:, 1], top.indices[:, 0]


def polynomial_decay(step: int, start: float, steps: int, power: float = 2.0) -> float:
    """``start (1 - min(step, steps) / steps) ** power`` (the fraction promoted per round)."""
    return start * (1.0 - min(step, steps) / steps) ** power


@register_algorithm("wad")
class WAD(SemiAlgorithm):
    """WAD (Du et al. 2023, "Semi-Supervised Learning via Weight-aware Distillation under
    Class Distribution Mismatch", ICCV).

    A teacher representation (``teacher="init"``: a frozen copy of the backbone as the run
    received it, the contrastive encoder given by ``--init`` as in the paper; ``"ema"``: the EMA
    model's backbone) embeds every view. The labelled samples form the reference set; each
    unlabelled sample gets per-class PMI scores (``pmi_scores``), the pseudo-label ``argmax`` and
    the weight ``s_(1) - s_(2)`` (``pmi_weights``), so samples of unknown classes count little.
    Loss: labelled cross-entropy + ``mean_u w_u CE(f(x_u), y_hat_u)`` (the weighted
    distillation). Training is cut into ``rounds + 1`` equal phases; at the end of phase ``r``
    the fraction ``alpha (1 - r / rounds) ** 2`` of the remaining unlabelled samples whose
    student loss against their pseudo-label is lowest joins the reference set with that label
    and from then on is trained on it with weight 1, as the labelled data.
    """

    open_set = True
    unlabelled_views = ("weak",)

    @classmethod
    def check_run(cls, options, *, pretrained):
        if options.get("teacher", "init") == "init" and not pretrained:
            raise ConfigError(
                "wad's teacher (teacher: init) is the encoder the run starts from, and this run "
                "has no --init, so it would be a frozen random network: pass --init with a "
                "self-supervised encoder (e.g. a labelless pretrain run), or set "
                "semi.kwargs.teacher: ema to use the EMA model"
            )

    summary = "PMI-weighted distillation from a representation (Du et al. 2023)"

    def __init__(
        self,
        backbone,
        num_classes,
        state,
        *,
        teacher: str = "init",
        rounds: int = 5,
        alpha: float = 0.1,
        **kwargs,
    ):
        if teacher not in TEACHERS:
            raise ConfigError(f"wad teacher must be one of {TEACHERS}, got {teacher!r}")
        if num_classes < 2:
            raise ConfigError(f"wad needs at least 2 known classes, got {num_classes}")
        if rounds < 1 or not 0.0 <= alpha <= 1.0:
            raise ConfigError(f"wad needs rounds >= 1 and alpha in [0, 1], got {rounds}, {alpha}")
        frozen = copy.deepcopy(backbone) if teacher == "init" else None
        super().__init__(backbone, num_classes, state, **kwargs)
        self.teacher_name, self.rounds, self.alpha = teacher, int(rounds), float(alpha)
        self.frozen_teacher = frozen
        if frozen is not None:
            frozen.requires_grad_(False).eval()
        self.register_buffer("rounds_done", torch.zeros((), dtype=torch.long))
        state.add(EMBEDDING, fill=0.0, shape=(int(backbone.embed_dim),))
        state.add(BANK_LABEL, fill=-1, dtype=torch.long)
        state.add(PSEUDO, fill=-1, dtype=torch.long)
        state.add(STUDENT_LOSS, fill=float("inf"))

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen_teacher is not None:  # a fixed representation: BatchNorm stays in eval
            self.frozen_teacher.eval()
        return self

    @torch.no_grad()
    def teacher_embeddings(self, images: Tensor) -> Tensor:
        """L2-normalised teacher embeddings ``[N, D]``."""
        teacher = self.frozen_teacher
        if teacher is None:
            teacher = self.ema_model.backbone
        return F.normalize(teacher(images).float(), dim=-1)

    @torch.no_grad()
    def reference_set(self) -> tuple[Tensor, Tensor]:
        """Teacher embeddings ``[M, D]`` and classes ``[M]`` of the reference samples."""
        labels = self.state[BANK_LABEL]
        members = (labels >= 0).nonzero().squeeze(1)
        return self.state[EMBEDDING][members], labels[members]

    def forward(self, labelled, unlabelled, progress, *, generator=None):
        logits_l, logits_u = self.forward_all(labelled, unlabelled)
        sup_loss = self.supervised_loss(logits_l, labelled)
        index = unlabelled["index"]
        with torch.no_grad():
            reference = self.teacher_embeddings(labelled["views"][0])
            self.state.write(EMBEDDING, labelled["index"], reference)
            self.state.write(BANK_LABEL, labelled["index"], labelled["label"])
            embeddings = self.teacher_embeddings(unlabelled["views"][0])
            bank, bank_labels = self.reference_set()
            weights, pseudo = pmi_weights(
                pmi_scores(embeddings, bank.to(embeddings), bank_labels, self.num_classes)
            )
            promoted = self.state[BANK_LABEL][index]
            is_promoted = promoted >= 0
            targets = torch.where(is_promoted, promoted, pseudo)
            weights = torch.where(is_promoted, torch.ones_like(weights), weights)
        per_sample = cross_entropy(logits_u, targets)
        unsup_loss = (weights * per_sample).mean()
        with torch.no_grad():
            self.state.write(EMBEDDING, index, embeddings)
            self.state.write(PSEUDO, index, pseudo)
            self.state.write(STUDENT_LOSS, index, per_sample.float())
        return self.result(
            sup_loss,
            unsup_loss,
            mask=weights.clamp(0.0, 1.0),
            pseudo_labels=targets,
            unlabelled=unlabelled,
            pmi_weight=weights.mean().detach(),
            promoted_fraction=is_promoted.float().mean(),
        )

    def on_step_end(self, progress: float) -> None:
        super().on_step_end(progress)
        due = min(int(progress * (self.rounds + 1) + 1e-9), self.rounds)
        while int(self.rounds_done) < due:
            self.rounds_done += 1
            self.promote(polynomial_decay(int(self.rounds_done), self.alpha, self.rounds))

    @torch.no_grad()
    def promote(self, fraction: float) -> Tensor:
        """Move the ``fraction`` of remaining unlabelled samples with the lowest student loss
        against their pseudo-label into the reference set; returns their indices."""
        labels = self.state[BANK_LABEL]
        remaining = self.state.unlabelled & (labels < 0)
        loss = self.state[STUDENT_LOSS].masked_fill(~remaining, float("inf"))
        count = min(int(fraction * int(remaining.sum())), int(torch.isfinite(loss).sum()))
        chosen = loss.topk(count, largest=False).indices if count > 0 else loss.new_zeros(0).long()
        labels[chosen] = self.state[PSEUDO][chosen]
        return chosen

    def outlier_score_from_embeddings(self, embeddings, model):
        """``1 - (p_(1) - p_(2))``: one minus the gap of the classifier's two largest
        probabilities, the form of WAD's weight on the distilled classifier (our choice, the
        paper reports closed-set accuracy only)."""
        with torch.no_grad():
            top = F.softmax(model.head(embeddings).float(), dim=-1).topk(2, dim=-1).values
        return 1.0 - (top[:, 0] - top[:, 1])
