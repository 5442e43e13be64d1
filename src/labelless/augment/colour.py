"""Batched colour ops: brightness, contrast, saturation, hue, colour jitter, grayscale, solarize.

Same conventions as ``augment.image``: a float batch ``[N, C, H, W]`` in 0..1, per-sample factors
as a number or an ``[N]`` tensor, draws from a ``torch.Generator``, no loop over samples. The
formulas are torchvision's, so the ops match ``torchvision.transforms.v2.functional`` for the same
factor, except that grayscale uses the ITU-R 601-2 luma weights (0.299, 0.587, 0.114) where
torchvision's tensor path uses 0.2989 for red. Saturation, hue and grayscale need RGB: for C != 3
channels they are no-ops; brightness, contrast and solarize work for any C.

Each random op is split into a draw (``jitter_parameters``, ``draw_coins``) and an ``apply_*``
that takes the drawn values, so that a pipeline can draw for a whole batch and apply chunk by chunk.
"""

from __future__ import annotations

import torch
from torch import Tensor

from labelless.augment.common import on_subset, per_sample_view, select, uniform_draw
from labelless.errors import ConfigError

LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def rgb_to_grayscale(images: Tensor) -> Tensor:
    """ITU-R 601-2 luma ``[N, 1, H, W]`` of an RGB batch ``[N, 3, H, W]``."""
    if images.shape[1] != 3:
        raise ConfigError(f"grayscale conversion needs 3 (RGB) channels, got {images.shape[1]}")
    r, g, b = images.unbind(1)
    grey = torch.mul(r, LUMA_WEIGHTS[0]).add_(g, alpha=LUMA_WEIGHTS[1])
    return grey.add_(b, alpha=LUMA_WEIGHTS[2]).unsqueeze(1)


def mean_grey(images: Tensor, grey: Tensor | None = None) -> Tensor:
    """Each sample's mean grey level ``[N]`` (mean over all channels when C != 3); ``grey`` is
    ``rgb_to_grayscale(images)`` when already computed.

    Rows are summed in float32 (each row on its own), then the row sums in float64, so a
    sample's mean does not depend on which batch it is reduced in."""
    if grey is None:
        grey = rgb_to_grayscale(images) if images.shape[1] == 3 else images
    rows = grey.sum(dim=-1).flatten(1)  # [N, C * H]
    return rows.sum(1, dtype=torch.float64).div_(grey[0].numel()).to(images.dtype)


def _blend(images: Tensor, other: Tensor, factor: Tensor | float) -> Tensor:
    factor = per_sample_view(factor)
    return (factor * images + (1.0 - factor) * other).clamp(0.0, 1.0)


def adjust_brightness(images: Tensor, factor: Tensor | float) -> Tensor:
    """``x * factor`` clamped to 0..1; ``factor`` is a float or per-sample ``[N]``."""
    return (images * per_sample_view(factor)).clamp(0.0, 1.0)


def adjust_contrast(images: Tensor, factor: Tensor | float) -> Tensor:
    """Blend with each image's mean grey level (mean over all channels when C != 3)."""
    return _blend(images, per_sample_view(mean_grey(images)), factor)


def adjust_saturation(images: Tensor, factor: Tensor | float) -> Tensor:
    """Blend with the image's grayscale version; no-op for C != 3."""
    if images.shape[1] != 3:
        return images
    return _blend(images, rgb_to_grayscale(images), factor)


def adjust_hue(images: Tensor, shift: Tensor | float) -> Tensor:
    """Rotate the hue by ``shift`` (in turns, -0.5..0.5) in HSV space; no-op for C != 3.

    Exact HSV rotation without building H, S, V: max and min stay, the hue in sextants ``h6``
    (0..6) moves by ``6 shift``, and channel n becomes ``max - chroma * ramp_n`` where ``ramp_n =
    clamp(||h6 - p_n| - 3| - 1, 0, 1)`` with ``p = (3, 5, 1)`` for R, G, B (torchvision's
    ``v (1 - s clamp(min(k, 4 - k), 0, 1))``, ``k = (n + 6h) % 6``, rewritten).
    """
    if images.shape[1] != 3:
        return images
    r, g, b = images.unbind(1)
    value = torch.maximum(torch.maximum(r, g), b)
    low = torch.minimum(torch.minimum(r, g), b)
    chroma = value - low
    # hue in sextants, before the wrap to 0..6: R max (g - b) / c, G max 2 + ..., B max 4 + ...
    sextant = select(
        value == g, torch.sub(b, r).add_(chroma, alpha=2), torch.sub(r, g).add_(chroma, alpha=4)
    )
    sextant = select(value == r, torch.sub(g, b), sextant).div_(chroma.clamp_min(1e-12))
    shift = shift.view(-1, 1, 1) if isinstance(shift, Tensor) else shift
    sextant = sextant.add_(6.0 * shift).remainder_(6.0).unsqueeze(1)
    centres = torch.tensor([3.0, 5.0, 1.0], device=images.device, dtype=images.dtype)
    ramp = torch.sub(sextant, centres.view(1, 3, 1, 1)).abs_().sub_(3.0).abs_()
    ramp = ramp.sub_(1.0).clamp_(0.0, 1.0)
    return torch.addcmul(value.unsqueeze(1), chroma.unsqueeze(1), ramp, value=-1.0)


def _factor_range(name: str, strength: float, centre: float) -> tuple[float, float]:
    """torchvision's ColorJitter range ``[centre - s, centre + s]``, clipped at 0 for factors."""
    if strength < 0 or (centre == 0.0 and strength > 0.5):
        raise ConfigError(f"{name} must be >= 0 (hue at most 0.5), got {strength}")
    return (max(centre - strength, 0.0) if centre else -strength), centre + strength


JITTER_OPS = ("brightness", "contrast", "saturation", "hue")


def jitter_parameters(
    n: int,
    brightness: float = 0.4,
    contrast: float = 0.4,
    saturation: float = 0.2,
    hue: float = 0.1,
    p: float = 0.8,
    generator: torch.Generator | None = None,
    *,
    random_order: bool = True,
    device=None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-sample colour jitter draws: ``(factors [n, 4], order [n, 4], selected [n])``.

    ``factors`` columns follow ``JITTER_OPS`` (brightness, contrast, saturation, hue) and hold the
    identity (1, 1, 1, 0) for samples not selected; ``order[i]`` is the permutation of 0..3 in
    which sample i applies them (``arange(4)`` with ``random_order=False``). The generator is
    advanced by the same amount either way.
    """
    ranges = [
        _factor_range("brightness", brightness, 1.0),
        _factor_range("contrast", contrast, 1.0),
        _factor_range("saturation", saturation, 1.0),
        _factor_range("hue", hue, 0.0),
    ]
    u = uniform_draw((n, 9), generator, device or "cpu")
    selected = u[:, 0] < p
    low = u.new_tensor([r[0] for r in ranges])
    high = u.new_tensor([r[1] for r in ranges])
    identity = u.new_tensor([1.0, 1.0, 1.0, 0.0])
    factors = torch.where(selected.unsqueeze(1), low + (high - low) * u[:, 1:5], identity)
    if random_order:
        order = u[:, 5:].argsort(dim=1)
    else:
        order = torch.arange(4, device=u.device).expand(n, 4)
    return factors, order, selected


class JitterPlan:
    """What ``apply_color_jitter`` does at each of its 4 steps, decided once for a whole batch so
    that chunks of it only slice (``apply(images, rows)``).

    At each step, the samples whose permutation puts brightness, contrast or saturation there get
    it in one batched pass: all three are ``clamp(f x + (1 - f) y)`` with ``y`` 0, the mean grey
    level or the grey image, so the pass is ``f x + (w_sat grey + w_con mean)``, then a clamp to
    0..1: the identity (``f = 1``, ``w = 0``) for samples that do not take part, whose pixels are
    in 0..1 already. Samples that put hue there get ``adjust_hue`` on their subset (which keeps
    pixels in 0..1). Samples not selected, and ops at their identity factor, are left unchanged,
    so a sample's result does not depend on the rest of the batch.
    """

    def __init__(self, factors: Tensor, order: Tensor, selected: Tensor, channels: int):
        identity = factors.new_tensor([1.0, 1.0, 1.0, 0.0])
        changes = selected.unsqueeze(1) & (factors != identity)  # [N, 4]: op k changes sample i
        rgb = channels == 3
        self.shifts = factors[:, 3]
        self.steps = []
        for step in range(4):
            op = order[:, step]
            now = changes.gather(1, op.unsqueeze(1)).squeeze(1)
            linear = now & (op < 3)
            contrast, saturation = linear & (op == 1), linear & (op == 2) & rgb
            hue = now & (op == 3) & rgb
            factor = torch.where(linear, factors.gather(1, op.unsqueeze(1)).squeeze(1), 1.0)
            weights = {
                "factor": factor,
                "saturation": torch.where(saturation, 1.0 - factor, 0.0),
                "contrast": torch.where(contrast, 1.0 - factor, 0.0),
            }
            weights = {k: v.view(-1, 1, 1, 1) for k, v in weights.items()}
            flags = torch.stack([linear, contrast, saturation, hue], dim=1).tolist()
            self.steps.append((weights, flags))

    def apply(self, images: Tensor, rows: slice | None = None) -> Tensor:
        """Jitter ``images`` (the batch's samples ``rows``, default all; pixels in 0..1, which the
        identity of the batched pass relies on), in place where it can."""
        rows = rows or slice(0, images.shape[0])
        for weights, all_flags in self.steps:
            flags = all_flags[rows]
            linear, contrast, saturation, hue = (any(column) for column in zip(*flags, strict=True))
            if linear:
                part = {k: v[rows].to(images.dtype) for k, v in weights.items()}
                images = self._linear(images, part, contrast, saturation)
            if hue:
                shifts = self.shifts[rows]
                local = [i for i, f in enumerate(flags) if f[3]]
                if len(local) == len(flags):
                    images = adjust_hue(images, shifts)
                else:
                    index = torch.tensor(local, device=images.device)
                    rotated = adjust_hue(images.index_select(0, index), shifts[index])
                    images = images.index_copy_(0, index, rotated)
        return images

    @staticmethod
    def _linear(images: Tensor, part: dict, contrast: bool, saturation: bool) -> Tensor:
        offset, grey = None, None
        if saturation:
            grey = rgb_to_grayscale(images)
        if contrast:
            offset = part["contrast"] * mean_grey(images, grey).view(-1, 1, 1, 1)
        if saturation:
            weighted = grey.mul_(part["saturation"])
            offset = weighted if offset is None else weighted.add_(offset)
        if offset is None:
            images.mul_(part["factor"])
        else:
            torch.addcmul(offset, images, part["factor"], out=images)
        return images.clamp_(0.0, 1.0)  # the identity for pixels in 0..1


def apply_color_jitter(images: Tensor, factors: Tensor, order: Tensor, selected: Tensor) -> Tensor:
    """Apply drawn jitter (``jitter_parameters``) to a float batch, in place where it can: at each
    of the 4 steps every op runs once, on the samples whose permutation puts it there
    (``JitterPlan``)."""
    return JitterPlan(factors, order, selected, images.shape[1]).apply(images.clamp_(0.0, 1.0))


def color_jitter(
    images: Tensor,
    brightness: float = 0.4,
    contrast: float = 0.4,
    saturation: float = 0.2,
    hue: float = 0.1,
    p: float = 0.8,
    generator: torch.Generator | None = None,
    random_order: bool = True,
) -> Tensor:
    """With probability ``p`` per sample, jitter brightness, contrast, saturation and hue.

    Factors per sample as torchvision's ColorJitter: brightness, contrast and saturation uniform in
    ``[max(0, 1 - s), 1 + s]``, hue shift uniform in ``[-h, h]``. Like ColorJitter, each sample
    applies the four ops in its own random order (``random_order=False``: brightness, contrast,
    saturation, hue). Draws from ``jitter_parameters``, applied by ``apply_color_jitter``.
    Samples not selected are returned unchanged.
    """
    factors, order, selected = jitter_parameters(
        images.shape[0],
        brightness,
        contrast,
        saturation,
        hue,
        p,
        generator,
        random_order=random_order,
        device=images.device,
    )
    return apply_color_jitter(images.clone(), factors, order, selected)


def draw_coins(n: int, p: float, generator: torch.Generator | None, device=None) -> Tensor:
    """Boolean ``[n]``: which samples an op with probability ``p`` applies to."""
    if not 0.0 <= p <= 1.0:
        raise ConfigError(f"probability p must be in [0, 1], got {p}")
    return uniform_draw((n,), generator, device or "cpu") < p


def apply_grayscale(images: Tensor, selected: Tensor) -> Tensor:
    """Replace the ``selected [N]`` samples by their luma in all 3 channels, in place; no-op for
    C != 3."""
    if images.shape[1] != 3:
        return images
    return on_subset(images, selected, lambda x, _: rgb_to_grayscale(x).expand_as(x).clone())


def random_grayscale(
    images: Tensor, p: float = 0.2, generator: torch.Generator | None = None
) -> Tensor:
    """With probability ``p`` per sample, replace RGB by its luma in all 3 channels.

    No-op for C != 3."""
    selected = draw_coins(images.shape[0], p, generator, images.device)
    return apply_grayscale(images.clone(), selected)


def apply_solarize(images: Tensor, selected: Tensor, threshold: float = 0.5) -> Tensor:
    """Invert pixels ``>= threshold`` (``x -> 1 - x``) of the ``selected [N]`` samples, in place."""

    def invert_bright(x: Tensor, _) -> Tensor:
        return select(x >= threshold, 1.0 - x, x)

    return on_subset(images, selected, invert_bright)


def solarize(
    images: Tensor,
    p: float = 0.2,
    threshold: float = 0.5,
    generator: torch.Generator | None = None,
) -> Tensor:
    """With probability ``p`` per sample, invert pixels ``>= threshold`` (``x -> 1 - x``)."""
    selected = draw_coins(images.shape[0], p, generator, images.device)
    return apply_solarize(images.clone(), selected, threshold)
