"""Trainer factory: one place that turns a TrainerConfig into a Lightning Trainer."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import lightning as L
import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import RichProgressBar, TQDMProgressBar

from labelless.config import TrainerConfig
from labelless.errors import ConfigError
from labelless.runfiles import RunFiles
from labelless.runtime import tune_allocator
from labelless.train.logs import RunCSVLogger
from labelless.train.sharded import resolve_strategy


def quiet_lightning() -> None:
    """Silence Lightning's tips and banners that say nothing about the user's run."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*LeafSpec.*")
    warnings.filterwarnings("ignore", ".*exists and is not empty.*")
    warnings.filterwarnings("ignore", ".*smaller than the logging interval.*")
    warnings.filterwarnings("ignore", ".*is deprecated.*", category=UserWarning)


def _has_gpu() -> bool:
    return torch.cuda.is_available() or (
        hasattr(torch.backends, "mps") and torch.backends.mps.is_available()
    )


def build_trainer(cfg: TrainerConfig, run_dir: Path, callbacks: list[L.Callback]) -> L.Trainer:
    """A Trainer logging CSV to ``run_dir/logs/metrics.csv`` (the trackers of ``cfg.loggers``
    join on rank 0 once the run directory is open, ``lifecycle.fit``), with our checkpoint
    callback only.

    ``cfg.max_time`` is not given to Lightning's timer: the ``SSLModule``'s run clock fits the
    schedules to that budget and stops training after the annealed last step. ``cfg.threads``
    caps torch CPU threads (float32 on CPU: bf16 autocast is slower than float32 on CPUs without
    bf16 units).
    glibc is asked to keep freed memory for reuse (``labelless.runtime.tune_allocator``).
    """
    quiet_lightning()
    tune_allocator()
    torch.set_num_threads(cfg.threads)
    logger = RunCSVLogger(RunFiles(run_dir).logs)
    progress: list[L.Callback] = []
    if cfg.progress_bar:
        try:
            # on stderr, as every other progress bar (labelless.progress): stdout stays clean
            progress = [RichProgressBar(leave=True, console_kwargs={"stderr": True})]
        except ModuleNotFoundError:
            progress = [TQDMProgressBar()]
    if "bf16" in cfg.precision and cfg.accelerator in ("cpu", "auto") and not _has_gpu():
        warnings.warn(
            f"precision {cfg.precision!r} on a CPU without bf16 units runs about 10x slower than "
            "float32: use --precision 32-true on CPU",
            stacklevel=2,
        )
    try:
        return _trainer(cfg, run_dir, [*callbacks, *progress], logger)
    except (ValueError, TypeError, RuntimeError, MisconfigurationException) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(
            f"the trainer settings (accelerator {cfg.accelerator!r}, devices {cfg.devices!r}, "
            f"strategy {cfg.strategy!r}, num_nodes {cfg.num_nodes}, precision "
            f"{cfg.precision!r}) cannot be used here: {first}"
        ) from None


def _check_sync_batchnorm(cfg: TrainerConfig, trainer: L.Trainer) -> L.Trainer:
    """``trainer`` unless ``cfg.sync_batchnorm`` cannot do what it says. Lightning converts every
    BatchNorm to torch's ``SyncBatchNorm`` under its DDP and FSDP strategies only (not under
    model-parallel ones such as fsdp2), and torch's layer accepts only GPU inputs (no CPU
    kernel: CPU processes would fail at the first step). One process (no parallel strategy)
    leaves BatchNorm as it is: it already sees the whole batch."""
    from lightning.pytorch.strategies import DDPStrategy, FSDPStrategy, ParallelStrategy

    strategy = trainer.strategy
    if not cfg.sync_batchnorm or not isinstance(strategy, ParallelStrategy):
        return trainer
    if not isinstance(strategy, (DDPStrategy, FSDPStrategy)):
        raise ConfigError(
            f"trainer.sync_batchnorm (--sync-batchnorm) is not applied by the strategy "
            f"{cfg.strategy!r} (Lightning converts BatchNorm under ddp and fsdp only): use "
            "--strategy ddp, or drop --sync-batchnorm"
        )
    if strategy.root_device.type == "cpu":
        raise ConfigError(
            f"trainer.sync_batchnorm (--sync-batchnorm) needs GPUs, but training runs on CPUs "
            f"({trainer.world_size} process(es)), where torch's SyncBatchNorm cannot run: drop "
            "--sync-batchnorm, or train with --accelerator gpu"
        )
    return trainer


def _trainer(cfg: TrainerConfig, run_dir: Path, callbacks: list, logger) -> L.Trainer:
    trainer = L.Trainer(
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        strategy=resolve_strategy(cfg),  # fsdp2: ShardedDataParallel; FSDP1 needs CUDA
        num_nodes=cfg.num_nodes,
        precision=cfg.precision,
        max_epochs=cfg.max_epochs,
        logger=logger,
        callbacks=callbacks,
        enable_checkpointing=True,  # our AtomicLastCheckpoint (a Checkpoint) is the only one
        enable_progress_bar=cfg.progress_bar,
        enable_model_summary=False,
        log_every_n_steps=1,
        num_sanity_val_steps=0,
        default_root_dir=str(run_dir),
        sync_batchnorm=cfg.sync_batchnorm,  # GPUs under ddp / fsdp: checked below
    )
    return _check_sync_batchnorm(cfg, trainer)
