"""The names of a run directory's files, in one place (importable from any layer).

``RunFiles(path).metrics_json`` and friends are the only spelling of the layout; ``rundir.RunDir``
(the run-directory object: planning, locking, resume checks) extends it. ``default_run_dir`` is
the one naming scheme of the run directories that ``pretrain`` and ``semi`` choose.
"""

from __future__ import annotations

import hashlib
import re
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


RUNS = "runs"
# Characters kept in a default run name: safe on every common filesystem (no colon, slash,
# backslash, space or wildcard) and in a shell without quoting.
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_DATA_SUFFIX = re.compile(r"\.[A-Za-z][A-Za-z0-9]{0,7}$")  # .csv, .gz, .parquet, .ts, ...
_IN_MEMORY = re.compile(r"^<in-memory (.*)>$")


def data_stem(data: str) -> str:
    """The short, filesystem-safe name of a dataset for a run directory: a built-in name as it is
    (``digits``; ``ucr:GunPoint`` -> ``ucr-GunPoint``), a file or folder path by its last
    component without data-file suffixes (``./tables/rows.csv.gz`` -> ``rows``), in-memory data
    by its name. Only letters, digits, ``-``, ``_`` and ``.`` are kept (``data`` if none is)."""
    text = str(data).strip()
    text = _IN_MEMORY.sub(r"\1", text)
    text = text.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    while _DATA_SUFFIX.search(text) and _DATA_SUFFIX.sub("", text):
        text = _DATA_SUFFIX.sub("", text)
    return _UNSAFE.sub("-", text).strip("-.") or "data"


def default_run_dir(*parts: str, data: str) -> str:
    """``runs/<part>-...-<data stem>``, the default ``--out`` of a run: ``runs/simclr-digits``
    (pretrain: the method), ``runs/semi-fixmatch-digits`` (semi), ``runs/ts2vec-ucr-GunPoint``,
    ``runs/scarf-rows`` for ``rows.csv``. Every part is made filesystem-safe as ``data_stem``."""
    names = [_UNSAFE.sub("-", str(part)).strip("-.") for part in parts]
    return f"{RUNS}/{'-'.join([*(name for name in names if name), data_stem(data)])}"


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes (hex), read in 1 MiB blocks: how runs record the weights
    they read (an encoder, a teacher)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
