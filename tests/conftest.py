"""Shared test setup: few threads, seeded, and the real-data marker."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(2)

DATA_HINT = "set LABELLESS_DATA to the shared offline data folder (e.g. ../shared/data)"


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def data_root() -> Path:
    """The real-data root; skips the test with a reason when it is not configured."""
    root = os.environ.get("LABELLESS_DATA")
    if not root or not Path(root).is_dir():
        pytest.skip(f"real datasets not available: {DATA_HINT}")
    return Path(root)


@pytest.fixture
def digits():
    from labelless.data import load_dataset

    return load_dataset("digits")
