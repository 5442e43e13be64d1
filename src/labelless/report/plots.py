"""Figures of a run: training curves from the CSV log and a 2-D map of the embeddings."""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after matplotlib.use: the backend must be chosen first

from labelless.atomic import write_atomic

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

    ``train/*`` and ``semi/*`` columns (``train/loss`` and ``train/lr`` first; semi-supervised
    runs log mask ratio and pseudo-label accuracy per step) are plotted against ``step``,
    ``monitor/*``, ``saa/*``, ``early_stop/*`` and ``curation/*`` columns against ``epoch``;
    columns with no finite value are left out.
    """
    with open(csv_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    columns = list(rows[0].keys()) if rows else []
    first = [c for c in ("train/loss", "train/lr") if c in columns]
    per_step, per_epoch = ("train/", "semi/"), ("monitor/", "saa/", "early_stop/", "curation/")
    train = first + sorted(c for c in columns if c.startswith(per_step) and c not in first)
    monitor = sorted(c for c in columns if c.startswith(per_epoch))
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


def save_figure(figure, path: Path) -> Path:
    """Write ``figure`` as a PNG to ``path`` atomically and close it."""
    try:
        return write_atomic(
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
    coordinates: np.ndarray,
    labels: np.ndarray,
    class_names: list[str] | None,
    path: Path,
    title: str = "PCA to 2-D",
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
    pca = title.startswith("PCA")
    axes.set_xlabel("PC 1" if pca else "dimension 1")
    axes.set_ylabel("PC 2" if pca else "dimension 2")
    axes.set_title(f"Test embeddings, {title}", fontsize=10)
    if len(classes) <= 40:
        axes.legend(fontsize=7, markerscale=1.5, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return save_figure(figure, path)


TSNE_MAX_POINTS = 3000
MAP_METHODS = ("auto", "pca", "tsne", "umap")


def _umap_available() -> bool:
    try:
        import umap  # noqa: F401  (optional dependency)
    except ImportError:
        return False
    return True


def choose_map_method(num_points: int, method: str = "auto") -> str:
    """``auto``: UMAP when ``umap-learn`` is installed (McInnes et al. 2018), else t-SNE (van der
    Maaten & Hinton 2008) for at most ``TSNE_MAX_POINTS`` points, else PCA."""
    if method not in MAP_METHODS:
        raise ValueError(f"unknown map method {method!r}; choose one of {MAP_METHODS}")
    if method != "auto":
        return method
    if _umap_available():
        return "umap"
    return "tsne" if num_points <= TSNE_MAX_POINTS else "pca"


def embedding_map_2d(embeddings: np.ndarray, method: str = "auto") -> tuple[np.ndarray, str]:
    """``([N, 2] float32 coordinates, method used)``; t-SNE and UMAP start from the embeddings
    L2-normalised (cosine geometry, as the kNN protocol) and are seeded."""
    embeddings = np.asarray(embeddings, dtype=np.float64).reshape(len(embeddings), -1)
    chosen = choose_map_method(len(embeddings), method)
    if chosen == "pca" or len(embeddings) < 5 or embeddings.shape[1] < 2:
        return embedding_map(embeddings), "pca"
    unit = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    if chosen == "umap":
        import umap

        reducer = umap.UMAP(n_components=2, metric="cosine", random_state=0)
        return reducer.fit_transform(unit).astype(np.float32), "umap"
    from sklearn.manifold import TSNE

    perplexity = float(min(30.0, (len(unit) - 1) / 3))
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=0)
    return tsne.fit_transform(unit).astype(np.float32), "tsne"


def thumbnail(image: np.ndarray) -> tuple[np.ndarray, str | None]:
    """``uint8 [C, H, W]`` as something ``imshow`` draws: ``[H, W]`` grey or ``[H, W, 3]``."""
    image = np.asarray(image)
    if image.shape[0] == 1:
        return image[0], "gray"
    return np.moveaxis(image[:3], 0, -1), None


def class_name(label: int, class_names: list[str] | None) -> str:
    if class_names and 0 <= label < len(class_names):
        return str(class_names[label])
    return str(int(label))


def plot_retrieval_grid(
    query_images: np.ndarray,
    query_labels: np.ndarray,
    neighbour_images: np.ndarray,
    neighbour_labels: np.ndarray,
    class_names: list[str] | None,
    path: Path,
) -> Path:
    """One row per query (``[Q, C, H, W]``) then its ``K`` nearest training images
    (``[Q, K, C, H, W]``); a neighbour's title is green when its class matches the query's."""
    rows, cols = neighbour_images.shape[:2]
    figure, axes = plt.subplots(
        rows, cols + 1, figsize=(1.2 * (cols + 1), 1.3 * rows), squeeze=False, layout="constrained"
    )
    for row in range(rows):
        items = [(query_images[row], int(query_labels[row]), None)]
        items += [
            (neighbour_images[row, col], int(neighbour_labels[row, col]), int(query_labels[row]))
            for col in range(cols)
        ]
        for col, (image, label, query_label) in enumerate(items):
            picture, cmap = thumbnail(image)
            ax = axes[row, col]
            ax.imshow(picture, cmap=cmap, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            name = class_name(label, class_names)
            if query_label is None:
                ax.set_title(f"query: {name}", fontsize=7, fontweight="bold")
            else:
                colour = "tab:green" if label == query_label else "tab:red"
                ax.set_title(name, fontsize=7, color=colour)
    return save_figure(figure, path)


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """``[C, C]`` counts: row = true class, column = predicted class (labels < 0 ignored)."""
    labels, predictions = np.asarray(labels).astype(np.int64), np.asarray(predictions)
    keep = labels >= 0
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels[keep], predictions[keep].astype(np.int64)), 1)
    return matrix


def plot_confusion(matrix: np.ndarray, class_names: list[str] | None, path: Path) -> Path:
    """The confusion matrix normalised per true class, counts written in the cells when small."""
    num_classes = len(matrix)
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    side = min(3.0 + 0.45 * num_classes, 12.0)
    figure, axes = plt.subplots(figsize=(side + 1.0, side), layout="constrained")
    image = axes.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    names = [class_name(i, class_names) for i in range(num_classes)]
    axes.set_xticks(range(num_classes), names, rotation=90, fontsize=7)
    axes.set_yticks(range(num_classes), names, fontsize=7)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    if num_classes <= 20:
        for (row, col), count in np.ndenumerate(matrix):
            colour = "white" if rates[row, col] > 0.5 else "black"
            axes.text(col, row, str(count), ha="center", va="center", fontsize=6, color=colour)
    figure.colorbar(image, ax=axes, fraction=0.046, label="fraction of the true class")
    axes.set_title("kNN confusion matrix (test)", fontsize=10)
    return save_figure(figure, path)


def plot_per_class(accuracy: np.ndarray, class_names: list[str] | None, path: Path) -> Path:
    """Horizontal bars of per-class accuracy."""
    num_classes = len(accuracy)
    figure, axes = plt.subplots(figsize=(5.0, 1.0 + 0.28 * num_classes), layout="constrained")
    names = [class_name(i, class_names) for i in range(num_classes)]
    axes.barh(range(num_classes), accuracy, color="tab:blue")
    axes.set_yticks(range(num_classes), names, fontsize=7)
    axes.invert_yaxis()
    axes.set_xlim(0, 1)
    axes.set_xlabel("kNN accuracy")
    axes.grid(axis="x", alpha=0.3)
    axes.set_title("Per-class accuracy (test)", fontsize=10)
    return save_figure(figure, path)


def bar_chart_png(names: list[str], values: list[float], title: str, flagged: list[bool]) -> bytes:
    """PNG bytes of horizontal bars (best first as given); flagged bars are hatched."""
    import io

    figure, axes = plt.subplots(figsize=(6.0, 0.9 + 0.35 * len(names)), layout="constrained")
    colours = ["tab:orange" if flag else "tab:blue" for flag in flagged]
    bars = axes.barh(range(len(names)), values, color=colours)
    for bar, flag in zip(bars, flagged, strict=True):
        if flag:
            bar.set_hatch("//")
    for position, value in enumerate(values):
        axes.text(value, position, f" {value:.4g}", va="center", fontsize=7)
    axes.set_yticks(range(len(names)), names, fontsize=7)
    axes.invert_yaxis()
    axes.set_title(title, fontsize=10)
    axes.grid(axis="x", alpha=0.3)
    stream = io.BytesIO()
    try:
        figure.savefig(stream, format="png", dpi=100, metadata={"Software": None})
    finally:
        plt.close(figure)
    return stream.getvalue()


def plot_sparsity(
    sparsities: list[float],
    accuracies: dict[str, list[float]],
    knees: dict[str, float | None],
    path: Path,
) -> Path:
    """Accuracy against sparsity, one line per protocol, the knee marked by a dashed line."""
    figure, axes = plt.subplots(figsize=(5.0, 3.4), layout="constrained")
    for position, (name, values) in enumerate(accuracies.items()):
        colour = f"C{position}"
        axes.plot(sparsities, values, marker="o", markersize=3, color=colour, label=name)
        knee = knees.get(name)
        if knee is not None:
            axes.axvline(knee, color=colour, linestyle="--", alpha=0.7, label=f"{name} knee {knee}")
    axes.set_xlabel("sparsity (fraction of conv/linear weights set to zero)")
    axes.set_ylabel("test accuracy")
    axes.set_title("One-shot global magnitude pruning", fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    return save_figure(figure, path)
