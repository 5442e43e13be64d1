"""View recipes: named lists of per-view augmentation specs, applied to whole uint8 batches.

SimCLR (Chen et al. 2020, "A Simple Framework for Contrastive Learning of Visual Representations")
and BYOL (Grill et al. 2020, "Bootstrap Your Own Latent") recipes, and the evaluation transform.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

import torch
import torch.nn.functional as F
from torch import Tensor

from labelless.augment.image import (
    as_pair,
    color_jitter,
    gaussian_blur,
    horizontal_flip,
    normalize,
    random_grayscale,
    random_resized_crop,
    solarize,
    to_float,
)
from labelless.errors import ConfigError, unknown_name


@dataclass(frozen=True)
class ViewSpec:
    """One view's augmentation, SimCLR defaults (Chen et al. 2020, colour strength 0.5).

    Blur defaults to off (``blur_p=0``) because it hurts at CIFAR-like sizes; SimCLR on ImageNet
    uses ``blur_p=0.5``. ``ratio`` is width / height.
    """

    size: int = 224
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip_p: float = 0.5
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1
    grayscale_p: float = 0.2
    blur_p: float = 0.0
    solarize_p: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", tuple(float(v) for v in self.scale))
        object.__setattr__(self, "ratio", tuple(float(v) for v in self.ratio))
        problems = []
        if not (isinstance(self.size, int) and self.size > 0):
            problems.append(f"size must be a positive int, got {self.size!r}")
        if len(self.scale) != 2 or not 0 < self.scale[0] <= self.scale[1] <= 1:
            problems.append(f"scale must be (low, high), 0 < low <= high <= 1, got {self.scale}")
        if len(self.ratio) != 2 or not 0 < self.ratio[0] <= self.ratio[1]:
            problems.append(f"ratio must be (low, high) with 0 < low <= high, got {self.ratio}")
        for name in ("hflip_p", "jitter_p", "grayscale_p", "blur_p", "solarize_p"):
            if not 0 <= getattr(self, name) <= 1:
                problems.append(f"{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("brightness", "contrast", "saturation"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.hue <= 0.5:
            problems.append(f"hue must be in [0, 0.5], got {self.hue}")
        if problems:
            raise ConfigError("invalid view spec: " + "; ".join(problems))


class ViewPipeline:
    """Makes ``len(specs)`` augmented, normalised views of a ``uint8 [N, C, H, W]`` batch.

    Per view: random resized crop, horizontal flip, colour jitter, grayscale, blur, solarize (each
    skipped when its probability is 0), then ``normalize``; outputs are float32 ``channels_last``.
    Float batches in 0..1 are accepted too.
    """

    def __init__(self, specs: Sequence[ViewSpec], mean: Sequence[float], std: Sequence[float]):
        if not specs:
            raise ConfigError("a view pipeline needs at least one ViewSpec")
        if any(s <= 0 for s in std):
            raise ConfigError(f"std values must be > 0, got {list(std)}")
        self.specs = list(specs)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)

    @property
    def num_views(self) -> int:
        return len(self.specs)

    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> list[Tensor]:
        x = to_float(images)
        return [self._view(x, spec, generator) for spec in self.specs]

    def _view(self, x: Tensor, spec: ViewSpec, generator: torch.Generator | None) -> Tensor:
        x = random_resized_crop(
            x, spec.size, scale=spec.scale, ratio=spec.ratio, generator=generator
        )
        if spec.hflip_p > 0:
            x = horizontal_flip(x, spec.hflip_p, generator)
        if spec.jitter_p > 0:
            jitter = (spec.brightness, spec.contrast, spec.saturation, spec.hue)
            x = color_jitter(x, *jitter, p=spec.jitter_p, generator=generator)
        if spec.grayscale_p > 0:
            x = random_grayscale(x, spec.grayscale_p, generator)
        if spec.blur_p > 0:
            x = gaussian_blur(x, spec.blur_p, generator=generator)
        if spec.solarize_p > 0:
            x = solarize(x, spec.solarize_p, generator=generator)
        return normalize(x, self.mean, self.std).contiguous(memory_format=torch.channels_last)

    def __repr__(self) -> str:
        return f"ViewPipeline(num_views={self.num_views}, specs={self.specs})"


_BYOL_JITTER = {"brightness": 0.4, "contrast": 0.4, "saturation": 0.2, "hue": 0.1}

RECIPES: dict[str, tuple[ViewSpec, ...]] = {
    # Chen et al. 2020: two views from the same distribution.
    "simclr": (ViewSpec(), ViewSpec()),
    # Grill et al. 2020, Table 6: asymmetric blur and solarisation.
    "byol": (
        ViewSpec(**_BYOL_JITTER, grayscale_p=0.2, blur_p=1.0, solarize_p=0.0),
        ViewSpec(**_BYOL_JITTER, grayscale_p=0.2, blur_p=0.1, solarize_p=0.2),
    ),
}


def list_recipes() -> list[str]:
    """Names accepted by ``view_recipe``."""
    return sorted(RECIPES)


def view_recipe(
    name: str, *, size: int, mean: Sequence[float], std: Sequence[float], **overrides
) -> ViewPipeline:
    """The named recipe's views at ``size`` pixels; ``overrides`` set ViewSpec fields on every view.

    Example: ``view_recipe("simclr", size=32, mean=m, std=s, blur_p=0.5)``.
    """
    if name not in RECIPES:
        raise unknown_name("view recipe", name, list(RECIPES))
    valid = [f.name for f in fields(ViewSpec) if f.name != "size"]
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise ConfigError(
            f"unknown view override(s) {', '.join(unknown)}; valid fields: {', '.join(valid)}"
        )
    specs = [replace(spec, size=size, **overrides) for spec in RECIPES[name]]
    return ViewPipeline(specs, mean, std)


class EvalTransform:
    """Resize to ``size`` (bilinear, antialiased, no crop), normalise.

    Takes ``uint8 [N, C, H, W]`` (0..255) or float (0..1); returns float32 ``[N, C, size, size]``
    in ``channels_last``. Images already at ``size`` are not resampled.
    """

    def __init__(self, size: int | Sequence[int], mean: Sequence[float], std: Sequence[float]):
        self.size = as_pair(size)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        if any(s <= 0 for s in self.std):
            raise ConfigError(f"std values must be > 0, got {list(self.std)}")

    def __call__(self, images: Tensor) -> Tensor:
        x = to_float(images)
        if tuple(x.shape[-2:]) != self.size:
            x = F.interpolate(
                x, size=self.size, mode="bilinear", align_corners=False, antialias=True
            )
        return normalize(x, self.mean, self.std).contiguous(memory_format=torch.channels_last)

    def __repr__(self) -> str:
        return f"EvalTransform(size={self.size}, mean={self.mean}, std={self.std})"
