"""The method contract and registry.

A method is a plain ``nn.Module`` that owns the backbone and whatever heads and targets it needs:

    forward(views, batch, *, generator=None) -> {"loss": scalar, "embedding"?: [B, D], ...}
    on_step_end(progress)  # after each optimiser step; progress in [0, 1] of the whole run

- ``generator``: every random draw of the step (masks, mixing, a time crop) comes from it. The
  training module passes its checkpointed augmentation generator, so a resumed run draws what
  the uninterrupted run would have; ``None`` draws from the global RNG.
- ``embedding``: backbone features of view 0, without gradient, what monitors read. A method
  that gets them for free returns them always; one that needs an extra forward (MAE, I-JEPA)
  returns them only when ``wants_embedding`` is set (``RankMeMonitor`` sets it). Consumers
  cope with its absence.

``tests/unit/methods/test_contract.py`` checks every registered method against this contract.
It never imports Lightning, so a 20-line PyTorch loop can train it as well as the Trainer.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from labelless.errors import ConfigError, unknown_name

METHODS: dict[str, type[Method]] = {}


class Method(nn.Module):
    """Base class: holds ``backbone`` and declares the default view recipe."""

    default_views: str = "simclr"
    summary: str = ""
    modality: str = "image"  # the data it trains on: "image", "tabular" or "timeseries"
    default_backbone: str | None = None  # None: the modality's default backbone
    default_backbone_kwargs: dict[str, Any] | None = None  # its options when it is the one built
    #: Set by whoever reads ``out["embedding"]`` (``RankMeMonitor``): methods that would need an
    #: extra forward to produce it skip it while this is False.
    wants_embedding: bool = False

    @classmethod
    def backbone_options(cls, input_size: int | None) -> dict[str, Any]:
        """Options of ``default_backbone`` when a run builds it, for inputs of ``input_size``
        (the view side of images; None for data without one): ``default_backbone_kwargs``. A
        method whose default backbone must be sized to the data (a ViT's patch grid) adds them."""
        return dict(cls.default_backbone_kwargs or {})

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        if not hasattr(backbone, "embed_dim"):
            raise ConfigError("the backbone must expose .embed_dim (use labelless.backbones)")
        self.backbone = backbone

    @property
    def embed_dim(self) -> int:
        return int(self.backbone.embed_dim)

    def forward(
        self,
        views: list[torch.Tensor],
        batch: dict[str, Any],
        *,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        raise NotImplementedError(
            f"{type(self).__name__} must implement forward(views, batch, *, generator=None)"
        )

    def on_step_end(self, progress: float) -> None:
        """Hook for EMA targets and other schedules; most methods need nothing here."""

    def constant_lr_parameters(self) -> list[nn.Parameter]:
        """Parameters trained at the base learning rate throughout: the schedule (warm-up,
        decay) leaves them alone. Most methods have none."""
        return []


def forward_grouped(
    encoder: Callable[[torch.Tensor], torch.Tensor],
    views: Sequence[torch.Tensor],
    *,
    group: bool | None = None,
) -> list[torch.Tensor]:
    """``[encoder(view) for view in views]`` with one ``encoder`` call per distinct view shape:
    views of one ``[C, H, W]`` (2 global crops, then the local crops) are concatenated along the
    batch, encoded together and split back, in the original order (the multi-crop forward of
    Caron et al. 2020, SwAV, and 2021, DINO).

    Without BatchNorm this is the per-view forward, fewer and larger calls; with BatchNorm the
    batch statistics are those of the concatenated views (what SimCLR's, SwAV's and DINO's
    released code computes). Each method says in its docstring whether it uses it.

    ``group=None`` groups on accelerators only: there one large call saves kernel launches and
    fills the device, while on a CPU the larger batch runs slower than its parts (ResNet-18-CIFAR
    x0.25 on 2 Xeon threads: 2 x 256 views 0.85x the per-view speed, forward and backward;
    ``bench/grouped_views.py``), so CPU runs keep one call per view and per-view BatchNorm.
    """
    if group is None:
        group = bool(views) and views[0].device.type != "cpu"
    if not group:
        return [encoder(view) for view in views]
    groups: dict[tuple, list[int]] = {}
    for i, view in enumerate(views):
        groups.setdefault((tuple(view.shape[1:]), view.dtype, view.device), []).append(i)
    outputs: list[torch.Tensor | None] = [None] * len(views)
    for members in groups.values():
        if len(members) == 1:
            outputs[members[0]] = encoder(views[members[0]])
            continue
        encoded = encoder(torch.cat([views[i] for i in members]))
        parts = encoded.split([len(views[i]) for i in members])
        for i, part in zip(members, parts, strict=True):
            outputs[i] = part
    return outputs


def check_positive_options(section: str, owner: type, **values: float) -> None:
    """Each of ``values`` (a temperature, a Sinkhorn epsilon: a number that similarities or
    logits are divided by) must be a finite number > 0.

    ``section`` is where the user sets them (``"method.kwargs"``, ``"semi.kwargs"``) and
    ``owner`` the class whose constructor takes them: the ConfigError names the key
    (``method.kwargs.temperature``) and suggests the constructor's default as the fix.
    """
    for name, value in values.items():
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if number and math.isfinite(value) and value > 0:
            continue
        default = inspect.signature(owner.__init__).parameters.get(name)
        example = default.default if default is not None else 0.1
        raise ConfigError(
            f"{section}.{name} must be a number > 0, got {value!r}: it divides similarities or "
            f"logits, so 0 or less is undefined; set e.g. --set {section}.{name}={example} "
            "(the default)"
        )


def register_method(name: str) -> Callable[[type[Method]], type[Method]]:
    """Class decorator adding a method to the registry under ``name``."""

    def add(cls: type[Method]) -> type[Method]:
        if name in METHODS:
            raise ValueError(f"method {name!r} is registered twice")
        cls.name = name
        METHODS[name] = cls
        return cls

    return add


def create_method(name: str, backbone: nn.Module, **kwargs: Any) -> Method:
    """Instantiate a registered method; unknown names and keyword arguments are ConfigErrors."""
    if name not in METHODS:
        raise unknown_name("method", name, list(METHODS))
    cls = METHODS[name]
    try:
        return cls(backbone, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"invalid options for method {name!r}: {exc}") from exc


def list_methods() -> dict[str, str]:
    """Registered method names and their one-line summaries."""
    return {name: METHODS[name].summary for name in sorted(METHODS)}
