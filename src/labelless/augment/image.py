"""Batched image augmentation: whole batches as tensor ops, per-sample parameters, no sample loop.

Every op takes a float batch ``[N, C, H, W]`` in 0..1, draws one set of parameters per sample from
a ``torch.Generator`` on the batch's device, and applies them as batched arithmetic. The view
recipes are those of SimCLR (Chen et al. 2020, "A Simple Framework for Contrastive Learning of
Visual Representations") and BYOL (Grill et al. 2020, "Bootstrap Your Own Latent").

Colour ops use torchvision's formulas, so they match ``torchvision.transforms.v2.functional`` for
the same factor, except that grayscale uses the ITU-R 601-2 luma weights (0.299, 0.587, 0.114)
where torchvision's tensor path uses 0.2989 for red. Saturation, hue and grayscale need RGB: for
C != 3 channels they are no-ops. Brightness, contrast, blur, solarize, crop and flip work for any C.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from labelless.errors import ConfigError, DataError

LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def _rand(shape: tuple[int, ...], generator: torch.Generator | None, device) -> Tensor:
    """Uniform [0, 1) float32 of ``shape`` on ``device``, drawn from ``generator``."""
    device = torch.device(device)
    if generator is not None and generator.device.type != device.type:
        raise ConfigError(
            f"the augmentation generator is on {generator.device} but the images are on {device}; "
            "create it with torch.Generator(device=images.device)"
        )
    return torch.rand(shape, generator=generator, device=device)


def _per_sample(values: Tensor | float) -> Tensor | float:
    """``[N]`` -> ``[N, 1, 1, 1]`` so a per-sample value broadcasts over a batch."""
    return values.view(-1, 1, 1, 1) if isinstance(values, Tensor) else values


def as_pair(size: int | Sequence[int]) -> tuple[int, int]:
    return (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))


def to_float(images: Tensor) -> Tensor:
    """``uint8`` (0..255) or float (0..1) ``[N, C, H, W]`` -> float32 in 0..1."""
    if not isinstance(images, Tensor) or images.ndim != 4:
        shape = tuple(getattr(images, "shape", ()))
        raise DataError(f"augmentation needs an image tensor [N, C, H, W], got shape {shape}")
    if images.dtype == torch.uint8:
        return images.float().div_(255.0)
    if images.is_floating_point():
        return images.float()
    raise DataError(f"images must be uint8 (0..255) or float (0..1), got {images.dtype}")


# ---- geometry ---------------------------------------------------------------------------------


def sample_crop_boxes(
    n: int,
    height: int,
    width: int,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    generator: torch.Generator | None = None,
    *,
    device=None,
    attempts: int = 10,
) -> Tensor:
    """Crop boxes ``float32 [n, 4]`` as (top, left, h, w) in whole pixels, RandomResizedCrop-style.

    Per sample, as torchvision's ``RandomResizedCrop.get_params``: area fraction uniform in
    ``scale``, log aspect ratio (w / h) uniform in ``log(ratio)``, rounded to pixels; the first of
    ``attempts`` tries that fits is kept (all tries drawn at once). Samples with no fitting try get
    the centre crop whose aspect ratio is the image's clamped to ``ratio``. Offsets are uniform.
    """
    u = _rand((n, 2 * attempts + 2), generator, device or "cpu")
    area = height * width * (scale[0] + (scale[1] - scale[0]) * u[:, :attempts])
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * u[:, attempts : 2 * attempts])
    w = torch.sqrt(area * aspect).round()
    h = torch.sqrt(area / aspect).round()
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.int().argmax(dim=1, keepdim=True)  # index of the first fitting try
    found = fits.any(dim=1)

    image_ratio = width / height
    if image_ratio < min(ratio):
        fallback_w, fallback_h = width, round(width / min(ratio))
    elif image_ratio > max(ratio):
        fallback_w, fallback_h = round(height * max(ratio)), height
    else:
        fallback_w, fallback_h = width, height
    w = torch.where(found, w.gather(1, first).squeeze(1), float(fallback_w))
    h = torch.where(found, h.gather(1, first).squeeze(1), float(fallback_h))
    top = torch.minimum((u[:, -2] * (height - h + 1)).floor(), height - h)
    left = torch.minimum((u[:, -1] * (width - w + 1)).floor(), width - w)
    top = torch.where(found, top, float((height - fallback_h) // 2))
    left = torch.where(found, left, float((width - fallback_w) // 2))
    return torch.stack([top, left, h, w], dim=1)


def crop_and_resize(images: Tensor, boxes: Tensor, size: int | Sequence[int]) -> Tensor:
    """Bilinear resize of each sample's box ``(top, left, h, w)`` to ``size``, in one grid_sample.

    Matches ``F.interpolate(crop, size, mode="bilinear", align_corners=False, antialias=False)``
    per sample: sampling points are clamped to the box so its edge pixels are replicated.
    """
    n, c, height, width = images.shape
    out_h, out_w = as_pair(size)
    top, left, h, w = boxes.to(device=images.device, dtype=images.dtype).unbind(1)
    zero = torch.zeros_like(top)
    theta = torch.stack(
        [
            torch.stack([w / width, zero, (2 * left + w) / width - 1], dim=1),
            torch.stack([zero, h / height, (2 * top + h) / height - 1], dim=1),
        ],
        dim=1,
    )
    grid = F.affine_grid(theta, [n, c, out_h, out_w], align_corners=False)
    # normalised coordinates of the first and last pixel centres inside each box, as (x, y)
    low = torch.stack([(2 * left + 1) / width - 1, (2 * top + 1) / height - 1], dim=1)
    high = torch.stack([(2 * (left + w) - 1) / width - 1, (2 * (top + h) - 1) / height - 1], dim=1)
    grid = torch.maximum(torch.minimum(grid, high.view(n, 1, 1, 2)), low.view(n, 1, 1, 2))
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_resized_crop(
    images: Tensor,
    size: int | Sequence[int],
    *,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    generator: torch.Generator | None = None,
) -> Tensor:
    """Per-sample random crop resized to ``size``: float ``[N, C, H, W] -> [N, C, size, size]``.

    Boxes from ``sample_crop_boxes``; resampling is bilinear without antialiasing.
    """
    n, _, height, width = images.shape
    boxes = sample_crop_boxes(n, height, width, scale, ratio, generator, device=images.device)
    return crop_and_resize(images, boxes, size)


def horizontal_flip(
    images: Tensor, p: float = 0.5, generator: torch.Generator | None = None
) -> Tensor:
    """Mirror each sample left-right with probability ``p``."""
    flip = _rand((images.shape[0],), generator, images.device) < p
    return torch.where(_per_sample(flip), images.flip(-1), images)


# ---- colour -----------------------------------------------------------------------------------


def _blend(images: Tensor, other: Tensor, factor: Tensor | float) -> Tensor:
    factor = _per_sample(factor)
    return (factor * images + (1.0 - factor) * other).clamp(0.0, 1.0)


def rgb_to_grayscale(images: Tensor) -> Tensor:
    """ITU-R 601-2 luma ``[N, 1, H, W]`` of an RGB batch ``[N, 3, H, W]``."""
    if images.shape[1] != 3:
        raise ConfigError(f"grayscale conversion needs 3 (RGB) channels, got {images.shape[1]}")
    r, g, b = images.unbind(1)
    return (LUMA_WEIGHTS[0] * r + LUMA_WEIGHTS[1] * g + LUMA_WEIGHTS[2] * b).unsqueeze(1)


def adjust_brightness(images: Tensor, factor: Tensor | float) -> Tensor:
    """``x * factor`` clamped to 0..1; ``factor`` is a float or per-sample ``[N]``."""
    return (images * _per_sample(factor)).clamp(0.0, 1.0)


def adjust_contrast(images: Tensor, factor: Tensor | float) -> Tensor:
    """Blend with each image's mean grey level (mean over all channels when C != 3)."""
    grey = rgb_to_grayscale(images) if images.shape[1] == 3 else images
    return _blend(images, grey.mean(dim=(1, 2, 3), keepdim=True), factor)


def adjust_saturation(images: Tensor, factor: Tensor | float) -> Tensor:
    """Blend with the image's grayscale version; no-op for C != 3."""
    if images.shape[1] != 3:
        return images
    return _blend(images, rgb_to_grayscale(images), factor)


def _rgb_to_hsv(images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Hue, saturation, value, each ``[N, H, W]`` in 0..1."""
    r, g, b = images.unbind(1)
    value = images.amax(dim=1)
    chroma = value - images.amin(dim=1)
    saturation = chroma / value.clamp_min(1e-12)
    safe = chroma.clamp_min(1e-12)
    hue = torch.where(
        value == r,
        ((g - b) / safe).remainder(6.0),
        torch.where(value == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0),
    )
    hue = torch.where(chroma > 0, hue / 6.0, torch.zeros_like(hue))
    return hue, saturation, value


def _hsv_to_rgb(hue: Tensor, saturation: Tensor, value: Tensor) -> Tensor:
    """``[N, 3, H, W]``; channel n is ``v (1 - s clamp(min(k, 4 - k), 0, 1))``, k = (n + 6h) % 6."""
    offsets = torch.tensor([5.0, 3.0, 1.0], device=hue.device, dtype=hue.dtype).view(1, 3, 1, 1)
    k = (offsets + 6.0 * hue.unsqueeze(1)).remainder(6.0)
    ramp = torch.minimum(k, 4.0 - k).clamp(0.0, 1.0)
    return value.unsqueeze(1) * (1.0 - saturation.unsqueeze(1) * ramp)


def adjust_hue(images: Tensor, shift: Tensor | float) -> Tensor:
    """Rotate the hue by ``shift`` (in turns, -0.5..0.5) in HSV space; no-op for C != 3."""
    if images.shape[1] != 3:
        return images
    hue, saturation, value = _rgb_to_hsv(images)
    shift = shift.view(-1, 1, 1) if isinstance(shift, Tensor) else shift
    return _hsv_to_rgb((hue + shift).remainder(1.0), saturation, value)


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
    u = _rand((n, 9), generator, device or "cpu")
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
    saturation, hue). Draws come from ``jitter_parameters``; at each of the 4 steps every op runs
    once on the subset of samples whose permutation puts it there. Samples not selected are
    returned unchanged.
    """
    ops = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)
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
    active = [s > 0 for s in (brightness, contrast, saturation, hue)]
    out = images.clone()
    for step in range(4):
        for k, op in enumerate(ops):
            if not active[k]:
                continue
            subset = (selected & (order[:, step] == k)).nonzero().squeeze(1)
            if subset.numel():
                out[subset] = op(out[subset], factors[subset, k])
    return out


def random_grayscale(
    images: Tensor, p: float = 0.2, generator: torch.Generator | None = None
) -> Tensor:
    """With probability ``p`` per sample, replace RGB by its luma in all 3 channels.

    No-op for C != 3."""
    selected = _rand((images.shape[0],), generator, images.device) < p
    if images.shape[1] != 3:
        return images
    return torch.where(_per_sample(selected), rgb_to_grayscale(images), images)


def solarize(
    images: Tensor,
    p: float = 0.2,
    threshold: float = 0.5,
    generator: torch.Generator | None = None,
) -> Tensor:
    """With probability ``p`` per sample, invert pixels ``>= threshold`` (``x -> 1 - x``)."""
    selected = _rand((images.shape[0],), generator, images.device) < p
    return torch.where(_per_sample(selected) & (images >= threshold), 1.0 - images, images)


# ---- blur and normalisation -------------------------------------------------------------------


def default_blur_kernel_size(height: int, width: int) -> int:
    """About 10% of the shorter side, odd, at least 3 (SimCLR), and small enough to reflect-pad."""
    size = max(3, round(0.1 * min(height, width)))
    size = size if size % 2 else size + 1
    return min(size, 2 * min(height, width) - 1)


def gaussian_kernel1d(kernel_size: int, sigma: Tensor) -> Tensor:
    """Normalised 1-D Gaussian kernels ``[N, kernel_size]`` for per-sample ``sigma [N]``."""
    half = (kernel_size - 1) / 2
    x = torch.linspace(-half, half, kernel_size, device=sigma.device, dtype=sigma.dtype)
    pdf = torch.exp(-0.5 * (x / sigma.unsqueeze(1)) ** 2)
    return pdf / pdf.sum(dim=1, keepdim=True)


def gaussian_blur(
    images: Tensor,
    p: float = 0.5,
    sigma: float | Sequence[float] = (0.1, 2.0),
    kernel_size: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """With probability ``p`` per sample, Gaussian blur with sigma uniform in ``sigma``.

    Separable: one grouped convolution per axis with a kernel per sample (the batch is folded into
    channels), reflect padding. ``kernel_size`` defaults to ``default_blur_kernel_size``.
    """
    n, c, height, width = images.shape
    size = kernel_size if kernel_size is not None else default_blur_kernel_size(height, width)
    if size < 1 or size % 2 == 0:
        raise ConfigError(f"blur kernel_size must be a positive odd number, got {size}")
    low, high = (sigma, sigma) if isinstance(sigma, (int, float)) else sigma
    if not 0 < low <= high:
        raise ConfigError(f"blur sigma range ({low}, {high}) must satisfy 0 < low <= high")
    u = _rand((2, n), generator, images.device)
    selected = u[0] < p
    kernels = gaussian_kernel1d(size, low + (high - low) * u[1]).to(images.dtype)
    kernels = kernels.repeat_interleave(c, dim=0)  # [N * C, size]
    pad = size // 2
    x = F.pad(images.reshape(1, n * c, height, width), [pad, pad, pad, pad], mode="reflect")
    x = F.conv2d(x, kernels.view(n * c, 1, size, 1), groups=n * c)
    x = F.conv2d(x, kernels.view(n * c, 1, 1, size), groups=n * c)
    return torch.where(_per_sample(selected), x.view(n, c, height, width), images)


def normalize(images: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """``(x - mean) / std`` per channel; ``mean`` and ``std`` need one value per channel."""
    c = images.shape[1]
    if len(mean) != c or len(std) != c:
        raise ConfigError(
            f"mean/std have {len(mean)}/{len(std)} values but the images have {c} channel(s); "
            "give one mean and one std per channel"
        )
    mean_t = torch.as_tensor(mean, dtype=images.dtype, device=images.device).view(1, c, 1, 1)
    std_t = torch.as_tensor(std, dtype=images.dtype, device=images.device).view(1, c, 1, 1)
    return (images - mean_t) / std_t
