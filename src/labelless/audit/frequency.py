"""Frequency-domain outliers among training images: the pixel half of ``data-scan``.

Triggers such as CTRL's (Li et al., ICCV 2023, "An Embarrassingly Simple Backdoor Attack on
Self-supervised Learning": a fixed magnitude at high DCT frequencies of the chroma channels) and
pasted patches with sharp edges (BadNets, Gu et al. 2017) put energy at high spatial frequencies,
where natural images have little (their spectra fall off roughly as 1/f; Zeng et al. 2021,
"Rethinking the Backdoor Attacks' Triggers: A Frequency Perspective", find such triggers by their
high-frequency artefacts).

Per image and channel (YCbCr, ITU-R BT.601, for RGB images, so a chroma trigger is not drowned by
the luma): the orthonormal 2-D DCT-II, its non-DC energy split into a ``bands x bands`` grid of
frequency bands, and for each band whose centre lies beyond ``cutoff`` of the Nyquist radius its
share of the channel's energy. Shares span orders of magnitude between smooth and textured
images, so each (channel, band) is compared across the set on a log scale, as a robust z-score;
an image's score is its largest (``frequency_outliers``). A trigger confined to a few
frequencies lifts one band's share far above the set's, where a textured image lifts all bands a
little. ``share`` keeps the plain per-channel high-frequency share (all high bands together).

Energies below one grey level (``(1/255)^2`` per coefficient) are rounding noise: every band and
total gets that floor, and the spread of a band's log share is floored at ``MIN_LOG_SCALE`` nats,
so a band where most images hold little does not turn a grey level of noise into an outlier. A
channel with under one grey level RMS of detail (the chroma of a grey image) is *flat*: where
most images have detail in that channel, its flat images are left out of the comparison (their
share is noise over noise); where most are flat (grey images stored as RGB), the few with detail
are compared with the flat ones, so a chroma trigger on grey images still stands out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from labelless.audit.pixels import unit_images
from labelless.audit.triggers import dct_matrix, rgb_to_ycbcr
from labelless.errors import ConfigError, DataError

HIGH_FREQUENCY_CUTOFF = 0.5  # fraction of the Nyquist radius beyond which a band is "high"
BANDS = 8  # frequency bands per axis
MIN_LOG_SCALE = 0.5  # nats: z > 3.5 needs a band share at least e^1.75 = 5.8x the set's median
GREY_LEVEL = 1.0 / 255.0
CHUNK = 64  # images per DCT batch
_MAD_SCALE = 0.6745  # Phi^-1(3/4): MAD / 0.6745 estimates a normal distribution's sigma
_MEAN_AD_SCALE = 0.7979  # sqrt(2 / pi): the same for the mean absolute deviation


@dataclass
class FrequencyScores:
    """``share [N, C]``: each channel's high-frequency share of its non-DC energy; ``z [N]``: the
    largest robust z of an image's high-band log shares; ``peak [N, 3]`` (int64): the channel,
    band row and band column of that largest z; ``channels``: the channels' names."""

    share: Tensor
    z: Tensor
    peak: Tensor
    channels: tuple[str, ...]


def robust_z(values: Tensor, dim: int = 0, *, min_scale: float = 0.0) -> Tensor:
    """Modified z-scores ``0.6745 (x - median) / MAD`` along ``dim`` (Iglewicz & Hoaglin 1993,
    "How to Detect and Handle Outliers"; flag above 3.5).

    Where the MAD is 0 (over half the values equal) the mean absolute deviation stands in,
    scaled to the same sigma (``1.2533 meanAD``); the scale is at least ``min_scale``; where it
    is still 0 every value equals the median and scores 0. NaN entries (nothing measured) are
    left out of the median and the MAD and score 0. Medians of an even count are the lower
    middle value (``torch.median``).
    """
    values = values.double()
    median = values.nanmedian(dim=dim, keepdim=True).values
    deviation = values - median
    mad = deviation.abs().nanmedian(dim=dim, keepdim=True).values / _MAD_SCALE
    mean_ad = deviation.abs().nanmean(dim=dim, keepdim=True) / _MEAN_AD_SCALE
    scale = torch.where(mad > 0, mad, mean_ad).clamp_min(min_scale)
    z = torch.where(scale > 0, deviation / scale.clamp_min(1e-300), 0.0)
    return z.nan_to_num(0.0).float()


def channel_names(channels: int) -> tuple[str, ...]:
    """The channels a frequency scan measures: Y, Cb, Cr for RGB, else ``c0, c1, ...``."""
    return ("Y", "Cb", "Cr") if channels == 3 else tuple(f"c{i}" for i in range(channels))


def _bands(height: int, width: int, bands: int, cutoff: float) -> tuple[Tensor, Tensor, Tensor]:
    """``(band of each coefficient [H W], coefficients per band [B B], high bands [B B] bool)``:
    coefficient (k, l) lies at (k / H, l / W) of the Nyquist frequency, band (i, j) covers
    ``[i / B, (i + 1) / B)`` of it and is high when its centre's radius exceeds ``cutoff``."""
    rows = (torch.arange(height) * bands) // height
    cols = (torch.arange(width) * bands) // width
    index = (rows[:, None] * bands + cols[None, :]).flatten()
    counts = torch.bincount(index, minlength=bands * bands)
    centre = (torch.arange(bands, dtype=torch.float64) + 0.5) / bands
    radius = (centre[:, None].square() + centre[None, :].square()).sqrt().flatten()
    return index, counts, radius > cutoff


def band_energies(images: Tensor | np.ndarray, bands: int = BANDS) -> tuple[Tensor, Tensor]:
    """``(energy [N, C, B * B], total [N, C])``: each band's and all non-DC DCT energy per image
    and channel (YCbCr for RGB; pixels on the [0, 1] scale); ``B = min(bands, H, W)``."""
    x = unit_images(images)
    height, width = x.shape[-2:]
    if height < 2 or width < 2:
        raise DataError(
            f"a frequency scan needs images of at least 2x2 pixels, got {height}x{width}"
        )
    bands = min(bands, height, width)
    index = _bands(height, width, bands, 0.0)[0]
    rows, cols = dct_matrix(height), dct_matrix(width)
    energies, totals = [], []
    for start in range(0, len(x), CHUNK):
        chunk = x[start : start + CHUNK]
        if chunk.shape[1] == 3:
            chunk = rgb_to_ycbcr(chunk * 255.0) / 255.0  # the offsets move only the DC
        power = (rows @ chunk @ cols.T).square().flatten(2)
        power[..., 0] = 0.0  # DC: the mean brightness, not detail
        energy = torch.zeros(*power.shape[:2], bands * bands).index_add_(2, index, power)
        energies.append(energy)
        totals.append(power.sum(dim=2))
    return torch.cat(energies), torch.cat(totals)


def frequency_outliers(
    images: Tensor | np.ndarray,
    *,
    cutoff: float = HIGH_FREQUENCY_CUTOFF,
    bands: int = BANDS,
) -> FrequencyScores:
    """Frequency scores of ``images`` (uint8, or float in [0, 1], ``[N, C, H, W]``, N >= 3)."""
    if not 0.0 < cutoff < math.sqrt(2.0):
        raise ConfigError(
            f"the high-frequency cutoff is a fraction of the Nyquist radius in (0, 1.41), got "
            f"{cutoff} (0.5: energy beyond half the Nyquist frequency)"
        )
    if isinstance(bands, bool) or not isinstance(bands, int) or bands < 2:
        raise ConfigError(f"bands must be a whole number >= 2, got {bands!r} (default {BANDS})")
    if len(images) < 3:
        raise DataError(f"a frequency scan needs at least 3 images to compare, got {len(images)}")
    energy, total = band_energies(images, bands)
    height, width = np.shape(images)[-2:]
    used = min(bands, height, width)
    _, counts, high = _bands(height, width, used, cutoff)
    if not bool(high.any()):
        raise ConfigError(f"no frequency band lies beyond cutoff {cutoff}: lower it, e.g. 0.5")
    floor = GREY_LEVEL**2
    denominator = total + floor * height * width
    share = (energy[..., high].sum(dim=2) + floor * counts[high].sum()) / denominator
    log_share = torch.log((energy[..., high] + floor * counts[high]) / denominator[..., None])
    flat = total < floor * height * width  # [N, C]: detail under one grey level RMS
    log_share[flat & (flat.float().mean(dim=0) <= 0.5)] = float("nan")
    z = robust_z(log_share.flatten(1), 0, min_scale=MIN_LOG_SCALE)
    best, where = z.max(dim=1)
    channel, band = where // int(high.sum()), torch.nonzero(high).squeeze(1)[where % high.sum()]
    peak = torch.stack([channel, band // used, band % used], dim=1)
    return FrequencyScores(share.float(), best, peak, channel_names(energy.shape[1]))
