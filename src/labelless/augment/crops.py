"""Whole-pixel region ops: cutout and pad-and-crop, per-sample parameters, no sample loop.

Cutout is DeVries & Taylor 2017, "Improved Regularization of Convolutional Neural Networks with
Cutout"; ``pad_crop`` is the weak (flip-and-shift) augmentation of FixMatch (Sohn et al. 2020,
"FixMatch: Simplifying Semi-Supervised Learning with Consistency and Confidence"). Both only move
or overwrite whole pixels, so they work on any dtype (``reflect_pad_crop`` reads uint8 directly).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from labelless.augment.common import uniform_draw
from labelless.errors import ConfigError

PAD_MODES = ("reflect", "replicate", "circular", "constant")


# ---- cutout and pad-and-crop ------------------------------------------------------------------


def sample_cutout_boxes(
    n: int,
    height: int,
    width: int,
    size: int | float,
    generator: torch.Generator | None = None,
    *,
    device=None,
) -> Tensor:
    """Cutout squares ``int64 [n, 4]`` as (top, left, bottom, right), bottom/right exclusive.

    Side ``size`` pixels (a float is a fraction of the shorter side); the centre pixel is uniform
    over the image and the square is clipped at the borders, as DeVries & Taylor (2017)."""
    side = round(size * min(height, width)) if isinstance(size, float) else int(size)
    if side < 0:
        raise ConfigError(f"cutout size must be >= 0, got {size}")
    u = uniform_draw((n, 2), generator, device or "cpu")
    centre_y = (u[:, 0] * height).long().clamp_max(height - 1)
    centre_x = (u[:, 1] * width).long().clamp_max(width - 1)
    top, left = centre_y - side // 2, centre_x - side // 2
    return torch.stack(
        [
            top.clamp(0, height),
            left.clamp(0, width),
            (top + side).clamp(0, height),
            (left + side).clamp(0, width),
        ],
        dim=1,
    )


def apply_cutout(
    images: Tensor, boxes: Tensor, selected: Tensor, fill: float | Sequence[float] = 0.5
) -> Tensor:
    """Set each ``selected [N]`` sample's square ``boxes [N, 4]`` (``sample_cutout_boxes``) to
    ``fill``. The mask is the outer product of each sample's row range ``[N, H]`` and column
    range ``[N, W]`` (0/1 floats), blended in with ``lerp`` (exact at weights 0 and 1): no
    pixel-sized boolean work."""
    n, _, height, width = images.shape
    device = images.device
    top, left, bottom, right = (b.view(n, 1) for b in boxes.to(device).unbind(1))
    rows = torch.arange(height, device=device)
    cols = torch.arange(width, device=device)
    in_rows = (rows >= top) & (rows < bottom) & selected.to(device).view(n, 1)
    in_cols = (cols >= left) & (cols < right)
    inside = in_rows.to(images.dtype).view(n, 1, height, 1) * in_cols.to(images.dtype).view(
        n, 1, 1, width
    )
    fill_t = torch.as_tensor(fill, dtype=images.dtype, device=device).view(1, -1, 1, 1)
    return torch.lerp(images, fill_t, inside)


def cutout(
    images: Tensor,
    size: int | float,
    p: float = 1.0,
    fill: float | Sequence[float] = 0.5,
    generator: torch.Generator | None = None,
) -> Tensor:
    """With probability ``p`` per sample, set one square (``sample_cutout_boxes``) to ``fill``."""
    n, _, height, width = images.shape
    boxes = sample_cutout_boxes(n, height, width, size, generator, device=images.device)
    selected = uniform_draw((n,), generator, images.device) < p
    return apply_cutout(images, boxes, selected, fill)


def sample_crop_offsets(
    n: int, padding: int, generator: torch.Generator | None = None, *, device=None
) -> Tensor:
    """Offsets ``int64 [n, 2]`` (top, left), each uniform over ``0 .. 2 * padding``."""
    u = uniform_draw((n, 2), generator, device or "cpu")
    return (u * (2 * padding + 1)).long().clamp_max(2 * padding)


def pad_crop(
    images: Tensor,
    padding: int,
    generator: torch.Generator | None = None,
    mode: str = "reflect",
    fill: float = 0.0,
) -> Tensor:
    """Pad by ``padding`` pixels per side, then crop back to ``H x W`` at a per-sample offset.

    Offsets from ``sample_crop_offsets``; ``mode`` as ``F.pad`` (``fill`` is the constant). The
    crops are read with one ``gather`` over flattened pixel indices."""
    if mode not in PAD_MODES:
        raise ConfigError(f"pad_crop mode must be one of {PAD_MODES}, got {mode!r}")
    if not isinstance(padding, int) or padding < 0:
        raise ConfigError(f"pad_crop padding must be a whole number of pixels >= 0, got {padding}")
    n, c, height, width = images.shape
    offsets = sample_crop_offsets(n, padding, generator, device=images.device)
    if padding == 0:
        return images
    if mode == "reflect":
        return reflect_pad_crop(images, offsets, padding)
    value = fill if mode == "constant" else None
    padded = F.pad(images, [padding] * 4, mode=mode, value=value)
    padded_width = width + 2 * padding
    rows = offsets[:, :1] + torch.arange(height, device=images.device)  # [N, H]
    cols = offsets[:, 1:] + torch.arange(width, device=images.device)  # [N, W]
    index = (rows.unsqueeze(2) * padded_width + cols.unsqueeze(1)).view(n, 1, height * width)
    out = padded.flatten(2).gather(2, index.expand(n, c, height * width))
    return out.view(n, c, height, width)


def _reflect(index: Tensor, size: int) -> Tensor:
    """Map indices in ``-(size - 1) .. 2 (size - 1)`` into ``0 .. size - 1`` by reflection about
    the edge pixels (``F.pad``'s ``"reflect"``)."""
    return (size - 1) - ((size - 1) - index.abs()).abs()


def reflect_pad_crop(
    images: Tensor,
    offsets: Tensor | None,
    padding: int,
    *,
    hflip: Tensor | None = None,
    vflip: Tensor | None = None,
) -> Tensor:
    """``pad_crop`` with reflect padding, read straight from ``images`` (any dtype, e.g. uint8).

    Output pixel (i, j) of sample n reads ``images[n, :, reflect(top + i - padding), reflect(left
    + j - padding)]`` for ``offsets [N, 2]`` (top, left; None: all ``padding``, the centre);
    ``hflip`` / ``vflip`` (boolean ``[N]``) mirror samples by reversing their indices. Rows are
    copied whole (``index_select``), then columns gathered: no padded copy is made.
    """
    n, c, height, width = images.shape
    if padding >= min(height, width):
        raise ConfigError(f"reflect padding {padding} must be smaller than the image {height}px")
    device = images.device
    if offsets is None:
        offsets = torch.full((n, 2), padding, dtype=torch.long, device=device)
    offsets = offsets.to(device) - padding
    rows = _reflect(offsets[:, :1] + torch.arange(height, device=device), height)  # [N, H]
    cols = _reflect(offsets[:, 1:] + torch.arange(width, device=device), width)  # [N, W]
    if vflip is not None:
        rows = torch.where(vflip.to(device).unsqueeze(1), rows.flip(1), rows)
    if hflip is not None:
        cols = torch.where(hflip.to(device).unsqueeze(1), cols.flip(1), cols)
    planes = (torch.arange(n * c, device=device) * height).view(n, c, 1)
    flat_rows = (planes + rows.unsqueeze(1)).view(-1)  # [N * C * H] rows of the flat image
    out = images.reshape(n * c * height, width).index_select(0, flat_rows).view(n, c, height, width)
    return out.gather(3, cols.view(n, 1, 1, width).expand(n, c, height, width))
