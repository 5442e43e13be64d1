"""Figures of a run: training curves from the CSV log and a 2-D map of the embeddings."""

from __future__ import annotations

import csv
import math
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after matplotlib.use: the backend must be chosen first

MAX_MAP_POINTS = 20_000


@dataclass
class Curve:
    """One logged metric: ``y`` against ``x`` (the step or the epoch)."""

    name: str
    x_label: str
    x: np.ndarray
    y: np.ndarray


def _number(cell: str | None) -> float | None:
    try:
        value = float(cell) if cell not in (None, "") else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def read_curves(csv_path: Path) -> list[Curve]:
    """Curves from a Lightning ``CSVLogger`` file, whose rows leave unlogged columns empty.

    ``train/*`` columns (``train/loss`` and ``train/lr`` first) are plotted against ``step``,
    ``monitor/*`` columns against ``epoch``; columns with no finite value are left out.
    """
    with open(csv_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    columns = list(rows[0].keys()) if rows else []
    first = [c for c in ("train/loss", "train/lr") if c in columns]
    train = first + sorted(c for c in columns if c.startswith("train/") and c not in first)
    monitor = sorted(c for c in columns if c.startswith("monitor/"))
    curves = []
    for names, x_label in ((train, "step"), (monitor, "epoch")):
        for name in names:
            points = []
            for index, row in enumerate(rows):
                y = _number(row.get(name))
                x = _number(row.get(x_label))
                if y is not None:
                    points.append((index if x is None else x, y))
            if points:
                x, y = np.array(sorted(points)).T
                curves.append(Curve(name, x_label, x, y))
    return curves


def figure_name(name: str) -> str:
    """A file-safe PNG name for a metric name: ``train/loss`` -> ``train_loss.png``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") + ".png"


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write(stream)`` on a temporary file beside ``path``, then rename it to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
        os.chmod(temporary, 0o644)  # mkstemp makes it owner-only; a report is meant to be shared
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def save_figure(figure, path: Path) -> Path:
    """Write ``figure`` as a PNG to ``path`` atomically and close it."""
    try:
        return atomic_write(
            path,
            lambda stream: figure.savefig(
                stream, format="png", dpi=100, metadata={"Software": None}
            ),
        )
    finally:
        plt.close(figure)


def plot_curve(curve: Curve, path: Path) -> Path:
    """A small line plot of one curve, saved to ``path``."""
    figure, axes = plt.subplots(figsize=(4.2, 3.0), layout="constrained")
    axes.plot(curve.x, curve.y, marker="o" if len(curve.x) <= 20 else None, markersize=3)
    axes.set_xlabel(curve.x_label)
    axes.set_title(curve.name, fontsize=10)
    if curve.name.endswith("/lr"):
        axes.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    axes.grid(alpha=0.3)
    return save_figure(figure, path)


def embedding_map(embeddings: np.ndarray) -> np.ndarray:
    """``[N, 2]`` float32 coordinates of ``[N, D]`` embeddings: their first two principal axes."""
    from sklearn.decomposition import PCA

    embeddings = np.asarray(embeddings, dtype=np.float64).reshape(len(embeddings), -1)
    if embeddings.shape[1] < 2 or len(embeddings) < 2:
        coordinates = np.zeros((len(embeddings), 2))
        coordinates[:, : embeddings.shape[1]] = embeddings[:, :2] - embeddings[:, :2].mean(0)
        return coordinates.astype(np.float32)
    return PCA(n_components=2, random_state=0).fit_transform(embeddings).astype(np.float32)


def plot_embedding_map(
    coordinates: np.ndarray, labels: np.ndarray, class_names: list[str] | None, path: Path
) -> Path:
    """Scatter of the 2-D map, one colour per class (grey for -1 = unlabelled), with a legend."""
    if len(coordinates) > MAX_MAP_POINTS:
        keep = np.random.default_rng(0).choice(len(coordinates), MAX_MAP_POINTS, replace=False)
        coordinates, labels = coordinates[keep], labels[keep]
    figure, axes = plt.subplots(figsize=(6.0, 4.8), layout="constrained")
    classes = np.unique(labels)
    colours = plt.get_cmap("tab20" if len(classes) > 10 else "tab10")
    size = 12 if len(coordinates) <= 2000 else 3
    for position, label in enumerate(classes):
        mask = labels == label
        if label < 0:
            name, colour = "unlabelled", "0.7"
        else:
            name = class_names[label] if class_names and label < len(class_names) else str(label)
            colour = colours(position % colours.N)
        axes.scatter(*coordinates[mask].T, s=size, color=colour, label=name, alpha=0.8, lw=0)
    axes.set_xlabel("PC 1")
    axes.set_ylabel("PC 2")
    axes.set_title("Embeddings, first two principal components", fontsize=10)
    if len(classes) <= 40:
        axes.legend(fontsize=7, markerscale=1.5, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return save_figure(figure, path)
