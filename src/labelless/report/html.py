"""``report.html``: one self-contained page (inline CSS, PNGs inlined as base64) per run."""

from __future__ import annotations

import base64
import json
import os
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from labelless.report import plots

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
    path = run_dir / "metrics.json"
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
    path = run_dir / "logs" / "metrics.csv"
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


def _embedding_section(figures: Path, embeddings, labels, class_names) -> str:
    map_path = figures / MAP_FILE
    if embeddings is not None:
        embeddings = _as_numpy(embeddings)
        coordinates = plots.embedding_map(embeddings)
        labels = np.full(len(embeddings), -1) if labels is None else _as_numpy(labels)
        labels = labels.astype(np.int64).reshape(-1)
        names = np.array([str(name) for name in class_names or []], dtype=str)
        arrays = {"coordinates": coordinates, "labels": labels, "class_names": names}
        plots.atomic_write(map_path, lambda stream: np.savez(stream, **arrays))
    elif map_path.is_file():
        with np.load(map_path) as saved:
            coordinates, labels = saved["coordinates"], saved["labels"]
            class_names = class_names or [str(name) for name in saved["class_names"]]
    else:
        return NOT_RECORDED
    names = [str(name) for name in class_names] if class_names else None
    figure = plots.plot_embedding_map(coordinates, labels, names, figures / "embedding_map.png")
    caption = f"{len(coordinates)} embeddings, PCA to 2-D"
    return _image(figure, caption)


def _config_section(run_dir: Path) -> str:
    path = run_dir / "config.yaml"
    if not path.is_file():
        return NOT_RECORDED
    return f"<pre>{escape(path.read_text(errors='replace'))}</pre>"


def write_report(
    run_dir: str | os.PathLike,
    *,
    embeddings=None,
    labels=None,
    class_names: list[str] | None = None,
) -> Path:
    """Build ``run_dir/report.html`` and ``run_dir/figures/*.png`` from what the run recorded.

    Reads ``config.yaml``, ``metrics.json`` and ``logs/metrics.csv`` when present; a missing one
    makes its section say "not recorded". ``embeddings: [N, D]`` (numpy or torch) with optional
    ``labels: [N]`` (-1 = unlabelled) are mapped to 2-D by PCA and saved to
    ``figures/embedding_map.npz``, which later calls without embeddings reuse. The page needs no
    network and no JavaScript. Returns the path of ``report.html``.
    """
    run_dir = Path(run_dir)
    figures = run_dir / "figures"
    sections = [
        ("Final metrics", _metrics_section(run_dir)),
        ("Training curves", _curves_section(run_dir, figures)),
        ("Embedding map", _embedding_section(figures, embeddings, labels, class_names)),
        ("Config", _config_section(run_dir)),
    ]
    body = "".join(f"<section><h2>{escape(title)}</h2>{html}</section>" for title, html in sections)
    title = escape(f"labelless run: {run_dir.resolve().name}")
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title><style>{STYLE}</style></head>"
        f"<body><h1>{title}</h1>{body}</body></html>\n"
    )
    path = run_dir / "report.html"
    plots.atomic_write(path, lambda stream: stream.write(page.encode("utf-8")))
    return path
