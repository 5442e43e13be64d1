"""Time-series loaders: arrays, .ts files, forecasting CSV, the bundled sets."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from labelless.data import load_dataset
from labelless.data.forecasting import load_forecasting, read_forecast_csv, sliding_windows
from labelless.data.timeseries import from_series, read_ts
from labelless.errors import DataError

UNIVARIATE = """# a comment
@problemName Tiny
@timeStamps false
@univariate true
@equalLength true
@seriesLength 4
@classLabel true 10 2
@data
1.0,2.0,3.0,4.0:10
4.0,3.0,?,1.0:2
"""

MULTIVARIATE = """@problemName Multi
@univariate false
@dimensions 2
@equalLength false
@classLabel true walk run
@data
1,2,3:4,5,6:run
7,8:9,10:walk
"""


def _write(folder, name, text):
    path = folder / name
    path.write_text(text)
    return path


def test_univariate_ts(tmp_path):
    splits = load_dataset(str(_write(tmp_path, "tiny.ts", UNIVARIATE)))
    train = splits.train
    assert train.samples.shape == (2, 1, 4) and train.samples.dtype == np.float32
    assert train.modality == "timeseries"
    assert train.meta["class_names"] == ["2", "10"]  # numeric labels sort numerically
    assert train.labels.tolist() == [1, 0]
    assert np.isnan(train.samples[1, 0, 2]) and train.samples[1, 0, 3] == 1.0  # '?' is missing
    assert splits.test is None


def test_multivariate_unequal_length_ts(tmp_path):
    train = load_dataset(str(_write(tmp_path, "multi.ts", MULTIVARIATE))).train
    assert train.samples.shape == (2, 2, 3)
    assert train.meta["class_names"] == ["walk", "run"]  # declared order
    assert train.labels.tolist() == [1, 0]
    assert train.meta["lengths"].tolist() == [3, 2]
    np.testing.assert_array_equal(train.samples[1, :, :2], [[7, 8], [9, 10]])
    assert np.isnan(train.samples[1, :, 2]).all()


def test_train_file_finds_its_test_sibling(tmp_path):
    _write(tmp_path, "Set_TRAIN.ts", MULTIVARIATE)
    test_text = MULTIVARIATE.replace("1,2,3:4,5,6:run", "1,2,3,4,5:6,7,8,9,0:run")
    _write(tmp_path, "Set_TEST.ts", test_text)
    splits = load_dataset(str(tmp_path / "Set_TRAIN.ts"))
    assert splits.train.samples.shape == (2, 2, 5) and splits.test.samples.shape == (2, 2, 5)
    assert splits.train.name == "Set/train" and splits.test.name == "Set/test"
    assert splits.test.labels.tolist() == [1, 0]


def test_regression_ts(tmp_path):
    text = "@problemName R\n@targetLabel true\n@data\n1,2,3:0.5\n3,2,1:-1.5\n"
    train = load_dataset(str(_write(tmp_path, "r.ts", text))).train
    assert train.labels is None
    np.testing.assert_allclose(train.targets, [0.5, -1.5])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("@problemName X\n1,2,3\n", "@header"),
        ("@problemName X\n@classLabel true a\n", "no @data"),
        ("@classLabel true a b\n@data\n1,2:3,4:a\n1,2:b\n", "dimensions"),
        ("@classLabel true a b\n@data\n1,x,3:a\n", "number"),
        ("@classLabel true a b\n@data\n?,?,?:a\n1,2,3:b\n", "all NaN"),
        ("@timestamps true\n@data\n(0,1),(1,2)\n", "timestamps"),
        ("@classLabel true a b\n@data\n1,2,3:c\n", "label 'c' is not one of the labels"),
        ("@classLabel true a b\n@data\n", "no series"),
    ],
)
def test_bad_ts_files(tmp_path, body, message):
    with pytest.raises(DataError, match=message):
        load_dataset(str(_write(tmp_path, "bad.ts", body)))


def test_undeclared_label_names_file_line_label_and_the_declared_ones(tmp_path):
    body = "# header\n@problemName X\n@classLabel true a b\n@data\n1,2,3:a\n\n4,5,6:c\n"
    path = _write(tmp_path, "bad.ts", body)
    with pytest.raises(DataError) as error:
        load_dataset(str(path))
    message = str(error.value)
    assert message.startswith(f"{path}:7: label 'c' is not one of the labels")
    assert "@classLabel line of" in message and "declares (a b)" in message


def test_test_file_labels_are_checked_against_the_train_header(tmp_path):
    _write(tmp_path, "Set_TRAIN.ts", MULTIVARIATE)
    _write(tmp_path, "Set_TEST.ts", MULTIVARIATE.replace("true walk run", "true walk run jump")
           .replace("7,8:9,10:walk", "7,8:9,10:jump"))  # fmt: skip
    with pytest.raises(DataError) as error:
        load_dataset(str(tmp_path / "Set_TRAIN.ts"))
    message = str(error.value)
    assert message.startswith(f"{tmp_path / 'Set_TEST.ts'}:8: label 'jump'")
    assert f"@classLabel line of {tmp_path / 'Set_TRAIN.ts'} declares (walk run)" in message


def test_read_ts_returns_raw_labels(tmp_path):
    _, labels, header = read_ts(_write(tmp_path, "t.ts", UNIVARIATE))
    assert labels.tolist() == ["10", "2"] and header["problemname"] == ["Tiny"]


def test_from_series_shapes_and_labels():
    data = from_series(np.random.rand(5, 30), y=["b", "a", "b", "a", "a"])
    assert data.samples.shape == (5, 1, 30) and data.meta["class_names"] == ["a", "b"]
    assert data.labels.tolist() == [1, 0, 1, 0, 0]
    ragged = from_series([np.arange(4.0), np.arange(7.0)], y=[0, 1])
    assert ragged.samples.shape == (2, 1, 7) and ragged.meta["lengths"].tolist() == [4, 7]
    multi = from_series(np.zeros((3, 2, 9)), targets=[0.1, 0.2, 0.3])
    assert multi.samples.shape == (3, 2, 9) and multi.targets.dtype == np.float32


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (np.array([["a", "b"]]), "numbers"),
        (np.zeros((2, 1, 3, 4)), r"\[N, T\]"),
        (np.array([[1.0, np.inf]]), "infinite"),
        (np.array([[1.0, 2.0], [np.nan, np.nan]]), "all NaN"),
        ([np.zeros((2, 3)), np.zeros((3, 3))], "same channel count"),
    ],
)
def test_from_series_rejects_bad_input(x, message):
    with pytest.raises(DataError, match=message):
        from_series(x)


CSV = "date,a,b\n" + "".join(f"2020-01-01 {i:02d}:00,{i},{2 * i + 1}\n" for i in range(20))


def test_forecast_csv_standardises_with_train_only(tmp_path):
    path = tmp_path / "series.csv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write(CSV)
    series = load_forecasting(path, splits=(0.5, 0.25, 0.25))
    assert series.columns == ["a", "b"] and series.borders == (10, 15, 20)
    train = series.split("train")
    np.testing.assert_allclose(train.mean(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(train.std(axis=0), 1, atol=1e-5)
    assert series.split("test").mean() > 1.5  # later values stay above the train range
    windows = sliding_windows(series.values, 8, 4)
    assert windows.shape == (4, 2, 8)
    np.testing.assert_array_equal(windows[1, :, 0], series.values[4])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("date,a,b\nx,1,2\ny,3\n", "ragged"),
        ("date,a,b\nx,1,2\ny,3,oops\n", "'b' holds 'oops'"),
        ("date,a,b\nx,1,2\ny,3,\n", "not a number"),
        ("date,a\n", "header row and at least one"),
    ],
)
def test_bad_forecast_csv(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        read_forecast_csv(path)


def test_missing_forecast_column(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text(CSV)
    with pytest.raises(DataError, match="no columns"):
        load_forecasting(path, columns=["c"])


@pytest.mark.data
def test_bundled_ucr_sets(data_root):
    gun = load_dataset("ucr:GunPoint")
    assert gun.train.samples.shape == (50, 1, 150) and gun.test.samples.shape == (150, 1, 150)
    assert gun.train.num_classes == 2
    vowels = load_dataset("ucr:JapaneseVowels").train
    assert vowels.samples.shape[1] == 12 and vowels.meta["lengths"].min() == 7
    tecator = load_dataset("ucr:Tecator").train
    assert tecator.labels is None and tecator.targets.shape == (172,)


@pytest.mark.data
def test_ett_splits(data_root):
    series = load_forecasting("etth1")
    assert series.values.shape == (14400, 7) and series.borders == (8640, 11520, 14400)
    np.testing.assert_allclose(series.split("train").mean(axis=0), 0, atol=1e-4)
    windows = load_dataset("etth1")
    assert windows.train.samples.shape == (128, 7, 512) and windows.test.samples.shape[0] == 38
