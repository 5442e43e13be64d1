"""``audit.html``: what ``labelless audit`` found, as one self-contained page: the verdict and
numbers of each check, then its figures (inverted triggers, adversarial examples, score
distributions, flagged training images; PNGs inlined)."""

from __future__ import annotations

import base64
import io
import json
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import torch

from labelless.atomic import write_text_atomic
from labelless.report.curation import image_rows_png
from labelless.report.html import STYLE

NEUTRAL = "black"


def _uint8(images: torch.Tensor) -> np.ndarray:
    return images.detach().clamp(0, 1).mul(255).round().to(torch.uint8).cpu().numpy()


def _png(figure) -> bytes:
    import matplotlib.pyplot as plt

    stream = io.BytesIO()
    try:
        figure.savefig(stream, format="png", dpi=90, metadata={"Software": None})
    finally:
        plt.close(figure)
    return stream.getvalue()


def trigger_rows_png(triggers: dict[str, Any], examples: torch.Tensor) -> bytes:
    """One row per encoder: its inverted mask, pattern, mask x pattern and ``examples``
    (float ``[K, C, H, W]``) stamped with the trigger."""
    rows = []
    for name, trigger in triggers.items():
        channels = trigger.pattern.shape[0]
        mask = trigger.mask.expand(channels, *trigger.mask.shape)
        shown = [mask, trigger.pattern, mask * trigger.pattern, *trigger.apply(examples)]
        captions = ["mask", "pattern", "stamp"] + ["triggered"] * len(examples)
        pictures = _uint8(torch.stack(shown))
        items = [(p, c, NEUTRAL) for p, c in zip(pictures, captions, strict=True)]
        rows.append((f"{name[-28:]}\nscore {trigger.score:.4f}", items))
    return image_rows_png(rows)


def score_bars_png(record: dict[str, Any]) -> bytes:
    """Trigger scores of the audited encoder and the references, with the flagging threshold."""
    import matplotlib.pyplot as plt

    names = ["audited encoder", *record["references"]]
    values = [record["score"], *record["references"].values()]
    figure, axes = plt.subplots(figsize=(6.5, 0.9 + 0.4 * len(names)), layout="constrained")
    colours = ["tab:red" if record["flagged"] else "tab:blue"] + ["tab:grey"] * (len(names) - 1)
    axes.barh(range(len(names)), values, color=colours)
    axes.axvline(record["threshold"], color="black", linestyle="--", linewidth=1)
    for position, value in enumerate(values):
        axes.text(value, position, f" {value:.4f}", va="center", fontsize=7)
    axes.set_yticks(range(len(names)), [n[-40:] for n in names], fontsize=7)
    axes.invert_yaxis()
    axes.set_xlabel("mask L1 / image area of the smallest trigger", fontsize=8)
    return _png(figure)


def adversarial_rows_png(
    clean: torch.Tensor, sets: dict[str, torch.Tensor], delta: torch.Tensor
) -> bytes:
    """A row per image set (the first ``len(clean)`` images of each) and a last row with the
    universal perturbation stretched to the full grey range."""
    count = len(clean)
    rows = [
        (name, [(p, "", NEUTRAL) for p in _uint8(images[:count])]) for name, images in sets.items()
    ]
    stretched = (delta - delta.min()) / (delta.max() - delta.min()).clamp_min(1e-12)
    rows.append(("universal\n(stretched)", [(_uint8(stretched[None])[0], "", NEUTRAL)]))
    return image_rows_png(rows)


def histogram_png(series: dict[str, np.ndarray], xlabel: str, title: str = "") -> bytes:
    """Overlaid histograms of each named series of scores (same bins)."""
    import matplotlib.pyplot as plt

    values = {k: np.asarray(v, dtype=np.float64) for k, v in series.items() if len(v)}
    low = min(float(v.min()) for v in values.values())
    high = max(float(v.max()) for v in values.values())
    bins = np.linspace(low, high if high > low else low + 1e-6, 41)
    figure, axes = plt.subplots(figsize=(6.5, 3.2), layout="constrained")
    for name, value in values.items():
        axes.hist(value, bins=bins, alpha=0.5, label=f"{name} (n={len(value)})")
    axes.set_xlabel(xlabel, fontsize=8)
    axes.set_ylabel("images", fontsize=8)
    axes.legend(fontsize=7)
    if title:
        axes.set_title(title, fontsize=9)
    return _png(figure)


def shift_histogram_png(shifts: dict[str, torch.Tensor]) -> bytes:
    return histogram_png(
        {name: value.numpy() for name, value in shifts.items()},
        "1 - cos(f(x), f(x + perturbation))",
    )


def image_grid_png(images: np.ndarray, captions: list[str], columns: int = 8) -> bytes:
    """``uint8 [N, C, H, W]`` images in rows of ``columns``, each with its caption."""
    rows = []
    for start in range(0, len(images), columns):
        part = zip(images[start : start + columns], captions[start : start + columns], strict=True)
        rows.append(("", [(image, caption, NEUTRAL) for image, caption in part]))
    return image_rows_png(rows)


def _figure(png: bytes, caption: str) -> str:
    encoded = base64.b64encode(png).decode("ascii")
    return (
        f'<figure><img alt="{escape(caption)}" src="data:image/png;base64,{encoded}">'
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


def headline(name: str, result: dict[str, Any]) -> str:
    """One line per check for the summary table."""
    if not isinstance(result, dict):
        return str(result)
    if "verdict" in result:
        return str(result["verdict"])
    if name == "adversarial":
        pgd = result["embedding_shift"]["pgd"]
        return f"PGD moves {pgd['success_rate']:.1%} of images off their own embedding"
    for key in ("auroc", "flagged_count", "summary"):
        if key in result:
            return f"{key}: {result[key]}"
    return ""


def write_audit_page(
    path: str | Path, record: dict[str, Any], figures: list[tuple[str, bytes, str]]
) -> Path:
    """Write ``audit.html`` for ``record`` (``audit.json``'s content) and ``figures``:
    ``(check name, PNG bytes, caption)``."""
    checks = record["checks"]
    summary = "".join(
        f"<tr><th>{escape(name)}</th><td>{escape(headline(name, result))}</td></tr>"
        for name, result in checks.items()
    )
    encoder = record["encoder"]
    sections = []
    for name, result in checks.items():
        shown = "".join(_figure(png, caption) for check, png, caption in figures if check == name)
        numbers = json.dumps(result, indent=2, default=float)
        sections.append(
            f"<h2>{escape(name)}</h2><div class='grid'>{shown}</div>"
            f"<details><summary>numbers</summary><pre>{escape(numbers)}</pre></details>"
        )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>labelless audit</title>"
        f"<style>{STYLE}</style></head><body><h1>Audit of {escape(str(encoder.get('name')))}</h1>"
        f"<p>data {escape(record['data'])}; {record['shadow_size']} shadow images, "
        f"{record['evaluated_images']} evaluated; weights SHA-256 "
        f"{escape(str(encoder.get('weights_sha256', '-')))}. What a clean verdict does not prove: "
        "docs/security.md.</p>"
        f"<table>{summary}</table>{''.join(sections)}</body></html>\n"
    )
    path = Path(path)
    write_text_atomic(path, page)
    return path
