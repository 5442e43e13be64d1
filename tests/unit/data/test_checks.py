"""Size checks of loaded data (data/checks.py), through ``load_dataset`` for every modality."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from labelless.data import load_dataset, warn_if_batch_exceeds_data
from labelless.data.checks import TINY_TRAIN_SAMPLES
from labelless.errors import DataError


def _csv(path, rows: int):
    path.write_text("a,b,label\n" + "".join(f"{i},{i % 7},{i % 2}\n" for i in range(rows)))
    return path


def test_a_three_row_csv_warns_that_it_is_tiny(tmp_path):
    path = _csv(tmp_path / "rows.csv", 3)
    with pytest.warns(UserWarning, match=r"has only 3 training samples \(fewer than 50\)"):
        splits = load_dataset(path, target="label")
    assert len(splits.train) == 3


def test_enough_rows_load_without_a_warning(tmp_path):
    path = _csv(tmp_path / "rows.csv", TINY_TRAIN_SAMPLES)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_dataset(path, target="label")


def test_a_tiny_test_split_warns(tmp_path):
    path = _csv(tmp_path / "rows.csv", 100)
    with pytest.warns(UserWarning, match=r"test split of .* has only 10 samples"):
        load_dataset(path, target="label", test=0.1)


def test_a_single_image_is_a_data_error(tmp_path):
    from PIL import Image

    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "only.png")
    with pytest.raises(DataError, match=r"has 1 training sample.*at least 2"):
        load_dataset(tmp_path)


def test_a_tiny_image_folder_warns_too(tmp_path):
    from PIL import Image

    for i in range(4):
        Image.fromarray(np.full((8, 8), i, np.uint8)).save(tmp_path / f"{i}.png")
    with pytest.warns(UserWarning, match="has only 4 training samples"):
        load_dataset(tmp_path, load_size=8)


def test_batch_larger_than_the_data_warns_with_a_size_that_fits():
    with pytest.warns(UserWarning, match=r"--batch-size 256 is larger than the 40 training"):
        assert warn_if_batch_exceeds_data(256, 40)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not warn_if_batch_exceeds_data(40, 40)
