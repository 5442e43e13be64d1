"""Stop pretraining when a label-free measure has stopped improving: RankMe plateau.

RankMe (Garrido et al. 2023, "RankMe: Assessing the downstream performance of pretrained
self-supervised representations by their rank") tracks downstream accuracy without labels, so
a RankMe that no longer rises is a label-free signal that more epochs buy little. The callback
embeds a FIXED subset of training images with the eval transform (the same images every time,
so values are comparable across epochs) every ``every_n_epochs`` epochs and stops the run when
RankMe has not improved by more than ``min_delta`` for ``patience`` consecutive checks, as
Lightning's ``EarlyStopping`` does for a logged value.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import torch

from labelless.errors import ConfigError
from labelless.evaluate import embed, rankme
from labelless.evaluate.rankme import RANKME_MAX_SAMPLES
from labelless.train.callbacks import budget_ended


class RankMePlateau(L.Callback):
    """Stops training once RankMe of a fixed image subset has plateaued.

    Args:
        images: ``uint8 [N, C, H, W]`` training images; a seeded subset of at most
            ``max_samples`` is kept once, at construction.
        input_size, mean, std: the eval transform (as ``KNNMonitor``: the training view size and
            the training data's normalisation).
        every_n_epochs: check at the end of every N-th epoch.
        patience: checks without improvement before stopping.
        min_delta: an improvement is a RankMe above ``best + min_delta``.
        max_samples: images embedded per check (RankMe's 25,600 by default).
        seed: seed of the subset.

    Logs ``early_stop/rankme`` at each check; ``stopped_epoch`` is the epoch it stopped at
    (None while running). Its state (best, wait) travels in checkpoints, so a resumed run
    continues counting.
    """

    def __init__(
        self,
        images,
        *,
        input_size: int,
        mean,
        std,
        every_n_epochs: int = 1,
        patience: int = 3,
        min_delta: float = 0.0,
        max_samples: int = RANKME_MAX_SAMPLES,
        seed: int = 0,
    ) -> None:
        if every_n_epochs < 1 or patience < 1:
            raise ConfigError(
                f"every_n_epochs ({every_n_epochs}) and patience ({patience}) must be at least 1"
            )
        if min_delta < 0:
            raise ConfigError(f"min_delta must be >= 0 (an improvement margin), got {min_delta}")
        samples = np.asanyarray(getattr(images, "samples", images))
        if len(samples) > max_samples:
            keep = np.random.default_rng(seed).choice(len(samples), max_samples, replace=False)
            samples = samples[np.sort(keep)]
        self.images = samples
        self.preprocess = {"input_size": input_size, "mean": mean, "std": std}
        self.every_n_epochs, self.patience, self.min_delta = every_n_epochs, patience, min_delta
        self.best: float | None = None
        self.wait = 0
        self.history: list[tuple[int, float]] = []
        self.stopped_epoch: int | None = None

    def measure(self, backbone: torch.nn.Module) -> float:
        """RankMe of the subset's embeddings under ``backbone``."""
        return rankme(embed(backbone, self.images, **self.preprocess))

    def update(self, value: float) -> bool:
        """Record one check; True when the plateau rule says stop."""
        if self.best is None or value > self.best + self.min_delta:
            self.best, self.wait = value, 0
        else:
            self.wait += 1
        return self.wait >= self.patience

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch
        if (epoch + 1) % self.every_n_epochs != 0 or budget_ended(pl_module):
            return  # a run that its budget ends needs no stopping
        value = self.measure(pl_module.method.backbone)
        self.history.append((epoch, value))
        pl_module.log("early_stop/rankme", value, on_epoch=True, rank_zero_only=True)
        stop = trainer.strategy.reduce_boolean_decision(self.update(value), all=False)
        if stop and not trainer.should_stop:
            trainer.should_stop = True
            self.stopped_epoch = epoch

    def describe_stop(self) -> str | None:
        """Why it stopped training, for the closing line (None while it has not)."""
        if self.stopped_epoch is None:
            return None
        checks = f"{self.patience} check" + ("s" if self.patience > 1 else "")
        return (
            f"RankMe of {len(self.images):,} training images stopped improving (best "
            f"{self.best:.2f}, {checks} without a gain)"
        )

    def training_record(self) -> dict[str, Any]:
        """Its entry in the run's ``training`` record: where it stopped and what it saw."""
        record = {"stopped_epoch": self.stopped_epoch, "best": self.best, "history": self.history}
        return {"rankme_plateau": record}

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "wait": self.wait, "history": list(self.history)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best, self.wait = state_dict["best"], state_dict["wait"]
        self.history = [tuple(item) for item in state_dict.get("history", [])]
