"""The semi-supervised algorithm contract and registry.

An algorithm is a plain ``nn.Module`` holding the backbone, a linear classifier, an EMA copy of
both (the model that is evaluated) and the shared ``SampleState``:

    forward(labelled, unlabelled, progress, *, generator=None)
        -> {"loss", "sup_loss", "unsup_loss", "mask_ratio", "pseudo_acc"?, "mask",
            "pseudo_labels", ...}
    on_step_end(progress)   # EMA update and other schedules, after each optimiser step

``labelled = {"views": [weak], "label": [B], "index": [B]}``; ``unlabelled = {"views": [...],
"index": [mu B], "label": [mu B]}`` where ``views`` are the views the algorithm declares in
``unlabelled_views`` (names of augmentation recipes, e.g. ``("weak", "strong")``) and ``label``
holds the true labels only to measure pseudo-label accuracy (-1 when unknown; algorithms never
train on it). Every random draw of a step (MixMatch's MixUp) comes from ``generator``, the
training module's checkpointed augmentation generator (``None``: the global RNG), so a resumed
run draws what the uninterrupted run would have. No Lightning here: a plain PyTorch loop can
train an algorithm. ``tests/unit/semi/test_contract.py`` checks every registered algorithm.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from labelless.errors import ConfigError, unknown_name
from labelless.nn.ema import EMA
from labelless.semi.losses import cross_entropy
from labelless.semi.state import SampleState

ALGORITHMS: dict[str, type[SemiAlgorithm]] = {}


class Classifier(nn.Module):
    """Backbone followed by a linear layer: normalised images ``[N, C, H, W]`` -> logits."""

    def __init__(self, backbone: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(int(backbone.embed_dim), num_classes)

    def forward(self, images: Tensor) -> Tensor:
        return self.head(self.backbone(images))


class SemiAlgorithm(nn.Module):
    """Base class: the student ``model``, its EMA ``ema_model`` and the ``state`` store.

    ``unlabelled_views`` names the views made of each unlabelled batch (empty: the algorithm
    uses labels only); ``fixmatch_family`` marks algorithms that SAA can extend (they return
    per-sample unlabelled losses under ``"unsup_per_sample"``).

    ``separate_targets`` (default True): ``forward_all`` runs the ``target_views`` (the weak
    view of the FixMatch family) in a second forward without autograd instead of inside the
    concatenated training batch: the backward pass then skips them (a FixMatch step at mu 3 is
    about 30% cheaper on a CPU) and their BatchNorm batch statistics come from their own batch.
    False: one forward over every view, as in Sohn et al. 2020.
    """

    unlabelled_views: tuple[str, ...] = ("weak", "strong")
    #: Unlabelled views whose outputs the algorithm only reads as targets (detached).
    target_views: tuple[str, ...] = ()
    fixmatch_family: bool = False
    open_set: bool = False
    summary: str = ""
    name: str = ""

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        state: SampleState,
        *,
        ema_momentum: float = 0.999,
        unsup_weight: float = 1.0,
        separate_targets: bool = True,
    ) -> None:
        super().__init__()
        if not hasattr(backbone, "embed_dim"):
            raise ConfigError("the backbone must expose .embed_dim (use labelless.backbones)")
        if not 0.0 <= ema_momentum < 1.0:
            raise ConfigError(f"ema_momentum must be in [0, 1), got {ema_momentum}")
        self.num_classes = int(num_classes)
        self.model = self.build_model(backbone)
        self.ema = EMA(self.model, float(ema_momentum), schedule="warmup")
        self.state = state
        self.unsup_weight = float(unsup_weight)
        self.separate_targets = bool(separate_targets)
        self.register_load_state_dict_pre_hook(_rename_ema_updates)

    @classmethod
    def check_run(cls, options: dict[str, Any], *, pretrained: bool) -> None:
        """Refuse, before anything is written, options this run cannot honour (``options``:
        the algorithm's keyword options; ``pretrained``: the run starts from ``--init``)."""

    def build_model(self, backbone: nn.Module) -> nn.Module:
        """The trained network; algorithms with extra heads override this."""
        return Classifier(backbone, self.num_classes)

    @property
    def backbone(self) -> nn.Module:
        return self.model.backbone

    @property
    def ema_model(self) -> nn.Module:
        return self.ema.target

    def logits(self, images: Tensor) -> Tensor:
        return self.model(images)

    def forward(
        self,
        labelled: dict[str, Any],
        unlabelled: dict[str, Any],
        progress: float,
        *,
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        raise NotImplementedError(f"{type(self).__name__} must implement forward")

    def predict(self, images: Tensor) -> Tensor:
        """Class logits of the EMA model over the known classes (evaluation)."""
        out = self.ema_model(images)
        return out[0] if isinstance(out, tuple) else out

    def outlier_score_from_embeddings(self, embeddings: Tensor, model: nn.Module) -> Tensor:
        """Open-set algorithms: per-sample score from backbone embeddings ``[N, D]`` of
        ``model`` (the EMA model at evaluation), higher = more likely an unknown class."""
        raise NotImplementedError(f"{type(self).__name__} has no outlier score")

    def on_step_end(self, progress: float) -> None:
        """EMA update with a warm-up ``min(m, (1 + n) / (10 + n))`` over the first updates (as
        TensorFlow's ExponentialMovingAverage), so a short run's EMA is not stuck at init."""
        self.ema.step(self.model, progress)

    def on_epoch_end(self) -> None:
        """Per-epoch bookkeeping (none by default)."""

    # Helpers shared by the algorithms -------------------------------------------------------

    def forward_all(self, labelled: dict, unlabelled: dict, model=None) -> tuple[Tensor, ...]:
        """The labelled weak view and every unlabelled view through ``model``; returns
        ``(labelled_logits, *unlabelled_logits)`` in that order.

        The trained views go through one concatenated forward (one BatchNorm batch, as FixMatch
        does); with ``separate_targets`` the ``target_views`` go through a second one under
        ``torch.no_grad()`` (their outputs carry no graph), else they join the first."""
        model = model or self.model
        views = [labelled["views"][0], *unlabelled["views"]]
        targets = set()
        if self.separate_targets and len(unlabelled["views"]) == len(self.unlabelled_views):
            names = self.unlabelled_views
            targets = {1 + i for i, name in enumerate(names) if name in self.target_views}
        trained = [i for i in range(len(views)) if i not in targets]
        outputs = dict(
            zip(trained, _forward_views(model, [views[i] for i in trained]), strict=True)
        )
        if targets:
            order = sorted(targets)
            with torch.no_grad():
                found = _forward_views(model, [views[i] for i in order])
            outputs.update(zip(order, found, strict=True))
        return tuple(outputs[i] for i in range(len(views)))

    def supervised_loss(self, logits: Tensor, labelled: dict) -> Tensor:
        return cross_entropy(logits, labelled["label"]).mean()

    def result(
        self,
        sup_loss: Tensor,
        unsup_loss: Tensor,
        *,
        mask: Tensor | None = None,
        pseudo_labels: Tensor | None = None,
        unlabelled: dict | None = None,
        weight: float | None = None,
        **extra: Tensor,
    ) -> dict[str, Tensor]:
        """The output dict: total loss ``sup + weight * unsup``, the mask ratio (mean of the
        per-sample weights) and the accuracy of the masked pseudo-labels where the true label
        is a known class."""
        weight = self.unsup_weight if weight is None else weight
        out = {
            "loss": sup_loss + weight * unsup_loss,
            "sup_loss": sup_loss.detach(),
            "unsup_loss": unsup_loss.detach(),
            **extra,
        }
        if mask is not None:
            mask = mask.detach().float()
            out["mask"] = mask
            out["mask_ratio"] = mask.mean()
        if pseudo_labels is not None:
            out["pseudo_labels"] = pseudo_labels.detach()
            if unlabelled is not None and mask is not None:
                out.update(pseudo_accuracy(pseudo_labels, unlabelled["label"], mask))
        return out


def pseudo_accuracy(pseudo: Tensor, truth: Tensor, mask: Tensor) -> dict[str, Tensor]:
    """Mask-weighted accuracy of pseudo-labels on samples whose true label is known, and of all
    pseudo-labels (``pseudo_acc_all``); outliers (true class outside the classifier) count as
    wrong. NaN-free: absent when no sample qualifies."""
    known = truth >= 0
    out: dict[str, Tensor] = {}
    if not bool(known.any()):
        return out
    correct = (pseudo == truth).float()
    out["pseudo_acc_all"] = correct[known].mean()
    weights = mask * known.float()
    if float(weights.sum()) > 0:
        out["pseudo_acc"] = (correct * weights).sum() / weights.sum()
    return out


def register_algorithm(name: str) -> Callable[[type[SemiAlgorithm]], type[SemiAlgorithm]]:
    """Class decorator adding an algorithm to the registry under ``name``."""

    def add(cls: type[SemiAlgorithm]) -> type[SemiAlgorithm]:
        if name in ALGORITHMS:
            raise ValueError(f"semi-supervised algorithm {name!r} is registered twice")
        cls.name = name
        ALGORITHMS[name] = cls
        return cls

    return add


def create_algorithm(
    name: str, backbone: nn.Module, num_classes: int, state: SampleState, **kwargs: Any
) -> SemiAlgorithm:
    """Instantiate a registered algorithm; unknown names and options are ConfigErrors."""
    if name not in ALGORITHMS:
        raise unknown_name("semi-supervised method", name, list(ALGORITHMS))
    try:
        return ALGORITHMS[name](backbone, num_classes, state, **kwargs)
    except TypeError as exc:
        raise ConfigError(
            f"invalid options for semi-supervised method {name!r}: {exc}; see its card in "
            f"docs/methods/{name}.md"
        ) from exc


def list_algorithms() -> dict[str, str]:
    return {name: ALGORITHMS[name].summary for name in sorted(ALGORITHMS)}


def _rename_ema_updates(module: nn.Module, state_dict: dict, prefix: str, *args: Any) -> None:
    """Checkpoints written before the EMA counted its own updates kept ``ema_updates``."""
    old = prefix + "ema_updates"
    if old in state_dict:
        state_dict[prefix + "ema.updates"] = state_dict.pop(old)


def _forward_views(model: nn.Module, views: list[Tensor]) -> list:
    """``model`` over the views concatenated, its output split back per view (a tuple of
    tensors per view for models with extra heads)."""
    sizes = [len(v) for v in views]
    outputs = model(torch.cat(views))
    if isinstance(outputs, tuple):
        return list(zip(*[o.split(sizes) for o in outputs], strict=True))
    return list(outputs.split(sizes))
