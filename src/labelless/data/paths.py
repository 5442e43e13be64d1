"""Where data and caches live, and atomic file writes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from labelless.atomic import write_atomic


def data_root() -> Path:
    """``$LABELLESS_DATA`` when set, else ``~/.cache/labelless``."""
    env = os.environ.get("LABELLESS_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "labelless"


def cache_dir() -> Path:
    """A writable cache (``$LABELLESS_CACHE``, else ``~/.cache/labelless``); the data root may be
    read-only."""
    env = os.environ.get("LABELLESS_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "labelless"


def save_npy_atomic(path: Path, array: np.ndarray) -> None:
    """Write ``array`` to ``path`` via a temporary file and rename, so readers never see half."""
    write_atomic(path, lambda handle: np.save(handle, array))
