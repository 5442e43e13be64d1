"""Typed description of a run; YAML in and out; ``--set a.b=c`` overrides.

Precedence, lowest first: field defaults < ``--config FILE`` < ``--set key=value`` < explicit CLI
flags. A YAML file never overrides a flag the user typed. The sections themselves live in
``labelless.config_sections`` and are re-exported here.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from labelless.config_sections import (
    ACCELERATORS,
    KNN_K,
    LOGGERS,
    PRECISIONS,
    SEED_MAX,
    BackboneConfig,
    DataConfig,
    MethodConfig,
    MonitorConfig,
    OptimConfig,
    RunConfig,
    Section,
    TrainerConfig,
    ViewsConfig,
)
from labelless.errors import ConfigError

__all__ = [
    "ACCELERATORS",
    "FLAG_KEYS",
    "KNN_K",
    "LOGGERS",
    "PRECISIONS",
    "SEED_MAX",
    "BackboneConfig",
    "DataConfig",
    "MethodConfig",
    "MonitorConfig",
    "OptimConfig",
    "RunConfig",
    "Section",
    "TrainerConfig",
    "ViewsConfig",
    "apply_override",
    "apply_override_value",
    "build_config",
    "dump_yaml",
    "flags_to_keys",
    "layered",
    "load_yaml",
    "merge_sections",
    "resolve",
    "resolve_config",
    "validation_message",
]


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
    "subset": "data.subset",
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
    "sync_batchnorm": "trainer.sync_batchnorm",
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
