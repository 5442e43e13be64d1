"""Batched RandAugment: every sample draws its own ops and magnitudes, no loop over samples.

RandAugment (Cubuk, Zoph, Shlens, Le 2020, "RandAugment: Practical automated data augmentation
with a reduced search space") applies ``num_ops`` ops drawn uniformly from a fixed table, all at
one global ``magnitude``. The table, the magnitude ranges and the random sign per signed op are
torchvision's (``torchvision.transforms.v2.RandAugment``); ``random_magnitude=True`` draws each
sample's magnitude uniformly in ``[0, magnitude]`` instead, as FixMatch's strong augmentation does
(Sohn et al. 2020, "FixMatch: Simplifying Semi-Supervised Learning with Consistency and
Confidence").

At each of the ``num_ops`` steps the loop runs over the 14 ops, not over samples: each op is
applied once, to the subset of samples that drew it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from labelless.augment.colour import (
    adjust_brightness,
    adjust_contrast,
    adjust_saturation,
    mean_grey,
    rgb_to_grayscale,
)
from labelless.augment.common import per_sample_view, select, uniform_draw
from labelless.augment.geometry import (
    inverse_affine_matrices,
    rotate,
    shear_x,
    shear_y,
    translate_x,
    translate_y,
    warp_affine,
)
from labelless.augment.pixel import adjust_sharpness, autocontrast, equalize, posterize
from labelless.errors import ConfigError, unknown_name

RANDAUGMENT_OPS = (
    "Identity",
    "ShearX",
    "ShearY",
    "TranslateX",
    "TranslateY",
    "Rotate",
    "Brightness",
    "Color",
    "Contrast",
    "Sharpness",
    "Posterize",
    "Solarize",
    "AutoContrast",
    "Equalize",
)
Fill = float | Sequence[float]


def solarize_at(images: Tensor, threshold: Tensor | float) -> Tensor:
    """Invert pixels ``>= threshold`` (``x -> 1 - x``); ``threshold`` a float or per-sample [N]."""
    return select(images >= per_sample_view(threshold), 1.0 - images, images)


_APPLY: dict[str, Callable[[Tensor, Tensor, Fill, str], Tensor]] = {
    "Identity": lambda x, m, fill, interp: x,
    "ShearX": lambda x, m, fill, interp: shear_x(x, m, fill, interp),
    "ShearY": lambda x, m, fill, interp: shear_y(x, m, fill, interp),
    "TranslateX": lambda x, m, fill, interp: translate_x(x, m.trunc(), fill, interp),
    "TranslateY": lambda x, m, fill, interp: translate_y(x, m.trunc(), fill, interp),
    "Rotate": lambda x, m, fill, interp: rotate(x, m, fill, interp),
    "Brightness": lambda x, m, fill, interp: adjust_brightness(x, 1.0 + m),
    "Color": lambda x, m, fill, interp: adjust_saturation(x, 1.0 + m),
    "Contrast": lambda x, m, fill, interp: adjust_contrast(x, 1.0 + m),
    "Sharpness": lambda x, m, fill, interp: adjust_sharpness(x, 1.0 + m),
    "Posterize": lambda x, m, fill, interp: posterize(x, m.long()),
    "Solarize": lambda x, m, fill, interp: solarize_at(x, m),
    "AutoContrast": lambda x, m, fill, interp: autocontrast(x),
    "Equalize": lambda x, m, fill, interp: equalize(x),
}


WARPS = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")


def warp_matrices(ops: Tensor, magnitudes: Tensor, height: int, width: int) -> Tensor:
    """Output -> input maps ``[k, 2, 3]`` of the warps ``ops [k]`` (indices into
    ``RANDAUGMENT_OPS``) at ``magnitudes [k]``, as ``apply_op`` would warp (the identity for ops
    not in ``WARPS``): one matrix computation for all of them, so that a step warps its samples
    in one call."""
    m = magnitudes.double()
    is_op = {name: ops == RANDAUGMENT_OPS.index(name) for name in WARPS}
    zero = torch.zeros_like(m)
    shear = torch.rad2deg(torch.atan(m))
    shears = torch.stack([is_op["ShearX"] * shear, is_op["ShearY"] * shear], 1)
    translate = torch.stack([is_op["TranslateX"] * m.trunc(), is_op["TranslateY"] * m.trunc()], 1)
    # shears turn about the top-left corner, the rest about the centre
    about_corner = (is_op["ShearX"] | is_op["ShearY"]).unsqueeze(1)
    middle = torch.tensor([width / 2, height / 2], dtype=torch.float64, device=m.device)
    return inverse_affine_matrices(
        height,
        width,
        angle=torch.where(is_op["Rotate"], -m, zero),
        translate=translate,
        scale=1.0,
        shear=shears,
        center=torch.where(about_corner, 0.0, middle),
        n=len(m),
        device=m.device,
    )


_BLENDS = ("Brightness", "Color", "Contrast")
_BLEND_INDICES = tuple(RANDAUGMENT_OPS.index(name) for name in _BLENDS)
_WARP_INDICES = tuple(RANDAUGMENT_OPS.index(name) for name in WARPS)


def blend_ops(images: Tensor, ops: Tensor, magnitudes: Tensor) -> Tensor:
    """Brightness, Color and Contrast (``ops [k]``, each sample its own) in one pass.

    All three are ``clamp(f x + (1 - f) other, 0, 1)`` with ``f = 1 + m``: ``other`` is 0 for
    brightness, the grayscale image for colour and the mean grey level for contrast, so each
    sample's result equals ``adjust_brightness`` / ``adjust_saturation`` / ``adjust_contrast``
    exactly. Colour rows need RGB (C == 3).
    """
    factor = per_sample_view(1.0 + magnitudes.to(images))
    colour = per_sample_view(ops == RANDAUGMENT_OPS.index("Color"))
    contrast = per_sample_view(ops == RANDAUGMENT_OPS.index("Contrast"))
    grey = rgb_to_grayscale(images) if images.shape[1] == 3 else None
    mean = per_sample_view(mean_grey(images, grey))
    other = select(contrast, mean, torch.zeros_like(mean))
    if grey is not None:
        other = select(colour, grey, other)  # pixel-sized: lerp, not where
    return (factor * images + (1.0 - factor) * other).clamp_(0.0, 1.0)


def apply_op(
    images: Tensor,
    name: str,
    magnitudes: Tensor,
    *,
    fill: Fill = 0.5,
    interpolation: str = "nearest",
) -> Tensor:
    """One table op on every sample, with torchvision's meaning of the magnitudes ``[N]``.

    Shears are the shear coefficient (about the top-left corner), translations whole pixels
    (truncated), rotation degrees counter-clockwise, the four enhance ops ``factor = 1 + m``,
    posterize the bits kept, solarize the threshold; the other ops ignore their magnitude.
    """
    if name not in _APPLY:
        raise unknown_name("RandAugment op", name, RANDAUGMENT_OPS)
    return _APPLY[name](images, magnitudes.to(images.device), fill, interpolation)


class RandAugmentDraws(NamedTuple):
    """Per-sample RandAugment draws, one row per step.

    ``ops``: int64 ``[num_ops, N]`` indices into ``RANDAUGMENT_OPS``; ``magnitudes``: float32
    ``[num_ops, N]`` signed magnitude of each drawn op, as ``apply_op`` reads it."""

    ops: Tensor
    magnitudes: Tensor


def magnitude_ranges(height: int, width: int) -> tuple[Tensor, Tensor, Tensor]:
    """``(at_zero, at_last_bin, signed)``, each ``[14]`` in ``RANDAUGMENT_OPS`` order.

    An op's magnitude is linear in the bin: ``at_zero + (at_last_bin - at_zero) * bin / (bins - 1)``
    (posterize then rounded to whole bits), negated with probability 1/2 where ``signed``. These
    are torchvision's ranges: shear 0..0.3, translate 0..150/331 of the side, rotate 0..30 degrees,
    enhance factors 1 +- 0..0.9, posterize 8..4 bits, solarize threshold 1..0.
    """
    table = {
        "ShearX": (0.0, 0.3, True),
        "ShearY": (0.0, 0.3, True),
        "TranslateX": (0.0, 150.0 / 331.0 * width, True),
        "TranslateY": (0.0, 150.0 / 331.0 * height, True),
        "Rotate": (0.0, 30.0, True),
        "Brightness": (0.0, 0.9, True),
        "Color": (0.0, 0.9, True),
        "Contrast": (0.0, 0.9, True),
        "Sharpness": (0.0, 0.9, True),
        "Posterize": (8.0, 4.0, False),
        "Solarize": (1.0, 0.0, False),
    }
    rows = [table.get(name, (0.0, 0.0, False)) for name in RANDAUGMENT_OPS]
    at_zero, at_last, signed = zip(*rows, strict=True)
    return (
        torch.tensor(at_zero, dtype=torch.float64),
        torch.tensor(at_last, dtype=torch.float64),
        torch.tensor(signed),
    )


def sample_rand_augment(
    n: int,
    height: int,
    width: int,
    *,
    num_ops: int = 2,
    magnitude: float = 9,
    num_magnitude_bins: int = 31,
    random_magnitude: bool = False,
    generator: torch.Generator | None = None,
    device=None,
    exclude: Sequence[str] = (),
) -> RandAugmentDraws:
    """Draw each sample's ops (uniform over ``RANDAUGMENT_OPS`` less ``exclude``) and signed
    magnitudes. Excluding ops suits data they destroy: on 8 px grayscale digits Solarize and
    Equalize wipe out the strokes, leaving a strong view whose label cannot be recovered.

    The bin is ``magnitude`` for every sample, or uniform in ``[0, magnitude]`` per sample and step
    with ``random_magnitude``; ``magnitude_ranges`` turns it into each op's value.
    """
    if not isinstance(num_ops, int) or num_ops < 0:
        raise ConfigError(f"RandAugment num_ops must be an integer >= 0, got {num_ops!r}")
    if num_magnitude_bins < 2 or not 0 <= magnitude <= num_magnitude_bins - 1:
        raise ConfigError(
            f"RandAugment magnitude must be in [0, num_magnitude_bins - 1 = "
            f"{num_magnitude_bins - 1}] with at least 2 bins, got {magnitude}"
        )
    for name in exclude:
        if name not in RANDAUGMENT_OPS:
            raise unknown_name("RandAugment op", name, RANDAUGMENT_OPS)
    allowed = [i for i, name in enumerate(RANDAUGMENT_OPS) if name not in set(exclude)]
    if not allowed:
        raise ConfigError("RandAugment exclude leaves no op to draw: keep at least one")
    device = torch.device(device or "cpu")
    u = uniform_draw((3, num_ops, n), generator, device).double()
    table = torch.tensor(allowed, device=device)
    ops = table[(u[0] * len(allowed)).long().clamp_max(len(allowed) - 1)]
    level = magnitude / (num_magnitude_bins - 1)
    level = u[2] * level if random_magnitude else torch.full_like(u[2], level)
    at_zero, at_last, signed = (t.to(device) for t in magnitude_ranges(height, width))
    values = at_zero[ops] + (at_last[ops] - at_zero[ops]) * level
    posterize_op = ops == RANDAUGMENT_OPS.index("Posterize")
    values = torch.where(posterize_op, values.round(), values)
    values = torch.where(signed[ops] & (u[1] <= 0.5), -values, values)
    return RandAugmentDraws(ops, values.float())


def apply_rand_augment(
    images: Tensor,
    draws: RandAugmentDraws,
    *,
    fill: Fill = 0.5,
    interpolation: str = "nearest",
) -> Tensor:
    """Apply drawn ops step by step; each op runs once per step on the samples that drew it.

    Two groups run as one call each: the five warps of a step (one ``warp_affine``, each sample
    with its own op's map) and the three blends with a reference image (``blend_ops``:
    brightness, colour, contrast). Each sample's result is the same as ``apply_op`` one op at a
    time, bit for bit.
    """
    out = images.clone()
    height, width = images.shape[-2:]
    magnitudes = draws.magnitudes.to(images.device)
    ops = draws.ops.to(images.device)
    groups = {k: "warp" for k in _WARP_INDICES} | {k: "blend" for k in _BLEND_INDICES}
    if images.shape[1] != 3:  # colour (saturation) needs RGB: an identity otherwise
        groups[RANDAUGMENT_OPS.index("Color")] = "identity"
    # every step's warp maps in one computation (identity rows for the other ops)
    steps, n = ops.shape
    all_maps = warp_matrices(ops.flatten(), magnitudes.flatten(), height, width)
    all_maps = all_maps.view(steps, n, 2, 3)
    for step_ops, step_magnitudes, step_maps in zip(ops, magnitudes, all_maps, strict=True):
        # the samples of each op, in sample order: one sort instead of a scan per op
        order = torch.argsort(step_ops, stable=True)
        counts = torch.bincount(step_ops, minlength=len(RANDAUGMENT_OPS)).tolist()
        grouped: dict[str, list[Tensor]] = {"warp": [], "blend": []}
        for k, rows in enumerate(order.split(counts)):
            name, kind = RANDAUGMENT_OPS[k], groups.get(k, "single")
            if len(rows) == 0 or name == "Identity" or kind == "identity":
                continue
            if kind in grouped:
                grouped[kind].append(rows)
                continue
            result = apply_op(out.index_select(0, rows), name, step_magnitudes[rows], fill=fill)
            out.index_copy_(0, rows, result)
        if grouped["blend"]:
            rows = torch.cat(grouped["blend"])
            result = blend_ops(out.index_select(0, rows), step_ops[rows], step_magnitudes[rows])
            out.index_copy_(0, rows, result)
        if grouped["warp"]:
            rows = torch.cat(grouped["warp"])
            maps = step_maps[rows]
            result = warp_affine(out[rows], maps, fill=fill, interpolation=interpolation)
            out.index_copy_(0, rows, result)
    return out


def rand_augment(
    images: Tensor,
    num_ops: int = 2,
    magnitude: float = 9,
    num_magnitude_bins: int = 31,
    generator: torch.Generator | None = None,
    fill: Fill = 0.5,
    random_magnitude: bool = False,
    *,
    interpolation: str = "nearest",
) -> Tensor:
    """RandAugment on a float batch ``[N, C, H, W]`` in 0..1, ops and magnitudes per sample.

    Draws from ``sample_rand_augment``, applied by ``apply_rand_augment``; geometric ops fill
    uncovered pixels with ``fill``. Colour (saturation) is a no-op unless C == 3.
    """
    n, _, height, width = images.shape
    draws = sample_rand_augment(
        n,
        height,
        width,
        num_ops=num_ops,
        magnitude=magnitude,
        num_magnitude_bins=num_magnitude_bins,
        random_magnitude=random_magnitude,
        generator=generator,
        device=images.device,
    )
    return apply_rand_augment(images, draws, fill=fill, interpolation=interpolation)
