"""Batched geometric augmentation: flips and affine warps, no sample loop.

Every op takes a float batch ``[N, C, H, W]`` in 0..1 with per-sample parameters (``[N]`` tensors
or floats shared by the batch). Affine warps follow ``torchvision.transforms.v2.functional``:
the same inverse matrix (torchvision's ``_get_inverse_affine_matrix``, about the image centre
unless ``center`` is given), the same pixel grid, and the same fill rule, all samples in one
``F.affine_grid`` + ``F.grid_sample`` call. Cutout and pad-and-crop live in ``augment.crops``
(re-exported here).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from labelless.augment.common import per_sample_view, select, uniform_draw
from labelless.augment.crops import (  # noqa: F401 (re-exported: they lived here)
    PAD_MODES,
    apply_cutout,
    cutout,
    pad_crop,
    reflect_pad_crop,
    sample_crop_offsets,
    sample_cutout_boxes,
)
from labelless.errors import ConfigError

INTERPOLATIONS = ("nearest", "bilinear")

Values = Tensor | float | Sequence[float]


def vertical_flip(
    images: Tensor, p: float = 0.5, generator: torch.Generator | None = None
) -> Tensor:
    """Mirror each sample top-bottom with probability ``p``."""
    flip = uniform_draw((images.shape[0],), generator, images.device) < p
    return torch.where(per_sample_view(flip), images.flip(-2), images)


# ---- affine -----------------------------------------------------------------------------------


def _batch_values(values: Values, n: int, device, width: int = 1) -> Tensor:
    """A float, a ``width``-sequence or a per-sample tensor -> float64 ``[n]`` or ``[n, width]``."""
    t = torch.as_tensor(values, dtype=torch.float64, device=device)
    shape = (n,) if width == 1 else (n, width)
    if t.ndim == 0 or (width > 1 and t.shape == (width,)) or t.shape == shape:
        return t.expand(shape)
    raise ConfigError(f"per-sample affine parameters need shape {shape}, got {tuple(t.shape)}")


def inverse_affine_matrices(
    height: int,
    width: int,
    *,
    angle: Values,
    translate: Values,
    scale: Values,
    shear: Values,
    center: Sequence[float] | Tensor | None = None,
    n: int,
    device=None,
) -> Tensor:
    """Output -> input pixel maps ``float64 [n, 2, 3]``, as torchvision's inverse affine matrix.

    Forward map ``M = T C R S Sh_y Sh_x C^-1``: rotation by ``angle`` degrees (clockwise on
    screen), uniform ``scale``, shears ``(sx, sy)`` in degrees, then translation ``(tx, ty)``
    pixels, all about ``center``. Coordinates have their origin at the image centre (``center``,
    if given, is in pixels from the top-left corner, as in torchvision, or per sample ``[n, 2]``)
    and y pointing down.
    """
    angle = torch.deg2rad(_batch_values(angle, n, device))
    shear_x, shear_y = torch.deg2rad(_batch_values(shear, n, device, 2)).unbind(1)
    tx, ty = _batch_values(translate, n, device, 2).unbind(1)
    scale = _batch_values(scale, n, device)
    if (scale <= 0).any():
        raise ConfigError("affine scale must be > 0")
    if center is None:
        cx, cy = 0.0, 0.0
    else:
        half = torch.tensor([width / 2, height / 2], dtype=torch.float64, device=device)
        cx, cy = (_batch_values(center, n, device, 2) - half).unbind(1)

    # forward rotation-shear [[a, b], [c, d]] (determinant 1); its inverse is [[d, -b], [-c, a]]
    a = torch.cos(angle - shear_y) / torch.cos(shear_y)
    b = -(a * torch.tan(shear_x) + torch.sin(angle))
    c = torch.sin(angle - shear_y) / torch.cos(shear_y)
    d = torch.cos(angle) - c * torch.tan(shear_x)
    m00, m01, m10, m11 = d / scale, -b / scale, -c / scale, a / scale
    m02 = cx - m00 * (cx + tx) - m01 * (cy + ty)
    m12 = cy - m10 * (cx + tx) - m11 * (cy + ty)
    return torch.stack([torch.stack([m00, m01, m02], 1), torch.stack([m10, m11, m12], 1)], 1)


def _affine_grid(theta: Tensor, height: int, width: int) -> Tensor:
    """``F.affine_grid(theta, [n, _, height, width], align_corners=False)`` by broadcasting:
    three multiply-adds per coordinate instead of a batched matmul of ``[H * W, 3]`` rows
    (which is slow on the CPU for small images)."""
    xs = torch.arange(width, dtype=theta.dtype, device=theta.device).mul_(2 / width)
    ys = torch.arange(height, dtype=theta.dtype, device=theta.device).mul_(2 / height)
    xs, ys = xs.add_(1 / width - 1).view(1, 1, width), ys.add_(1 / height - 1).view(1, height, 1)
    coefficients = theta.view(-1, 2, 3, 1, 1)
    gx = coefficients[:, 0, 0] * xs + coefficients[:, 0, 1] * ys + coefficients[:, 0, 2]
    gy = coefficients[:, 1, 0] * xs + coefficients[:, 1, 1] * ys + coefficients[:, 1, 2]
    return torch.stack([gx, gy], dim=-1)


def warp_affine(
    images: Tensor,
    matrices: Tensor,
    *,
    fill: float | Sequence[float] = 0.0,
    interpolation: str = "nearest",
) -> Tensor:
    """Resample each sample through its centred pixel map ``matrices [N, 2, 3]`` (output -> input).

    One ``affine_grid`` + ``grid_sample`` over the batch. A ones channel is sampled alongside the
    image to know how much of each output pixel came from inside it; as in torchvision, nearest
    puts ``fill`` where that is < 0.5 and bilinear returns ``mask * (x - fill) + fill``.
    """
    if interpolation not in INTERPOLATIONS:
        raise ConfigError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")
    c, height, width = images.shape[1:]
    # pixel coordinates x = u * w / 2 (u the normalised coordinate of align_corners=False)
    to_pixels = torch.tensor([width / 2, height / 2, 1.0], dtype=torch.float64)
    from_pixels = torch.tensor([2 / width, 2 / height], dtype=torch.float64).view(2, 1)
    theta = matrices.double() * to_pixels.to(matrices.device) * from_pixels.to(matrices.device)
    grid = _affine_grid(theta.to(images.dtype), height, width)
    ones = torch.ones_like(images[:, :1])
    sampled = F.grid_sample(
        torch.cat([images, ones], dim=1),
        grid,
        mode=interpolation,
        padding_mode="zeros",
        align_corners=False,
    )
    out, mask = sampled[:, :c], sampled[:, c:]
    fill_t = torch.as_tensor(fill, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    if interpolation == "nearest":
        return select(mask < 0.5, fill_t, out)
    return (out - fill_t) * mask + fill_t


def affine(
    images: Tensor,
    *,
    angle: Values = 0.0,
    translate: Values = (0.0, 0.0),
    scale: Values = 1.0,
    shear: Values = (0.0, 0.0),
    fill: float | Sequence[float] = 0.0,
    interpolation: str = "nearest",
    center: Sequence[float] | None = None,
) -> Tensor:
    """Per-sample affine warp, as ``TF.affine`` sample by sample, in one batched grid_sample.

    ``angle [N]`` degrees clockwise, ``translate [N, 2]`` pixels (x right, y down), ``scale [N]``,
    ``shear [N, 2]`` degrees (x, y); floats (or one pair) apply to every sample. Pixels that map
    outside the image take ``fill``.
    """
    n, _, height, width = images.shape
    matrices = inverse_affine_matrices(
        height,
        width,
        angle=angle,
        translate=translate,
        scale=scale,
        shear=shear,
        center=center,
        n=n,
        device=images.device,
    )
    return warp_affine(images, matrices, fill=fill, interpolation=interpolation)


def rotate(
    images: Tensor,
    angle: Values,
    fill: float | Sequence[float] = 0.0,
    interpolation: str = "nearest",
) -> Tensor:
    """Rotate each sample ``angle [N]`` degrees counter-clockwise about its centre (TF.rotate)."""
    angle = -torch.as_tensor(angle, dtype=torch.float64, device=images.device)
    return affine(images, angle=angle, fill=fill, interpolation=interpolation)


def _pairs(first: Values, second: Values, n: int, device) -> Tensor:
    return torch.stack([_batch_values(first, n, device), _batch_values(second, n, device)], 1)


def shear_x(
    images: Tensor,
    factor: Values,
    fill: float | Sequence[float] = 0.0,
    interpolation: str = "nearest",
) -> Tensor:
    """Output ``(x, y)`` reads input ``(x + factor * y, y)``: shear about the top-left corner.

    The AutoAugment convention (PIL's ``(1, factor, 0, 0, 1, 0)``), as torchvision's RandAugment."""
    n, device = images.shape[0], images.device
    degrees = torch.rad2deg(torch.atan(_batch_values(factor, n, device)))
    return affine(
        images,
        shear=_pairs(degrees, 0.0, n, device),
        fill=fill,
        interpolation=interpolation,
        center=(0.0, 0.0),
    )


def shear_y(
    images: Tensor,
    factor: Values,
    fill: float | Sequence[float] = 0.0,
    interpolation: str = "nearest",
) -> Tensor:
    """Output ``(x, y)`` reads input ``(x, y + factor * x)``: shear about the top-left corner."""
    n, device = images.shape[0], images.device
    degrees = torch.rad2deg(torch.atan(_batch_values(factor, n, device)))
    return affine(
        images,
        shear=_pairs(0.0, degrees, n, device),
        fill=fill,
        interpolation=interpolation,
        center=(0.0, 0.0),
    )


def translate_x(
    images: Tensor,
    pixels: Values,
    fill: float | Sequence[float] = 0.0,
    interpolation: str = "nearest",
) -> Tensor:
    """Shift each sample right by ``pixels [N]`` (left when negative)."""
    n, device = images.shape[0], images.device
    translate = _pairs(pixels, 0.0, n, device)
    return affine(images, translate=translate, fill=fill, interpolation=interpolation)


def translate_y(
    images: Tensor,
    pixels: Values,
    fill: float | Sequence[float] = 0.0,
    interpolation: str = "nearest",
) -> Tensor:
    """Shift each sample down by ``pixels [N]`` (up when negative)."""
    n, device = images.shape[0], images.device
    translate = _pairs(0.0, pixels, n, device)
    return affine(images, translate=translate, fill=fill, interpolation=interpolation)


def _range(name: str, value: float | Sequence[float] | None, symmetric: bool) -> tuple[float, ...]:
    if value is None:
        return ()
    if isinstance(value, (int, float)):
        if value < 0:
            raise ConfigError(f"random_affine {name} must be >= 0, got {value}")
        return (-float(value), float(value)) if symmetric else (float(value),)
    return tuple(float(v) for v in value)


def random_affine(
    images: Tensor,
    p: float = 1.0,
    degrees: float | Sequence[float] = 0.0,
    translate: Sequence[float] | None = None,
    scale: Sequence[float] | None = None,
    shear: float | Sequence[float] | None = None,
    generator: torch.Generator | None = None,
    *,
    fill: float | Sequence[float] = 0.0,
    interpolation: str = "nearest",
) -> Tensor:
    """With probability ``p`` per sample, a random affine warp drawn as torchvision's RandomAffine.

    Angle uniform in ``degrees`` (``d`` means ``(-d, d)``); translation ``round(U(-t W, t W))``
    and ``round(U(-t H, t H))`` pixels for ``translate = (tx, ty)`` fractions; scale uniform in
    ``scale``; shear x uniform in ``shear`` (``s``, ``(lo, hi)``) and y in its last two values
    when four are given. Samples not selected are returned unchanged.
    """
    n, _, height, width = images.shape
    angle_range = _range("degrees", degrees, symmetric=True)
    shear_range = _range("shear", shear, symmetric=True)
    if len(angle_range) != 2 or len(shear_range) not in (0, 2, 4):
        raise ConfigError("random_affine degrees needs 1 or 2 values, shear 1, 2 or 4")
    u = uniform_draw((7, n), generator, images.device).double()

    def uniform(row: int, low: float, high: float) -> Tensor:
        return low + (high - low) * u[row]

    angle = uniform(1, *angle_range)
    tx, ty = (0.0, 0.0) if translate is None else (translate[0] * width, translate[1] * height)
    shift = torch.stack([uniform(2, -tx, tx).round(), uniform(3, -ty, ty).round()], 1)
    factor = uniform(4, *scale) if scale is not None else 1.0
    shear_xy = [uniform(5, *shear_range[:2]) if shear_range else 0.0, 0.0]
    if len(shear_range) == 4:
        shear_xy[1] = uniform(6, *shear_range[2:])
    warped = affine(
        images,
        angle=angle,
        translate=shift,
        scale=factor,
        shear=_pairs(*shear_xy, n, images.device),
        fill=fill,
        interpolation=interpolation,
    )
    return torch.where(per_sample_view(u[0] < p), warped, images)
