"""``curate.html``: what ``labelless curate`` kept and dropped, as one self-contained page
(numbers, then image grids of the duplicate groups, of samples per cluster and of dropped
samples; PNGs inlined)."""

from __future__ import annotations

import base64
import io
import json
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from labelless.atomic import write_text_atomic
from labelless.report import plots
from labelless.report.html import STYLE

GRID_COLUMNS = 8
GRID_ROWS = 10
KEPT, DROPPED = "tab:green", "tab:red"


def image_rows_png(rows: list[tuple[str, list[tuple[np.ndarray, str, str]]]]) -> bytes:
    """PNG bytes of a grid: one row per ``(title, [(uint8 [C, H, W] image, caption, colour)])``,
    the title left of the row."""
    import matplotlib.pyplot as plt

    columns = max(len(items) for _, items in rows)
    figure, axes = plt.subplots(
        len(rows), columns, figsize=(1.1 * columns + 1.2, 1.25 * len(rows)), squeeze=False,
        layout="constrained",
    )  # fmt: skip
    for row, (title, items) in enumerate(rows):
        for col in range(columns):
            ax = axes[row, col]
            ax.set_xticks([])
            ax.set_yticks([])
            if col >= len(items):
                ax.axis("off")
                continue
            image, caption, colour = items[col]
            picture, cmap = plots.thumbnail(image)
            ax.imshow(picture, cmap=cmap, interpolation="nearest")
            ax.set_title(caption, fontsize=7, color=colour)
        axes[row, 0].set_ylabel(title, fontsize=7, rotation=0, ha="right", va="center")
    stream = io.BytesIO()
    try:
        figure.savefig(stream, format="png", dpi=90, metadata={"Software": None})
    finally:
        plt.close(figure)
    return stream.getvalue()


def _figure(png: bytes, caption: str) -> str:
    encoded = base64.b64encode(png).decode("ascii")
    return (
        f'<figure><img alt="{escape(caption)}" src="data:image/png;base64,{encoded}">'
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


def _item(images: np.ndarray, index: int, kept: np.ndarray) -> tuple[np.ndarray, str, str]:
    chosen = bool(kept[index])
    return images[index], f"#{index} {'kept' if chosen else 'dropped'}", KEPT if chosen else DROPPED


def _duplicates(images, groups: list[np.ndarray], kept: np.ndarray) -> str:
    if not groups:
        return "<p>no near-duplicate groups (or dedup not asked for: --dedup)</p>"
    largest = sorted(groups, key=lambda members: (-len(members), int(members[0])))[:GRID_ROWS]
    rows = [
        (f"group of {len(members)}", [_item(images, int(i), kept) for i in members[:GRID_COLUMNS]])
        for members in largest
    ]
    caption = f"the {len(rows)} largest of {len(groups)} groups; each keeps its first member"
    return _figure(image_rows_png(rows), caption)


def _clusters(images, assignment: np.ndarray, kept: np.ndarray, seed: int) -> str:
    rng = np.random.default_rng(seed)
    counts = np.bincount(assignment)
    rows = []
    for cluster in np.argsort(-counts, kind="stable")[:GRID_ROWS]:
        members = np.flatnonzero(assignment == cluster)
        shown = np.sort(rng.permutation(members)[:GRID_COLUMNS])
        title = f"cluster {cluster}\n{int(kept[members].sum())}/{len(members)} kept"
        rows.append((title, [_item(images, int(i), kept) for i in shown]))
    caption = f"a seeded random sample of the {len(rows)} largest k-means clusters of the pool"
    return _figure(image_rows_png(rows), caption)


def _dropped(images, kept: np.ndarray, seed: int) -> str:
    dropped = np.flatnonzero(~kept)
    if len(dropped) == 0:
        return "<p>nothing was dropped</p>"
    shown = np.sort(np.random.default_rng(seed).permutation(dropped)[: 4 * GRID_COLUMNS])
    rows = [
        ("", [_item(images, int(i), kept) for i in shown[start : start + GRID_COLUMNS]])
        for start in range(0, len(shown), GRID_COLUMNS)
    ]
    return _figure(image_rows_png(rows), f"{len(shown)} of {len(dropped)} dropped samples")


def _summary(record: dict[str, Any]) -> str:
    diversity = record["diversity"]
    before, after = diversity["clusters_before"], diversity["clusters_after"]
    duplicates = record.get("duplicates") or {}
    rows = [
        ("strategy", record["strategy"]),
        ("pool size", record["pool_size"]),
        ("kept", f"{record['kept_size']} (asked {record['requested_size']})"),
        ("near-duplicate groups", duplicates.get("groups", "not searched")),
        ("Vendi score, pool -> kept", f"{diversity['vendi_before']} -> {diversity['vendi_after']}"),
        ("cluster entropy, pool -> kept", f"{before['entropy']} -> {after['entropy']}"),
        ("largest / smallest cluster", f"{before['max_min_ratio']} -> {after['max_min_ratio']}"),
        ("encoder SHA-256", record["encoder"].get("weights_sha256", "-")),
    ]
    cells = "".join(
        f'<tr><th>{escape(name)}</th><td class="value">{escape(str(value))}</td></tr>'
        for name, value in rows
    )
    return f"<table>{cells}</table><p>{escape(diversity['definition'])}</p>"


def write_curation_page(
    path: str | Path,
    record: dict[str, Any],
    images: np.ndarray | None,
    groups: list[np.ndarray],
    assignment: np.ndarray,
    kept: np.ndarray,
    *,
    seed: int = 0,
) -> Path:
    """Write ``curate.html`` for a curation ``record`` (``curate.json``'s content). ``images``:
    the pool's ``uint8 [N, C, H, W]`` pixels (None: no grids, data that is not images);
    ``groups``: duplicate groups (sample indices, kept one first); ``assignment [N]``: k-means
    cluster of each pool sample; ``kept``: indices of the kept samples."""
    mask = np.zeros(record["pool_size"], dtype=bool)
    mask[np.asarray(kept, dtype=np.int64)] = True
    sections = [("Summary", _summary(record))]
    if images is None:
        sections.append(("Samples", "<p>no image grids: the data is not images</p>"))
    else:
        sections += [
            ("Near-duplicate groups", _duplicates(images, groups, mask)),
            ("Samples per cluster", _clusters(images, np.asarray(assignment), mask, seed)),
            ("Dropped samples", _dropped(images, mask, seed)),
        ]
    text = json.dumps(record, indent=2, sort_keys=True, default=str)
    sections.append(("Record (curate.json)", f"<pre>{escape(text)}</pre>"))
    body = "".join(f"<section><h2>{escape(t)}</h2>{html}</section>" for t, html in sections)
    title = escape(f"labelless curate: {record['strategy']} on {record['data']}")
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title><style>{STYLE}</style></head>"
        f"<body><h1>{title}</h1>{body}</body></html>\n"
    )
    return write_text_atomic(path, page)
