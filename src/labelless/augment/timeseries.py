"""Batched time-series augmentations and the view recipes of the time-series methods.

Every op takes ``x: float32 [B, C, T]`` and draws its random parameters per sample (one tensor op
for the whole batch, no Python loop over samples). NaN marks the padding of a shorter series (at
the end) or a missing value: NaN stays NaN through every op, and ops that move or mask
timestamps act only on a series' valid part, ``x[i, :, :length_i]``.

Recipes (``timeseries_views(name, **overrides)``; each returns a list):

| recipe | views | for |
| --- | --- | --- |
| ``ts2vec`` | ``[view1 [B,C,L1], view2 [B,C,L2], overlap int64 [B,3]]`` | TS2Vec |
| ``tstcc`` | ``[weak, strong]``, both ``[B,C,T]`` | TS-TCC (Eldele et al. 2021) |
| ``weak`` | ``[scaling + jitter]`` | weak view, semi-supervised |
| ``strong`` | ``[segment permutation + jitter]`` | strong view, semi-supervised |
| ``forecast`` | ``[x, weak(x), weak(x)]``, aligned | ``ts_forecast`` |
| ``none`` | ``[x]`` | evaluation |

``overlap[i] = (start1, start2, length)``: timestamps ``view1[i, :, start1:start1+length]`` and
``view2[i, :, start2:start2+length]`` are the same timestamps of series i (TS2Vec crops share
their lengths across the batch and move per sample, so every row holds the same numbers).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from labelless.errors import ConfigError, DataError


def _check_series(x: Tensor) -> Tensor:
    if not isinstance(x, Tensor) or x.ndim != 3:
        shape = tuple(getattr(x, "shape", ()))
        raise DataError(f"time-series views need a float tensor [B, C, T], got shape {shape}")
    return x.float()


def series_lengths(x: Tensor) -> Tensor:
    """``int64 [B]``: one past the last timestamp of each series where no channel is NaN."""
    valid = ~torch.isnan(x).any(dim=1)
    steps = torch.arange(1, x.shape[-1] + 1, device=x.device)
    return (valid * steps).amax(dim=1)


def uniform_draw(shape: tuple[int, ...], generator: torch.Generator | None, device) -> Tensor:
    return torch.rand(shape, generator=generator, device=device)


def _randint(low: int, high: int, generator: torch.Generator | None, device) -> int:
    """One integer uniform in ``[low, high)``."""
    return int(torch.randint(low, high, (1,), generator=generator, device=device).item())


def jitter(x: Tensor, sigma: float = 0.1, generator: torch.Generator | None = None) -> Tensor:
    """``x + N(0, sigma^2)`` noise at every timestamp and channel (Um et al. 2017)."""
    x = _check_series(x)
    noise = torch.randn(x.shape, generator=generator, device=x.device)
    return x + sigma * noise


def scaling(x: Tensor, sigma: float = 0.2, generator: torch.Generator | None = None) -> Tensor:
    """Multiply each channel of each series by its own factor drawn from ``N(1, sigma^2)``."""
    x = _check_series(x)
    factor = 1.0 + sigma * torch.randn(x.shape[:2], generator=generator, device=x.device)
    return x * factor.unsqueeze(-1)


def timestamp_masking(
    x: Tensor, rate: float = 0.5, generator: torch.Generator | None = None
) -> Tensor:
    """Zero all channels of each valid timestamp with probability ``rate`` (TS2Vec's timestamp
    masking, on the input; the encoders also mask their latent vectors while training)."""
    x = _check_series(x)
    if not 0.0 <= rate <= 1.0:
        raise ConfigError(f"masking rate must be in [0, 1], got {rate}")
    drop = uniform_draw((x.shape[0], 1, x.shape[2]), generator, x.device) < rate
    return x.masked_fill(drop & ~torch.isnan(x), 0.0)


def permute_segments(
    x: Tensor, max_segments: int = 5, generator: torch.Generator | None = None
) -> Tensor:
    """Split each series' valid part into ``m ~ U{1..max_segments}`` segments at random cut
    points and shuffle the segments (TS-TCC's permutation; Eldele et al. 2021). The values of
    each series are reordered, never changed; the padding stays at the end."""
    x = _check_series(x)
    if max_segments < 1:
        raise ConfigError(f"max_segments must be at least 1, got {max_segments}")
    batch, _, length = x.shape
    device = x.device
    lengths = series_lengths(x)
    steps = torch.arange(length, device=device).expand(batch, -1)
    cuts = torch.randint(1, max_segments + 1, (batch, 1), generator=generator, device=device) - 1
    # m - 1 distinct cut points among 1 .. length_i - 1: the highest random keys there
    keys = uniform_draw((batch, length), generator, device)
    can_cut = (steps >= 1) & (steps < lengths.unsqueeze(1))
    keys = torch.where(can_cut, keys, torch.full_like(keys, -1.0))
    rank = keys.argsort(dim=1, descending=True).argsort(dim=1)
    boundary = (rank < cuts) & can_cut
    segment = boundary.long().cumsum(dim=1)  # [B, T], 0 .. m-1
    new_rank = uniform_draw((batch, max_segments), generator, device).argsort(dim=1).argsort(dim=1)
    order_key = new_rank.gather(1, segment) * length + steps
    padding = steps >= lengths.unsqueeze(1)
    order_key = torch.where(padding, max_segments * length + steps, order_key)
    order = order_key.argsort(dim=1)
    return x.gather(2, order.unsqueeze(1).expand_as(x))


def _take(x: Tensor, start: Tensor, length: int) -> Tensor:
    """``x[i, :, start_i : start_i + length]``, NaN where the window leaves the series."""
    index = start.unsqueeze(1) + torch.arange(length, device=x.device)  # [B, L]
    inside = (index >= 0) & (index < x.shape[-1])
    gathered = x.gather(2, index.clamp(0, x.shape[-1] - 1).unsqueeze(1).expand(-1, x.shape[1], -1))
    return gathered.masked_fill(~inside.unsqueeze(1), float("nan"))


def overlapping_crops(
    x: Tensor,
    min_overlap: int = 2,
    max_length: int | None = 3000,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """TS2Vec's random cropping for contextual consistency (Yue et al. 2022, sec. 3.3).

    With T the longest valid length in the batch (at most ``max_length``), draws an overlap
    ``[a2, b1)`` of length ``l >= min_overlap`` and two segments ``[a1, b1)`` and ``[a2, b2)``,
    ``0 <= a1 <= a2 < b1 <= b2 <= T``; each series then shifts both segments by its own random
    offset (as TS2Vec does). Timestamps outside a series are NaN.

    Returns ``(view1 [B, C, b1 - a1], view2 [B, C, b2 - a2], overlap int64 [B, 3])`` with
    ``overlap[i] = (a2 - a1, 0, l)``: start in view1, start in view2, length.
    """
    x = _check_series(x)
    device = x.device
    lengths = series_lengths(x)
    longest = int(lengths.max().item())
    if max_length is not None:
        longest = min(longest, int(max_length))
    if longest < min_overlap:
        raise DataError(
            f"series of {longest} valid timestamps are too short for crops overlapping by "
            f"{min_overlap}; lower min_overlap or drop the shortest series"
        )
    overlap = _randint(min_overlap, longest + 1, generator, device)
    left = _randint(0, longest - overlap + 1, generator, device)
    right = left + overlap
    outer_left = _randint(0, left + 1, generator, device)
    outer_right = _randint(right, longest + 1, generator, device)
    low = torch.full_like(lengths, -outer_left)
    high = torch.maximum(lengths - outer_right, low)
    offset = low + (uniform_draw(lengths.shape, generator, device) * (high - low + 1)).long()
    view1 = _take(x, offset + outer_left, right - outer_left)
    view2 = _take(x, offset + left, outer_right - left)
    layout = torch.tensor([left - outer_left, 0, overlap], device=device)
    return view1, view2, layout.expand(x.shape[0], 3).clone()


_RECIPES: dict[str, dict[str, Any]] = {
    "ts2vec": {"min_overlap": 2, "max_length": 3000},
    "tstcc": {"scale_sigma": 0.2, "weak_jitter": 0.05, "max_segments": 5, "strong_jitter": 0.2},
    "weak": {"scale_sigma": 0.2, "weak_jitter": 0.05},
    "strong": {"max_segments": 5, "strong_jitter": 0.2},
    "forecast": {"scale_sigma": 0.2, "weak_jitter": 0.05},
    "none": {},
}


def list_timeseries_recipes() -> list[str]:
    """The names ``timeseries_views`` accepts."""
    return list(_RECIPES)


class TimeSeriesViews(nn.Module):
    """A named view recipe: ``forward(x [B, C, T], generator=None) -> list[Tensor]``."""

    def __init__(self, recipe: str, **settings: Any) -> None:
        super().__init__()
        self.recipe = recipe
        self.settings = settings

    def _weak(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        scaled = scaling(x, self.settings["scale_sigma"], generator)
        return jitter(scaled, self.settings["weak_jitter"], generator)

    def _strong(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        permuted = permute_segments(x, self.settings["max_segments"], generator)
        return jitter(permuted, self.settings["strong_jitter"], generator)

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> list[Tensor]:
        x = _check_series(x)
        if self.recipe == "ts2vec":
            return list(overlapping_crops(x, generator=generator, **self.settings))
        if self.recipe == "tstcc":
            return [self._weak(x, generator), self._strong(x, generator)]
        if self.recipe == "weak":
            return [self._weak(x, generator)]
        if self.recipe == "strong":
            return [self._strong(x, generator)]
        if self.recipe == "forecast":
            return [x, self._weak(x, generator), self._weak(x, generator)]
        return [x]

    @property
    def num_views(self) -> int:
        return {"ts2vec": 3, "tstcc": 2, "forecast": 3}.get(self.recipe, 1)

    def extra_repr(self) -> str:
        options = ", ".join(f"{k}={v}" for k, v in self.settings.items())
        return f"recipe={self.recipe!r}" + (f", {options}" if options else "")


def timeseries_views(recipe: str, **overrides: Any) -> TimeSeriesViews:
    """The view recipe ``recipe`` (see the module docstring), its defaults updated by
    ``overrides`` (e.g. ``timeseries_views("tstcc", max_segments=8)``)."""
    if recipe not in _RECIPES:
        raise ConfigError(
            f"unknown time-series view recipe {recipe!r}; choose one of: {', '.join(_RECIPES)}"
        )
    defaults = _RECIPES[recipe]
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise ConfigError(
            f"recipe {recipe!r} takes only {', '.join(defaults) or 'no options'}, got {unknown}"
        )
    return TimeSeriesViews(recipe, **{**defaults, **overrides})
