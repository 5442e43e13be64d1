"""RankMePlateau stops a (fake) training once RankMe of a fixed subset stops improving."""

from __future__ import annotations

from types import SimpleNamespace

import lightning as L
import numpy as np
import pytest
import torch
from torch import nn

from labelless.errors import ConfigError
from labelless.evaluate import rankme
from labelless.lifecycle import closing_line
from labelless.train.early_stop import RankMePlateau

RANK_BY_EPOCH = [2, 4, 8, 8, 8, 8, 8, 8, 8, 8]


class MaskedEncoder(nn.Module):
    """Embeds flattened pixels, keeping only the first ``rank`` of 16 coordinates."""

    def __init__(self):
        super().__init__()
        self.rank = 1
        self.meta = SimpleNamespace(input_size=4, mean=(0.5,), std=(0.25,))

    def forward(self, x):
        flat = x.flatten(1)
        return flat * (torch.arange(16) < self.rank).float()


class FakeTraining(L.LightningModule):
    """A training run whose backbone's embedding rank follows ``RANK_BY_EPOCH``."""

    def __init__(self):
        super().__init__()
        self.method = nn.Module()
        self.method.backbone = MaskedEncoder()
        self.weight = nn.Parameter(torch.zeros(()))

    def on_train_epoch_start(self):
        self.method.backbone.rank = RANK_BY_EPOCH[self.current_epoch]

    def training_step(self, batch, batch_idx):
        return (self.weight - batch[0].mean()).square()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.fixture
def images():
    return np.random.default_rng(0).integers(0, 256, size=(100, 1, 4, 4), dtype=np.uint8)


def test_plateau_stops_a_fake_training(images):
    callback = RankMePlateau(
        images, input_size=4, mean=(0.5,), std=(0.25,), patience=2, min_delta=0.05, max_samples=64
    )
    assert len(callback.images) == 64  # a fixed subset, drawn once
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(8, 2)), 4)
    trainer = L.Trainer(
        max_epochs=len(RANK_BY_EPOCH),
        callbacks=[callback],
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(FakeTraining(), data)

    # Best at epoch 2 (rank 8), no gain at epochs 3 and 4: patience 2 stops after epoch 4.
    assert callback.stopped_epoch == 4 and trainer.current_epoch == 5
    epochs, values = zip(*callback.history, strict=True)
    assert epochs == (0, 1, 2, 3, 4)
    assert values[0] < values[1] < values[2] == values[3] == values[4]
    assert values[2] == pytest.approx(rankme(torch.randn(64, 8)), rel=0.25)  # about 8
    line = closing_line(trainer, trainer.lightning_module)  # what the run says as it ends
    assert line.startswith("stopped early: RankMe of 64 training images stopped improving")
    assert "2 checks without a gain), after 10 steps (epoch 5 of 10)" in line
    state = callback.state_dict()
    assert state["best"] == values[2] and state["wait"] == 2
    fresh = RankMePlateau(images, input_size=4, mean=(0.5,), std=(0.25,))
    fresh.load_state_dict(state)
    assert fresh.best == values[2] and fresh.wait == 2


def test_update_rule_and_bad_arguments(images):
    callback = RankMePlateau(images, input_size=4, mean=(0.5,), std=(0.25,), patience=2)
    assert [callback.update(v) for v in (1.0, 2.0, 2.0, 3.0, 3.0, 2.5)] == [
        False,
        False,
        False,
        False,
        False,
        True,
    ]
    margin = RankMePlateau(
        images, input_size=4, mean=(0.5,), std=(0.25,), patience=2, min_delta=0.5
    )
    # 1.6 beats 1.0 by more than 0.5; 1.9 and 2.0 do not beat 1.6 + 0.5: stop after two.
    assert [margin.update(v) for v in (1.0, 1.6, 1.9, 2.0)] == [False, False, False, True]
    with pytest.raises(ConfigError, match="patience"):
        RankMePlateau(images, input_size=4, mean=(0.5,), std=(0.25,), patience=0)
