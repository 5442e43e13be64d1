"""data/tabular.py: reading, typing, missing-value policies, train-only preprocessing."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from labelless.data import load_dataset
from labelless.data.tabular import TablePreprocessor, load_table
from labelless.errors import CheckpointError, DataError

CSV = "age,city,score,label\n39,paris,1.5,a\n50,oslo,2.5,b\n28,paris,,a\n41,rome,0.5,b\n"


def test_csv_types_codes_and_meta(write_csv):
    splits = load_table(write_csv(CSV), target="label", missing="impute")
    train = splits.train
    assert train.samples.dtype == np.float32 and train.samples.shape == (4, 3)
    assert train.meta["numeric"] == ["age", "score"] and train.meta["categorical"] == ["city"]
    assert train.meta["cardinalities"] == [4]  # oslo, paris, rome + the reserved 0
    assert train.samples[:, 2].tolist() == [2, 1, 2, 3]  # sorted vocabulary, coded from 1
    assert train.meta["task"] == "classification" and train.meta["class_names"] == ["a", "b"]
    assert train.labels.tolist() == [0, 1, 0, 1]
    assert train.meta["missing"] == {"policy": "impute", "train": {"score": 1}}
    json.dumps(train.meta)  # JSON-ready, preprocessing included
    assert train.meta["preprocessing"]["kind"] == "table"


def test_gzip_csv_and_the_file_loader_route(write_csv):
    path = write_csv(CSV, "t.csv.gz")
    splits = load_dataset(str(path), target="label", missing="impute")
    assert splits.train.modality == "tabular" and len(splits.train) == 4


def test_a_missing_named_column_is_a_clear_error(write_csv):
    path = write_csv(CSV)
    with pytest.raises(DataError, match=r"target column 'lable' is not in the table; did you mean"):
        load_table(path, target="lable")
    with pytest.raises(DataError, match=r"'agee' is not in the table.*columns are: age, city"):
        load_table(path, target="label", categorical=["agee"])


def test_a_string_in_a_numeric_column_is_a_clear_error(write_csv):
    rows = "".join(f"{20 + i},paris,{i}.5,a\n" for i in range(150))
    text = "age,city,score,label\n" + rows + "abc,rome,1.0,b\n"
    with pytest.raises(DataError, match=r"column 'age' is numeric .* 'abc' in data row 151"):
        load_table(write_csv(text), target="label")
    with pytest.raises(DataError, match=r"column 'city' is declared numeric .* 'paris'"):
        load_table(write_csv(CSV), target="label", numeric=["city"])


def test_an_all_missing_column_is_a_clear_error(write_csv):
    text = "age,empty,label\n39,,a\n50,NA,b\n28,?,a\n"
    with pytest.raises(DataError, match=r"column 'empty' has no values .*all 3 missing"):
        load_table(write_csv(text), target="label")


def test_missing_values_are_rejected_imputed_or_reported(write_csv):
    path = write_csv(CSV.replace("rome", ""))
    with pytest.raises(DataError, match=r"missing values \('score': 1, 'city': 1\)"):
        load_table(path, target="label", missing="reject")
    with pytest.warns(UserWarning, match=r"imputed missing values .*'score': 1"):
        reported = load_table(path, target="label")
    assert reported.train.meta["missing"]["train"] == {"score": 1, "city": 1}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        imputed = load_table(path, target="label", missing="impute")
    assert np.array_equal(reported.train.samples, imputed.train.samples)
    assert imputed.train.samples[3, 2] == 0  # missing category -> the reserved code 0
    median = np.median([1.5, 2.5, 0.5])
    assert imputed.train.samples[2, 1] == imputed.train.samples[0, 1]  # 1.5 == the median
    assert median == 1.5


def test_preprocessing_is_fitted_on_train_only(people):
    test = {k: v[:50].copy() for k, v in people.items()}
    test["income"] = test["income"] * 1000.0  # wildly shifted test rows
    test["city"][:10] = "tokyo"  # unseen category
    alone = load_table(people, target="label")
    both = load_table(people, target="label", test=test)
    assert both.train.meta["preprocessing"] == alone.train.meta["preprocessing"]
    assert np.array_equal(both.train.samples, alone.train.samples)
    assert (both.test.samples[:10, 2] == 0).all()  # tokyo -> unseen code 0
    assert both.test.samples[:, 1].min() > 3.0  # beyond the training quantiles, not re-fitted


@pytest.mark.parametrize("scaling", ["quantile", "standard"])
def test_preprocessor_round_trips_through_json(people, scaling):
    splits = load_table(people, target="label", scaling=scaling)
    state = json.loads(json.dumps(splits.train.meta["preprocessing"]))
    restored = TablePreprocessor.from_dict(state)
    features = {k: v for k, v in people.items() if k != "label"}
    assert np.array_equal(restored.transform(features), splits.train.samples)
    if scaling == "standard":
        assert np.allclose(splits.train.samples[:, :2].mean(0), 0, atol=1e-5)
    with pytest.raises(CheckpointError, match="malformed"):
        TablePreprocessor.from_dict({"kind": "table", "numeric": ["a"]})


def test_quantile_scaling_is_normal_and_monotone(people):
    x = load_table(people).train.samples[:, 1]
    order = np.argsort(people["income"])
    assert np.all(np.diff(x[order]) >= 0)
    within_one = np.mean(np.abs(x) < 1.0)  # 0.683 for a standard normal
    assert abs(np.median(x)) < 0.05 and abs(within_one - 0.683) < 0.03


def test_targets_tasks_and_unlabelled_rows(people):
    people = dict(people)
    people["label"] = people["label"].astype(object)
    people["label"][:5] = None
    splits = load_table(people, target="label", test=0.25)
    assert (splits.train.labels == -1).sum() + (splits.test.labels == -1).sum() == 5
    assert len(splits.test) == 50
    regression = load_table(people, target="income", missing="impute")
    assert regression.train.meta["task"] == "regression" and regression.train.labels is None
    assert np.allclose(regression.train.targets, people["income"].astype(np.float32))
    unlabelled = load_table(people, missing="impute")
    assert unlabelled.train.labels is None and unlabelled.train.meta["task"] is None


def test_dataframe_and_parquet(people, tmp_path):
    pd = pytest.importorskip("pandas", reason="pandas is optional (pip install labelless[tables])")
    frame = pd.DataFrame(people)
    from_frame = load_table(frame, target="label")
    assert np.array_equal(
        from_frame.train.samples, load_table(people, target="label").train.samples
    )
    pytest.importorskip("pyarrow", reason="parquet needs pyarrow (pip install labelless[tables])")
    frame.to_parquet(tmp_path / "t.parquet")
    from_parquet = load_dataset(str(tmp_path / "t.parquet"), target="label")
    assert np.array_equal(from_parquet.train.samples, from_frame.train.samples)


def _data_or_skip(name):
    from labelless.data import BUILTINS

    if not BUILTINS[name].available():
        pytest.skip(f"{name} is not under $LABELLESS_DATA")
    return load_dataset(name)


@pytest.mark.data
def test_builtin_adult():
    splits = _data_or_skip("adult")
    assert splits.train.samples.shape == (32561, 14) and splits.test.samples.shape == (16281, 14)
    assert splits.train.meta["class_names"] == ["<=50K", ">50K"]
    assert np.bincount(splits.train.labels).tolist() == [24720, 7841]
    assert splits.train.meta["missing"]["train"]["workclass"] == 1836


@pytest.mark.data
def test_builtin_california_and_covertype():
    housing = _data_or_skip("california_housing")
    assert len(housing.train) + len(housing.test) == 20640
    assert housing.train.meta["task"] == "regression" and housing.train.targets is not None
    cover = _data_or_skip("covertype")
    assert cover.train.meta["categorical"] == ["Wilderness_Area", "Soil_Type"]
    assert len(cover.train) == 80000 and cover.train.num_classes == 7
