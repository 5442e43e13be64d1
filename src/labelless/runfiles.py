"""The names of a run directory's files, in one place (importable from any layer).

``RunFiles(path).metrics_json`` and friends are the only spelling of the layout; ``rundir.RunDir``
(the run-directory object: planning, locking, resume checks) extends it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MARKER = ".labelless-run.json"
LOCK = ".labelless.lock"
CONFIG = "config.yaml"
METRICS = "metrics.json"
CHECKPOINTS = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"
LOGS = "logs"
METRICS_CSV = "metrics.csv"
REPORT = "report.html"
FIGURES = "figures"
CLASSIFIER = "classifier.safetensors"
ENCODER_META = "encoder.json"


@dataclass
class RunFiles:
    """The files of the run directory ``path`` (none of them need exist)."""

    path: Path

    def __post_init__(self) -> None:
        self.path = Path(self.path)

    @property
    def config_file(self) -> Path:
        return self.path / CONFIG

    @property
    def marker(self) -> Path:
        return self.path / MARKER

    @property
    def lock(self) -> Path:
        return self.path / LOCK

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints / LAST_CHECKPOINT

    @property
    def logs(self) -> Path:
        return self.path / LOGS

    @property
    def metrics_csv(self) -> Path:
        return self.logs / METRICS_CSV

    @property
    def metrics_json(self) -> Path:
        return self.path / METRICS

    @property
    def report(self) -> Path:
        return self.path / REPORT

    @property
    def figures(self) -> Path:
        return self.path / FIGURES

    @property
    def classifier(self) -> Path:
        return self.path / CLASSIFIER

    @property
    def encoder_meta(self) -> Path:
        return self.path / ENCODER_META

    def has_config(self) -> bool:
        """A folder with a ``config.yaml``: what the evaluation verbs treat as a run."""
        return self.path.is_dir() and self.config_file.is_file()
