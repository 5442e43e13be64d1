"""The default run-directory names: one scheme, ``runs/<method>-<data stem>``, safe on every
filesystem, for pretrain and semi alike."""

from __future__ import annotations

import re

import pytest

from labelless.runfiles import data_stem, default_run_dir

SAFE = re.compile(r"^runs/[A-Za-z0-9_][A-Za-z0-9._-]*$")


@pytest.mark.parametrize(
    ("data", "stem"),
    [
        ("digits", "digits"),
        ("ucr:GunPoint", "ucr-GunPoint"),
        ("rows.csv", "rows"),
        ("./tables/rows.csv.gz", "rows"),
        ("/data/series/train.ts", "train"),
        ("data/photos/", "photos"),
        ("C:\\data\\my photos", "my-photos"),
        ("<in-memory toy set>", "toy-set"),
        ("results_v1.2.parquet", "results_v1.2"),
        (":::", "data"),
    ],
)
def test_data_stem(data, stem):
    assert data_stem(data) == stem


def test_default_run_dir_is_method_then_data_and_filesystem_safe():
    assert default_run_dir("ts2vec", data="ucr:GunPoint") == "runs/ts2vec-ucr-GunPoint"
    assert default_run_dir("scarf", data="rows.csv") == "runs/scarf-rows"
    assert default_run_dir("semi", "fixmatch", data="digits") == "runs/semi-fixmatch-digits"
    for data in ("ucr:GunPoint", "a b/c:d.csv", "<in-memory x:y>", "../up/"):
        name = default_run_dir("simclr", data=data)
        assert SAFE.match(name), name
        assert ":" not in name and " " not in name and name.count("/") == 1


def test_pretrain_and_semi_use_the_scheme():
    from labelless.lifecycle import resolve_run_config
    from labelless.semi.api import SEMI
    from labelless.verbs.pretrain import PRETRAIN

    pretrain = resolve_run_config(
        PRETRAIN, None, None, False, {"data": "ucr:GunPoint", "method": "ts2vec"}
    )
    assert pretrain.out == "runs/ts2vec-ucr-GunPoint"
    semi = resolve_run_config(SEMI, None, None, False, {"data": "rows.csv", "method": None})
    assert semi.out == "runs/semi-fixmatch-rows"
    given = resolve_run_config(PRETRAIN, None, None, False, {"data": "digits", "out": "x:y"})
    assert given.out == "x:y"  # an --out the user typed is theirs
