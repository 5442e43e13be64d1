"""The sections of a run's config (data, backbone, method, views, optim, trainer, monitor) as
pydantic models; ``labelless.config`` reads, layers and writes them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class DataConfig(Section):
    name: str = Field("digits", description="built-in dataset name or path to an image folder")
    load_size: int = Field(64, gt=0, description="side that folder images are decoded to")
    eval: str | None = Field(
        None, description="labelled dataset for monitors and evaluation; default: the test split"
    )
    lazy: bool = Field(False, description="image folders: decode files in workers every epoch")
    workers: int = Field(2, ge=0, description="decoding workers for lazy folders")
    sample_size: int = Field(
        4096, gt=0, description="lazy folders: images decoded for statistics and evaluation"
    )
    target: str | None = Field(
        None, description="tables: the label column of a CSV/parquet file (none: unlabelled)"
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="more loader options for data files (e.g. tables: missing, scaling, "
        "categorical; see labelless.data.tabular / labelless.data.timeseries)",
    )
    subset: str | None = Field(
        None,
        description="subset file (labelless curate's subset.txt): train on the listed samples "
        "of the training split only",
    )


class BackboneConfig(Section):
    name: str | None = Field(
        None, description="encoder; default: the data's modality's (images: resnet18_cifar)"
    )
    width: float | None = Field(None, gt=0, description="channel width multiplier (resnet18_cifar)")
    weights: str | None = Field(None, description="local weights file to start from")
    init: str | None = Field(
        None,
        description="start from an earlier run's encoder: its run directory or encoder.safetensors",
    )
    kwargs: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_start(self) -> BackboneConfig:
        if self.init is not None and self.weights is not None:
            raise ValueError(
                "backbone.init (--init) and backbone.weights (--weights) both say where the "
                "backbone starts: keep one of them"
            )
        return self


class MethodConfig(Section):
    name: str = "simclr"
    kwargs: dict[str, Any] = Field(default_factory=dict)


class ViewsConfig(Section):
    recipe: str | None = Field(None, description="augmentation recipe; default: the method's own")
    size: int | None = Field(None, gt=0, description="view side in pixels; default: native size")
    overrides: dict[str, Any] = Field(
        default_factory=dict, description="ViewSpec fields set on every view"
    )
    per_view: list[dict[str, Any]] = Field(
        default_factory=list, description="ViewSpec fields for view i (after overrides)"
    )
    num_local_crops: int | None = Field(None, ge=0, description="local views of dino / swav")


class OptimConfig(Section):
    """Optimiser and learning-rate schedule. Fractions of the run are of run progress, which is
    fitted to ``trainer.max_time`` when a budget is set (see docs/architecture.md)."""

    name: Literal["sgd", "lars", "adamw"] = "lars"
    lr: float = Field(
        0.3, gt=0, description="peak LR; with lr_scaling, the peak LR at reference_batch"
    )
    weight_decay: float = Field(1e-4, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    batch_size: int = Field(
        256, description="samples per step and process; at least 2 (methods compare samples)"
    )
    warmup_epochs: float = Field(
        10.0, ge=0, description="linear warm-up; at most half of the (estimated) run"
    )
    min_lr_ratio: float = Field(0.0, ge=0, le=1, description="final LR / peak LR")
    schedule: Literal["cosine", "infinite"] = Field(
        "cosine",
        description="cosine: warm-up + cosine decay; infinite: warm-up, cooldown to a constant, "
        "final annealing (Ibrahim et al. 2024; Singh et al. 2025), for continual pretraining",
    )
    constant_lr_ratio: float = Field(
        0.5, gt=0, le=1, description="infinite: constant-phase LR / peak LR"
    )
    cooldown_fraction: float = Field(
        0.2, ge=0, le=1, description="infinite: cooldown share of the run after the warm-up"
    )
    anneal_fraction: float = Field(
        0.1, ge=0, le=1, description="infinite: final-annealing share of the run after the warm-up"
    )
    lr_scaling: Literal["none", "linear", "sqrt"] = Field(
        "none",
        description="peak LR = lr x (global batch / reference_batch) (linear, Goyal et al. 2017) "
        "or x its square root (sqrt, Krizhevsky 2014; SimCLR's small batches); global batch = "
        "batch_size x processes (train.optim.scaled_lr)",
    )
    reference_batch: int = Field(
        256, gt=0, description="the global batch that lr is stated for (lr_scaling)"
    )

    @field_validator("lr_scaling", mode="before")
    @classmethod
    def _scaling_name(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("batch_size")
    @classmethod
    def _two_samples(cls, value: int) -> int:
        if value < 2:
            raise ValueError(
                f"must be at least 2, got {value}: training compares the samples of a batch "
                "(self-supervised methods contrast them, batch norm needs two), so a batch of one "
                "trains nothing; use --batch-size 2 or more (e.g. 256)"
            )
        return value

    @model_validator(mode="after")
    def _phases_fit(self) -> OptimConfig:
        if self.schedule != "infinite":
            return self
        if self.cooldown_fraction + self.anneal_fraction > 1:
            raise ValueError(
                f"cooldown_fraction {self.cooldown_fraction} + anneal_fraction "
                f"{self.anneal_fraction} exceed 1: lower them so that they share the run"
            )
        if self.min_lr_ratio > self.constant_lr_ratio:
            raise ValueError(
                f"min_lr_ratio {self.min_lr_ratio} is above constant_lr_ratio "
                f"{self.constant_lr_ratio}: the annealing must go down; lower min_lr_ratio"
            )
        return self


# Lightning's precision settings; bf16 on a CPU without bf16 units is slow (build_trainer warns).
PRECISIONS = ("32-true", "32", "64-true", "64", "16-mixed", "16", "bf16-mixed", "bf16")
PRECISIONS += ("16-true", "bf16-true")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu")
# Experiment loggers (labelless.train.loggers); csv, which the report reads, is always kept.
LOGGERS = ("csv", "tensorboard", "mlflow", "wandb")


SEED_MAX = 2**32 - 1  # numpy's seed range, which Lightning's seed_everything checks


class TrainerConfig(Section):
    max_epochs: int = Field(100, gt=0)
    max_time: float | None = Field(
        None,
        gt=0,
        description="wall-clock budget in seconds: schedules are fitted to it and the run stops, "
        "annealed, when it is spent",
    )
    accelerator: str = Field("auto", description=f"one of {', '.join(ACCELERATORS)}")
    devices: int | str = Field("auto", description="devices per node: a count, -1 (all) or auto")
    strategy: str = Field(
        "auto", description="auto, ddp, ddp_spawn, fsdp2 (sharded ViTs), fsdp (CUDA), ..."
    )
    num_nodes: int = Field(1, gt=0)
    precision: str = Field("32-true", description=f"one of {', '.join(PRECISIONS)}")
    threads: int = Field(2, gt=0, description="torch CPU threads")
    progress_bar: bool = True
    checkpoint_every_n_steps: int | None = Field(
        None, gt=0, description="also write checkpoints/last.ckpt every N optimiser steps"
    )
    checkpoint_every_minutes: float | None = Field(
        10.0, gt=0, description="also write checkpoints/last.ckpt every N minutes of training"
    )
    loggers: list[str] = Field(
        ["csv"], description=f"experiment loggers, of {', '.join(LOGGERS)}; csv is always kept"
    )
    sync_batchnorm: bool = Field(
        False,
        description="GPUs under ddp / fsdp: BatchNorm statistics over the global batch (torch "
        "SyncBatchNorm, converted by Lightning); refused on CPUs (torch has no CPU kernel for "
        "it) and under fsdp2; one process already normalises over its whole batch",
    )

    @field_validator("loggers", mode="before")
    @classmethod
    def _known_loggers(cls, value: Any) -> list[str]:
        items = value.split(",") if isinstance(value, str) else list(value or [])
        names = [name for name in (str(item).strip().lower() for item in items) if name]
        if unknown := [name for name in names if name not in LOGGERS]:
            raise ValueError(
                f"unknown logger(s) {', '.join(unknown)}; choose from {', '.join(LOGGERS)} "
                "(comma-separated, e.g. csv,tensorboard)"
            )
        return list(dict.fromkeys(["csv", *names]))

    @field_validator("precision", "accelerator", mode="before")
    @classmethod
    def _one_of(cls, value: Any, info: ValidationInfo) -> str:
        choices = PRECISIONS if info.field_name == "precision" else ACCELERATORS
        if str(value) not in choices:
            raise ValueError(
                f"unknown {info.field_name} {value!r}; choose one of {', '.join(choices)}"
            )
        return str(value)

    @field_validator("devices", mode="before")
    @classmethod
    def _device_count(cls, value: Any) -> Any:
        text = str(value).strip()
        if text == "auto":
            return "auto"
        if text.lstrip("-").isdigit() and (int(text) >= 1 or int(text) == -1):
            return int(text)
        raise ValueError(f"devices must be a count >= 1, -1 (every device) or auto, not {value!r}")


# kNN's k when a run or a verb is given none (Wu et al. 2018's 200), read by ``Modality.knn_k``;
# evaluate / prune of a run's encoder use the k that run recorded instead.
KNN_K = 200


class MonitorConfig(Section):
    every_n_epochs: int = Field(5, gt=0)
    knn_k: int | None = Field(
        None, gt=0, description=f"kNN neighbours; default: the modality's (Modality.knn_k, {KNN_K})"
    )
    knn_temperature: float = Field(0.1, gt=0)
    rankme: bool = True
    rankme_plateau_patience: int | None = Field(
        None,
        gt=0,
        description="stop when RankMe of a fixed subset of training images has not improved for "
        "this many checks (every_n_epochs apart); unset: never stop early",
    )
    rankme_plateau_min_delta: float = Field(
        0.0, ge=0, description="a RankMe improvement must exceed the best value by this much"
    )


class CurationConfig(Section):
    """Dynamic curation during pretraining (``train/curation.py``, docs/curation.md): off
    unless ``every_n_epochs`` is set."""

    every_n_epochs: int | None = Field(
        None,
        gt=0,
        description="every N epochs, cluster the training data's embeddings under the current "
        "encoder and sample the next epochs balanced over the clusters; unset: off",
    )
    clusters: int = Field(20, ge=2, description="k-means clusters")
    sample: int = Field(4096, ge=2, description="rows k-means is fitted on (all rows assigned)")
    strength: float = Field(
        1.0, ge=0, le=1, description="1: equal share per cluster, 0: the data's own shares"
    )


class RunConfig(Section):
    data: DataConfig = Field(default_factory=DataConfig)
    backbone: BackboneConfig = Field(default_factory=BackboneConfig)
    method: MethodConfig = Field(default_factory=MethodConfig)
    views: ViewsConfig = Field(default_factory=ViewsConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)
    curation: CurationConfig = Field(default_factory=CurationConfig)
    seed: int = Field(0, ge=0, le=SEED_MAX, description="random seed (0 .. 2**32 - 1)")
    out: str | None = Field(
        None, description="run directory; default runs/<method>-<data stem> (runs/simclr-digits)"
    )
