"""The view engine: draw a whole batch's parameters for one view, then apply them chunk by chunk.

A float batch of 64 x 3 x 224 x 224 is 38 MB: an op that streams all of it through memory per
pass is bound by memory bandwidth, while a chunk of a few images stays in the cache across all of
the view's ops. So ``draw_view`` draws every random parameter of a view for the whole batch first
(from the generator, in the order the ops run), and ``apply_view`` runs all of the view's ops on
one chunk of samples and writes the normalised result into that chunk's rows of the output.
Each op treats each sample on its own, so the output does not depend on the chunk size.

Crops read the uint8 source directly where they can (no float copy of the full-size batch), and
flips are folded into the crop's sampling indices.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor

from labelless.augment.colour import (
    JitterPlan,
    apply_grayscale,
    apply_solarize,
    draw_coins,
    jitter_parameters,
)
from labelless.augment.common import on_subset, to_float
from labelless.augment.crops import (
    apply_cutout,
    reflect_pad_crop,
    sample_crop_offsets,
    sample_cutout_boxes,
)
from labelless.augment.image import (
    apply_flips,
    apply_gaussian_blur,
    blur_kernel_size,
    crop_grids,
    draw_blur,
    normalize_into,
    resample_crops,
    resize_center_crop,
    sample_crop_boxes,
)
from labelless.augment.pixel import batch_style_standardization
from labelless.augment.randaugment import RandAugmentDraws, apply_rand_augment, sample_rand_augment
from labelless.augment.spec import ViewSpec

CHUNK_BYTES = 4 << 20  # float32 per chunk on CPU: 6 images at 224 px; best of 0.5-100 MiB


@dataclass(frozen=True)
class ViewDraws:
    """One view's random parameters for a whole batch; each field is None when its op is off.

    ``crop``: ``crop_grids`` (``crop="resized"``, flips folded in) or offsets ``[N, 2]``
    (``"pad"``); flips, grayscale, solarize: boolean ``[N]``; ``jitter``: a ``JitterPlan``;
    ``blur``: ``(selected, sigma)``; ``cutout``: ``(boxes, selected)``; ``randaugment``: per step
    and sample. ``rows(rows)`` slices them for a chunk (the jitter plan slices itself).
    """

    crop: Tensor | tuple[Tensor, Tensor] | None = None
    hflip: Tensor | None = None
    vflip: Tensor | None = None
    jitter: JitterPlan | None = None
    grayscale: Tensor | None = None
    blur: tuple[Tensor, Tensor] | None = None
    solarize: Tensor | None = None
    randaugment: RandAugmentDraws | None = None
    cutout: tuple[Tensor, Tensor] | None = None

    def rows(self, rows: slice) -> ViewDraws:
        """The draws of samples ``rows``."""

        def cut(value):
            if value is None or isinstance(value, JitterPlan):
                return value
            if isinstance(value, RandAugmentDraws):
                return RandAugmentDraws(*(v[:, rows] for v in value))
            if isinstance(value, tuple):
                return tuple(v[rows] for v in value)
            return value[rows]

        return ViewDraws(**{f.name: cut(getattr(self, f.name)) for f in fields(self)})


def padding_pixels(spec: ViewSpec) -> int:
    """The pad crop's padding in pixels."""
    return round(spec.padding * spec.size) if spec.crop == "pad" else 0


def draw_view(
    spec: ViewSpec, shape: torch.Size, generator: torch.Generator | None, device
) -> ViewDraws:
    """Every random parameter of one view for a source batch of ``shape`` ``[N, C, H, W]``, drawn
    in the order the ops apply (crop, flips, jitter, grayscale, blur, solarize, RandAugment,
    cutout), then turned into what the chunks slice (crop grids, the jitter plan).
    """
    n, channels, height, width = shape
    size = spec.size

    def coins(p: float) -> Tensor | None:
        return draw_coins(n, p, generator, device) if p > 0 else None

    crop = None
    if spec.crop == "resized":
        crop = sample_crop_boxes(n, height, width, spec.scale, spec.ratio, generator, device=device)
    elif padding_pixels(spec) > 0:
        crop = sample_crop_offsets(n, padding_pixels(spec), generator, device=device)
    hflip, vflip = coins(spec.hflip_p), coins(spec.vflip_p)
    jitter = None
    if spec.jitter_p > 0:
        strengths = (spec.brightness, spec.contrast, spec.saturation, spec.hue)
        draws = jitter_parameters(n, *strengths, spec.jitter_p, generator, device=device)
        jitter = JitterPlan(*draws, channels)
    grayscale = coins(spec.grayscale_p)
    blur = None
    if spec.blur_p > 0:
        blur_kernel_size(size, size)
        blur = draw_blur(n, spec.blur_p, spec.blur_sigma, generator, device)
    solarize = coins(spec.solarize_p)
    randaugment = None
    if spec.randaugment_ops > 0:
        randaugment = sample_rand_augment(
            n,
            size,
            size,
            num_ops=spec.randaugment_ops,
            magnitude=spec.randaugment_magnitude,
            random_magnitude=spec.randaugment_random_magnitude,
            exclude=spec.randaugment_exclude,
            generator=generator,
            device=device,
        )
    cutout = None
    if spec.cutout_p > 0:
        boxes = sample_cutout_boxes(n, size, size, spec.cutout_size, generator, device=device)
        cutout = (boxes, draw_coins(n, spec.cutout_p, generator, device))
    if spec.crop == "resized":
        crop = crop_grids(crop, height, width, size, hflip=hflip, vflip=vflip)
    return ViewDraws(crop, hflip, vflip, jitter, grayscale, blur, solarize, randaugment, cutout)


def chunk_size(spec: ViewSpec, images: Tensor, requested: int | None = None) -> int:
    """Samples per chunk: ``requested``, else on CPU as many as fit in ``CHUNK_BYTES`` of float32
    (at the larger of the source and view sizes), else the whole batch. A view with style
    standardisation (a whole-batch op) always takes the whole batch."""
    n, c, height, width = images.shape
    if spec.style_standardization:
        return max(n, 1)
    if requested is not None:
        return requested
    if images.device.type != "cpu":
        return max(n, 1)
    per_image = 4 * c * max(height * width, spec.size * spec.size)
    return max(1, CHUNK_BYTES // per_image)


def _pixels_only(spec: ViewSpec) -> bool:
    """True when the view only crops, flips and normalises: uint8 can go straight to the output."""
    return not (
        spec.jitter_p > 0
        or spec.grayscale_p > 0
        or spec.blur_p > 0
        or spec.solarize_p > 0
        or spec.randaugment_ops > 0
        or spec.cutout_p > 0
        or spec.style_standardization
    )


def _as_float(x: Tensor, source: Tensor) -> Tensor:
    """Float32 0..1 copy of a crop (uint8 or float) that owns its memory (``source`` untouched)."""
    if x.dtype == torch.uint8:
        return x.float().div_(255.0)
    shares_memory = x.untyped_storage().data_ptr() == source.untyped_storage().data_ptr()
    return x.clone() if x.dtype == torch.float32 and shares_memory else x.float()


def crop_chunk(images: Tensor, spec: ViewSpec, draws: ViewDraws) -> Tensor:
    """The chunk's crops ``[k, C, size, size]``, flips applied; uint8 when only indexed or
    resampled on the CPU.

    ``"resized"``: bilinear ``resample_crops`` of the float chunk, flips folded into its grid.
    ``"pad"``: resized to ``size`` first if needed, then ``reflect_pad_crop`` (flips in its
    indices). ``"center"``: ``resize_center_crop`` (resampled only if needed), then flips.
    """
    size = spec.size
    if spec.crop == "resized":
        return resample_crops(to_float(images), draws.crop)
    if spec.crop == "pad":
        if images.shape[-2:] != (size, size):
            images = resize_center_crop(images, size)  # uint8 stays uint8 on the CPU
        padding = padding_pixels(spec)
        return reflect_pad_crop(images, draws.crop, padding, hflip=draws.hflip, vflip=draws.vflip)
    source = images
    x = resize_center_crop(images, size, spec.crop_fraction)  # uint8 stays uint8 on the CPU
    if draws.hflip is None and draws.vflip is None:
        return x
    return apply_flips(_as_float(x, source), draws.hflip, draws.vflip)


def apply_view(
    images: Tensor,
    spec: ViewSpec,
    draws: ViewDraws,
    rows: slice,
    out: Tensor,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    generator: torch.Generator | None = None,
) -> None:
    """All of one view's ops on the chunk ``images`` (the batch's samples ``rows``), with the
    batch's ``draws``; the normalised result goes into ``out`` (the view's ``rows``).
    ``generator`` is only read by style standardisation, whose chunk is the whole batch."""
    plan, draws = draws.jitter, draws.rows(rows)
    x = crop_chunk(images, spec, draws)
    if _pixels_only(spec):
        normalize_into(out, x, mean, std, scale=1 / 255 if x.dtype == torch.uint8 else 1.0)
        return
    x = _as_float(x, images)
    if plan is not None:
        x = plan.apply(x.clamp_(0.0, 1.0), rows)  # in 0..1, as the plan's identity needs
    if draws.grayscale is not None:
        x = apply_grayscale(x, draws.grayscale)
    if draws.blur is not None:
        selected, sigma = draws.blur
        kernel_size = blur_kernel_size(spec.size, spec.size)
        blur = lambda x, index: apply_gaussian_blur(x, sigma[index], kernel_size)  # noqa: E731
        x = on_subset(x, selected, blur)
    if draws.solarize is not None:
        x = apply_solarize(x, draws.solarize)
    if draws.randaugment is not None:
        x = apply_rand_augment(x, draws.randaugment)
    if draws.cutout is not None:
        x = apply_cutout(x, *draws.cutout)
    if spec.style_standardization:
        x = batch_style_standardization(x, generator)
    normalize_into(out, x, mean, std, in_place=True)
