"""Label-free distillation: a student backbone learns from a frozen teacher encoder.

- ``seed``: Fang, Wang, Wang, Zhang, Yang, Liu. "SEED: Self-supervised Distillation for Visual
  Representation", ICLR 2021: the student's similarity distribution over a queue of teacher
  embeddings matches the teacher's.
- ``cosine_distill``: feature regression through a projector, the student's projected features
  against the teacher's embedding by negative cosine similarity (SimReg, Navaneet et al. 2021,
  "SimReg: Regression as a Simple Yet Effective Tool for Self-supervised Knowledge
  Distillation"; the label-free distillation of off-the-shelf teachers of Cui et al. 2021,
  "Beyond Self-Supervision", done on features instead of class probabilities).

Either can add the student's own self-supervised loss (``ssl_method``, any registered method
built on the same backbone, weighted by ``ssl_weight``). The teacher is held by the method but
never trained: parameters without gradient (so no optimiser sees them), eval mode whatever the
method's mode (its BatchNorm statistics stay), no autograd graph. It sees the student's views,
resized and normalised for its own recorded preprocessing when ``teacher_inputs`` (an
``augment.retarget.Retarget``) is given. ``labelless distill`` builds all of this.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from labelless.errors import ConfigError
from labelless.methods.base import (
    METHODS,
    Method,
    check_positive_options,
    create_method,
    register_method,
)
from labelless.methods.queue import EmbeddingQueue
from labelless.nn.heads import mlp
from labelless.nn.losses import negative_cosine
from labelless.nn.losses_distill import seed_loss


class FrozenTeacher(nn.Module):
    """``encoder`` frozen: no parameter requires gradient, ``train()`` keeps it in eval mode, and
    its forward runs without autograd. ``inputs`` (optional) prepares the student's views for it."""

    def __init__(self, encoder: nn.Module, inputs: nn.Module | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.inputs = inputs
        for param in self.encoder.parameters():
            param.requires_grad_(False)
        super().train(False)

    @property
    def embed_dim(self) -> int:
        return int(self.encoder.embed_dim)

    def train(self, mode: bool = True) -> FrozenTeacher:
        return super().train(False)

    @torch.no_grad()
    def forward(self, views: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.inputs(views) if self.inputs is not None else views)


class DistillationMethod(Method):
    """A frozen ``teacher`` (an encoder with ``.embed_dim``), the distillation loss of the
    subclass on view 0 (``distill_loss(features, teacher_embeddings)``) and, with
    ``ssl_method``, ``ssl_weight`` x that method's loss on the same backbone and views."""

    default_views = "moco"  # SEED distils on MoCo v2's augmentations (Fang et al. 2021, sec. 4)

    def __init__(
        self,
        backbone: nn.Module,
        *,
        teacher: nn.Module | None = None,
        teacher_inputs: nn.Module | None = None,
        ssl_method: str | None = None,
        ssl_weight: float = 1.0,
        ssl_kwargs: dict[str, Any] | None = None,
        pseudo_label_clusters: int = 0,
        pseudo_label_weight: float = 1.0,
    ) -> None:
        super().__init__(backbone)
        if not isinstance(teacher, nn.Module) or not hasattr(teacher, "embed_dim"):
            raise ConfigError(
                f"method {self.name!r} distils a teacher encoder, and got {type(teacher).__name__}"
                f": run `labelless distill TEACHER --objective {self.name}` (TEACHER: a run "
                "directory, an encoder.safetensors or timm:NAME --teacher-weights FILE), or pass "
                "teacher=<encoder module> in Python"
            )
        self.teacher = FrozenTeacher(teacher, teacher_inputs)
        # set_target_cache: the teacher's embedding of every training sample, computed once
        self.register_buffer("target_cache", None, persistent=False)
        # UNFUSED's step 2 (Seth et al. 2023): a head classifies the student's features into
        # the k-means clusters of the teacher's embeddings (set_pseudo_labels)
        self.register_buffer("pseudo_labels", None, persistent=False)
        self.cluster_head: nn.Linear | None = None
        if pseudo_label_clusters:
            if isinstance(pseudo_label_clusters, bool) or not (
                isinstance(pseudo_label_clusters, int) and pseudo_label_clusters >= 2
            ):
                raise ConfigError(
                    "method.kwargs.pseudo_label_clusters must be a whole number >= 2 (k-means "
                    f"clusters of the teacher's embeddings), got {pseudo_label_clusters!r}"
                )
            if not pseudo_label_weight >= 0:
                raise ConfigError(
                    f"method.kwargs.pseudo_label_weight must be >= 0, got {pseudo_label_weight!r}"
                )
            self.cluster_head = nn.Linear(self.embed_dim, pseudo_label_clusters)
        self.pseudo_label_weight = float(pseudo_label_weight)
        self.ssl: Method | None = None
        self.ssl_weight = float(ssl_weight)
        if ssl_method:
            if isinstance(METHODS.get(ssl_method), type) and issubclass(
                METHODS[ssl_method], DistillationMethod
            ):
                raise ConfigError(
                    f"method.kwargs.ssl_method {ssl_method!r} is a distillation objective; give "
                    "the student's own self-supervised method (e.g. simclr, byol)"
                )
            if not ssl_weight >= 0:
                raise ConfigError(f"method.kwargs.ssl_weight must be >= 0, got {ssl_weight!r}")
            self.ssl = create_method(ssl_method, backbone, **(ssl_kwargs or {}))

    @property
    def teacher_dim(self) -> int:
        return self.teacher.embed_dim

    def distill_loss(self, features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def set_target_cache(self, embeddings: torch.Tensor | None) -> None:
        """Distil towards ``embeddings[i]`` (``[N, teacher width]``, row i the teacher's embedding
        of training sample i, un-augmented) for a batch's sample ``i`` instead of running the
        teacher on the student's view: no teacher forward per step, at the price of a target that
        does not follow the view (the student learns to map every view of an image to the
        teacher's embedding of the image). None goes back to the teacher online."""
        if embeddings is not None and (
            embeddings.ndim != 2 or embeddings.shape[1] != self.teacher_dim
        ):
            raise ConfigError(
                f"the teacher's cached embeddings have shape {tuple(embeddings.shape)}; "
                f"expected [samples, {self.teacher_dim}] (the teacher's width)"
            )
        self.target_cache = None if embeddings is None else embeddings.detach().float()

    def teacher_targets(self, view: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        """The teacher's embeddings the student's features of ``view`` learn from: the cached
        rows of the batch's samples (``set_target_cache``), else the teacher's of ``view``."""
        if self.target_cache is None:
            return self.teacher(view)
        index = batch["index"].to(self.target_cache.device)
        return self.target_cache[index].to(view.device)

    def set_pseudo_labels(self, labels: torch.Tensor | None) -> None:
        """``labels[i]``: the cluster of training sample i (int64 ``[N]``, in
        ``[0, pseudo_label_clusters)``), which the cluster head learns to predict from the
        student's features of i's views (cross-entropy, weight ``pseudo_label_weight``)."""
        if labels is not None:
            labels = torch.as_tensor(labels).long()
            clusters = self.cluster_head.out_features if self.cluster_head is not None else 0
            if labels.ndim != 1 or (len(labels) and int(labels.min()) < 0):
                raise ConfigError(f"pseudo-labels must be [samples] >= 0, got {labels.shape}")
            if not clusters or (len(labels) and int(labels.max()) >= clusters):
                raise ConfigError(
                    f"pseudo-labels need method.kwargs.pseudo_label_clusters > their largest "
                    f"label; it is {clusters}"
                )
        self.pseudo_labels = labels

    def forward(self, views, batch, *, generator=None):
        features = self.backbone(views[0])
        targets = self.teacher_targets(views[0], batch)
        loss = self.distill_loss(features, targets)
        out = {"distill_loss": loss.detach()}
        if self.cluster_head is not None:
            if self.pseudo_labels is None:
                raise ConfigError(
                    "pseudo_label_clusters is set but no pseudo-labels were given: "
                    "`labelless distill` clusters the teacher's embeddings itself; in Python "
                    "call method.set_pseudo_labels(labels)"
                )
            labels = self.pseudo_labels[batch["index"].to(self.pseudo_labels.device)]
            own = F.cross_entropy(self.cluster_head(features), labels.to(features.device))
            out["pseudo_label_loss"] = own.detach()
            loss = loss + self.pseudo_label_weight * own
        if self.ssl is not None:
            own = self.ssl(views, batch, generator=generator)["loss"]
            out["ssl_loss"] = own.detach()
            loss = loss + self.ssl_weight * own
        return {**out, "loss": loss, "embedding": features.detach()}

    def on_step_end(self, progress: float) -> None:
        if self.ssl is not None:
            self.ssl.on_step_end(progress)

    def constant_lr_parameters(self) -> list[nn.Parameter]:
        return self.ssl.constant_lr_parameters() if self.ssl is not None else []


@register_method("seed")
class SEED(DistillationMethod):
    """SEED (Fang et al. 2021): the student's features, projected to the teacher's width by an
    MLP (the released code's student head: Linear, ReLU, Linear, no BatchNorm), and the
    teacher's embedding of the same view give two softmax distributions over ``[the teacher's
    own embedding, the queue]``; the loss is their cross-entropy (``nn.losses_distill.seed_loss``).
    The queue holds L2-normalised teacher embeddings of earlier batches, gathered from every
    process after the loss read it (``methods.queue.EmbeddingQueue``, checkpointed). Defaults
    are the released code's: queue 65536, student temperature 0.2, teacher temperature 1e-4."""

    summary = (
        "distillation: match a frozen teacher's similarity distribution over a queue (Fang 2021)"
    )

    def __init__(
        self,
        backbone: nn.Module,
        *,
        teacher: nn.Module | None = None,
        proj_hidden_dim: int | None = None,
        queue_size: int = 65536,
        student_temperature: float = 0.2,
        teacher_temperature: float = 1e-4,
        **common: Any,
    ) -> None:
        super().__init__(backbone, teacher=teacher, **common)
        check_positive_options(
            "method.kwargs",
            type(self),
            student_temperature=student_temperature,
            teacher_temperature=teacher_temperature,
        )
        hidden = proj_hidden_dim or self.embed_dim
        self.projector = mlp([self.embed_dim, hidden, self.teacher_dim], norm="none")
        self.queue = EmbeddingQueue(queue_size, self.teacher_dim)
        self.student_temperature = student_temperature
        self.teacher_temperature = teacher_temperature

    def distill_loss(self, features, targets):
        loss = seed_loss(
            self.projector(features),
            targets,
            self.queue.filled(),
            self.student_temperature,
            self.teacher_temperature,
        )
        if self.training:  # after the loss read the queue: a key is never its own negative
            self.queue.push(F.normalize(targets, dim=1))
        return loss


@register_method("cosine_distill")
class CosineDistill(DistillationMethod):
    """Feature distillation (SimReg, Navaneet et al., BMVC 2021): the student's features through an
    MLP projector (BatchNorm, ``[embed_dim, proj_hidden_dim, teacher width]``, dropped after
    training) regress the teacher's embedding of the same view by negative cosine similarity
    (``nn.losses.negative_cosine``; -1 when the directions agree)."""

    summary = "distillation: projected student features regress a frozen teacher's (cosine, 2021)"

    def __init__(
        self,
        backbone: nn.Module,
        *,
        teacher: nn.Module | None = None,
        proj_hidden_dim: int = 2048,
        **common: Any,
    ) -> None:
        super().__init__(backbone, teacher=teacher, **common)
        self.projector = mlp([self.embed_dim, proj_hidden_dim, self.teacher_dim], norm="bn")

    def distill_loss(self, features, targets):
        return negative_cosine(self.projector(features), targets)
