"""Backdoor triggers for poisoning experiments, applied to decoded pixels (float ``[0, 1]``).

- ``ctrl_trigger``: CTRL (Li et al. ICCV 2023, "An Embarrassingly Simple Backdoor Attack on
  Self-supervised Learning"): RGB -> YCbCr, a block DCT of the chroma channels (Cb, Cr), a fixed
  ``magnitude`` added at a few high frequencies of every block, back to RGB. The change is spread
  over every pixel at a few grey levels, so it survives the crops of SSL views and is hard to
  see. Defaults are the authors' CIFAR-10 settings (github.com/meet-cjli/CTRL, ``main_train.py``
  and README: ``--magnitude 100 --window_size 32 --trigger_position 15 31 --channel 1 2``,
  on the 0..255 scale, orthonormal DCT). Their code converts with kornia's YUV; this one with
  JPEG's YCbCr (ITU-R BT.601, full range), as the paper writes: the colour matrix differs by a
  few percent, the frequencies and the magnitude in the chroma plane are the same.
- ``patch_trigger``: a visible square stamped into a corner (BadNets, Gu et al. 2017).

``ctrl_energy`` measures a CTRL trigger back in the frequency domain, ``psnr`` how visible a
trigger is; ``Trigger`` describes one trigger as data, for the records of an experiment.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from labelless.audit.pixels import to_uint8, unit_images
from labelless.errors import ConfigError, DataError

CTRL_MAGNITUDE = 100.0  # on the 0..255 scale (the authors' CIFAR-10 default)
CTRL_WINDOW = 32
CTRL_FREQUENCIES: tuple[tuple[int, int], ...] = ((15, 15), (31, 31))
PATCH_SIZE = 3
PATCH_LOCATIONS = ("bottom-right", "bottom-left", "top-right", "top-left")
PATCH_PATTERNS = ("checkerboard", "white", "random")

# JPEG's RGB -> YCbCr (ITU-R BT.601, full range), on the 0..255 scale: ycbcr = M @ rgb + offset.
YCBCR = torch.tensor(
    [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]],
    dtype=torch.float64,
)
YCBCR_OFFSET = torch.tensor([0.0, 128.0, 128.0], dtype=torch.float64)


def dct_matrix(size: int, dtype: torch.dtype = torch.float32, device=None) -> Tensor:
    """The orthonormal DCT-II matrix ``D [size, size]``: ``D[k, n] = a_k cos(pi (2n + 1) k /
    (2 size))``, ``a_0 = sqrt(1 / size)``, ``a_k = sqrt(2 / size)``; ``D @ D.T = I``."""
    n = torch.arange(size, dtype=torch.float64)
    matrix = torch.cos(math.pi * (2 * n[None, :] + 1) * n[:, None] / (2 * size))
    matrix *= math.sqrt(2.0 / size)
    matrix[0] /= math.sqrt(2.0)
    return matrix.to(dtype=dtype, device=device)


def _blocks(x: Tensor, window: int) -> Tensor:
    """``[N, C, H, W]`` (H, W multiples of ``window``) -> ``[N, C, H/w, w, W/w, w]`` blocks."""
    n, c, h, w = x.shape
    if h % window or w % window:
        raise DataError(
            f"a block DCT of {window}-pixel windows needs image sides that are multiples of "
            f"{window}, got {h}x{w}: crop the images or pick a window that divides both sides"
        )
    return x.reshape(n, c, h // window, window, w // window, window)


def block_dct(x: Tensor, window: int) -> Tensor:
    """2-D orthonormal DCT-II of every ``window x window`` block of ``x [N, C, H, W]``; each
    block's coefficients stay in its place (JPEG's layout), ``[N, C, H, W]``."""
    d = dct_matrix(window, x.dtype, x.device)
    coefficients = torch.einsum("ki,ncaibj,lj->ncakbl", d, _blocks(x, window), d)
    return coefficients.reshape(x.shape)


def block_idct(coefficients: Tensor, window: int) -> Tensor:
    """The inverse of ``block_dct`` (``D.T @ C @ D`` per block)."""
    d = dct_matrix(window, coefficients.dtype, coefficients.device)
    x = torch.einsum("ki,ncakbl,lj->ncaibj", d, _blocks(coefficients, window), d)
    return x.reshape(coefficients.shape)


def rgb_to_ycbcr(rgb: Tensor) -> Tensor:
    """``[N, 3, H, W]`` RGB on the 0..255 scale -> YCbCr (JPEG, BT.601 full range)."""
    matrix = YCBCR.to(rgb.dtype).to(rgb.device)
    offset = YCBCR_OFFSET.to(rgb.dtype).to(rgb.device).view(1, 3, 1, 1)
    return torch.einsum("dc,nchw->ndhw", matrix, rgb) + offset


def ycbcr_to_rgb(ycbcr: Tensor) -> Tensor:
    """The exact inverse of ``rgb_to_ycbcr``."""
    inverse = torch.linalg.inv(YCBCR).to(ycbcr.dtype).to(ycbcr.device)
    offset = YCBCR_OFFSET.to(ycbcr.dtype).to(ycbcr.device).view(1, 3, 1, 1)
    return torch.einsum("cd,ndhw->nchw", inverse, ycbcr - offset)


def ctrl_frequencies(window: int) -> tuple[tuple[int, int], ...]:
    """CTRL's two positions scaled to a ``window``: the middle and the highest frequency of the
    block, ``((w/2 - 1, w/2 - 1), (w - 1, w - 1))``; ``((15, 15), (31, 31))`` for 32."""
    half = max(window // 2 - 1, 0)
    return ((half, half), (window - 1, window - 1))


def _float_images(images: Tensor) -> Tensor:
    if not isinstance(images, Tensor) or images.ndim != 4 or not images.is_floating_point():
        shape = tuple(getattr(images, "shape", ()))
        raise DataError(
            f"triggers take float images [N, C, H, W] in [0, 1], got {shape}: convert uint8 "
            "pixels with labelless.audit.pixels.unit_images"
        )
    return images


def _check_ctrl(magnitude: float, window: int, frequencies: Sequence[Sequence[int]]) -> None:
    if (
        not isinstance(magnitude, numbers.Real)
        or isinstance(magnitude, bool)
        or not (math.isfinite(magnitude) and magnitude > 0)
    ):
        raise ConfigError(
            f"the CTRL magnitude must be a number > 0 on the 0..255 scale, got {magnitude!r}: "
            f"pass e.g. magnitude={CTRL_MAGNITUDE} (the paper's CIFAR-10 value)"
        )
    if not _whole(window) or window < 2:
        raise ConfigError(f"the CTRL window must be a whole number >= 2, got {window!r}: e.g. 32")
    if not _valid_pairs(frequencies):
        raise ConfigError(
            f"CTRL frequencies must be (row, column) pairs of whole numbers >= 0, got "
            f"{frequencies!r}: e.g. {CTRL_FREQUENCIES}"
        )


def _valid_pairs(frequencies: Any) -> bool:
    if not isinstance(frequencies, (list, tuple)) or not frequencies:
        return False
    return all(
        isinstance(pair, (list, tuple))
        and len(pair) == 2
        and all(_whole(value) and value >= 0 for value in pair)
        for pair in frequencies
    )


def _whole(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _ctrl_window(images: Tensor, window: int, frequencies: Sequence[Sequence[int]]) -> int:
    """The block side used on these images: ``window``, or the shorter image side when the
    window is larger than the image. Every frequency must lie inside the block."""
    height, width = images.shape[-2:]
    used = min(window, height, width)
    outside = [tuple(p) for p in frequencies if max(p) >= used]
    if outside:
        raise ConfigError(
            f"CTRL frequencies {outside} lie outside the {used}-pixel blocks of these "
            f"{height}x{width} images: pass frequencies={ctrl_frequencies(used)} (CTRL's middle "
            f"and highest frequency for a {used}-pixel block, labelless.audit.triggers."
            "ctrl_frequencies)"
        )
    if images.shape[1] not in (1, 3):
        raise DataError(
            f"CTRL works on grayscale (1 channel) or RGB (3 channel) images, got "
            f"{images.shape[1]} channels: drop the extra channels first"
        )
    return used


def _working(images: Tensor) -> Tensor:
    """The images in the precision the transforms run in: float64 stays, others go float32."""
    return images if images.dtype == torch.float64 else images.float()


def _planes(x255: Tensor) -> Tensor:
    """The planes CTRL perturbs: Cb and Cr of RGB images, the one channel of grayscale ones."""
    return rgb_to_ycbcr(x255)[:, 1:] if x255.shape[1] == 3 else x255


def ctrl_trigger(
    images: Tensor,
    magnitude: float = CTRL_MAGNITUDE,
    window: int = CTRL_WINDOW,
    frequencies: Sequence[Sequence[int]] = CTRL_FREQUENCIES,
) -> Tensor:
    """CTRL's trigger on ``images`` (float ``[N, C, H, W]`` in [0, 1]; C = 3 or 1): ``magnitude``
    (0..255 scale) added to the DCT coefficients at ``frequencies`` of every ``window`` block of
    the chroma planes (the single plane of grayscale images), then clamped to [0, 1].

    A window larger than the image shrinks to the shorter image side; rows and columns past the
    last whole block are left as they are. Batched; no loop over samples.
    """
    _check_ctrl(magnitude, window, frequencies)
    images = _float_images(images)
    used = _ctrl_window(images, window, frequencies)
    height, width = (side - side % used for side in images.shape[-2:])
    x = _working(images[..., :height, :width]) * 255.0
    colour = x.shape[1] == 3
    full = rgb_to_ycbcr(x) if colour else x
    planes = full[:, 1:] if colour else full  # a view: the idct below writes into ``full``
    coefficients = block_dct(planes, used)
    for row, column in frequencies:
        coefficients[..., row::used, column::used] += float(magnitude)
    planes[...] = block_idct(coefficients, used)
    x = ycbcr_to_rgb(full) if colour else full
    triggered = images.clone()
    triggered[..., :height, :width] = (x / 255.0).clamp_(0.0, 1.0)
    return triggered


def ctrl_energy(
    images: Tensor,
    window: int = CTRL_WINDOW,
    frequencies: Sequence[Sequence[int]] = CTRL_FREQUENCIES,
) -> Tensor:
    """``[N]``: the mean block-DCT coefficient (0..255 scale) at ``frequencies`` over every block
    of the chroma planes (grayscale: the one plane). About 0 on natural images (high
    frequencies, random sign), about ``magnitude`` on CTRL-triggered ones (less what clamping
    to [0, 1] removed): the trigger read back in the frequency domain."""
    _check_ctrl(1.0, window, frequencies)
    images = _float_images(images)
    used = _ctrl_window(images, window, frequencies)
    height, width = (side - side % used for side in images.shape[-2:])
    planes = _planes(_working(images) * 255.0)[..., :height, :width]
    coefficients = block_dct(planes, used)
    values = [coefficients[..., r::used, c::used].flatten(1) for r, c in frequencies]
    return torch.cat(values, dim=1).mean(dim=1)


def _patch_pattern(size: int, channels: int, pattern: str, seed: int) -> Tensor:
    """``[channels, size, size]`` in {0, 1}: a checkerboard (top-left pixel white), all white,
    or a seeded random binary pattern (one per channel)."""
    if pattern == "checkerboard":
        grid = torch.arange(size)
        board = ((grid[:, None] + grid[None, :]) % 2 == 0).float()
        return board.expand(channels, size, size)
    if pattern == "white":
        return torch.ones(channels, size, size)
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2, (channels, size, size), generator=generator).float()


def _check_patch(size: int, location: str, pattern: str, seed: int) -> None:
    if not _whole(size) or size < 1:
        raise ConfigError(f"the patch size must be a whole number >= 1 (pixels), got {size!r}")
    if location not in PATCH_LOCATIONS:
        raise ConfigError(
            f"unknown patch location {location!r}; choose one of: {', '.join(PATCH_LOCATIONS)}"
        )
    if pattern not in PATCH_PATTERNS:
        raise ConfigError(
            f"unknown patch pattern {pattern!r}; choose one of: {', '.join(PATCH_PATTERNS)}"
        )
    if not _whole(seed):
        raise ConfigError(f"the patch seed must be a whole number, got {seed!r}")


def patch_trigger(
    images: Tensor,
    size: int = PATCH_SIZE,
    location: str = "bottom-right",
    pattern: str = "checkerboard",
    seed: int = 0,
) -> Tensor:
    """A ``size x size`` square of ``pattern`` (``checkerboard``, ``white`` or ``random``, the
    last drawn from ``seed``) written over every channel of a corner of ``images`` (float
    ``[N, C, H, W]`` in [0, 1]); the other pixels are unchanged. BadNets' trigger (Gu et al.
    2017, "BadNets: Identifying Vulnerabilities in the Machine Learning Model Supply Chain")."""
    _check_patch(size, location, pattern, seed)
    images = _float_images(images)
    height, width = images.shape[-2:]
    if size > min(height, width):
        raise ConfigError(
            f"a {size}-pixel patch does not fit in {height}x{width} images: pass size <= "
            f"{min(height, width)}"
        )
    top = height - size if location.startswith("bottom") else 0
    left = width - size if location.endswith("right") else 0
    stamped = images.clone()
    values = _patch_pattern(size, images.shape[1], pattern, seed)
    stamped[..., top : top + size, left : left + size] = values.to(images)
    return stamped


def psnr(a: Tensor, b: Tensor, max_value: float = 1.0) -> Tensor:
    """Peak signal-to-noise ratio in dB per image, ``[N]``: ``10 log10(max^2 / MSE)`` over each
    image's pixels and channels; ``inf`` for identical images. ``a``, ``b``: ``[N, ...]``."""
    if a.shape != b.shape:
        raise DataError(f"PSNR compares images of one shape, got {a.shape} and {b.shape}")
    error = (a.double() - b.double()).pow(2).flatten(1).mean(dim=1)
    return 10.0 * torch.log10(max_value**2 / error)


TRIGGER_KINDS = ("ctrl", "patch")


@dataclass(frozen=True)
class Trigger:
    """One trigger as data: ``kind`` (``ctrl`` or ``patch``) and every parameter, defaults
    filled in, so that a record says exactly which trigger was used. Build one with
    ``Trigger.ctrl(...)``, ``Trigger.patch(...)`` or ``Trigger.from_dict(record)``."""

    kind: str
    parameters: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in TRIGGER_KINDS:
            raise ConfigError(
                f"unknown trigger kind {self.kind!r}; choose one of: {', '.join(TRIGGER_KINDS)}"
            )
        defaults = _DEFAULTS[self.kind]
        unknown = sorted(set(self.parameters) - set(defaults))
        if unknown:
            raise ConfigError(
                f"unknown {self.kind} trigger parameter(s) {unknown}; it takes: "
                f"{', '.join(defaults)}"
            )
        full = {**defaults, **self.parameters}
        if self.kind == "ctrl":
            full["frequencies"] = _pairs(full["frequencies"])
            _check_ctrl(full["magnitude"], full["window"], full["frequencies"])
            full["magnitude"], full["window"] = float(full["magnitude"]), int(full["window"])
            full["frequencies"] = tuple((int(r), int(c)) for r, c in full["frequencies"])
        else:
            _check_patch(full["size"], full["location"], full["pattern"], full["seed"])
            full["size"], full["seed"] = int(full["size"]), int(full["seed"])
        object.__setattr__(self, "parameters", full)

    @classmethod
    def ctrl(
        cls,
        magnitude: float = CTRL_MAGNITUDE,
        window: int = CTRL_WINDOW,
        frequencies: Sequence[Sequence[int]] = CTRL_FREQUENCIES,
    ) -> Trigger:
        return cls("ctrl", {"magnitude": magnitude, "window": window, "frequencies": frequencies})

    @classmethod
    def patch(
        cls,
        size: int = PATCH_SIZE,
        location: str = "bottom-right",
        pattern: str = "checkerboard",
        seed: int = 0,
    ) -> Trigger:
        return cls("patch", {"size": size, "location": location, "pattern": pattern, "seed": seed})

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Trigger:
        """The trigger ``to_dict`` wrote: ``{"kind": ..., **parameters}``."""
        if not isinstance(record, dict) or "kind" not in record:
            raise ConfigError(f"a trigger record needs a 'kind' key, got {record!r}")
        parameters = {key: value for key, value in record.items() if key != "kind"}
        return cls(record["kind"], parameters)

    def apply(self, images: Tensor) -> Tensor:
        """The triggered copy of float ``[N, C, H, W]`` images in [0, 1]."""
        if self.kind == "ctrl":
            return ctrl_trigger(images, **self.parameters)
        return patch_trigger(images, **self.parameters)

    def apply_uint8(self, samples: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """The trigger on decoded ``uint8 [N, C, H, W]`` pixels, rounded back to uint8 (what an
        attacker would write into the data), in batches of ``batch_size`` images."""
        parts = [
            to_uint8(self.apply(unit_images(samples[start : start + batch_size])))
            for start in range(0, len(samples), batch_size)
        ]
        return np.concatenate(parts) if parts else np.asarray(samples).copy()

    def to_dict(self) -> dict[str, Any]:
        parameters = dict(self.parameters)
        if self.kind == "ctrl":
            parameters["frequencies"] = [list(p) for p in parameters["frequencies"]]
        return {"kind": self.kind, **parameters}


_DEFAULTS: dict[str, dict[str, Any]] = {
    "ctrl": {"magnitude": CTRL_MAGNITUDE, "window": CTRL_WINDOW, "frequencies": CTRL_FREQUENCIES},
    "patch": {"size": PATCH_SIZE, "location": "bottom-right", "pattern": "checkerboard", "seed": 0},
}


def _pairs(frequencies: Any) -> Any:
    """Frequencies as a tuple of pairs (JSON gives lists); anything else is left for the check
    to reject with its message."""
    try:
        return tuple(tuple(pair) for pair in frequencies)
    except TypeError:
        return frequencies
