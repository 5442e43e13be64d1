"""Short digits runs: a time budget ends annealed, resumes under the budget, and ``init`` starts
from an earlier run's encoder.

The budget runs read a ``StepClock`` (each optimiser step takes 0.25 s of it, nothing else does)
instead of the wall clock, so that they take the same steps and pass the same checks on any
machine, however fast or loaded; ``tests/unit/train/test_module.py`` checks the clock arithmetic
itself."""

from __future__ import annotations

import copy
import csv
import itertools
import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from torch.optim.optimizer import register_optimizer_step_post_hook

from labelless import api
from labelless.backbones import create_backbone, load_encoder, save_encoder
from labelless.config import build_config
from labelless.data import load_dataset
from labelless.demo import DEMO_CONFIG
from labelless.errors import ConfigError
from labelless.train.callbacks import AtomicLastCheckpoint
from labelless.train.module import SSLModule
from labelless.verbs.components import build_components

pytestmark = pytest.mark.slow

LR, MIN_RATIO = 1.0, 0.01


def _config(**trainer):
    config = copy.deepcopy(DEMO_CONFIG)
    config["backbone"]["width"] = 0.25
    config["optim"].update(lr=LR, min_lr_ratio=MIN_RATIO, warmup_epochs=1)
    config["monitor"]["every_n_epochs"] = 2  # kNN monitor time inside the budget
    config["trainer"].update({"progress_bar": False, **trainer})
    return config


class StepClock:
    """A clock (``time_fn``) that moves ``seconds_per_step`` at each optimiser step and stands
    still otherwise."""

    def __init__(self, seconds_per_step: float) -> None:
        self.seconds_per_step, self.now = seconds_per_step, 0.0

    def __call__(self) -> float:
        return self.now

    def tick(self, optimizer, args, kwargs) -> None:
        self.now += self.seconds_per_step


@pytest.fixture
def step_clock(monkeypatch):
    """Every ``SSLModule`` built during the test runs on one ``StepClock`` of 0.25 s a step (a
    6-second budget: 24 steps, enough for the warm-up to reach its peak)."""
    clock = StepClock(0.25)
    monkeypatch.setitem(SSLModule.__init__.__kwdefaults__, "time_fn", clock)
    handle = register_optimizer_step_post_hook(clock.tick)
    yield clock
    handle.remove()


def _step_rows(run: Path) -> list[dict[str, str]]:
    with (run / "logs" / "metrics.csv").open() as handle:
        return [row for row in csv.DictReader(handle) if row.get("train/lr")]


def test_budget_run_ends_annealed(tmp_path, step_clock):
    budget = 6.0
    result = api.pretrain(config=_config(max_epochs=10_000, max_time=budget), out=str(tmp_path))
    rows = _step_rows(result.run_dir)
    lrs = [float(row["train/lr"]) for row in rows]
    progress = [float(row["train/progress"]) for row in rows]
    assert lrs[-1] == pytest.approx(LR * MIN_RATIO)  # the last step ran at the minimum LR
    assert progress[-1] == 1.0 and progress[-2] < 1.0
    assert all(a <= b for a, b in itertools.pairwise(progress))
    training = result.metrics["training"]
    schedule = training["schedule"]
    assert schedule["ended_by"] == "budget" and schedule["budget_seconds"] == budget
    assert schedule["estimated_total_steps"] == pytest.approx(training["steps"], abs=2)
    assert "schedule/estimated_total_steps" in rows[-1]
    assert training["epochs_done"] < 10_000
    # on the step clock the budget is 24 steps of 0.25 s: the run takes them, give or take one,
    # and its training time (the last epoch's end included) is within one step of the budget
    assert abs(training["steps"] - budget / step_clock.seconds_per_step) <= 1
    assert schedule["elapsed_seconds"] <= budget + step_clock.seconds_per_step
    assert len(lrs) >= 20 and max(lrs) > 0.9 * LR  # the warm-up reached the peak


def test_budget_holds_with_a_slow_checkpoint(tmp_path, step_clock, monkeypatch, digits):
    """Every checkpoint (at each epoch end, the last one too) takes 0.5 s of the step clock, two
    steps: the end of the last epoch is kept back, so training still ends within one step of
    the budget, with the most steps that fit or one fewer. The kNN monitor, due only at the end
    here, leaves a budget's end to the final evaluation."""
    save = AtomicLastCheckpoint.save

    def slow_save(self, trainer):
        before = self.saved_step
        save(self, trainer)
        if self.saved_step != before:  # written (the end of training skips a saved step)
            step_clock.now += 0.5

    monkeypatch.setattr(AtomicLastCheckpoint, "save", slow_save)
    budget, per_epoch = 6.0, len(digits.train) // DEMO_CONFIG["optim"]["batch_size"]
    config = _config(max_epochs=10_000, max_time=budget)
    config["monitor"]["every_n_epochs"] = 10_000
    result = api.pretrain(config=config, out=str(tmp_path))
    training = result.metrics["training"]
    fitting = max(n for n in range(1, 25) if 0.25 * n + 0.5 * math.ceil(n / per_epoch) <= budget)
    assert fitting - 1 <= training["steps"] <= fitting, (training["steps"], fitting)
    assert training["schedule"]["elapsed_seconds"] <= budget + step_clock.seconds_per_step
    assert training["schedule"]["final_progress"] == 1.0
    assert "monitor/knn_top1" not in (result.run_dir / "logs" / "metrics.csv").read_text()


def test_budget_resume_continues_the_clock(tmp_path, step_clock):
    out = str(tmp_path / "run")
    first = api.pretrain(config=_config(max_epochs=10_000, max_time=2.0), out=out)
    state = torch.load(Path(out) / "checkpoints" / "last.ckpt", weights_only=True)["run_clock"]
    assert state["progress"] == 1.0 and state["elapsed"] >= 1.0
    resumed = api.pretrain(out=out, resume=True, max_time=4.0)  # a larger budget: re-fitted
    rows = _step_rows(Path(out))
    assert resumed.metrics["training"]["steps"] > first.metrics["training"]["steps"]
    assert float(rows[-1]["train/lr"]) == pytest.approx(LR * MIN_RATIO)
    assert float(rows[-1]["train/progress"]) == 1.0
    assert resumed.metrics["training"]["schedule"]["elapsed_seconds"] > state["elapsed"]


@pytest.fixture
def source_run(tmp_path, digits):
    """An earlier run's exported encoder (resnet18_cifar x0.25 on 1-channel digits)."""
    torch.manual_seed(1)
    encoder = create_backbone("resnet18_cifar", in_channels=1, width=0.25, input_size=8)
    return save_encoder(encoder, tmp_path / "source")


def test_init_starts_from_the_source_encoder(tmp_path, source_run):
    config = build_config({**_config(max_epochs=1), "backbone": {"width": 0.25}})
    config.backbone.init = str(source_run / "encoder.safetensors")  # the file works as well
    train = load_dataset("digits").train
    backbone, _, _ = build_components(config, train)
    source = load_encoder(source_run).state_dict()
    for key, value in backbone.state_dict().items():
        assert torch.equal(value, source[key]), key
    assert backbone.meta.input_size == 8 and backbone.meta.mean == train.meta["mean"]

    result = api.pretrain(  # continual pretraining: the infinite schedule
        config=_config(max_epochs=1),
        overrides=["optim.schedule=infinite"],
        init=str(source_run),
        out=str(tmp_path / "b"),
    )
    assert result.metrics["training"]["schedule"]["name"] == "infinite"
    assert float(_step_rows(result.run_dir)[-1]["train/lr"]) == pytest.approx(LR * MIN_RATIO)
    saved = yaml.safe_load((result.run_dir / "config.yaml").read_text())
    assert saved["backbone"]["init"] == str(source_run.resolve())
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert metrics["training"]["init"] == str(source_run.resolve())


def test_init_with_another_architecture_is_a_config_error(tmp_path, source_run):
    out = tmp_path / "run"
    with pytest.raises(ConfigError) as error:
        api.pretrain(config=_config(max_epochs=1), init=str(source_run), width=0.5, out=str(out))
    message = str(error.value)
    assert "width=0.25" in message and "width=0.5" in message and "--width" in message
    assert not out.exists()  # nothing written
    with pytest.raises(ConfigError, match=r"no encoder\.safetensors"):
        api.pretrain(config=_config(max_epochs=1), init=str(tmp_path), out=str(out))
