"""compare.html over every run kind's metrics.json (hand-written, shaped like the real files):
columns, order, direction and protocol checks come from the metric catalog."""

from __future__ import annotations

import json
import re
from html import unescape
from pathlib import Path

import pytest

from labelless.errors import ConfigError
from labelless.report.compare import read_entry, write_comparison

PREPROCESSING = {"input_size": 8, "mean": [0.3054], "std": [0.3760]}


def pretrain_metrics(knn: float = 0.58) -> dict:
    """api.pretrain's metrics.json on digits (api.final_metrics + the training record)."""
    return {
        "knn_top1": knn,
        "linear_top1": 0.6972,
        "few_shot_1_top1": 0.2917,
        "few_shot_1_top1_std": 0.0396,
        "few_shot_5_top1": 0.4178,
        "few_shot_5_top1_std": 0.0152,
        "kmeans_nmi": 0.3170,
        "kmeans_ari": 0.1668,
        "map_at_r": 0.1858,
        "precision_at_1": 0.5722,
        "rankme": 38.02,
        "embedding_std": 0.0848,
        "alpha_req": 1.6009,
        "uniformity": -1.7631,
        "protocol": {
            "knn": {"k": 200, "temperature": 0.1, "similarity": "cosine", "votes": "weighted"},
            "train_samples": 1437,
            "test_samples": 360,
            "linear": {"epochs": 100, "weight_decays": [0.0, 1e-4], "weight_decay": 1e-4},
            "few_shot": {"shots": [1, 5], "draws": 5, "skipped_shots": []},
            "preprocessing": PREPROCESSING,
            "train_split": "digits/train",
            "test_split": "digits/test",
        },
        "training": {"epochs_done": 1, "steps": 22, "final_not_best": True},
    }


def semi_metrics(top1: float = 0.4056, classes: str = "all") -> dict:
    """semi.api's metrics.json (semi.evaluation.final_metrics + split, shift, training)."""
    return {
        "test_top1": top1,
        "test_top1_online": top1 - 0.02,
        "protocol": {
            "model": "EMA of the weights at the end of training (final, not best)",
            "ema_momentum": 0.999,
            "split": "digits/test",
            "preprocessing": PREPROCESSING,
            "classes": classes,
        },
        "split": {"mode": "2 per class", "labelled": 20, "unlabelled": 1417, "num_classes": 10},
        "shift": {"frechet_distance": 0.0705, "ratio": 0.7853, "shifted": False},
        "training": {"method": "fixmatch", "mu": 2, "steps": 44, "final_not_best": True},
    }


def table_metrics(rmse: float = 0.4894) -> dict:
    """A regression table run after `labelless evaluate`: the final metrics of api.pretrain and
    suite.evaluate_encoder's entry (ridge + evaluate_table heads) under ``evaluations``."""
    evaluation = {
        "protocol": {
            "tables": "linear and MLP heads on frozen embeddings, label fractions 1 and 0.01",
            "preprocessing": {"input_size_source": "encoder", "normalize": "encoder"},
            "regression": "ridge on standardised embeddings, alpha 0.001..1000 by LOO CV",
            "data": "rows.csv",
            "train_split": "rows/train",
            "test_split": "rows/test",
            "final_not_best": True,
        },
        "ridge_rmse": rmse,
        "ridge_r2": 0.9571,
        "linear_rmse_1": rmse * 2,
        "mlp_rmse_1": rmse * 1.5,
        "linear_rmse_0.01": rmse * 9,
        "mlp_rmse_0.01": rmse * 7,
        "encoder": {"kind": "run", "architecture": "mlp", "modality": "tabular"},
    }
    return {
        "rankme": 24.59,
        "embedding_std": 0.0298,
        "ridge_rmse": rmse,
        "ridge_r2": 0.9571,
        "protocol": {
            "preprocessing": {"modality": "tabular", "as_loaded": True},
            "split": "rows/test",
            "regression": evaluation["protocol"]["regression"],
            "train_split": "rows/train",
        },
        "training": {"epochs_done": 1, "steps": 2},
        "evaluations": {"rows.csv [native]": evaluation},
    }


def series_metrics(svm: float = 0.81, chosen_c: float = 10.0, cv: int = 5) -> dict:
    """api.pretrain's metrics.json for a time-series run: evaluate_embeddings + TS2Vec's SVM."""
    metrics = pretrain_metrics(knn=0.7)
    metrics["svm_top1"] = svm
    metrics["protocol"].update(
        preprocessing={"modality": "timeseries", "as_loaded": True},
        train_split="ucr:GunPoint/train",
        test_split="ucr:GunPoint/test",
        svm={"classifier": "SVC rbf gamma=scale", "cv": cv, "C": chosen_c, "searched": True},
    )
    return metrics


def write_run(directory: Path, metrics: dict, architecture: str = "resnet18_cifar") -> Path:
    directory.mkdir(parents=True)
    (directory / "metrics.json").write_text(json.dumps(metrics))
    (directory / "encoder.json").write_text(json.dumps({"architecture": architecture}))
    return directory


def section(html: str, key: str) -> str:
    start = html.index(f"<h2>{key}</h2>")
    end = html.find("<section>", start)
    return html[start : end if end > 0 else len(html)]


def headers(part: str) -> list[str]:
    """The metric column names of a section's table (rank, encoder, architecture left out)."""
    names = re.findall(r'<th data-column="(\d+)"[^>]*>([^<&]+)', part)
    return [name.strip() for index, name in names if int(index) >= 3]


def ranked_names(part: str) -> list[str]:
    return re.findall(
        r'<tr><td class="value" data-value="\d+">\d+</td><td data-value="([^"]+)"', part
    )


def test_every_run_kind_shows_its_metrics(tmp_path):
    runs = [
        write_run(tmp_path / "simclr", pretrain_metrics()),
        write_run(tmp_path / "fixmatch", semi_metrics()),
        write_run(tmp_path / "scarf", table_metrics(), "mlp"),
        write_run(tmp_path / "ts2vec", series_metrics(), "ts_cnn"),
    ]
    html = write_comparison(runs, tmp_path / "compare.html")[0].read_text()
    digits = section(html, "digits [native]")
    assert headers(digits) == [  # catalog order: evaluate_embeddings', then semi's
        "knn_top1",
        "linear_top1",
        "few_shot_1_top1",
        "few_shot_5_top1",
        "kmeans_nmi",
        "kmeans_ari",
        "map_at_r",
        "precision_at_1",
        "rankme",
        "alpha_req",
        "uniformity",
        "embedding_std",
        "test_top1",
        "test_top1_online",
    ]
    assert ">0.4056</td>" in digits and ">0.5800</td>" in digits
    assert ranked_names(digits) == ["simclr", "fixmatch"]  # no kNN for the semi run: last
    table = section(html, "rows.csv [native]")
    assert headers(table) == [
        "ridge_rmse",
        "ridge_r2",
        "linear_rmse_1",
        "linear_rmse_0.01",
        "mlp_rmse_1",
        "mlp_rmse_0.01",
    ]
    assert "ranked by ridge_rmse (lower is better)" in table  # no kNN here: the first column
    assert headers(section(html, "rows [native]")) == [  # the table run's final metrics
        "rankme",
        "embedding_std",
        "ridge_rmse",
        "ridge_r2",
    ]
    series = headers(section(html, "ucr:GunPoint [native]"))
    assert series[0] == "knn_top1" and series[-1] == "svm_top1"
    assert not any(name.endswith("_std") and "shot" in name for name in headers(html))
    assert 'alt="ucr:GunPoint [native] svm_top1"' in html  # charted
    assert 'alt="digits [native] test_top1"' in html


def test_a_semi_run_is_an_evaluation_keyed_by_its_test_split(tmp_path):
    entry = read_entry(write_run(tmp_path / "fixmatch", semi_metrics()))
    assert list(entry.evaluations) == ["digits [native]"]
    assert entry.evaluations["digits [native]"]["test_top1"] == 0.4056


def test_lower_is_better_ranks_ascending_and_sorts_ascending_first(tmp_path):
    worse = write_run(tmp_path / "worse", table_metrics(rmse=0.9), "mlp")
    better = write_run(tmp_path / "better", table_metrics(rmse=0.3), "mlp")
    html = write_comparison([worse, better], tmp_path / "c.html", rank_by="ridge_rmse")[0]
    table = section(html.read_text(), "rows.csv [native]")
    assert ranked_names(table) == ["better", "worse"]
    assert "ranked by ridge_rmse (lower is better)" in table
    header = re.search(r"<th [^>]*>ridge_rmse[^<]*</th>", table).group(0)
    assert 'data-better="asc"' in header and "&#8595;" in header  # first click: ascending
    r2 = re.search(r"<th [^>]*>ridge_r2[^<]*</th>", table).group(0)
    assert "data-better" not in r2


def test_undeclared_numbers_come_last_marked_as_assumed_higher_is_better(tmp_path):
    metrics = pretrain_metrics()
    metrics = {"my_new_score": 3.5, **metrics}
    low = write_run(tmp_path / "low", {**metrics, "my_new_score": 1.0})
    high = write_run(tmp_path / "high", metrics)
    page = write_comparison([low, high], tmp_path / "c.html", rank_by="my_new_score")[0]
    digits = section(page.read_text(), "digits [native]")
    names = headers(digits)
    assert names[-1] == "my_new_score ?" and names[0] == "knn_top1"
    assert ranked_names(digits) == ["high", "low"]
    assert "assumed higher is better" in digits and "declare_metric" in digits


def test_rank_by_takes_any_recorded_metric_and_suggests_a_close_one(tmp_path):
    runs = [
        write_run(tmp_path / "a", semi_metrics(0.3)),
        write_run(tmp_path / "b", semi_metrics(0.6)),
    ]
    page = write_comparison(runs, tmp_path / "c.html", rank_by="test_top1")[0]
    assert ranked_names(section(page.read_text(), "digits [native]")) == ["b", "a"]
    with pytest.raises(ConfigError, match=r"did you mean 'test_top1'\?"):
        write_comparison(runs, tmp_path / "never.html", rank_by="test_top2")
    assert not (tmp_path / "never.html").exists()


def test_each_family_compares_its_own_settings_minus_fitted_values(tmp_path):
    # SVM: the chosen C is a fit result; the folds of the search are a setting
    same = [
        write_run(tmp_path / "c10", series_metrics(chosen_c=10.0)),
        write_run(tmp_path / "c100", series_metrics(chosen_c=100.0)),
    ]
    html = write_comparison(same, tmp_path / "same.html")[0].read_text()
    assert "Protocols differ" not in html
    other_cv = write_run(tmp_path / "cv3", series_metrics(cv=3))
    html = write_comparison([*same, other_cv], tmp_path / "cv.html")[0].read_text()
    assert "<code>svm_top1</code> of <b>cv3</b>: svm.cv: 3 here vs 5" in html
    assert "<code>knn_top1</code> of <b>cv3</b>" not in html  # kNN's settings agree
    # semi: scored on the known classes only vs all classes
    runs = [
        write_run(tmp_path / "closed", semi_metrics()),
        write_run(tmp_path / "closed2", semi_metrics()),
        write_run(tmp_path / "open", semi_metrics(classes="known classes only")),
    ]
    html = unescape(write_comparison(runs, tmp_path / "semi.html")[0].read_text())
    assert "test_top1</code> of <b>open</b>: classes: 'known classes only' here vs 'all'" in html
