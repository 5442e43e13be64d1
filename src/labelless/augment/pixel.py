"""Batched pixel ops: invert, posterize, equalize, autocontrast, sharpness, batch style transfer.

Same conventions as ``augment.image``: a float batch ``[N, C, H, W]`` in 0..1, per-sample
parameters as a number or an ``[N]`` tensor, random draws from a ``torch.Generator`` on the batch's
device, and no loop over samples. Every op here works for any number of channels C.

The first five follow ``torchvision.transforms.v2.functional``: for the same parameters they agree
with it on images whose values are multiples of 1/255 (``invert``, ``posterize`` and ``equalize``
exactly, ``autocontrast`` and ``adjust_sharpness`` to float rounding). Posterize, equalize and
autocontrast are the AutoAugment / RandAugment ops (Cubuk et al. 2019, "AutoAugment: Learning
Augmentation Strategies from Data"; Cubuk et al. 2020, "RandAugment"), with PIL's formulas.
"""

from __future__ import annotations

import torch
from torch import Tensor

from labelless.augment.common import per_sample_view, uniform_draw
from labelless.errors import ConfigError

# PIL's SMOOTH filter, which torchvision's adjust_sharpness blends against
SMOOTH_KERNEL = ((1.0, 1.0, 1.0), (1.0, 5.0, 1.0), (1.0, 1.0, 1.0))


def _selected(images: Tensor, p: float, generator: torch.Generator | None) -> Tensor:
    """Boolean ``[N]``: which samples an op with probability ``p`` applies to."""
    if not 0.0 <= p <= 1.0:
        raise ConfigError(f"probability p must be in [0, 1], got {p}")
    return uniform_draw((images.shape[0],), generator, images.device) < p


def _to_levels(images: Tensor, dtype: torch.dtype = torch.long) -> Tensor:
    """Float 0..1 -> the nearest of the 256 uint8 levels, as ``dtype`` (int64: an index) 0..255."""
    return images.mul(255.0).round_().clamp_(0, 255).to(dtype)


def _from_levels(levels: Tensor, dtype: torch.dtype) -> Tensor:
    """uint8 levels (any integer dtype) -> float 0..1, the way ``to_float`` converts uint8."""
    return levels.to(dtype).div_(255.0)


# ---- deterministic ops ------------------------------------------------------------------------


def invert(images: Tensor) -> Tensor:
    """``1 - x``: the negative image."""
    return 1.0 - images


def posterize(images: Tensor, bits: int | Tensor) -> Tensor:
    """Keep the ``bits`` (1..8, a number or per-sample ``[N]``) highest bits of each uint8 level.

    Pixels are rounded to uint8 levels first, so the result is ``TF.posterize`` of the uint8
    image, converted back to float.
    """
    if isinstance(bits, Tensor):
        bits = bits.to(images.device)
        if bits.is_floating_point() or ((bits < 1) | (bits > 8)).any():
            raise ConfigError(f"posterize bits must be integers in 1..8, got {bits.tolist()}")
        keep = (256 - torch.pow(2, 8 - bits.long())).to(torch.uint8).view(-1, 1, 1, 1)
    elif isinstance(bits, int) and 1 <= bits <= 8:
        keep = 256 - 2 ** (8 - bits)
    else:
        raise ConfigError(f"posterize bits must be an integer in 1..8, got {bits!r}")
    return _from_levels(_to_levels(images, torch.uint8).bitwise_and_(keep), images.dtype)


def equalize(images: Tensor) -> Tensor:
    """Histogram equalisation of each image and channel over 256 levels, as PIL and torchvision.

    One 256-bin histogram per (image, channel), all counted by one ``bincount``. The lookup
    table spreads the cumulative counts below each level over 0..255 using ``step = (pixels -
    count of the brightest level present) // 255``: ``lut[v] = (cdf[v - 1] + step // 2) //
    step``, ``lut[0] = 0``. Channels with ``step == 0`` (almost constant) are left unchanged.
    """
    n, c, height, width = images.shape
    levels = _to_levels(images).view(n * c, height * width)
    planes = torch.arange(0, n * c * 256, 256, device=images.device).view(n * c, 1)
    hist = torch.bincount((levels + planes).view(-1), minlength=n * c * 256).view(n * c, 256)
    brightest = levels.amax(dim=1, keepdim=True)
    step = (height * width - hist.gather(1, brightest)).div(255, rounding_mode="floor")
    below = hist.cumsum(dim=1) - hist  # pixels strictly below each level: cdf[v - 1]
    lut = (below + step // 2).div(step.clamp_min(1), rounding_mode="floor").clamp_(0, 255)
    identity = torch.arange(256, device=images.device)
    lut = torch.where(step > 0, lut, identity)  # [N * C, 256]: cheaper than a per-pixel where
    return _from_levels(lut.gather(1, levels).view(n, c, height, width), images.dtype)


def autocontrast(images: Tensor) -> Tensor:
    """Stretch each image and channel linearly so its minimum maps to 0 and its maximum to 1.

    Constant channels are left unchanged.
    """
    low = images.amin(dim=(2, 3), keepdim=True)
    high = images.amax(dim=(2, 3), keepdim=True)
    flat = high == low
    span = torch.where(flat, torch.ones_like(high), high - low)
    low = torch.where(flat, torch.zeros_like(low), low)
    return ((images - low) / span).clamp(0.0, 1.0)


def adjust_sharpness(images: Tensor, factor: float | Tensor) -> Tensor:
    """Blend with a smoothed copy: ``factor * x + (1 - factor) * smooth(x)``, clamped to 0..1.

    ``smooth`` is the 3x3 kernel ``[[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13``; as in PIL and
    torchvision, only interior pixels change (the one-pixel border is kept). ``factor`` >= 0,
    a number or per-sample ``[N]``: 0 smooths, 1 is the identity, > 1 sharpens.
    """
    if (factor < 0).any() if isinstance(factor, Tensor) else factor < 0:
        raise ConfigError(f"sharpness factor must be >= 0, got {factor}")
    height, width = images.shape[-2:]
    if height <= 2 or width <= 2:
        return images
    # SMOOTH_KERNEL as a 3x3 box sum (shifted adds along rows, then columns) plus 4x the centre:
    # about 5x faster on the CPU than a 1-channel conv2d or avg_pool2d
    interior = images[:, :, 1:-1, 1:-1]
    rows = images[..., :-2] + images[..., 1:-1] + images[..., 2:]
    box = rows[..., :-2, :] + rows[..., 1:-1, :] + rows[..., 2:, :]
    smooth = box.add_(interior, alpha=4.0).div_(13.0)
    factor = per_sample_view(factor.to(images) if isinstance(factor, Tensor) else factor)
    blended = factor * interior + (1.0 - factor) * smooth
    out = images.clone()
    out[:, :, 1:-1, 1:-1] = blended
    return out.clamp_(0.0, 1.0)


# ---- random wrappers: each sample is transformed with probability p --------------------------


def _with_probability(images: Tensor, p: float, generator, transformed: Tensor) -> Tensor:
    """``transformed`` for the samples drawn with probability ``p``, ``images`` for the rest."""
    selected = _selected(images, p, generator)
    return torch.where(per_sample_view(selected), transformed, images)


def random_invert(
    images: Tensor, p: float = 0.5, generator: torch.Generator | None = None
) -> Tensor:
    """With probability ``p`` per sample, ``invert``."""
    return _with_probability(images, p, generator, invert(images))


def random_posterize(
    images: Tensor,
    p: float = 0.5,
    bits: int | Tensor = 4,
    generator: torch.Generator | None = None,
) -> Tensor:
    """With probability ``p`` per sample, ``posterize`` to ``bits`` (number or ``[N]``)."""
    return _with_probability(images, p, generator, posterize(images, bits))


def random_equalize(
    images: Tensor, p: float = 0.5, generator: torch.Generator | None = None
) -> Tensor:
    """With probability ``p`` per sample, ``equalize``."""
    return _with_probability(images, p, generator, equalize(images))


def random_autocontrast(
    images: Tensor, p: float = 0.5, generator: torch.Generator | None = None
) -> Tensor:
    """With probability ``p`` per sample, ``autocontrast``."""
    return _with_probability(images, p, generator, autocontrast(images))


def random_sharpness(
    images: Tensor,
    p: float = 0.5,
    factor_range: float | tuple[float, float] = (0.1, 1.9),
    generator: torch.Generator | None = None,
) -> Tensor:
    """With probability ``p`` per sample, ``adjust_sharpness`` by a factor uniform in the range.

    The default range 0.1..1.9 is AutoAugment's sharpness range; a single number is a fixed factor
    (torchvision's ``RandomAdjustSharpness``).
    """
    low, high = (
        (factor_range, factor_range) if isinstance(factor_range, (int, float)) else factor_range
    )
    if not 0.0 <= low <= high:
        raise ConfigError(f"sharpness factor_range ({low}, {high}) must satisfy 0 <= low <= high")
    selected = _selected(images, p, generator)
    factor = low + (high - low) * uniform_draw((images.shape[0],), generator, images.device)
    factor = torch.where(selected, factor, 1.0)
    return torch.where(per_sample_view(selected), adjust_sharpness(images, factor), images)


# ---- batch style standardisation --------------------------------------------------------------


def low_frequency_mask(height: int, width: int, beta: float, device=None) -> Tensor:
    """Boolean ``[H, W]`` in ``fft2`` layout: the frequencies in a centred square of side ``beta``.

    A frequency (fy, fx) in cycles per pixel (``torch.fft.fftfreq``, -0.5..0.5) is inside when
    ``|fy| <= beta / 2`` and ``|fx| <= beta / 2``: ``beta = 1`` is the whole spectrum, a small
    ``beta`` only the mean (DC) term. The mask is symmetric, so real images stay real.
    """
    fy = torch.fft.fftfreq(height, device=device).abs() <= beta / 2
    fx = torch.fft.fftfreq(width, device=device).abs() <= beta / 2
    return fy.view(-1, 1) & fx.view(1, -1)


def batch_style_standardization(
    images: Tensor,
    generator: torch.Generator | None = None,
    *,
    beta: float = 1.0,
    clamp: bool = True,
) -> Tensor:
    """Give every image of the batch the Fourier amplitude (the "style") of one random image.

    Batch Styles Standardization (Scalbert, Vakalopoulou, Couzinié-Devy 2024, "Towards
    domain-invariant self-supervised learning with batch styles standardization", ICLR): per image
    and channel, ``X = fft2(x) = A exp(i phi)``; one image s of the batch is drawn uniformly and
    every image becomes ``ifft2(A_s exp(i phi))`` - its own phase (content) with the shared
    amplitude. With ``beta < 1`` only the low frequencies inside ``low_frequency_mask(H, W, beta)``
    (a centred square whose side is ``beta`` of the spectrum; the paper's area ratio r is
    ``beta ** 2``) take the style's amplitude, the rest keep their own, as in Fourier Domain
    Adaptation (Yang & Soatto 2020). The result is clamped to 0..1 unless ``clamp=False``.
    """
    if not 0.0 < beta <= 1.0:
        raise ConfigError(f"batch style standardization beta must be in (0, 1], got {beta}")
    n, _, height, width = images.shape
    draw = uniform_draw((1,), generator, images.device)
    style = (draw * n).long().clamp_(max=n - 1)
    compute_dtype = (
        images.dtype if images.dtype in (torch.float32, torch.float64) else torch.float32
    )
    spectrum = torch.fft.fft2(images.to(compute_dtype))
    amplitude = spectrum.abs()
    style_amplitude = amplitude.index_select(0, style).expand_as(amplitude)
    if beta < 1.0:
        mask = low_frequency_mask(height, width, beta, device=images.device)
        style_amplitude = torch.where(mask, style_amplitude, amplitude)
    phase = torch.polar(torch.ones_like(amplitude), spectrum.angle())
    out = torch.fft.ifft2(style_amplitude * phase).real.to(images.dtype)
    return out.clamp_(0.0, 1.0) if clamp else out
