"""``ViewSpec``: what one augmented view does, as data (crop mode and size, each op's probability
and strength). The recipes (``views``) are lists of specs; the engine (``engine``) draws and
applies them."""

from __future__ import annotations

from dataclasses import dataclass

from labelless.errors import ConfigError

CROP_MODES = ("resized", "pad", "center")
_PROBABILITIES = (
    "hflip_p",
    "vflip_p",
    "jitter_p",
    "grayscale_p",
    "blur_p",
    "solarize_p",
    "cutout_p",
)


@dataclass(frozen=True)
class ViewSpec:
    """One view's augmentation, SimCLR defaults (Chen et al. 2020, colour strength 0.5).

    ``crop``: ``"resized"`` (random resized crop with ``scale`` / ``ratio``; ``ratio`` is width /
    height), ``"pad"`` (resize to ``size`` if needed, pad by ``padding`` x side and crop back at a
    random offset: FixMatch's translation) or ``"center"`` (resize to ``size / crop_fraction``,
    centre crop). ``size_ratio`` scales the recipe's size for this view (multi-crop local views).
    Blur defaults to off (``blur_p=0``) because it hurts at CIFAR-like sizes; SimCLR on ImageNet
    uses ``blur_p=0.5``. ``style_standardization`` swaps every image's Fourier amplitude for one
    shared per batch (Scalbert et al. 2024).
    """

    size: int = 224
    size_ratio: float = 1.0
    crop: str = "resized"
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    padding: float = 0.125
    crop_fraction: float = 1.0
    hflip_p: float = 0.5
    vflip_p: float = 0.0
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1
    grayscale_p: float = 0.2
    blur_p: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    solarize_p: float = 0.0
    randaugment_ops: int = 0
    randaugment_magnitude: float = 10.0
    randaugment_random_magnitude: bool = True
    randaugment_exclude: tuple[str, ...] = ()
    cutout_p: float = 0.0
    cutout_size: float = 0.25
    style_standardization: bool = False

    def __post_init__(self) -> None:
        for name in ("scale", "ratio", "blur_sigma"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        object.__setattr__(self, "randaugment_exclude", tuple(self.randaugment_exclude))
        problems = self._problems()
        if problems:
            raise ConfigError("invalid view spec: " + "; ".join(problems))

    def _problems(self) -> list[str]:
        problems = []
        if not (isinstance(self.size, int) and self.size > 0):
            problems.append(f"size must be a positive int, got {self.size!r}")
        if self.crop not in CROP_MODES:
            problems.append(f"crop must be one of {', '.join(CROP_MODES)}, got {self.crop!r}")
        if len(self.scale) != 2 or not 0 < self.scale[0] <= self.scale[1] <= 1:
            problems.append(f"scale must be (low, high), 0 < low <= high <= 1, got {self.scale}")
        if len(self.ratio) != 2 or not 0 < self.ratio[0] <= self.ratio[1]:
            problems.append(f"ratio must be (low, high) with 0 < low <= high, got {self.ratio}")
        if len(self.blur_sigma) != 2 or not 0 < self.blur_sigma[0] <= self.blur_sigma[1]:
            problems.append(
                f"blur_sigma must be (low, high), 0 < low <= high, got {self.blur_sigma}"
            )
        for name in _PROBABILITIES:
            if not 0 <= getattr(self, name) <= 1:
                problems.append(f"{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("brightness", "contrast", "saturation", "padding"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.hue <= 0.5:
            problems.append(f"hue must be in [0, 0.5], got {self.hue}")
        if not 0 < self.crop_fraction <= 1 or not 0 < self.size_ratio <= 1:
            problems.append("crop_fraction and size_ratio must be in (0, 1]")
        if self.randaugment_ops < 0 or not 0 <= self.randaugment_magnitude <= 30:
            problems.append("randaugment_ops must be >= 0 and randaugment_magnitude in [0, 30]")
        if not 0 < self.cutout_size <= 1:
            problems.append(
                f"cutout_size is a fraction of the side in (0, 1], got {self.cutout_size}"
            )
        return problems
