"""``report.html``: one self-contained page (inline CSS, PNGs inlined as base64) per run."""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from labelless.atomic import write_atomic
from labelless.report import plots
from labelless.runfiles import RunFiles

MAP_TITLES = {"pca": "PCA to 2-D", "tsne": "t-SNE to 2-D", "umap": "UMAP to 2-D"}
NOT_RECORDED = '<p class="missing">not recorded</p>'
MAP_FILE = "embedding_map.npz"

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
h1 { font-size: 1.5em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; }
table { border-collapse: collapse; } td, th { padding: .25em .8em; border-bottom: 1px solid #eee; }
th { text-align: left; } td.value { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f6f6f6; padding: .8em; overflow-x: auto; font-size: .85em; }
.grid { display: flex; flex-wrap: wrap; gap: 1em; } figure { margin: 0; }
figcaption { font-size: .8em; color: #555; text-align: center; } .missing { color: #999; }
"""


@dataclass
class RetrievalExamples:
    """A few test queries and their nearest training images, as ``uint8`` pixels.

    ``query_images [Q, C, H, W]``, ``query_labels [Q]``, ``neighbour_images [Q, K, C, H, W]``,
    ``neighbour_labels [Q, K]`` (-1 = unlabelled).
    """

    query_images: np.ndarray
    query_labels: np.ndarray
    neighbour_images: np.ndarray
    neighbour_labels: np.ndarray


def _as_numpy(array) -> np.ndarray:
    if hasattr(array, "detach"):  # a torch tensor, without importing torch here
        array = array.detach().cpu().numpy()
    return np.asarray(array)


def _image(path: Path, caption: str) -> str:
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    return (
        f'<figure><img alt="{escape(caption)}" src="data:image/png;base64,{encoded}">'
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


def _format(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _flatten(
    metrics: dict, prefix: str = ""
) -> tuple[list[tuple[str, Any]], list[tuple[str, Any]]]:
    """(scalar rows, protocol blocks) of a metrics dict; nested dicts get dotted names."""
    rows, protocols = [], []
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and "protocol" in str(key):
            protocols.append((name, value))
        elif isinstance(value, dict):
            nested_rows, nested_protocols = _flatten(value, f"{name}.")
            rows += nested_rows
            protocols += nested_protocols
        elif isinstance(value, (int, float, str)) and not isinstance(value, bool):
            rows.append((name, value))
    return rows, protocols


def _metrics_section(run_dir: Path) -> str:
    path = RunFiles(run_dir).metrics_json
    if not path.is_file():
        return NOT_RECORDED
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        return (
            f'<p class="missing">not recorded (metrics.json unreadable: {escape(str(error))})</p>'
        )
    if not isinstance(metrics, dict):
        return '<p class="missing">not recorded (metrics.json is not a JSON object)</p>'
    rows, protocols = _flatten(metrics)
    parts = []
    if rows:
        cells = "".join(
            f'<tr><th>{escape(name)}</th><td class="value">{escape(_format(value))}</td></tr>'
            for name, value in rows
        )
        parts.append(f"<table>{cells}</table>")
    for name, protocol in protocols:
        text = json.dumps(protocol, indent=2, sort_keys=True, default=str)
        parts.append(f"<h3>{escape(name)}</h3><pre>{escape(text)}</pre>")
    return "".join(parts) or NOT_RECORDED


def _curves_section(run_dir: Path, figures: Path) -> str:
    path = RunFiles(run_dir).metrics_csv
    if not path.is_file():
        return NOT_RECORDED
    try:
        curves = plots.read_curves(path)
    except (OSError, ValueError) as error:
        return f'<p class="missing">not recorded (metrics.csv unreadable: {escape(str(error))})</p>'
    if not curves:
        return NOT_RECORDED
    images = [
        _image(plots.plot_curve(curve, figures / plots.figure_name(curve.name)), curve.name)
        for curve in curves
    ]
    return f'<div class="grid">{"".join(images)}</div>'


def _embedding_section(figures: Path, embeddings, labels, class_names, map_method: str) -> str:
    map_path = figures / MAP_FILE
    if embeddings is not None:
        embeddings = _as_numpy(embeddings)
        coordinates, used = plots.embedding_map_2d(embeddings, map_method)
        labels = np.full(len(embeddings), -1) if labels is None else _as_numpy(labels)
        labels = labels.astype(np.int64).reshape(-1)
        names = np.array([str(name) for name in class_names or []], dtype=str)
        arrays = {
            "coordinates": coordinates,
            "labels": labels,
            "class_names": names,
            "method": np.array(used),
        }
        write_atomic(map_path, lambda stream: np.savez(stream, **arrays))
    elif map_path.is_file():
        with np.load(map_path) as saved:
            coordinates, labels = saved["coordinates"], saved["labels"]
            class_names = class_names or [str(name) for name in saved["class_names"]]
            used = str(saved["method"]) if "method" in saved.files else "pca"
    else:
        return NOT_RECORDED
    names = [str(name) for name in class_names] if class_names else None
    title = MAP_TITLES[used]
    figure = plots.plot_embedding_map(
        coordinates, labels, names, figures / "embedding_map.png", title=title
    )
    caption = f"{len(coordinates)} test embeddings, {title}"
    return _image(figure, caption)


def _saved_or(path: Path, caption: str) -> str:
    return _image(path, caption) if path.is_file() else NOT_RECORDED


def _classes_section(figures: Path, labels, predictions, class_names) -> str:
    """Per-class accuracy and the confusion matrix of the kNN predictions on the test split."""
    confusion_png, per_class_png = figures / "confusion.png", figures / "per_class.png"
    if predictions is None or labels is None:
        if confusion_png.is_file() and per_class_png.is_file():
            return f'<div class="grid">{_image(per_class_png, "per-class accuracy")}' + (
                f"{_image(confusion_png, 'confusion matrix')}</div>"
            )
        return NOT_RECORDED
    labels = _as_numpy(labels).astype(np.int64).reshape(-1)
    predictions = _as_numpy(predictions).astype(np.int64).reshape(-1)
    num_classes = max(len(class_names or []), int(max(labels.max(), predictions.max())) + 1)
    matrix = plots.confusion_matrix(labels, predictions, num_classes)
    totals = matrix.sum(axis=1)
    accuracy = np.divide(np.diag(matrix), np.maximum(totals, 1)).astype(np.float64)
    names = [str(name) for name in class_names] if class_names else None
    rows = "".join(
        f'<tr><th>{escape(plots.class_name(i, names))}</th><td class="value">{int(totals[i])}'
        f'</td><td class="value">{accuracy[i]:.4f}</td></tr>'
        for i in range(num_classes)
        if totals[i] > 0
    )
    header = "<tr><th>class</th><th>test samples</th><th>kNN accuracy</th></tr>"
    table = f"<table>{header}{rows}</table>"
    images = _image(plots.plot_per_class(accuracy, names, per_class_png), "per-class accuracy")
    images += _image(plots.plot_confusion(matrix, names, confusion_png), "confusion matrix")
    return f'<div class="grid">{images}</div>{table}'


def _retrieval_section(figures: Path, retrieval: RetrievalExamples | None, class_names) -> str:
    path = figures / "retrieval.png"
    if retrieval is None:
        return _saved_or(path, "test queries and their nearest training images")
    names = [str(name) for name in class_names] if class_names else None
    plots.plot_retrieval_grid(
        retrieval.query_images,
        retrieval.query_labels,
        retrieval.neighbour_images,
        retrieval.neighbour_labels,
        names,
        path,
    )
    k = retrieval.neighbour_images.shape[1]
    return _image(path, f"test queries (left) and their {k} most cosine-similar training images")


def _results_section(run_dir: Path, figures: Path) -> str:
    """prune.json and finetune.json, when the run has them."""
    parts = []
    for name in ("finetune.json", "prune.json"):
        path = run_dir / name
        if not path.is_file():
            continue
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            parts.append(f'<p class="missing">{name} unreadable: {escape(str(error))}</p>')
            continue
        text = json.dumps(record, indent=2, sort_keys=True, default=str)
        parts.append(f"<h3>{escape(name)}</h3><pre>{escape(text)}</pre>")
        if name == "prune.json" and (figures / "prune.png").is_file():
            parts.append(_image(figures / "prune.png", "accuracy against sparsity"))
    return "".join(parts) or NOT_RECORDED


def _config_section(run_dir: Path) -> str:
    path = RunFiles(run_dir).config_file
    if not path.is_file():
        return NOT_RECORDED
    return f"<pre>{escape(path.read_text(errors='replace'))}</pre>"


def write_report(
    run_dir: str | os.PathLike,
    *,
    embeddings=None,
    labels=None,
    class_names: list[str] | None = None,
    predictions=None,
    retrieval: RetrievalExamples | None = None,
    map_method: str = "auto",
) -> Path:
    """Build ``run_dir/report.html`` and ``run_dir/figures/*.png`` from what the run recorded.

    Reads ``config.yaml``, ``metrics.json``, ``logs/metrics.csv``, ``finetune.json`` and
    ``prune.json`` when present; a missing one makes its section say "not recorded".
    ``embeddings: [N, D]`` test embeddings (numpy or torch) with optional ``labels: [N]``
    (-1 = unlabelled) are mapped to 2-D (``map_method``: ``auto`` = UMAP when installed, else
    t-SNE for small sets, else PCA; see ``plots.choose_map_method``) and saved to
    ``figures/embedding_map.npz``, which later calls without embeddings reuse.
    ``predictions: [N]`` (the kNN classes of the same test samples) give the per-class accuracy
    and the confusion matrix; ``retrieval`` the nearest-neighbour grid. Figures of an earlier
    call are reused when their inputs are not given again. Every image is inlined: the page
    needs no network and no JavaScript. Returns the path of ``report.html``.
    """
    run_dir = Path(run_dir)
    figures = RunFiles(run_dir).figures
    sections = [
        ("Final metrics", _metrics_section(run_dir)),
        ("Training curves", _curves_section(run_dir, figures)),
        ("Embedding map", _embedding_section(figures, embeddings, labels, class_names, map_method)),
        ("Per-class accuracy", _classes_section(figures, labels, predictions, class_names)),
        ("Nearest-neighbour retrieval", _retrieval_section(figures, retrieval, class_names)),
        ("Fine-tuning and pruning", _results_section(run_dir, figures)),
        ("Config", _config_section(run_dir)),
    ]
    body = "".join(f"<section><h2>{escape(title)}</h2>{html}</section>" for title, html in sections)
    title = escape(f"labelless run: {run_dir.resolve().name}")
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title><style>{STYLE}</style></head>"
        f"<body><h1>{title}</h1>{body}</body></html>\n"
    )
    path = RunFiles(run_dir).report
    write_atomic(path, lambda stream: stream.write(page.encode("utf-8")))
    return path
