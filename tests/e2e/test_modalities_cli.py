"""The same verbs on tables and time series, from files, as a person types them. Pretraining and
evaluating a table run ``labelless`` in a fresh interpreter; the other runs and the user errors
run in-process (``run_in_process``)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from .cli import one_line_error, run_cli, run_in_process

QUICK = ["--set", "trainer.progress_bar=false", "--set", "trainer.threads=1"]


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """scikit-learn's breast-cancer rows as a CSV with a text column, a missing cell and a text
    target: 30 numeric features, 1 categorical, 569 rows."""
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("table") / "cancer.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*(n.replace(" ", "_") for n in bunch.feature_names), "site", "diagnosis"])
        for i, (row, label) in enumerate(zip(bunch.data, bunch.target, strict=True)):
            cells = [f"{v:.6g}" for v in row]
            if i == 3:
                cells[0] = ""  # one missing value: imputed and reported
            writer.writerow([*cells, rng.choice(["a", "b", "c"]), bunch.target_names[label]])
    return path


def test_pretrain_a_table_from_csv(table, tmp_path):
    out = tmp_path / "scarf"
    result = run_cli(
        "pretrain",
        "--data",
        str(table),
        "--target",
        "diagnosis",
        "--method",
        "scarf",
        "--epochs",
        "3",
        "--batch-size",
        "64",
        "--set",
        "data.options.test=0.25",
        "--out",
        str(out),
        *QUICK,
    )
    assert result.returncode == 0, result.stderr
    encoder = json.loads((out / "encoder.json").read_text())
    assert encoder["architecture"] == "mlp" and encoder["modality"] == "tabular"
    assert encoder["in_channels"] == 31  # 30 numeric columns + 1 category code
    assert encoder["preprocessing"]["categorical"] == ["site"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["knn_top1"] > 0.8  # two well-separated classes, even after 3 epochs
    config = (out / "config.yaml").read_text()
    assert "name: mlp" in config and "target: diagnosis" in config
    evaluated = run_cli(
        "evaluate",
        str(out),
        "--data",
        str(table),
        "--target",
        "diagnosis",
        "--test-fraction",
        "0.25",
        one_thread=True,
    )
    assert evaluated.returncode == 0, evaluated.stderr
    record = json.loads((out / "metrics.json").read_text())["evaluations"]
    (evaluation,) = record.values()
    assert evaluation["linear_accuracy_1"] > 0.8 and "mlp_accuracy_0.01" in evaluation
    assert "tables" in evaluation["protocol"]


def test_semi_supervised_table(table, tmp_path):
    out = tmp_path / "fixmatch"
    result = run_in_process(
        "semi",
        "--data",
        str(table),
        "--target",
        "diagnosis",
        "--method",
        "fixmatch",
        "--labels-per-class",
        "10",
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--set",
        "data.options.test=0.25",
        "--set",
        "report=false",
        "--out",
        str(out),
        *QUICK,
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["split"]["labelled"] == 20 and metrics["test_top1"] > 0.5


def test_table_errors_are_one_line(table, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,label\n1,2,x\n3,oops,y\n4,5,x\n" + "6,7,y\n" * 200)
    message = one_line_error(
        run_in_process(
            "pretrain",
            "--data",
            str(bad),
            "--target",
            "label",
            "--method",
            "scarf",
            "--set",
            "data.options.numeric=[a,b]",
            "--out",
            str(tmp_path / "run"),
        )
    )
    assert "'b'" in message and "oops" in message
    assert not (tmp_path / "run").exists()
    message = one_line_error(
        run_in_process(
            "pretrain",
            "--data",
            str(table),
            "--target",
            "label",
            "--method",
            "scarf",
            "--out",
            str(tmp_path / "run"),
        )
    )
    assert "'label'" in message and "diagnosis" in message
    message = one_line_error(
        run_in_process(
            "pretrain",
            "--data",
            str(table),
            "--target",
            "diagnosis",
            "--method",
            "simclr",
            "--out",
            str(tmp_path / "run"),
        )
    )
    assert "simclr" in message and "scarf" in message  # the table methods are listed
    assert not (tmp_path / "run").exists()


def _write_ts(path, series, labels):
    lines = ["@problemName toy", "@timeStamps false", "@univariate true"]
    lines += ["@classLabel true " + " ".join(sorted(set(labels))), "@data"]
    lines += [
        ",".join(f"{v:.5f}" for v in s) + ":" + y for s, y in zip(series, labels, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")


def test_pretrain_time_series_from_ts_files(tmp_path):
    """Two classes of noisy sines at different frequencies, UCR .ts train/test files."""
    rng = np.random.default_rng(0)
    t = np.linspace(0, 1, 64)

    def make(n):
        labels = rng.integers(0, 2, n)
        freq = np.where(labels == 0, 3.0, 7.0)[:, None]
        series = np.sin(2 * np.pi * freq * t + rng.uniform(0, 6, (n, 1)))
        return series + 0.1 * rng.standard_normal((n, 64)), [f"c{y}" for y in labels]

    _write_ts(tmp_path / "toy_TRAIN.ts", *make(60))
    _write_ts(tmp_path / "toy_TEST.ts", *make(40))
    out = tmp_path / "ts2vec"
    result = run_in_process(
        "pretrain",
        "--data",
        str(tmp_path / "toy_TRAIN.ts"),
        "--method",
        "ts2vec",
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--out",
        str(out),
        *QUICK,
    )
    assert result.returncode == 0, result.stderr
    encoder = json.loads((out / "encoder.json").read_text())
    assert encoder["modality"] == "timeseries" and encoder["architecture"] == "ts_cnn"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["linear_top1"] > 0.8
