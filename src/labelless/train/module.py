"""The single LightningModule: wraps any Method, augments on the device, steps the schedules."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch

from labelless.errors import TrainingError
from labelless.methods import Method
from labelless.train.optim import build_optimizer, warmup_cosine


class SSLModule(L.LightningModule):
    """Trains ``method`` on views made by ``views`` (a batched ViewPipeline) from uint8 batches.

    Augmentation runs here, after the batch reached the device, with a per-process generator
    seeded from ``seed`` and the process rank, saved in checkpoints so a resumed run draws the
    same augmentations it would have drawn.
    """

    def __init__(self, method: Method, views, *, optim: dict[str, Any], seed: int = 0) -> None:
        super().__init__()
        self.method = method
        self.views = views
        self.optim = dict(optim)
        self.seed = seed
        self._generator: torch.Generator | None = None
        self._pending_generator_state: torch.Tensor | None = None

    @property
    def generator(self) -> torch.Generator:
        if self._generator is None or self._generator.device != self.device:
            self._generator = torch.Generator(device=self.device)
            self._generator.manual_seed(self.seed * 1000 + self.global_rank)
            if self._pending_generator_state is not None:
                self._generator.set_state(self._pending_generator_state.to("cpu"))
                self._pending_generator_state = None
        return self._generator

    def total_steps(self) -> int:
        total = self.trainer.estimated_stepping_batches
        return int(total) if math.isfinite(total) else 1

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int):
        if len(batch["index"]) < 2:  # a lazy batch whose files were all unreadable
            return None
        if "views" in batch:  # views made elsewhere (e.g. a per-sample baseline in workers)
            views = batch["views"]
        else:
            views = self.views(batch["images"], generator=self.generator)
        out = self.method(views, batch)
        loss = out["loss"]
        if not torch.isfinite(loss):
            raise TrainingError(
                f"the loss became {loss.item()} at step {self.global_step}: lower optim.lr "
                "(or the warmup is too short) and check the input data for NaN values"
            )
        self.log("train/loss", loss.detach(), prog_bar=True, on_step=True, on_epoch=False)
        self.log("train/lr", self.optimizers().param_groups[0]["lr"], on_step=True, on_epoch=False)
        return out

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        progress = min(1.0, (self.global_step) / max(1, self.total_steps()))
        self.method.on_step_end(progress)

    def configure_optimizers(self):
        cfg = self.optim
        optimizer = build_optimizer(
            self.method,
            cfg["name"],
            lr=cfg["lr"],
            weight_decay=cfg["weight_decay"],
            momentum=cfg["momentum"],
        )
        total = self.total_steps()
        steps_per_epoch = max(1, total // max(1, self.trainer.max_epochs or 1))
        warmup = min(int(cfg["warmup_epochs"] * steps_per_epoch), max(0, total - 1))

        def multiplier(step: int) -> float:
            return warmup_cosine(step, total, warmup, cfg.get("min_lr_ratio", 0.0))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, multiplier)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["augment_generator"] = self.generator.get_state()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("augment_generator")
        if state is not None:
            self._pending_generator_state = state
            self._generator = None
