"""The single LightningModule: wraps any Method, augments on the device, steps the schedules.

One ``RunClock`` (``train/progress.py``) gives the progress of every step; the learning rate
(``train/optim.py`` schedules) and the method's ``on_step_end(progress)`` (EMA momentum, teacher
temperature) both read it, and with a time budget the run stops after the step at progress 1.

Under ``--strategy fsdp2`` (``train/sharded.py``) ``configure_model`` shards the method with
FSDP2 (``nn.sharding.shard_method``) and the end of training gathers the backbone's full weights
(``trained_backbone``) for the export and the final evaluation.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch

from labelless.errors import ConfigError, TrainingError
from labelless.methods import Method
from labelless.nn.sharding import check_shardable, empty_copy, gather_full, shard_method
from labelless.train.optim import build_optimizer, lr_multiplier, scaled_lr
from labelless.train.progress import RunClock


class SSLModule(L.LightningModule):
    """Trains ``method`` on views made by ``views`` (a batched ViewPipeline) from uint8 batches.

    Augmentation runs here, after the batch reached the device, with a per-process generator
    seeded from ``seed`` and the process rank, saved in checkpoints so a resumed run draws the
    same augmentations it would have drawn. The method's own draws (masks, mixing) come from the
    same generator, handed to it as ``method(views, batch, generator=...)``.

    The learning rate is the peak LR (``optim["lr"]``, scaled by the global batch when
    ``optim["lr_scaling"]`` says so: ``peak_lr``) times the schedule (``optim["schedule"]``:
    ``"cosine"`` or ``"infinite"``) at the progress of each step; with ``budget_seconds`` the
    schedules are fitted to that wall-clock budget and training stops when it is spent
    (``RunClock``).
    """

    def __init__(
        self,
        method: Method,
        views,
        *,
        optim: dict[str, Any],
        seed: int = 0,
        budget_seconds: float | None = None,
        time_fn: Callable[[], float] = time.perf_counter,
    ) -> None:
        super().__init__()
        self.method = method
        self.views = views
        self.optim = dict(optim)
        self.seed = seed
        self.budget_seconds = budget_seconds
        self.time_fn = time_fn
        self.clock: RunClock | None = None
        self.progress = 0.0
        self._generator: torch.Generator | None = None
        self._pending_generator_state: torch.Tensor | None = None
        self._generator_seed: int | None = None  # a resumed rank the saved run did not have
        self._pending_clock_state: dict[str, Any] | None = None
        self._pending_torch_rng: torch.Tensor | None = None
        # fsdp2: the backbone's meta-device blueprint, then its gathered copy (in tuples: not
        # submodules, so in no state dict)
        self._blueprint: tuple[torch.nn.Module, ...] = ()
        self._gathered: tuple[torch.nn.Module, ...] = ()

    @property
    def generator(self) -> torch.Generator:
        if self._generator is None or self._generator.device != self.device:
            self._generator = torch.Generator(device=self.device)
            self._generator.manual_seed(self._generator_seed or self.seed * 1000 + self.global_rank)
            if self._pending_generator_state is not None:
                self._generator.set_state(self._pending_generator_state.to("cpu"))
                self._pending_generator_state = None
        return self._generator

    def configure_model(self) -> None:
        """Lightning's hook for sharding, called on every process before the optimiser is
        made. Under ``ModelParallelStrategy`` (``--strategy fsdp2``: a device mesh) the method is
        sharded with FSDP2 over the data-parallel mesh, student and EMA teachers alike
        (``nn.sharding.shard_method``); other strategies leave it as it is."""
        mesh = self.device_mesh
        if mesh is None or self._blueprint:
            return
        self._check_shardable()
        self._blueprint = (empty_copy(self.method.backbone),)
        shard_method(self.method, mesh["data_parallel"])

    def _check_shardable(self) -> None:
        if not isinstance(self.method, Method):
            raise ConfigError(
                "--strategy fsdp2 shards self-supervised methods (labelless pretrain) only: "
                "train semi-supervised runs with --strategy ddp"
            )
        check_shardable(self.method)

    def check_start(self, trainer: L.Trainer, checkpoint: Path | None) -> None:
        """What needs the trainer, checked by ``lifecycle.begin`` before anything is written:
        under fsdp2 (Lightning's ``ModelParallelStrategy``) the model can be sharded; a
        ``checkpoint`` to resume from was written the way this strategy reads (a folder of
        shards under fsdp2, one file otherwise)."""
        from lightning.pytorch.strategies import ModelParallelStrategy

        sharded = isinstance(trainer.strategy, ModelParallelStrategy)
        if sharded:
            self._check_shardable()
        if checkpoint is not None and checkpoint.is_dir() != sharded:
            if sharded:
                problem = (
                    "is one file (written without sharding), and fsdp2 resumes folders of shards"
                )
                fix = "resume with the run's own strategy (e.g. --strategy ddp)"
            else:
                problem = "is a folder of shards written under --strategy fsdp2"
                fix = "resume with --strategy fsdp2"
            raise ConfigError(
                f"cannot resume: the checkpoint {str(checkpoint)!r} {problem}: {fix} (the run "
                "was left as it was)"
            )

    def trained_backbone(self) -> torch.nn.Module:
        """The backbone with its full weights, for one process to export and evaluate: the
        method's own, or under FSDP2 the copy gathered from every shard as training ended."""
        return self._gathered[0] if self._gathered else self.method.backbone

    def total_steps(self) -> float:
        """Optimiser steps in ``max_epochs`` epochs (inf when the loader has no length)."""
        return float(self.trainer.estimated_stepping_batches)

    def on_train_start(self) -> None:
        total = self.total_steps()
        epochs = max(1, self.trainer.max_epochs or 1)
        steps_per_epoch = total / epochs if math.isfinite(total) else 0.0
        self.clock = RunClock(
            total_steps=total,
            budget_seconds=self.budget_seconds,
            warmup_steps=self.optim["warmup_epochs"] * steps_per_epoch,
            time_fn=self.time_fn,
        )
        if self._pending_clock_state is not None:
            self.clock.load_state_dict(self._pending_clock_state)
            self._pending_clock_state = None
        self.clock.start(self.global_step)
        if self._pending_torch_rng is not None:  # restored last: nothing draws after it
            torch.set_rng_state(self._pending_torch_rng)
            self._pending_torch_rng = None

    def _min_over_processes(self, value: float) -> float:
        if self.trainer.world_size <= 1:
            return value
        tensor = torch.tensor([value], dtype=torch.float32, device=self.device)
        return float(self.trainer.strategy.reduce(tensor, reduce_op="min").item())

    def global_batch(self) -> int:
        """Samples per optimiser step over all processes: ``optim.batch_size`` x processes x
        accumulated batches."""
        trainer = self.trainer
        accumulate = int(getattr(trainer, "accumulate_grad_batches", 1) or 1)
        return int(self.optim["batch_size"]) * int(trainer.world_size) * accumulate

    def peak_lr(self) -> float:
        """``optim.lr`` scaled by the global batch (``optim.lr_scaling``, ``reference_batch``):
        what the schedule multiplies and constant-LR parameters keep."""
        cfg = self.optim
        scaling, reference = cfg.get("lr_scaling", "none"), cfg.get("reference_batch", 256)
        if scaling == "none":
            return cfg["lr"]
        return scaled_lr(cfg["lr"], scaling, self.global_batch(), reference)

    def lr_record(self) -> dict[str, Any]:
        """How the peak LR was set, for ``metrics.json`` ``training.lr``."""
        cfg = self.optim
        return {
            "base_lr": cfg["lr"],
            "scaling": cfg.get("lr_scaling", "none"),
            "reference_batch": cfg.get("reference_batch", 256),
            "global_batch": self.global_batch(),
            "peak_lr": self.peak_lr(),
        }

    def lr_multiplier(self) -> float:
        """The schedule's multiplier of ``optim.lr`` at the clock's current progress."""
        clock, cfg = self.clock, self.optim
        if clock.warmup_fraction is None:
            return clock.ramp
        return lr_multiplier(
            cfg.get("schedule", "cosine"),
            clock.progress,
            clock.warmup_fraction,
            min_ratio=cfg.get("min_lr_ratio", 0.0),
            **_infinite_params(cfg),
        )

    def on_train_batch_start(self, batch, batch_idx: int) -> int | None:
        self.progress = self.clock.advance(
            self.global_step, epoch_start=batch_idx == 0, sync=self._min_over_processes
        )
        if self.clock.budget_spent:  # no step starts once the budget is spent
            self.trainer.should_stop = True
            return -1  # Lightning: skip the rest of the epoch
        peak = self.peak_lr()
        lr = peak * self.lr_multiplier()
        for group in self.trainer.optimizers[0].param_groups:
            group["lr"] = peak if group.get("constant_lr") else lr

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int):
        if len(batch["index"]) < 2:  # a lazy batch whose files were all unreadable
            return None
        if "views" in batch:  # views made elsewhere (e.g. a per-sample baseline in workers)
            views = batch["views"]
        else:
            views = self.views(batch["inputs"], generator=self.generator)
        out = self.method(views, batch, generator=self.generator)
        loss = out["loss"]
        if not torch.isfinite(loss):
            raise TrainingError(
                f"the loss became {loss.item()} at step {self.global_step}: lower optim.lr "
                "(or the warmup is too short) and check the input data for NaN values"
            )
        self.log("train/loss", loss.detach(), prog_bar=True, on_step=True, on_epoch=False)
        self.log("train/lr", self.optimizers().param_groups[0]["lr"], on_step=True, on_epoch=False)
        self.log("train/progress", self.progress, on_step=True, on_epoch=False)
        if self.clock.estimated_total_steps is not None:
            estimate = float(self.clock.estimated_total_steps)
            self.log("schedule/estimated_total_steps", estimate, on_step=True, on_epoch=False)
        return out

    def optimizer_step(self, *args, **kwargs) -> None:
        """The optimiser step, then the method's step-end update (EMA teachers, DINO's step and
        teacher temperature) right after it: callbacks' ``on_train_batch_end`` (the checkpoint)
        run before the module's, and a checkpoint written at a step's end must hold the teacher
        that step made, or a resumed run would miss one EMA update."""
        super().optimizer_step(*args, **kwargs)
        self.method.on_step_end(self.progress)

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        if self.clock.finished:  # the last step of the budget (or of max_epochs) ran annealed
            self.trainer.should_stop = True

    def on_train_end(self) -> None:
        self.clock.stop()
        if self._blueprint:  # every process takes part in the all-gathers
            self._gathered = (gather_full(self.method.backbone, self._blueprint[0]),)

    def configure_optimizers(self):
        cfg = self.optim
        return build_optimizer(
            self.method,
            cfg["name"],
            lr=self.peak_lr(),
            weight_decay=cfg["weight_decay"],
            momentum=cfg["momentum"],
        )

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """The random streams of every process: ``augment_generator`` / ``torch_rng`` (rank
        0's), and under data parallelism ``rank_generators`` / ``rank_torch_rng`` with one row
        per rank (every process saves together; rank 0 writes the file)."""
        checkpoint["augment_generator"] = self.generator.get_state()
        checkpoint["torch_rng"] = torch.get_rng_state()  # dropout and other global-RNG draws
        if self._trainer is not None and self.trainer.world_size > 1:
            gather = self.trainer.strategy.all_gather
            checkpoint["rank_generators"] = gather(self.generator.get_state().to(self.device))
            checkpoint["rank_torch_rng"] = gather(torch.get_rng_state().to(self.device)).cpu()
        if self.clock is not None:
            checkpoint["run_clock"] = self.clock.state_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Each process continues its own streams; a process the saved run did not have (a
        resume on more processes) starts new ones, seeded by its rank and the step."""
        rank = self.global_rank
        generator = _own_state(checkpoint, "rank_generators", "augment_generator", rank)
        self._pending_torch_rng = _own_state(checkpoint, "rank_torch_rng", "torch_rng", rank)
        if generator is not None:
            self._pending_generator_state = generator
            self._generator = None
        elif rank > 0:  # not in the saved run: a new stream, not a replay of one seen before
            step = int(checkpoint.get("global_step", 0))
            self._generator_seed = (self.seed * 1000 + rank) * 1_000_003 + step
            self._generator = None
        self._pending_clock_state = checkpoint.get("run_clock")


def _own_state(checkpoint: dict[str, Any], per_rank: str, rank_zero: str, rank: int):
    """Process ``rank``'s saved random state: its row of ``per_rank``, rank 0's ``rank_zero``
    in a checkpoint of one process, None for a rank the saved run did not have."""
    rows = checkpoint.get(per_rank)
    if rows is not None:
        # a copy with its own storage: set_state on a row view (storage offset > 0) segfaults
        return rows[rank].cpu().clone() if rank < len(rows) else None
    return checkpoint.get(rank_zero) if rank == 0 else None


def _infinite_params(cfg: dict[str, Any]) -> dict[str, float]:
    if cfg.get("schedule", "cosine") != "infinite":
        return {}
    return {
        "constant_ratio": cfg["constant_lr_ratio"],
        "cooldown": cfg["cooldown_fraction"],
        "anneal": cfg["anneal_fraction"],
    }
