"""Typed description of a semi-supervised run (``labelless semi``); YAML in and out.

It reuses the data, backbone, optimiser and trainer sections of ``labelless.config`` with
defaults of the FixMatch family (SGD, LR 0.03, weight decay 5e-4, batch 64 labelled + mu x 64
unlabelled, cosine to ``cos(7 pi / 16)``, about 0.2, of the peak as in Sohn et al. 2020).
Precedence as for pretraining: defaults < ``--config FILE`` < ``--set`` < flags.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationError, model_validator

from labelless.config import (
    SEED_MAX,
    BackboneConfig,
    DataConfig,
    OptimConfig,
    Section,
    TrainerConfig,
    flags_to_keys,
    resolve,
    validation_message,
)
from labelless.errors import ConfigError
from labelless.runfiles import default_run_dir


class SemiSection(Section):
    method: str = Field("fixmatch", description="semi-supervised algorithm (labelless semi --help)")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="options of the algorithm")
    labels_per_class: int | None = Field(None, gt=0, description="labelled samples per class")
    label_fraction: float | None = Field(
        None, gt=0, le=1, description="fraction of each class labelled"
    )
    known_classes: int | None = Field(
        None, gt=0, description="open-set split: label only classes 0..K-1; the rest are outliers"
    )
    mu: int = Field(7, gt=0, description="unlabelled samples per labelled sample in a batch")
    ema_momentum: float = Field(0.999, ge=0, lt=1, description="EMA of the evaluated model")
    saa: bool = Field(False, description="sample adaptive augmentation (FixMatch family)")
    saa_momentum: float = Field(
        0.001, ge=0, lt=1, description="share of the old SAA historical loss kept (authors' 0.001)"
    )
    saa_start: int = Field(
        400, ge=0, description="passes over the labelled set before SAA's first selection"
    )
    shift_check: bool = Field(True, description="Frechet distance labelled vs unlabelled")
    shift_ratio: float = Field(
        2.0, gt=0, description="warn when the distance exceeds this times the random-split one"
    )

    @model_validator(mode="after")
    def _one_split(self) -> SemiSection:
        if self.labels_per_class is not None and self.label_fraction is not None:
            raise ValueError(
                "labels_per_class and label_fraction both choose the labelled set: keep one"
            )
        return self


class SemiViewsConfig(Section):
    size: int | None = Field(None, gt=0, description="view side; default: native size")
    weak: dict[str, Any] = Field(default_factory=dict, description="ViewSpec fields, weak view")
    strong: dict[str, Any] = Field(default_factory=dict, description="ViewSpec fields, strong")
    naive: dict[str, Any] = Field(
        default_factory=dict,
        description="SAA: ViewSpec fields (on top of strong) of the two draws that are half-mixed "
        "into a naive sample's strong view",
    )


class SemiMonitorConfig(Section):
    every_n_epochs: int | None = Field(
        None,
        gt=0,
        description="log the EMA model's test accuracy every N epochs (never used "
        "to pick anything); None: only at the end",
    )


def _semi_optim() -> OptimConfig:
    return OptimConfig(
        name="sgd", lr=0.03, weight_decay=5e-4, batch_size=64, warmup_epochs=0, min_lr_ratio=0.2
    )


class SemiRunConfig(Section):
    data: DataConfig = Field(default_factory=DataConfig)
    backbone: BackboneConfig = Field(default_factory=BackboneConfig)
    semi: SemiSection = Field(default_factory=SemiSection)
    views: SemiViewsConfig = Field(default_factory=SemiViewsConfig)
    optim: OptimConfig = Field(default_factory=_semi_optim)
    trainer: TrainerConfig = Field(default_factory=lambda: TrainerConfig(max_epochs=50))
    monitor: SemiMonitorConfig = Field(default_factory=SemiMonitorConfig)
    seed: int = Field(0, ge=0, le=SEED_MAX, description="random seed (0 .. 2**32 - 1)")
    report: bool = Field(True, description="write report.html (embedding map, curves)")
    out: str | None = Field(
        None, description="run directory; default runs/semi-<method>-<data stem>"
    )


SEMI_FLAG_KEYS: dict[str, str] = {
    "data": "data.name",
    "target": "data.target",
    "method": "semi.method",
    "labels_per_class": "semi.labels_per_class",
    "label_fraction": "semi.label_fraction",
    "known_classes": "semi.known_classes",
    "mu": "semi.mu",
    "saa": "semi.saa",
    "backbone": "backbone.name",
    "width": "backbone.width",
    "init": "backbone.init",
    "view_size": "views.size",
    "optimizer": "optim.name",
    "lr": "optim.lr",
    "batch_size": "optim.batch_size",
    "epochs": "trainer.max_epochs",
    "max_time": "trainer.max_time",
    "devices": "trainer.devices",
    "strategy": "trainer.strategy",
    "num_nodes": "trainer.num_nodes",
    "accelerator": "trainer.accelerator",
    "precision": "trainer.precision",
    "threads": "trainer.threads",
    "progress_bar": "trainer.progress_bar",
    "logger": "trainer.loggers",
    "sync_batchnorm": "trainer.sync_batchnorm",
    "seed": "seed",
    "out": "out",
}


def build_semi_config(data: dict[str, Any], source: str = "config") -> SemiRunConfig:
    try:
        return SemiRunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_message(exc, source)) from exc


def default_semi_out(config: SemiRunConfig) -> str:
    """``runs/semi-<method>-<data stem>`` (``runfiles.default_run_dir``)."""
    return default_run_dir("semi", config.semi.method, data=config.data.name)


def resolve_semi_config(
    config: str | dict | SemiRunConfig | None,
    overrides: list[str] | None,
    flags: dict[str, Any],
    base: dict[str, Any] | None = None,
) -> SemiRunConfig:
    """Defaults < ``base`` (a resumed run's config) or ``config`` < ``overrides`` < ``flags``
    (``config.resolve``). Sections default to the semi-supervised values (SGD, LR 0.03, ...),
    not to those of the shared section classes: a partial section is merged onto them."""
    keys = flags_to_keys(flags, SEMI_FLAG_KEYS)
    run_config = resolve(SemiRunConfig, config, overrides, keys, base=base)
    if run_config.out is None:
        run_config.out = default_semi_out(run_config)
    return run_config
