"""Build a Dataset from in-memory arrays."""

from __future__ import annotations

from typing import Any

import numpy as np

from labelless.data.dataset import Dataset
from labelless.data.formats import sample_format
from labelless.errors import DataError


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def to_uint8_nchw(x: np.ndarray) -> np.ndarray:
    """Images as ``uint8 [N, C, H, W]`` from ``[N, H, W]``, ``[N, H, W, C]`` or ``[N, C, H, W]``.

    Four-dimensional arrays are taken as channels-first when ``shape[1]`` is 1, 3 or 4 and the last
    axis is not; otherwise channels-last. Float arrays must be on the 0..1 scale.
    """
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4:
        channels_first = x.shape[1] in (1, 3, 4) and x.shape[-1] not in (1, 3, 4)
        if not channels_first:
            x = x.transpose(0, 3, 1, 2)
    else:
        raise DataError(
            f"image arrays must be [N, H, W], [N, H, W, C] or [N, C, H, W]; got shape {x.shape}"
        )
    if x.dtype == np.uint8:
        return np.ascontiguousarray(x)
    if np.issubdtype(x.dtype, np.floating):
        if not np.isfinite(x).all():
            raise DataError("image array contains NaN or infinity: clean or drop those samples")
        if x.min() < 0 or x.max() > 1:
            raise DataError(
                "float images must be on the 0..1 scale; divide by 255 or pass uint8 pixels"
            )
        return np.ascontiguousarray(np.round(x * 255).astype(np.uint8))
    if np.issubdtype(x.dtype, np.integer):
        if x.min() < 0 or x.max() > 255:
            raise DataError("integer images must lie in 0..255; rescale them or pass uint8")
        return np.ascontiguousarray(x.astype(np.uint8))
    raise DataError(f"unsupported image dtype {x.dtype}; pass uint8 or float images")


def from_arrays(
    x: Any,
    y: Any | None = None,
    *,
    modality: str = "image",
    name: str = "arrays",
    class_names: list[str] | None = None,
) -> Dataset:
    """A Dataset from arrays (numpy or torch). ``y`` is optional; use -1 for unlabelled samples."""
    samples = _to_numpy(x)
    if sample_format(modality).pixels:
        samples = to_uint8_nchw(samples)
    labels = None if y is None else _to_numpy(y).astype(np.int64)
    meta: dict[str, Any] = {}
    if class_names is not None:
        meta["class_names"] = list(class_names)
    return Dataset(samples, labels, modality=modality, name=name, meta=meta)
