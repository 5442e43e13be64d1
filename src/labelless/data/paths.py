"""Where data and caches live, and atomic file writes."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np


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
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npy.tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.save(handle, array)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
