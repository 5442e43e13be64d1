"""The peak learning rate scaled by the global batch (``optim.lr_scaling``, ``reference_batch``):
the rule, where a run applies it (the optimiser's base LR, the schedule's peak, constant-LR
parameters) and what it records; the recipes that set it keep their LR on one process."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from torch import nn

from labelless.config import OptimConfig, TrainerConfig, build_config, load_yaml
from labelless.data import from_arrays
from labelless.errors import ConfigError
from labelless.methods.byol import BYOL
from labelless.train.loader import train_loader
from labelless.train.module import SSLModule
from labelless.train.optim import scaled_lr
from labelless.train.trainer import build_trainer

RECIPES = Path(__file__).resolve().parents[3] / "configs"


def test_linear_sqrt_and_none():
    assert scaled_lr(0.3, "linear", 64, 64) == 0.3  # at the reference batch: lr as it is
    assert scaled_lr(0.3, "linear", 128, 64) == pytest.approx(0.6)  # 2 x 64: doubled
    assert scaled_lr(0.3, "linear", 4096, 256) == pytest.approx(4.8)  # 0.3 x 4096 / 256
    assert scaled_lr(0.3, "sqrt", 128, 64) == pytest.approx(0.3 * math.sqrt(2))
    assert scaled_lr(0.075 * 16, "sqrt", 1024, 256) == pytest.approx(0.075 * math.sqrt(1024))
    assert scaled_lr(0.3, "none", 4096, 64) == 0.3
    with pytest.raises(ConfigError, match="unknown learning-rate scaling 'cubic'"):
        scaled_lr(0.3, "cubic", 64, 64)


@pytest.mark.parametrize(
    ("optim", "message"),
    [
        ({"lr_scaling": "cubic"}, "optim.lr_scaling: Input should be 'none', 'linear' or 'sqrt'"),
        ({"reference_batch": 0}, "optim.reference_batch: Input should be greater than 0"),
        (
            {"lr_scalling": "linear"},
            "optim.lr_scalling: unknown key (did you mean optim.lr_scaling?)",
        ),
    ],
)
def test_bad_values_name_the_key(optim, message):
    with pytest.raises(ConfigError) as error:
        build_config({"optim": optim})
    assert message in str(error.value)


def test_names_are_case_insensitive():
    assert OptimConfig(lr_scaling="Linear").lr_scaling == "linear"


class TinyBackbone(nn.Sequential):
    embed_dim = 8

    def __init__(self) -> None:
        super().__init__(nn.Flatten(), nn.Linear(16, 8))


class ConstantPredictorLR(BYOL):
    """BYOL whose predictor trains at the peak LR throughout (as SimSiam's does)."""

    def constant_lr_parameters(self) -> list[nn.Parameter]:
        return list(self.predictor.parameters())


def _module(**optim) -> SSLModule:
    method = ConstantPredictorLR(TinyBackbone(), proj_hidden_dim=16, proj_dim=8, pred_hidden_dim=16)
    config = OptimConfig(name="sgd", lr=0.1, warmup_epochs=0, **optim).model_dump()
    return SSLModule(
        method, lambda x, generator=None: [x.float(), x.float().flip(-1)], optim=config
    )


@pytest.mark.parametrize(
    ("scaling", "factor"), [("linear", 2.0), ("sqrt", math.sqrt(2.0)), ("none", 1.0)]
)
def test_two_processes_of_batch_64_against_one(tmp_path, scaling, factor):
    """The world size is Lightning's: ``--devices 2 --strategy ddp`` makes a global batch of
    128 from batches of 64, so a linear LR stated for 64 doubles; one process keeps it."""
    optim = {"batch_size": 64, "lr_scaling": scaling, "reference_batch": 64}
    peaks = {}
    for devices, strategy in ((1, "auto"), (2, "ddp")):
        module = _module(**optim)
        cfg = TrainerConfig(
            accelerator="cpu", devices=devices, strategy=strategy, progress_bar=False
        )
        module.trainer = build_trainer(cfg, tmp_path / str(devices), [])
        assert module.global_batch() == 64 * devices
        optimiser = module.configure_optimizers()
        assert {group["lr"] for group in optimiser.param_groups} == {module.peak_lr()}
        peaks[devices] = module.peak_lr()
        assert module.lr_record() == {
            "base_lr": 0.1,
            "scaling": scaling,
            "reference_batch": 64,
            "global_batch": 64 * devices,
            "peak_lr": peaks[devices],
        }
    assert peaks[1] == 0.1
    assert peaks[2] == pytest.approx(0.1 * factor)


def test_a_run_trains_at_the_scaled_peak(tmp_path):
    """One process, batch 8, lr stated for 4 (linear): every step of a cosine schedule without
    warm-up is at twice the schedule's LR, the predictor at the doubled peak throughout."""
    module = _module(batch_size=8, lr_scaling="linear", reference_batch=4, min_lr_ratio=0.5)
    images = np.random.default_rng(0).integers(0, 256, (32, 4, 4, 1), dtype=np.uint8)
    cfg = TrainerConfig(max_epochs=1, accelerator="cpu", progress_bar=False)
    trainer = build_trainer(cfg, tmp_path, [])
    seen: list[list[float]] = []
    original = module.on_train_batch_start

    def record(batch, batch_idx):
        original(batch, batch_idx)
        seen.append([group["lr"] for group in trainer.optimizers[0].param_groups])

    module.on_train_batch_start = record
    trainer.fit(module, train_loader(from_arrays(images), batch_size=8))  # 4 steps
    groups = trainer.optimizers[0].param_groups
    constant = [i for i, group in enumerate(groups) if group.get("constant_lr")]
    scheduled = [i for i in range(len(groups)) if i not in constant]
    assert [step[scheduled[0]] for step in seen] == pytest.approx(
        [0.2 * (0.5 + 0.25 * (1 + math.cos(math.pi * k / 3))) for k in range(4)]
    )
    assert constant and all(step[i] == pytest.approx(0.2) for step in seen for i in constant)
    assert module.lr_record()["peak_lr"] == pytest.approx(0.2)


@pytest.mark.parametrize("path", sorted(RECIPES.glob("*/*.yaml")), ids=lambda p: p.stem)
def test_recipes_keep_their_lr_on_one_process(path):
    """A recipe that states its LR for a reference batch states it for its own batch size, so
    one process trains at the LR written in it, as before the option existed."""
    optim = load_yaml(path).get("optim", {})
    if optim.get("lr_scaling", "none") == "none":
        return
    assert optim["reference_batch"] == optim["batch_size"], path
