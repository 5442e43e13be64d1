"""Experiment trackers beside the run's own CSV log: ``trainer.loggers`` / ``--logger``.

``csv`` (``logs/metrics.csv``, which the report reads) is always kept; ``tensorboard``,
``mlflow`` and ``wandb`` are Lightning's own loggers, each an optional extra, writing inside the
run directory unless told otherwise, so they work without a network:

- ``tensorboard``: event files in ``<run>/tensorboard`` (``tensorboard --logdir <run>``).
- ``mlflow``: ``$MLFLOW_TRACKING_URI`` when set, else a SQLite store ``<run>/mlflow.db``
  (``mlflow ui --backend-store-uri sqlite:///<run>/mlflow.db``; MLflow has retired its plain
  file store); experiment ``labelless``, run name = the run directory's name.
- ``wandb``: offline into ``<run>/wandb`` (``wandb sync`` uploads it later) unless
  ``WANDB_MODE=online``; project ``$WANDB_PROJECT`` or ``labelless``.

They are made on rank 0 only, after the run directory is opened (``lifecycle.fit``), and
write from there, as ``RunCSVLogger`` does.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from labelless.errors import ConfigError

if TYPE_CHECKING:
    from lightning.pytorch.loggers.logger import Logger

# logger -> (what it needs: each entry a module or alternatives "a|b"), the extra installing it)
_NEEDS: dict[str, tuple[tuple[str, ...], str]] = {
    "tensorboard": (("tensorboard|tensorboardX",), "tensorboard"),
    "mlflow": (("mlflow", "sqlalchemy", "alembic"), "mlflow"),  # its SQLite store needs the two
    "wandb": (("wandb",), "wandb"),
}


def check_loggers(names: Iterable[str]) -> list[str]:
    """The trackers of ``names`` (``TrainerConfig.loggers``, which rejected unknown names;
    ``csv`` aside), each checked to be installed: a missing extra is a ``ConfigError`` naming
    it. Cheap (no import): runs before the run directory is touched."""
    trackers = [name for name in dict.fromkeys(names) if name != "csv"]
    for name in trackers:
        needs, extra = _NEEDS[name]
        missing = [
            need.replace("|", " or ")
            for need in needs
            if not any(importlib.util.find_spec(module) for module in need.split("|"))
        ]
        if missing:
            raise ConfigError(
                f"logger {name!r} needs {', '.join(missing)}, not installed: "
                f"pip install labelless[{extra}], or drop it from --logger / trainer.loggers"
            )
    return trackers


def _tensorboard(run_dir: Path) -> Logger:
    from lightning.pytorch.loggers import TensorBoardLogger

    return TensorBoardLogger(save_dir=str(run_dir), name="tensorboard", version="")


def _mlflow(run_dir: Path) -> Logger:
    from lightning.pytorch.loggers import MLFlowLogger

    uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(run_dir / 'mlflow.db').resolve()}"
    return MLFlowLogger(experiment_name="labelless", run_name=run_dir.name, tracking_uri=uri)


def _wandb(run_dir: Path) -> Logger:
    from lightning.pytorch.loggers import WandbLogger

    return WandbLogger(
        project=os.environ.get("WANDB_PROJECT", "labelless"),
        name=run_dir.name,
        save_dir=str(run_dir),
        offline=os.environ.get("WANDB_MODE", "offline") != "online",
    )


_FACTORIES = {"tensorboard": _tensorboard, "mlflow": _mlflow, "wandb": _wandb}


def build_trackers(names: Iterable[str], run_dir: Path) -> list[Logger]:
    """Lightning's loggers for the trackers of ``names`` (``csv`` aside: the trainer's
    ``RunCSVLogger`` is always there), writing into ``run_dir``; checked first
    (``check_loggers``). Made on rank 0 once ``run_dir`` is open (``lifecycle.fit``)."""
    return [_FACTORIES[name](run_dir) for name in check_loggers(names)]
