"""Before a semi-supervised run trains: a regression column as --target is refused with what to
do, and data without a labelled test split gets a warning saying how to get one
(semi/splits.py ``require_class_labels``, ``warn_no_test_split``; semi/api.py ``_test_split``)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from labelless.data import load_dataset
from labelless.errors import DataError
from labelless.semi.api import _test_split
from labelless.semi.config import resolve_semi_config


def _csv(path, rows: int = 80):
    rng = np.random.default_rng(0)
    lines = [
        f"{rng.normal():.4f},{rng.normal():.4f},{i % 3},{rng.uniform(0, 9):.3f}"
        for i in range(rows)
    ]
    path.write_text("a,b,label,price\n" + "\n".join(lines) + "\n")
    return path


def _config(path, **options):
    data = {"name": str(path), "target": "label", "options": options}
    return resolve_semi_config({"data": data}, None, {})


def test_csv_without_test_split_warns_with_the_option_to_get_one(tmp_path):
    path = _csv(tmp_path / "rows.csv")
    config = _config(path)
    splits = load_dataset(path, target="label")
    with pytest.warns(
        UserWarning, match=r"has no test split, so no test accuracy will be reported"
    ):
        assert _test_split(config, splits) is None
    with pytest.warns(UserWarning, match=r"--set data\.options\.test=0\.2.*--set data\.eval=PATH"):
        _test_split(config, splits)


def test_a_held_out_share_or_an_eval_set_silences_it(tmp_path):
    path = _csv(tmp_path / "rows.csv")
    splits = load_dataset(path, target="label", test=0.25)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        test = _test_split(_config(path, test=0.25), splits)
    assert test is not None and test.has_labels and len(test) == 20


def test_numeric_target_is_named_as_regression_not_as_no_labels(tmp_path, capsys):
    from labelless.cli import main

    path = _csv(tmp_path / "rows.csv")
    out = tmp_path / "run"
    assert main(["semi", "--data", str(path), "--target", "price", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --target 'price' of")
    assert "is a numeric column with 80 distinct values" in err
    assert "needs a column of classes" in err and "has no labels" not in err
    assert not out.exists()


def test_require_class_labels_passes_class_columns(tmp_path):
    from labelless.semi.splits import require_class_labels

    path = _csv(tmp_path / "rows.csv")
    require_class_labels(load_dataset(path, target="label").train, str(path), "label")
    with pytest.raises(DataError, match="regression target"):
        require_class_labels(load_dataset(path, target="price").train, str(path), "price")
