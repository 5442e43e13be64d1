"""Callbacks that read the method's output dict: kNN and RankMe monitors, collapse guard, and the
atomic last checkpoint. They never know which method ran."""

from __future__ import annotations

import math
import shutil
import time
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Checkpoint

from labelless.atomic import move_into_place
from labelless.evaluate import embed, embedding_std, knn_accuracy, rankme


def _is_last_epoch(trainer: L.Trainer) -> bool:
    """The epoch is the run's last: ``max_epochs`` reached, or the run clock stopped the run."""
    if trainer.should_stop:
        return True
    return trainer.max_epochs is not None and trainer.current_epoch + 1 >= trainer.max_epochs


def budget_ended(pl_module: L.LightningModule) -> bool:
    """The run clock ended training on its time budget. The final evaluation right after it
    measures what the kNN and test-accuracy monitors would at this epoch end, so they skip it
    rather than spend the budget twice on the same number."""
    return getattr(getattr(pl_module, "clock", None), "ended_by", None) == "budget"


def _due(trainer: L.Trainer, every_n_epochs: int) -> bool:
    return (trainer.current_epoch + 1) % every_n_epochs == 0 or _is_last_epoch(trainer)


class KNNMonitor(L.Callback):
    """Weighted kNN accuracy of the backbone's embeddings on a labelled eval split, every N epochs.

    Embeddings use the eval transform at the training view size and normalisation.
    """

    def __init__(
        self,
        train_images: np.ndarray,
        train_labels: np.ndarray,
        test_images: np.ndarray,
        test_labels: np.ndarray,
        *,
        input_size: int,
        mean,
        std,
        every_n_epochs: int = 5,
        k: int = 200,
        temperature: float = 0.1,
    ) -> None:
        self.train_images, self.train_labels = train_images, torch.as_tensor(train_labels)
        self.test_images, self.test_labels = test_images, torch.as_tensor(test_labels)
        self.preprocess = {"input_size": input_size, "mean": mean, "std": std}
        self.every_n_epochs, self.k, self.temperature = every_n_epochs, k, temperature

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not _due(trainer, self.every_n_epochs) or budget_ended(pl_module):
            return
        backbone = pl_module.method.backbone
        train_z = embed(backbone, self.train_images, **self.preprocess)
        test_z = embed(backbone, self.test_images, **self.preprocess)
        accuracy = knn_accuracy(
            train_z,
            self.train_labels,
            test_z,
            self.test_labels,
            k=self.k,
            temperature=self.temperature,
        )
        pl_module.log("monitor/knn_top1", accuracy, on_epoch=True, rank_zero_only=True)


class RankMeMonitor(L.Callback):
    """RankMe and embedding std of the training embeddings seen in each epoch; warns on collapse.

    Collapse: the std of L2-normalised embeddings times sqrt(D) below ``collapse_std`` (a healthy
    embedding sits near 1) or RankMe below ``collapse_rank``.

    It reads ``outputs["embedding"]`` of the training step, so it asks the method for it
    (``method.wants_embedding``) until ``max_rows`` rows of the epoch are collected: methods
    that pay an extra forward for the embedding (MAE, I-JEPA) pay it only then.
    """

    def __init__(
        self, max_rows: int = 25_600, collapse_std: float = 0.05, collapse_rank: float = 1.5
    ) -> None:
        self.max_rows, self.collapse_std, self.collapse_rank = max_rows, collapse_std, collapse_rank
        self._rows: list[torch.Tensor] = []
        self._count = 0

    def setup(self, trainer, pl_module, stage: str) -> None:
        _want_embedding(pl_module, True)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._rows, self._count = [], 0
        _want_embedding(pl_module, True)

    def state_dict(self) -> dict:
        """The embeddings collected so far this epoch, so that a run resumed mid-epoch measures
        the same rows as the uninterrupted run."""
        rows = torch.cat(self._rows) if self._rows else torch.empty(0)
        return {"rows": rows, "count": self._count}

    def load_state_dict(self, state: dict) -> None:
        rows = state.get("rows")
        self._rows = [rows] if rows is not None and rows.numel() else []
        self._count = int(state.get("count", 0))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._count >= self.max_rows or not isinstance(outputs, dict):
            return
        embedding = outputs.get("embedding")
        if embedding is None:
            return
        self._rows.append(embedding.detach().float().cpu())
        self._count += len(embedding)
        if self._count >= self.max_rows:
            _want_embedding(pl_module, False)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if not self._rows:
            return
        z = torch.cat(self._rows)[: self.max_rows]
        rank, std = rankme(z), embedding_std(z) * math.sqrt(z.shape[1])
        pl_module.log("monitor/rankme", rank, on_epoch=True, rank_zero_only=True)
        pl_module.log("monitor/embedding_std", std, on_epoch=True, rank_zero_only=True)
        if std < self.collapse_std or rank < self.collapse_rank:
            warnings.warn(
                f"embeddings look collapsed at epoch {trainer.current_epoch} (RankMe {rank:.2f}, "
                f"normalised std {std:.3f}): likely causes are a too-high learning rate, a missing "
                "predictor / stop-gradient, or augmentations too weak for the method",
                stacklevel=1,
            )


def _want_embedding(pl_module, wanted: bool) -> None:
    method = getattr(pl_module, "method", None)
    if method is not None:
        method.wants_embedding = wanted


class AtomicLastCheckpoint(Checkpoint):
    """Writes ``checkpoints/last.ckpt`` every ``every_n_steps`` optimiser steps and every
    ``every_minutes`` of training (either may be None), at each epoch end and at the end of
    training, through a temporary file and a rename, so an interrupted run never leaves a
    half-written checkpoint. Under ``--strategy fsdp2`` the checkpoint is a folder of shards
    (every process writes its own, ``torch.distributed.checkpoint``; several nodes need a
    shared file system) and ``last.ckpt`` a link to it, replaced atomically
    (``atomic.move_into_place``). A ``Checkpoint`` subclass, so Lightning runs it after the other
    callbacks' epoch-end hooks (the monitors' values are in the checkpointed state).

    Under data parallelism every process calls ``save_checkpoint`` together (rank 0 writes);
    the minutes are measured on rank 0 and its decision is broadcast. With ``batch_size`` (rows
    per step and process) the checkpoint records the shape of a step, ``step_shape``
    ``{"processes", "batch_size"}``, which a resume on another number of processes must keep
    (``lifecycle.check_step_shape``).
    """

    def __init__(
        self,
        directory: Path,
        *,
        every_n_steps: int | None = None,
        every_minutes: float | None = None,
        batch_size: int | None = None,
        time_fn=time.monotonic,
    ) -> None:
        self.path = Path(directory) / "last.ckpt"
        self.every_n_steps, self.every_minutes, self.time_fn = every_n_steps, every_minutes, time_fn
        self.batch_size = batch_size
        self.saved_step: int | None = None  # global step of the newest checkpoint written
        self._last_time = 0.0

    def save(self, trainer: L.Trainer) -> None:
        if self.saved_step == trainer.global_step and self.path.exists():
            return  # the state at this step is on disk already (epoch end, then train end)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        if trainer.is_global_zero and tmp.is_dir():  # shards of a write that was killed
            shutil.rmtree(tmp)
        if trainer.world_size > 1:  # ... removed before any process writes its shard there
            trainer.strategy.barrier("labelless-checkpoint")
        trainer.save_checkpoint(tmp)  # a file, or under fsdp2 a folder of shards
        if trainer.is_global_zero:
            move_into_place(tmp, self.path)
        self.saved_step = trainer.global_step
        self._last_time = self.time_fn()

    def on_train_start(self, trainer, pl_module) -> None:
        self._last_time = self.time_fn()

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        if self.batch_size is not None:
            shape = {"processes": int(trainer.world_size), "batch_size": int(self.batch_size)}
            checkpoint["step_shape"] = shape

    def _due(self, trainer: L.Trainer) -> bool:
        due = bool(self.every_n_steps) and trainer.global_step % self.every_n_steps == 0
        if self.every_minutes is not None and not due:
            late = self.time_fn() - self._last_time >= 60.0 * self.every_minutes
            if trainer.world_size > 1:
                late = bool(trainer.strategy.broadcast(late, src=0))
            due = late
        return due

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._due(trainer):
            self.save(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.save(trainer)

    def on_train_end(self, trainer, pl_module) -> None:
        self.save(trainer)


class Throughput(L.Callback):
    """Wall time and samples per second of the steps taken in this fit (resumed steps excluded)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.steps = 0
        self.samples = 0
        self.skipped = 0  # unreadable files met in the first epoch of a lazily decoded folder
        self._start = 0.0
        self._first_step = 0
        self._first_epoch = 0

    def on_train_start(self, trainer, pl_module) -> None:
        self._start = time.perf_counter()
        self._first_step = trainer.global_step
        self._first_epoch = trainer.current_epoch

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.samples += len(batch["index"]) * trainer.world_size
        if trainer.current_epoch == self._first_epoch:
            self.skipped += int(batch.get("skipped", 0))

    def on_train_end(self, trainer, pl_module) -> None:
        self.seconds = time.perf_counter() - self._start
        self.steps = trainer.global_step - self._first_step

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else 0.0


class RankAgreement(L.Callback):
    """After training under data parallelism, checks that every process holds the same weights
    (a float64 checksum of each process's parameters, gathered; buffers such as BatchNorm's
    running statistics are per process by design). ``agree`` is None on a single process; a
    disagreement is a TrainingError."""

    def __init__(self) -> None:
        self.agree: bool | None = None

    def on_train_end(self, trainer, pl_module) -> None:
        if trainer.world_size <= 1:
            return
        checksum = parameter_checksum(pl_module).to(pl_module.device)
        gathered = trainer.strategy.all_gather(checksum)  # [world, 3]
        self.agree = bool((gathered == gathered[0]).all())
        if not self.agree:
            from labelless.errors import TrainingError

            raise TrainingError(
                "the processes of this run ended with different weights: gradients were not "
                "synchronised (a strategy without gradient sync, or a model with unused "
                "parameters); use --strategy ddp"
            )


def parameter_checksum(module: torch.nn.Module) -> torch.Tensor:
    """[sum, sum of squares, position-weighted sum] of every parameter, in float64: equal on two
    processes exactly when their parameters are (barring a crafted coincidence)."""
    total = torch.zeros(3, dtype=torch.float64)
    offset = 0
    for parameter in module.parameters():
        if hasattr(parameter, "full_tensor"):  # a shard (FSDP2): gathered, so all processes
            parameter = parameter.detach().full_tensor()  # call this together
        flat = parameter.detach().double().flatten().cpu()
        position = torch.arange(offset, offset + flat.numel(), dtype=torch.float64)
        total += torch.stack([flat.sum(), (flat * flat).sum(), (flat * position).sum()])
        offset += flat.numel()
    return total
