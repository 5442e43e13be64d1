"""View recipes: named lists of per-view augmentation specs, applied to whole uint8 batches.

Recipes follow their papers: SimCLR (Chen et al. 2020), BYOL (Grill et al. 2020, Table 6), Barlow
Twins (Zbontar et al. 2021) and VICReg (Bardes et al. 2022) with BYOL's asymmetric views, MoCo v2
(Chen et al. 2020, "Improved baselines"), DINO (Caron et al. 2021) and SwAV (Caron et al. 2020)
multi-crop, and FixMatch's weak / strong views (Sohn et al. 2020) with RandAugment (Cubuk et al.
2020) and Cutout (DeVries & Taylor 2017).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields, replace
from typing import Any

import torch
from torch import Tensor

from labelless.augment.common import check_images
from labelless.augment.engine import apply_view, chunk_size, draw_view
from labelless.augment.image import check_stats, resize_center_crop  # noqa: F401 (re-exported)
from labelless.augment.spec import ViewSpec
from labelless.errors import ConfigError, unknown_name


class ViewPipeline:
    """Makes ``len(specs)`` augmented, normalised views of a ``uint8 [N, C, H, W]`` batch.

    Per view, in this order (each skipped when off): crop, horizontal / vertical flip, colour
    jitter, grayscale, blur, solarize, RandAugment, cutout, batch style standardisation, then
    ``normalize``; outputs are float32 ``channels_last``. Float batches in 0..1 are accepted too.

    Each view's random parameters are drawn for the whole batch first (``engine.draw_view``),
    then all of its ops run chunk by chunk (``engine.apply_view``): ``chunk_size`` samples at a
    time, by default as many as fit in ``engine.CHUNK_BYTES`` (4 MiB) of float32 on CPU (the
    whole batch on other devices). The output does not depend on the chunk size.
    """

    def __init__(
        self,
        specs: Sequence[ViewSpec],
        mean: Sequence[float],
        std: Sequence[float],
        *,
        chunk_size: int | None = None,
    ):
        if not specs:
            raise ConfigError("a view pipeline needs at least one ViewSpec")
        if any(s <= 0 for s in std):
            raise ConfigError(f"std values must be > 0, got {list(std)}")
        if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
            raise ConfigError(f"chunk_size must be a positive int or None, got {chunk_size!r}")
        self.specs = list(specs)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.chunk_size = chunk_size

    @property
    def num_views(self) -> int:
        return len(self.specs)

    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> list[Tensor]:
        n, channels = check_images(images).shape[:2]
        check_stats(channels, self.mean, self.std)
        views = []
        for spec in self.specs:
            draws = draw_view(spec, images.shape, generator, images.device)
            out = torch.empty(
                (n, channels, spec.size, spec.size),
                dtype=torch.float32,
                device=images.device,
                memory_format=torch.channels_last,
            )
            step = chunk_size(spec, images, self.chunk_size)
            for start in range(0, n, step):
                rows = slice(start, min(start + step, n))
                chunk, target = images[rows], out[rows]
                apply_view(chunk, spec, draws, rows, target, self.mean, self.std, generator)
            views.append(out)
        return views

    def __repr__(self) -> str:
        return f"ViewPipeline(num_views={self.num_views}, specs={self.specs})"


_OFF = {"jitter_p": 0.0, "grayscale_p": 0.0}
_BYOL_JITTER = {"brightness": 0.4, "contrast": 0.4, "saturation": 0.2, "hue": 0.1}
_BYOL = (
    ViewSpec(**_BYOL_JITTER, grayscale_p=0.2, blur_p=1.0, solarize_p=0.0),
    ViewSpec(**_BYOL_JITTER, grayscale_p=0.2, blur_p=0.1, solarize_p=0.2),
)
_LOCAL = 96 / 224  # multi-crop: local views are 96 px where global ones are 224 px
_SWAV_JITTER = {"brightness": 0.8, "contrast": 0.8, "saturation": 0.8, "hue": 0.2}
_WEAK = ViewSpec(crop="pad", padding=0.125, hflip_p=0.5, **_OFF)


def _multi_crop(global_specs, local_spec, num_local):
    return (*global_specs, *([local_spec] * num_local))


RECIPES: dict[str, tuple[ViewSpec, ...]] = {
    "simclr": (ViewSpec(), ViewSpec()),
    "byol": _BYOL,
    "barlow_twins": _BYOL,
    "vicreg": _BYOL,
    "moco": (ViewSpec(scale=(0.2, 1.0), blur_p=0.5),) * 2,
    "dino": _multi_crop(
        (
            ViewSpec(scale=(0.4, 1.0), **_BYOL_JITTER, blur_p=1.0),
            ViewSpec(scale=(0.4, 1.0), **_BYOL_JITTER, blur_p=0.1, solarize_p=0.2),
        ),
        ViewSpec(size_ratio=_LOCAL, scale=(0.05, 0.4), **_BYOL_JITTER, blur_p=0.5),
        num_local=6,
    ),
    "swav": _multi_crop(
        (ViewSpec(scale=(0.14, 1.0), **_SWAV_JITTER, blur_p=0.5),) * 2,
        ViewSpec(size_ratio=_LOCAL, scale=(0.05, 0.14), **_SWAV_JITTER, blur_p=0.5),
        num_local=6,
    ),
    "mae": (ViewSpec(scale=(0.2, 1.0), **_OFF),),  # He et al. 2022: crop + flip, no colour
    "ijepa": (ViewSpec(scale=(0.3, 1.0), hflip_p=0.0, **_OFF),),  # Assran et al. 2023: crop only
    "weak": (_WEAK,),
    "strong": (replace(_WEAK, randaugment_ops=2, cutout_p=1.0),),
    "eval": (ViewSpec(crop="center", hflip_p=0.0, **_OFF),),
}


def list_recipes() -> list[str]:
    """Names accepted by ``view_recipe``."""
    return sorted(RECIPES)


def _sized(spec: ViewSpec, size: int, overrides: dict[str, Any]) -> ViewSpec:
    ratio = overrides.get("size_ratio", spec.size_ratio)
    return replace(spec, **{**overrides, "size": max(1, round(size * ratio))})


def view_recipe(
    name: str,
    *,
    size: int,
    mean: Sequence[float],
    std: Sequence[float],
    num_local_crops: int | None = None,
    per_view: Sequence[dict[str, Any]] | None = None,
    **overrides,
) -> ViewPipeline:
    """The named recipe's views at ``size`` pixels (local multi-crop views at ``size_ratio``).

    ``overrides`` set ViewSpec fields on every view; ``per_view[i]`` on view i only (applied after
    ``overrides``); ``num_local_crops`` changes how many local views a multi-crop recipe makes.
    Example: ``view_recipe("simclr", size=32, mean=m, std=s, blur_p=0.5)``.
    """
    if name not in RECIPES:
        raise unknown_name("view recipe", name, list(RECIPES))
    specs = list(RECIPES[name])
    if num_local_crops is not None:
        globals_ = [s for s in specs if s.size_ratio == 1.0]
        locals_ = [s for s in specs if s.size_ratio < 1.0]
        if not locals_:
            raise ConfigError(
                f"recipe {name!r} has no local crops; num_local_crops needs dino or swav"
            )
        specs = globals_ + [locals_[0]] * num_local_crops
    valid = [f.name for f in fields(ViewSpec) if f.name != "size"]
    per_view = list(per_view or [])
    for options in [overrides, *per_view]:
        unknown = sorted(set(options) - set(valid))
        if unknown:
            raise ConfigError(
                f"unknown view override(s) {', '.join(unknown)}; valid fields: {', '.join(valid)}"
            )
    if len(per_view) > len(specs):
        raise ConfigError(
            f"per_view has {len(per_view)} entries but {name!r} makes {len(specs)} views"
        )
    per_view += [{}] * (len(specs) - len(per_view))
    specs = [
        _sized(spec, size, {**overrides, **extra})
        for spec, extra in zip(specs, per_view, strict=True)
    ]
    return ViewPipeline(specs, mean, std)


class EvalTransform:
    """Resize to ``size`` (bilinear, antialiased; with ``crop_fraction < 1`` resize larger and
    centre-crop), normalise.

    Takes ``uint8 [N, C, H, W]`` (0..255) or float (0..1); returns float32 ``[N, C, size, size]``
    in ``channels_last``. Images already at ``size`` are not resampled.
    """

    def __init__(
        self, size: int, mean: Sequence[float], std: Sequence[float], crop_fraction: float = 1.0
    ):
        self.size = int(size)
        self.crop_fraction = float(crop_fraction)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        if any(s <= 0 for s in self.std):
            raise ConfigError(f"std values must be > 0, got {list(self.std)}")
        if not 0 < self.crop_fraction <= 1:
            raise ConfigError(f"crop_fraction must be in (0, 1], got {crop_fraction}")
        off = {"hflip_p": 0.0, "jitter_p": 0.0, "grayscale_p": 0.0}
        spec = ViewSpec(self.size, crop="center", crop_fraction=self.crop_fraction, **off)
        self._pipeline = ViewPipeline([spec], self.mean, self.std)

    def __call__(self, images: Tensor) -> Tensor:
        return self._pipeline(images)[0]

    def __repr__(self) -> str:
        return (
            f"EvalTransform(size={self.size}, crop_fraction={self.crop_fraction}, "
            f"mean={self.mean}, std={self.std})"
        )
