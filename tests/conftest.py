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
def one_thread():
    """torch on one thread for the test, restored afterwards: tiny models run fastest on one
    thread, and two OpenMP threads on a busy 2-core machine slow a learning test from seconds to
    minutes."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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


def _fresh_copy(encoder):
    """A freshly initialised copy of ``encoder``'s architecture (same kwargs, input size, mean
    and std; seed 0)."""
    from labelless.backbones import create_backbone

    meta = encoder.meta
    torch.manual_seed(0)
    return create_backbone(
        meta.architecture,
        in_channels=meta.in_channels,
        input_size=meta.input_size,
        mean=meta.mean,
        std=meta.std,
        **meta.kwargs,
    )


def _fresh_copy_key(encoder) -> str:
    """Everything ``_fresh_copy`` builds from, and torch's thread count (float rounding)."""
    meta = encoder.meta
    return repr(
        (
            meta.architecture,
            meta.in_channels,
            meta.input_size,
            [float(v) for v in meta.mean],
            [float(v) for v in meta.std],
            sorted(meta.kwargs.items()),
            torch.get_num_threads(),
        )
    )


# random_init_knn's floors, computed once per session: the method-zoo tests share one
# architecture, and the floor is deterministic (seed-0 copy, fixed data, same thread count).
_FLOORS: dict[tuple[str, int], float] = {}


@pytest.fixture
def random_init_knn(digits):
    """``random_init_knn(encoder, k)``: kNN top-1 on digits of a freshly initialised copy of
    ``encoder``'s architecture (same kwargs, input size, mean and std; seed 0): the floor a
    pretrained encoder must beat. Computed once per session for each architecture, k and
    thread count."""
    from labelless.evaluate import embed, knn_accuracy

    def floor(encoder, k: int) -> float:
        key = (_fresh_copy_key(encoder), k)
        if key not in _FLOORS:
            random_init = _fresh_copy(encoder)
            train, test = digits.train, digits.test
            _FLOORS[key] = knn_accuracy(
                embed(random_init, train.samples),
                torch.as_tensor(train.labels),
                embed(random_init, test.samples),
                torch.as_tensor(test.labels),
                k=k,
                temperature=0.1,
            )
        return _FLOORS[key]

    return floor


@pytest.fixture
def random_init_rankme(digits):
    """``random_init_rankme(encoder)``: RankMe of the same fresh copy's embeddings of the digits
    test split (the split a digits run's final ``rankme`` is measured on)."""
    from labelless.evaluate import embed, rankme

    return lambda encoder: rankme(embed(_fresh_copy(encoder), digits.test.samples))
