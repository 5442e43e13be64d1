"""Experiment loggers beside the run's CSV: the option and clear errors for missing extras
(tests/integration/test_loggers.py runs the trackers)."""

from __future__ import annotations

import importlib.util

import pytest

from labelless.config import FLAG_KEYS, TrainerConfig, build_config
from labelless.errors import ConfigError
from labelless.semi.config import SEMI_FLAG_KEYS
from labelless.train import loggers


def test_the_option_keeps_csv_first_and_rejects_unknown_names():
    assert TrainerConfig().loggers == ["csv"]
    assert TrainerConfig(loggers="tensorboard, CSV,wandb,tensorboard").loggers == [
        "csv",
        "tensorboard",
        "wandb",
    ]
    assert TrainerConfig(loggers=["mlflow"]).loggers == ["csv", "mlflow"]
    assert FLAG_KEYS["logger"] == SEMI_FLAG_KEYS["logger"] == "trainer.loggers"
    with pytest.raises(ConfigError, match=r"unknown logger.*tensorbord.*choose from"):
        build_config({"trainer": {"loggers": "csv,tensorbord"}})


def test_a_missing_extra_names_the_install(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    absent = {"tensorboard", "tensorboardX", "mlflow", "wandb"}
    monkeypatch.setattr(
        loggers.importlib.util, "find_spec", lambda name: None if name in absent else real(name)
    )
    assert loggers.build_trackers(["csv"], tmp_path) == []  # the trainer's RunCSVLogger logs it
    for name in ("tensorboard", "mlflow", "wandb"):
        with pytest.raises(ConfigError, match=rf"pip install labelless\[{name}\]"):
            loggers.build_trackers(["csv", name], tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing made before the check


def test_a_run_asking_for_a_missing_tracker_fails_before_writing(monkeypatch, tmp_path):
    from labelless import api

    real = importlib.util.find_spec
    monkeypatch.setattr(
        loggers.importlib.util, "find_spec", lambda name: None if name == "wandb" else real(name)
    )
    out = tmp_path / "run"
    with pytest.raises(
        ConfigError,
        match=r"logger .wandb. needs wandb, not installed: pip install labelless\[wandb\]",
    ):
        api.pretrain("digits", "simclr", out=str(out), epochs=1, logger="csv,wandb")
    assert not out.exists()
