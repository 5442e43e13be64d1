"""SSLModule under a budget, with an injected clock: one step = one fake second."""

from __future__ import annotations

import itertools

import lightning as L
import numpy as np
import pytest
from torch import nn

from labelless.config import OptimConfig, TrainerConfig
from labelless.data import from_arrays
from labelless.methods.byol import BYOL
from labelless.train.loader import train_loader
from labelless.train.module import SSLModule
from labelless.train.trainer import build_trainer


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class TinyBackbone(nn.Sequential):
    embed_dim = 8

    def __init__(self) -> None:
        super().__init__(nn.Flatten(), nn.Linear(16, 8))


class Recorder(BYOL):
    """BYOL recording the progress handed to ``on_step_end``."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.seen: list[float] = []

    def on_step_end(self, progress: float) -> None:
        super().on_step_end(progress)
        self.seen.append(progress)


class ConstantPredictorLR(Recorder):
    """BYOL whose predictor trains at the base learning rate (as SimSiam's does)."""

    def constant_lr_parameters(self) -> list[nn.Parameter]:
        return list(self.predictor.parameters())


class SlowEpochEnd(L.Callback):
    """Every epoch end (monitors, checkpoint) takes ``seconds`` of the fake clock."""

    def __init__(self, time: FakeTime, seconds: float) -> None:
        self.time, self.seconds = time, seconds

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.time.now += self.seconds


def _fit(
    tmp_path,
    *,
    budget: float,
    max_epochs: int,
    seconds_per_step: float = 1.0,
    method_cls: type[Recorder] = Recorder,
    epoch_end_seconds: float = 0.0,
):
    time = FakeTime()

    def views(images, generator=None):  # the step's work takes one fake second
        time.now += seconds_per_step
        x = images.float() / 255
        return [x, x.flip(-1)]

    method = method_cls(TinyBackbone(), proj_hidden_dim=16, proj_dim=8, pred_hidden_dim=16)
    optim = OptimConfig(name="sgd", lr=0.1, warmup_epochs=1, min_lr_ratio=0.05).model_dump()
    module = SSLModule(method, views, optim=optim, budget_seconds=budget, time_fn=time)
    images = np.random.default_rng(0).integers(0, 256, (32, 4, 4, 1), dtype=np.uint8)
    loader = train_loader(from_arrays(images), batch_size=8)  # 4 steps per epoch
    cfg = TrainerConfig(
        max_epochs=max_epochs, max_time=budget, accelerator="cpu", progress_bar=False
    )
    trainer = build_trainer(cfg, tmp_path, [SlowEpochEnd(time, epoch_end_seconds)])
    lrs: list[float] = []
    module.group_lrs = []
    original = module.on_train_batch_start

    def record_lr(batch, batch_idx):
        skip = original(batch, batch_idx)
        if skip == -1:  # the budget was spent: the step does not run
            return skip
        lrs.append(trainer.optimizers[0].param_groups[0]["lr"])
        module.group_lrs.append([group["lr"] for group in trainer.optimizers[0].param_groups])
        return skip

    module.on_train_batch_start = record_lr
    trainer.fit(module, loader)
    return trainer, module, method, lrs, time


def test_budget_stops_after_the_annealed_step(tmp_path):
    trainer, module, method, lrs, time = _fit(tmp_path, budget=10.0, max_epochs=1000)
    assert trainer.global_step == 10 and time.now == pytest.approx(10.0)
    assert method.seen[-1] == 1.0 and method.seen[-2] < 1.0
    assert all(a <= b for a, b in itertools.pairwise(method.seen))
    assert method.current_momentum == 1.0  # the EMA ends at its end value
    assert lrs[-1] == pytest.approx(0.1 * 0.05)  # and the LR at its minimum
    assert module.clock.summary()["ended_by"] == "budget"
    assert trainer.current_epoch < 1000


def test_constant_lr_parameters_keep_the_base_lr(tmp_path):
    _, module, method, lrs, _ = _fit(
        tmp_path, budget=1000.0, max_epochs=3, method_cls=ConstantPredictorLR
    )
    groups = module.trainer.optimizers[0].param_groups
    constant = [i for i, group in enumerate(groups) if group.get("constant_lr")]
    assert len(constant) == 2  # the predictor's weights and its biases / norm weights
    in_constant = {id(p) for i in constant for p in groups[i]["params"]}
    assert in_constant == {id(p) for p in method.predictor.parameters()}
    assert lrs[0] == 0.0 and lrs[-1] == pytest.approx(0.1 * 0.05)  # the rest follow the schedule
    assert all(step[i] == 0.1 for step in module.group_lrs for i in constant)


def test_max_epochs_before_the_budget(tmp_path):
    trainer, module, method, lrs, _ = _fit(tmp_path, budget=1000.0, max_epochs=3)
    assert trainer.global_step == 12
    assert method.seen == pytest.approx([k / 11 for k in range(12)])
    assert lrs[0] == 0.0 and lrs[-1] == pytest.approx(0.1 * 0.05)
    assert module.clock.summary()["ended_by"] == "max_epochs"


def test_a_step_never_starts_once_the_budget_is_spent(tmp_path):
    """The first, unmeasured step takes twice the budget: the run stops before a second."""
    trainer, module, method, _, time = _fit(tmp_path, budget=0.5, max_epochs=1000)
    assert trainer.global_step == 1 and time.now == pytest.approx(1.0)
    assert module.clock.budget_spent and module.clock.ended_by == "budget"
    assert len(method.seen) == 1 and trainer.current_epoch == 1


def test_budget_holds_to_one_step_with_slow_epoch_ends(tmp_path):
    """Steps of 1 s, 4 a epoch, every epoch end 3 s (the last one too): 16 steps fit in 30 s
    (4 steps x 4 epochs + 4 x 3 s = 28 s; a 17th step would need a fifth epoch end)."""
    budget = 30.0
    trainer, _, method, lrs, time = _fit(
        tmp_path, budget=budget, max_epochs=1000, epoch_end_seconds=3.0
    )
    assert 15 <= trainer.global_step <= 16
    assert time.now <= budget + 1.0  # within one step of the budget, the last epoch end included
    assert method.seen[-1] == 1.0 and lrs[-1] == pytest.approx(0.1 * 0.05)  # ended annealed
