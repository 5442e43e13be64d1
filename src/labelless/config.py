"""Typed description of a run; YAML in and out; ``--set a.b=c`` overrides.

Precedence, lowest first: field defaults < ``--config FILE`` < ``--set key=value`` < explicit CLI
flags. A YAML file never overrides a flag the user typed.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from labelless.errors import ConfigError


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
    lr: float = Field(0.3, gt=0)
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
    strategy: str = Field("auto", description="auto, ddp, ddp_spawn, fsdp, ...")
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


class RunConfig(Section):
    data: DataConfig = Field(default_factory=DataConfig)
    backbone: BackboneConfig = Field(default_factory=BackboneConfig)
    method: MethodConfig = Field(default_factory=MethodConfig)
    views: ViewsConfig = Field(default_factory=ViewsConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)
    seed: int = Field(0, ge=0, le=SEED_MAX, description="random seed (0 .. 2**32 - 1)")
    out: str | None = Field(
        None, description="run directory; default runs/<method>-<data stem> (runs/simclr-digits)"
    )


# Names people type for a key, by the key they mean (in the same section).
_KEY_ALIASES = {
    "learning_rate": "lr",
    "bs": "batch_size",
    "batch": "batch_size",
    "wd": "weight_decay",
    "epochs": "max_epochs",
    "optimizer": "name",
    "method": "name",
}


def _config_model(name: str) -> type[BaseModel] | None:
    """The config class called ``name`` (``RunConfig``, ``SemiRunConfig``, ...)."""
    found, todo = None, [Section]
    while todo and found is None:
        cls = todo.pop()
        found = cls if cls.__name__ == name else None
        todo += cls.__subclasses__()
    return found


def _section_of(root: type[BaseModel] | None, path: tuple) -> type[BaseModel] | None:
    """The section class at ``path`` below ``root``, or None (e.g. inside a free-form dict)."""
    cls = root
    for part in path:
        field = cls.model_fields.get(str(part)) if cls is not None else None
        annotation = field.annotation if field is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        cls = annotation
    return cls


def _did_you_mean(root: type[BaseModel] | None, loc: tuple) -> str:
    """`` (did you mean optim.lr?)`` for an unknown key at ``loc``, else the section's keys.

    Tried in turn: a common alias in the same section (``learning_rate`` -> ``lr``), the key or
    its alias in another section (``optim.epochs`` -> ``trainer.max_epochs``), then the closest
    name of the section (``difflib``)."""
    section = _section_of(root, loc[:-1])
    if section is None:
        return ""
    key, names = str(loc[-1]), list(section.model_fields)
    prefix = "".join(f"{p}." for p in loc[:-1])
    alias = _KEY_ALIASES.get(key, key)
    if alias in names:
        return f" (did you mean {prefix}{alias}?)"
    for other in root.model_fields if len(loc) == 2 else ():
        elsewhere = _section_of(root, (other,))
        if elsewhere is not None and alias in elsewhere.model_fields:
            return f" (did you mean {other}.{alias}?)"
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    if close:
        return f" (did you mean {prefix}{close[0]}?)"
    return f"; valid keys{' of ' + prefix[:-1] if prefix else ''}: {', '.join(names)}"


def validation_message(exc: ValidationError, source: str) -> str:
    """One line naming each invalid key and why; an unknown key gets a did-you-mean."""
    root = _config_model(exc.title)
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        message = err["msg"]
        if err["type"] == "value_error" and "error" in err.get("ctx", {}):
            message = str(err["ctx"]["error"])  # our own validators' words, without a prefix
        if err["type"] == "extra_forbidden":
            message = "unknown key" + _did_you_mean(root, tuple(err["loc"]))
        parts.append(f"{where}: {message}")
    return f"invalid config in {source}: " + "; ".join(parts)


def build_config(data: dict[str, Any], source: str = "config") -> RunConfig:
    """Validate a nested dict into a RunConfig; any mistake is a ConfigError naming the field."""
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_message(exc, source)) from exc


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing, unreadable or malformed file is a ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist: check the --config path")
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(
            f"config file {str(path)!r} is not valid YAML ({first}): fix its syntax"
        ) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {str(path)!r} must hold a mapping of sections, not {type(data).__name__}"
        )
    return data


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """Apply one ``a.b.c=value`` override in place; the value is YAML
    (``1e-3``, ``[1, 2]``)."""
    if "=" not in assignment:
        raise ConfigError(f"--set expects key=value, got {assignment!r} (e.g. --set optim.lr=0.1)")
    key, raw = assignment.split("=", 1)
    keys = [k for k in key.strip().split(".") if k]
    if not keys:
        raise ConfigError(f"--set has an empty key in {assignment!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {assignment!r}: the value is not valid YAML") from exc
    node = data
    for part in keys[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {assignment!r}: {part!r} is a value, not a section")
        node = child
    node[keys[-1]] = value


def resolve_config(
    config_file: str | Path | None = None,
    overrides: list[str] | None = None,
    flags: dict[str, Any] | None = None,
) -> RunConfig:
    """A pretraining config: defaults < config file < ``--set`` overrides < explicit flags
    (``flags`` maps dotted keys to values; None means the flag was not given)."""
    return resolve(RunConfig, config_file, overrides, flags)


def resolve(
    schema: type[Section],
    config: str | Path | dict | BaseModel | None = None,
    overrides: list[str] | None = None,
    keys: dict[str, Any] | None = None,
    *,
    base: dict[str, Any] | None = None,
) -> Any:
    """The one config resolver of every run kind: the ``schema``'s defaults < ``base`` (a
    resumed run's config.yaml, or what ``--init RUN_DIR`` carries) < ``config`` (a YAML file, a
    dict or a config object) < ``overrides`` (``--set a.b=value``) < ``keys`` (typed flags as
    dotted keys; None = not given). A partial section is merged onto the schema's own defaults
    for that section."""
    defaults = merge_sections(schema().model_dump(mode="json"), base or {})
    data = layered(config, overrides, keys, base=defaults)
    source = str(config) if isinstance(config, (str, Path)) else "command line"
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_message(exc, source)) from exc


def layered(
    config: str | Path | dict | BaseModel | None = None,
    overrides: list[str] | None = None,
    keys: dict[str, Any] | None = None,
    *,
    base: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What was given, as one nested dict, lowest first: ``base`` < ``config`` < ``overrides``
    < ``keys`` (no schema defaults unless in ``base``; not validated)."""
    if isinstance(config, BaseModel):
        given = config.model_dump(mode="json")
    elif isinstance(config, dict):
        given = config
    else:
        given = load_yaml(config) if config is not None else {}
    plain = json.loads(json.dumps([base or {}, given]))  # deep copies, JSON types only
    data = merge_sections(*plain)
    for assignment in overrides or []:
        apply_override(data, assignment)
    for key, value in (keys or {}).items():
        if value is not None:
            apply_override_value(data, key, value)
    return data


def merge_sections(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``update`` merged into ``base`` section by section (free-form ``kwargs`` are replaced)."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key != "kwargs":
            merged[key] = merge_sections(merged[key], value)
        else:
            merged[key] = value
    return merged


def apply_override_value(data: dict[str, Any], key: str, value: Any) -> None:
    """Set the dotted ``key`` to an already-typed ``value``."""
    keys = key.split(".")
    node = data
    for part in keys[:-1]:
        node = node.setdefault(part, {})
    node[keys[-1]] = value


def dump_yaml(config: RunConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


# Flag name (CLI and Python keyword) -> dotted config key.
FLAG_KEYS: dict[str, str] = {
    "data": "data.name",
    "target": "data.target",
    "method": "method.name",
    "backbone": "backbone.name",
    "width": "backbone.width",
    "weights": "backbone.weights",
    "init": "backbone.init",
    "view_size": "views.size",
    "views": "views.recipe",
    "optimizer": "optim.name",
    "lr": "optim.lr",
    "batch_size": "optim.batch_size",
    "epochs": "trainer.max_epochs",
    "max_time": "trainer.max_time",
    "devices": "trainer.devices",
    "strategy": "trainer.strategy",
    "num_nodes": "trainer.num_nodes",
    "precision": "trainer.precision",
    "accelerator": "trainer.accelerator",
    "threads": "trainer.threads",
    "logger": "trainer.loggers",
    "seed": "seed",
    "out": "out",
}


def flags_to_keys(flags: dict[str, Any], table: dict[str, str] | None = None) -> dict[str, Any]:
    """Translate flag names to dotted keys with ``table`` (default: pretraining's
    ``FLAG_KEYS``), dropping flags left at None (not given); an unknown flag is a ConfigError."""
    table = FLAG_KEYS if table is None else table
    unknown = sorted(set(flags) - set(table))
    if unknown:
        raise ConfigError(
            f"unknown option(s) {', '.join(unknown)}; valid: {', '.join(sorted(table))}"
        )
    return {table[name]: value for name, value in flags.items() if value is not None}
