"""Batched image augmentation: crop, flip, blur and normalisation, per-sample parameters, no loop.

Every op takes a float batch ``[N, C, H, W]`` in 0..1, draws one set of parameters per sample from
a ``torch.Generator`` on the batch's device, and applies them as batched arithmetic. The view
recipes are those of SimCLR (Chen et al. 2020, "A Simple Framework for Contrastive Learning of
Visual Representations") and BYOL (Grill et al. 2020, "Bootstrap Your Own Latent"). Random ops
are split into a draw and a deterministic apply (``crop_grids`` + ``resample_crops``,
``draw_blur`` + ``apply_gaussian_blur``) so that the view engine can draw for a whole batch and
apply chunk by chunk. Crop, flip and blur work for any C. The colour ops live in
``augment.colour`` (re-exported here).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from labelless.augment.colour import (  # noqa: F401  (re-exported: colour ops lived here)
    JITTER_OPS,
    LUMA_WEIGHTS,
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    color_jitter,
    jitter_parameters,
    random_grayscale,
    rgb_to_grayscale,
    solarize,
)
from labelless.augment.common import as_pair, on_subset, per_sample_view, to_float, uniform_draw  # noqa: F401
from labelless.errors import ConfigError

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
    u = uniform_draw((n, 2 * attempts + 2), generator, device or "cpu")
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


def crop_grids(
    boxes: Tensor,
    height: int,
    width: int,
    size: int | Sequence[int],
    *,
    hflip: Tensor | None = None,
    vflip: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Where ``resample_crops`` samples each box ``(top, left, h, w)`` of a ``height x width``
    image for an output of ``size``: normalised input coordinates ``(x [N, out_w], y [N, out_h])``
    of the output pixel centres, clamped to the first and last pixel centres inside the box (so
    its edge pixels are replicated, as ``F.interpolate`` of the crop does). A crop is an axis-
    aligned scaling, so the grid is separable. ``hflip`` / ``vflip`` (boolean ``[N]``) mirror the
    coordinates, the same as flipping the output.
    """
    out_h, out_w = as_pair(size)
    top, left, h, w = boxes.to(torch.float32).unbind(1)

    def axis(start: Tensor, extent: Tensor, full: int, steps: int, flip: Tensor | None) -> Tensor:
        # pixel centres of the output in -1..1 (linspace is exactly symmetric, so flips are exact)
        centres = torch.linspace(-1 + 1 / steps, 1 - 1 / steps, steps, device=boxes.device)
        scale = extent / full
        if flip is not None:
            scale = torch.where(flip.to(boxes.device), -scale, scale)
        coords = centres * scale.unsqueeze(1) + ((2 * start + extent) / full - 1).unsqueeze(1)
        low = ((2 * start + 1) / full - 1).unsqueeze(1)
        high = ((2 * (start + extent) - 1) / full - 1).unsqueeze(1)
        return torch.maximum(torch.minimum(coords, high), low)

    return axis(left, w, width, out_w, hflip), axis(top, h, height, out_h, vflip)


def resample_crops(images: Tensor, grids: tuple[Tensor, Tensor]) -> Tensor:
    """Bilinear resampling of each sample at its ``crop_grids`` coordinates, one grid_sample."""
    x, y = (g.to(device=images.device, dtype=images.dtype) for g in grids)
    n, out_h, out_w = x.shape[0], y.shape[1], x.shape[1]
    grid = torch.stack(
        [x.unsqueeze(1).expand(n, out_h, out_w), y.unsqueeze(2).expand(n, out_h, out_w)], dim=-1
    )
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def crop_and_resize(
    images: Tensor,
    boxes: Tensor,
    size: int | Sequence[int],
    *,
    hflip: Tensor | None = None,
    vflip: Tensor | None = None,
) -> Tensor:
    """Bilinear resize of each sample's box ``(top, left, h, w)`` to ``size``, in one grid_sample.

    Matches ``F.interpolate(crop, size, mode="bilinear", align_corners=False, antialias=False)``
    per sample: sampling points are clamped to the box so its edge pixels are replicated.
    ``hflip`` / ``vflip`` (boolean ``[N]``) mirror those samples' outputs for free, by mirroring
    their sampling grids (the same values as flipping the output).
    """
    height, width = images.shape[-2:]
    return resample_crops(images, crop_grids(boxes, height, width, size, hflip=hflip, vflip=vflip))


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


def resize_center_crop(x: Tensor, size: int, crop_fraction: float = 1.0) -> Tensor:
    """Resize (bilinear, antialiased) so the centre ``crop_fraction`` of the image is ``size``
    pixels, then cut that centre out. Images already at the target size are not resampled.

    uint8 images on the CPU are resampled in uint8 and ``channels_last`` (PyTorch's vectorised
    uint8 kernel, the one torchvision's ``Resize`` uses, rounding to uint8 as it does); other
    inputs in float."""
    height, width = x.shape[-2:]
    full = round(size / crop_fraction)
    if (height, width) != (full, full):
        if x.dtype == torch.uint8 and x.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        elif x.dtype == torch.uint8:
            x = x.float().div_(255.0)
        x = F.interpolate(
            x, size=(full, full), mode="bilinear", align_corners=False, antialias=True
        )
    top = (full - size) // 2
    return x[..., top : top + size, top : top + size]


def apply_flips(images: Tensor, hflip: Tensor | None, vflip: Tensor | None) -> Tensor:
    """Mirror the samples marked in ``hflip`` left-right and those in ``vflip`` top-bottom."""
    if hflip is not None:
        images = on_subset(images, hflip, lambda x, _: x.flip(-1))
    if vflip is not None:
        images = on_subset(images, vflip, lambda x, _: x.flip(-2))
    return images


def horizontal_flip(
    images: Tensor, p: float = 0.5, generator: torch.Generator | None = None
) -> Tensor:
    """Mirror each sample left-right with probability ``p``."""
    flip = uniform_draw((images.shape[0],), generator, images.device) < p
    return apply_flips(images.clone(), flip, None)


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


def blur_kernel_size(height: int, width: int, kernel_size: int | None = None) -> int:
    """``kernel_size`` (checked: positive and odd) or ``default_blur_kernel_size``."""
    size = kernel_size if kernel_size is not None else default_blur_kernel_size(height, width)
    if size < 1 or size % 2 == 0:
        raise ConfigError(f"blur kernel_size must be a positive odd number, got {size}")
    return size


def draw_blur(
    n: int,
    p: float,
    sigma: float | Sequence[float],
    generator: torch.Generator | None = None,
    device=None,
) -> tuple[Tensor, Tensor]:
    """``(selected [n] bool, sigma [n])``: which samples blur, with sigma uniform in ``sigma``."""
    low, high = (sigma, sigma) if isinstance(sigma, (int, float)) else sigma
    if not 0 < low <= high:
        raise ConfigError(f"blur sigma range ({low}, {high}) must satisfy 0 < low <= high")
    u = uniform_draw((2, n), generator, device or "cpu")
    return u[0] < p, low + (high - low) * u[1]


def apply_gaussian_blur(images: Tensor, sigma: Tensor, kernel_size: int) -> Tensor:
    """Blur every sample with its own ``sigma [N]``: separable, one grouped convolution per axis
    with a kernel per sample (the batch folded into channels), reflect padding."""
    n, c, height, width = images.shape
    kernels = gaussian_kernel1d(kernel_size, sigma.to(images.device)).to(images.dtype)
    kernels = kernels.repeat_interleave(c, dim=0)  # [N * C, size]
    pad = kernel_size // 2
    x = F.pad(images.reshape(1, n * c, height, width), [pad, pad, pad, pad], mode="reflect")
    x = F.conv2d(x, kernels.view(n * c, 1, kernel_size, 1), groups=n * c)
    x = F.conv2d(x, kernels.view(n * c, 1, 1, kernel_size), groups=n * c)
    return x.view(n, c, height, width)


def gaussian_blur(
    images: Tensor,
    p: float = 0.5,
    sigma: float | Sequence[float] = (0.1, 2.0),
    kernel_size: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """With probability ``p`` per sample, Gaussian blur with sigma uniform in ``sigma``.

    Draws from ``draw_blur``, applied by ``apply_gaussian_blur`` to the selected samples only.
    ``kernel_size`` defaults to ``default_blur_kernel_size``.
    """
    size = blur_kernel_size(*images.shape[-2:], kernel_size)
    selected, sigmas = draw_blur(images.shape[0], p, sigma, generator, images.device)
    blur = lambda x, index: apply_gaussian_blur(x, sigmas[index], size)  # noqa: E731
    return on_subset(images.clone(), selected, blur)


def check_stats(channels: int, mean: Sequence[float], std: Sequence[float]) -> None:
    if len(mean) != channels or len(std) != channels:
        raise ConfigError(
            f"mean/std have {len(mean)}/{len(std)} values but the images have {channels} "
            "channel(s); give one mean and one std per channel"
        )


def normalize(images: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """``(x - mean) / std`` per channel; ``mean`` and ``std`` need one value per channel."""
    c = images.shape[1]
    check_stats(c, mean, std)
    mean_t = torch.as_tensor(mean, dtype=images.dtype, device=images.device).view(1, c, 1, 1)
    std_t = torch.as_tensor(std, dtype=images.dtype, device=images.device).view(1, c, 1, 1)
    return (images - mean_t) / std_t


@functools.lru_cache(maxsize=64)
def _normalization(
    mean: tuple[float, ...], std: tuple[float, ...], scale: float, dtype: torch.dtype, device
) -> tuple[Tensor, Tensor]:
    """``(weight, bias)``, each ``[1, C, 1, 1]``: ``x weight + bias = (scale x - mean) / std``."""
    std_t = torch.tensor(std, dtype=torch.float64)
    weight = (scale / std_t).to(dtype).view(1, -1, 1, 1).to(device)
    bias = (-torch.tensor(mean, dtype=torch.float64) / std_t).to(dtype).view(1, -1, 1, 1)
    return weight, bias.to(device)


def normalize_into(
    out: Tensor,
    images: Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    scale: float = 1.0,
    *,
    in_place: bool = False,
) -> Tensor:
    """``out = (scale x - mean) / std`` per channel as one fused multiply-add, written into
    ``out`` (any layout, e.g. a ``channels_last`` slice); ``images`` may be uint8 with
    ``scale = 1 / 255``. ``in_place=True`` normalises float ``images`` in their own layout first
    and then copies (faster into another layout). Equals ``normalize`` up to float rounding."""
    check_stats(images.shape[1], mean, std)
    weight, bias = _normalization(tuple(mean), tuple(std), scale, out.dtype, out.device)
    if in_place and images.dtype == out.dtype:
        return out.copy_(torch.addcmul(bias, images, weight, out=images))
    return torch.addcmul(bias, images, weight, out=out)
