"""Fixtures for the table tests: small CSV files and a real table (scikit-learn's wine)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def write_csv(tmp_path):
    """``write_csv(text, name="t.csv")``: a CSV file with that text (gzipped for ``.gz``)."""
    import gzip

    def write(text: str, name: str = "t.csv"):
        path = tmp_path / name
        if name.endswith(".gz"):
            with gzip.open(path, "wt") as handle:
                handle.write(text)
        else:
            path.write_text(text)
        return path

    return write


@pytest.fixture
def people():
    """A dict table: 2 numeric, 2 categorical columns and a class target; 200 rows."""
    rng = np.random.default_rng(0)
    n = 200
    return {
        "age": rng.integers(18, 80, n).astype(float),
        "income": rng.lognormal(10, 1, n),
        "city": rng.choice(["paris", "oslo", "rome"], n),
        "pet": rng.choice(["cat", "dog"], n),
        "label": rng.choice(["yes", "no"], n),
    }


@pytest.fixture(autouse=True)
def _tables_on_one_thread(one_thread):
    """Table models are tiny: every table test runs on one thread (``one_thread``)."""
