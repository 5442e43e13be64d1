"""The experiment trackers of ``--logger`` on a one-epoch digits run: each writes offline inside
the run directory, beside the CSV log the report reads. Each skips without its extra."""

from __future__ import annotations

import copy

import pytest

from labelless import api
from labelless.config import resolve_config
from labelless.demo import DEMO_CONFIG

pytestmark = pytest.mark.slow


def _tiny_run(tmp_path, logger: str):
    config = copy.deepcopy(DEMO_CONFIG)
    config["backbone"]["width"] = 0.25
    config["trainer"].update({"progress_bar": False, "max_epochs": 1, "max_time": None})
    config["monitor"] = {"every_n_epochs": 1, "knn_k": 20, "rankme": False}
    return api.pretrain(config=config, out=str(tmp_path / "run"), logger=logger)


def test_tensorboard_writes_event_files_beside_the_csv(tmp_path):
    pytest.importorskip("tensorboard", reason="pip install labelless[tensorboard]")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = _tiny_run(tmp_path, "csv,tensorboard")
    run = result.run_dir
    assert (run / "logs" / "metrics.csv").is_file()
    events = EventAccumulator(str(run / "tensorboard")).Reload()
    assert "train/loss" in events.Tags()["scalars"]
    assert len(events.Scalars("train/loss")) >= 1
    assert resolve_config(run / "config.yaml").trainer.loggers == ["csv", "tensorboard"]


def test_mlflow_writes_a_local_sqlite_store(tmp_path, monkeypatch):
    pytest.importorskip("mlflow", reason="pip install labelless[mlflow]")
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run = _tiny_run(tmp_path, "mlflow").run_dir
    client = MlflowClient(f"sqlite:///{run / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("labelless")
    (logged,) = client.search_runs([experiment.experiment_id])
    assert logged.info.run_name == "run"
    assert len(client.get_metric_history(logged.info.run_id, "train/loss")) >= 1
    assert (run / "logs" / "metrics.csv").is_file()


def test_wandb_runs_offline_into_the_run_directory(tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="pip install labelless[wandb]")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = _tiny_run(tmp_path, "wandb").run_dir
    assert list((run / "wandb").glob("offline-run-*")), "an offline run to `wandb sync` later"
    assert (run / "logs" / "metrics.csv").is_file()
