"""``compare.html``: runs and encoders side by side on the same protocols, in one page.

The "battle of the backbones" view (Goldblum et al. 2023, "Battle of the Backbones: A
Large-Scale Comparison of Pretrained Models across Computer Vision Tasks"): one table per
evaluation (dataset x preprocessing), one row per encoder, sortable, plus bar charts. A number is
only comparable with another made under the same protocol, so every metric column checks the
protocols of its cells; cells whose protocol differs from the column's most common one are
flagged, with the differing keys spelt out, instead of being ranked silently.

What a metric is (its columns' order, direction, protocol family, whether it is charted) comes
from ``labelless.evaluate.catalog``, where the code that computes each metric declares it; a
number no producer declared is still shown, after the declared ones, marked and assumed
higher-is-better. The catalog (which imports torch) is imported when a page is written, not
with this module.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labelless.atomic import check_can_create, write_atomic
from labelless.errors import ConfigError, did_you_mean
from labelless.report import plots
from labelless.runfiles import RunFiles

if TYPE_CHECKING:
    from labelless.evaluate.catalog import MetricInfo

DEFAULT_RANK_BY = "knn_top1"

SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th[data-column]").forEach(function (header) {
    header.addEventListener("click", function () {
      var column = Number(header.dataset.column);
      var better = header.dataset.better === "asc" ? "asc" : "desc";  // the first click
      var descending = header.dataset.order === better ? better === "asc" : better === "desc";
      table.querySelectorAll("th[data-column]").forEach(function (h) { h.dataset.order = ""; });
      header.dataset.order = descending ? "desc" : "asc";
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[column].dataset.value, y = b.cells[column].dataset.value;
        var nx = parseFloat(x), ny = parseFloat(y);
        if (isNaN(nx) && isNaN(ny)) { return descending ? y.localeCompare(x) : x.localeCompare(y); }
        if (isNaN(nx)) { return 1; }
        if (isNaN(ny)) { return -1; }
        return descending ? ny - nx : nx - ny;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 80em; color: #222; }
table { border-collapse: collapse; margin: .5em 0 1em; }
td, th { padding: .25em .7em; border-bottom: 1px solid #eee; }
th { text-align: left; } th[data-column] { cursor: pointer; user-select: none; }
th[data-order="desc"]::after { content: " \\25BC"; }
th[data-order="asc"]::after { content: " \\25B2"; }
td.value { text-align: right; font-variant-numeric: tabular-nums; }
td.mismatch { background: #fff0d9; } .warning { color: #a05a00; font-weight: bold; }
.grid { display: flex; flex-wrap: wrap; gap: 1em; } figure { margin: 0; }
figcaption { font-size: .8em; color: #555; text-align: center; } code { font-size: .9em; }
.legend { font-size: .85em; color: #555; }
"""


@dataclass
class Entry:
    """One run directory or ``evaluate --out`` folder: its evaluations by key."""

    name: str
    path: Path
    architecture: str
    evaluations: dict[str, dict[str, Any]] = field(default_factory=dict)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _final_key(metrics: dict[str, Any]) -> str:
    protocol = metrics.get("protocol") or {}
    split = str(protocol.get("test_split") or protocol.get("split") or "eval")
    return f"{protocol.get('data') or split.split('/')[0]} [native]"


def read_entry(path: str | Path) -> Entry:
    """The evaluations recorded in ``path/metrics.json``: a run's final metrics (any run kind:
    every top-level number, keyed ``"<data> [native]"`` after the split they were scored on)
    and everything ``labelless evaluate`` added under ``evaluations`` (which wins for the same
    key)."""
    path = Path(path)
    file = RunFiles(path).metrics_json
    if not file.is_file():
        raise ConfigError(
            f"{str(path)!r} has no metrics.json: pass run directories or folders written by "
            f"`labelless evaluate ... --out DIR` (or evaluate the encoder first)"
        )
    try:
        metrics = json.loads(file.read_text())
    except (OSError, ValueError) as error:
        raise ConfigError(
            f"cannot read {str(file)!r} ({error}); evaluate the encoder again to rewrite it"
        ) from error
    if not isinstance(metrics, dict):
        raise ConfigError(f"{str(file)!r} is not a JSON object; evaluate the encoder again")
    evaluations: dict[str, dict[str, Any]] = {}
    if any(_is_number(value) for value in metrics.values()):
        evaluations[_final_key(metrics)] = metrics
    evaluations.update(metrics.get("evaluations") or {})
    architecture = str((metrics.get("encoder") or {}).get("architecture", ""))
    encoder_json = RunFiles(path).encoder_meta
    if not architecture and encoder_json.is_file():
        try:
            architecture = str(json.loads(encoder_json.read_text()).get("architecture", ""))
        except (OSError, ValueError):
            architecture = ""
    return Entry(path.resolve().name, path, architecture or "?", evaluations)


def _policy(preprocessing: dict[str, Any]) -> dict[str, Any]:
    """The preprocessing as a rule: each encoder's own size / normalisation, or a forced one."""
    forced_size = preprocessing.get("input_size_overridden") or (
        preprocessing.get("input_size_source") == "override"
    )
    normalize = preprocessing.get("normalize", "encoder")
    policy: dict[str, Any] = {
        "input_size": preprocessing.get("input_size") if forced_size else "encoder's own",
        "normalize": normalize,
    }
    if normalize == "explicit":
        policy["mean"], policy["std"] = preprocessing.get("mean"), preprocessing.get("std")
    return policy


def _strip(value: Any, fitted: tuple[str, ...]) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v, fitted) for k, v in value.items() if k not in fitted}
    return value


def protocol_signature(key: str, metrics: dict[str, Any], info: MetricInfo) -> dict[str, Any]:
    """What must be equal for the metric ``info`` of two encoders to be compared: the data and
    its sample counts, the preprocessing rule, and the settings of the metric's protocol family
    (the ``protocol`` entries the catalog names, minus fitted values such as the chosen weight
    decay)."""
    protocol = metrics.get("protocol") or {}
    signature = {
        "evaluation": key,
        "train_samples": protocol.get("train_samples"),
        "test_samples": protocol.get("test_samples"),
        "preprocessing": _policy(protocol.get("preprocessing") or {}),
    }
    for setting in info.settings:
        signature[setting] = _strip(protocol.get(setting), info.fitted)
    return signature


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for k, v in value.items():
            flat.update(_flatten(v, f"{prefix}{k}."))
        return flat
    return {prefix.rstrip("."): value}


def _differences(signature: dict[str, Any], reference: dict[str, Any]) -> str:
    ours, theirs = _flatten(signature), _flatten(reference)
    keys = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
    return "; ".join(f"{k}: {ours.get(k)!r} here vs {theirs.get(k)!r}" for k in keys)


@dataclass
class Column:
    info: MetricInfo
    cells: dict[str, tuple[float | None, str]]  # entry name -> (value, difference or "")

    @property
    def metric(self) -> str:
        return self.info.name

    @property
    def mismatched(self) -> bool:
        return any(note for _, note in self.cells.values())


def _column(key: str, info: MetricInfo, entries: list[Entry]) -> Column:
    values, signatures = {}, {}
    for entry in entries:
        metrics = entry.evaluations.get(key)
        value = metrics.get(info.name) if metrics else None
        if _is_number(value):
            values[entry.name] = float(value)
            signatures[entry.name] = protocol_signature(key, metrics, info)
    texts = {name: json.dumps(sig, sort_keys=True, default=str) for name, sig in signatures.items()}
    common = Counter(texts.values()).most_common(1)
    reference_text = common[0][0] if common else ""
    reference = json.loads(reference_text) if reference_text else {}
    cells: dict[str, tuple[float | None, str]] = {}
    for entry in entries:
        if entry.name not in values:
            cells[entry.name] = (None, "")
            continue
        same = texts[entry.name] == reference_text
        note = "" if same else _differences(signatures[entry.name], reference)
        cells[entry.name] = (values[entry.name], note)
    return Column(info, cells)


def _columns(key: str, entries: list[Entry]) -> list[Column]:
    """A column per number recorded under ``key`` by any entry, in catalog order (undeclared
    names last); companion numbers the catalog does not show (a std over draws) are left out."""
    from labelless.evaluate.catalog import metric_info, order_metrics

    names = [
        name
        for entry in entries
        for name, value in (entry.evaluations.get(key) or {}).items()
        if _is_number(value)
    ]
    infos = [metric_info(name) for name in order_metrics(names)]
    return [_column(key, info, entries) for info in infos if info.shown]


def _ranked(entries: list[Entry], column: Column | None) -> list[Entry]:
    if column is None:
        return list(entries)

    def order(entry: Entry) -> tuple[int, float]:
        value, _ = column.cells[entry.name]
        return (1, 0.0) if value is None else (0, column.info.sort_key(value))

    return sorted(entries, key=order)


def _marker(info: MetricInfo) -> str:
    """A header's mark: undeclared (?), lower is better (down arrow), best at a value."""
    if not info.declared:
        return " ?"
    if info.best_at is not None:
        return f" &#8594;{info.best_at:g}"
    return "" if info.higher_is_better else " &#8595;"


def _header(index: int, column: Column) -> str:
    info = column.info
    title = f"{info.label}; {info.direction}"
    if not info.declared:
        title = "not declared by the code that recorded it: assumed higher is better"
    better = "" if info.higher_is_better or info.best_at is not None else ' data-better="asc"'
    flag = " &#9888;" if column.mismatched else ""
    return (
        f'<th data-column="{index}"{better} title="{escape(title)}">{escape(info.name)}'
        f"{_marker(info)}{flag}</th>"
    )


def _legend(columns: list[Column]) -> str:
    marks = []
    if any(not c.info.declared for c in columns):
        marks.append(
            "? not declared by the code that recorded it, assumed higher is better (declare it "
            "with labelless.evaluate.catalog.declare_metric)"
        )
    if any(c.info.declared and not c.info.higher_is_better for c in columns):
        marks.append("&#8595; lower is better")
    if any(c.info.declared and c.info.best_at is not None for c in columns):
        marks.append("&#8594;x closer to x is better")
    return f'<p class="legend">{"; ".join(marks)}.</p>' if marks else ""


def _table(table_id: str, entries: list[Entry], columns: list[Column]) -> str:
    head = "".join(
        f'<th data-column="{i}">{h}</th>' for i, h in enumerate(("rank", "encoder", "architecture"))
    ) + "".join(_header(i, column) for i, column in enumerate(columns, start=3))
    rows = []
    for rank, entry in enumerate(entries, start=1):
        cells = [
            f'<td class="value" data-value="{rank}">{rank}</td>',
            f'<td data-value="{escape(entry.name)}" title="{escape(str(entry.path))}">'
            f"{escape(entry.name)}</td>",
            f'<td data-value="{escape(entry.architecture)}">{escape(entry.architecture)}</td>',
        ]
        for column in columns:
            value, note = column.cells[entry.name]
            if value is None:
                cells.append('<td class="value" data-value="">&#8212;</td>')
            elif note:
                cells.append(
                    f'<td class="value mismatch" data-value="{value!r}" '
                    f'title="different protocol: {escape(note)}">{value:.4f} &#9888;</td>'
                )
            else:
                cells.append(f'<td class="value" data-value="{value!r}">{value:.4f}</td>')
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return (
        f'<table class="sortable" id="{table_id}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _mismatch_notes(entries: list[Entry], columns: list[Column]) -> str:
    notes = [
        f"<li><code>{escape(column.metric)}</code> of <b>{escape(name)}</b>: {escape(note)}</li>"
        for column in columns
        for name, (_, note) in column.cells.items()
        if note
    ]
    if not notes:
        return "<p>Every number in this table was computed under the same protocol.</p>"
    return (
        '<p class="warning">&#9888; Protocols differ: the flagged numbers were computed under '
        "another protocol than the rest of their column and are not comparable with it. "
        "Re-evaluate those encoders with the same settings (e.g. <code>labelless evaluate "
        "RUN --data NAME</code> with the same --k, --input-size, --normalize).</p>"
        f"<ul>{''.join(notes)}</ul>"
    )


def _charts(key: str, entries: list[Entry], columns: list[Column]) -> str:
    figures = []
    for column in columns:
        if not column.info.charted:
            continue
        ranked = [e for e in _ranked(entries, column) if column.cells[e.name][0] is not None]
        if not ranked:
            continue
        png = plots.bar_chart_png(
            [e.name for e in ranked],
            [column.cells[e.name][0] for e in ranked],
            f"{key}: {column.metric}",
            [bool(column.cells[e.name][1]) for e in ranked],
        )
        encoded = base64.b64encode(png).decode("ascii")
        caption = f"{column.metric}" + (
            " (hatched: different protocol)" if column.mismatched else ""
        )
        figures.append(
            f'<figure><img alt="{escape(key)} {escape(column.metric)}" '
            f'src="data:image/png;base64,{encoded}"><figcaption>{escape(caption)}</figcaption>'
            "</figure>"
        )
    return f'<div class="grid">{"".join(figures)}</div>'


def _section(index: int, key: str, entries: list[Entry], rank_by: str) -> str:
    columns = _columns(key, entries)
    by = next((c for c in columns if c.metric == rank_by), columns[0] if columns else None)
    ranked = _ranked(entries, by)
    shown = [e for e in ranked if key in e.evaluations]
    missing = any(key not in e.evaluations for e in ranked)
    ranked_by = (
        f"ranked by {by.metric} ({by.info.direction})" if by is not None else "no metric to rank by"
    )
    parts = [
        f"<h2>{escape(key)}</h2><p>{escape(ranked_by)}; click a column to sort.</p>",
        _table(f"table-{index}", shown, columns),
        _legend(columns),
        _mismatch_notes(shown, columns),
    ]
    if missing:
        elsewhere = "; ".join(
            f"{e.name} (has: {', '.join(sorted(e.evaluations)) or 'nothing'})"
            for e in entries
            if key not in e.evaluations
        )
        parts.append(
            f'<p class="warning">&#9888; Not evaluated under this protocol, so not ranked here: '
            f"{escape(elsewhere)}. Evaluate them with the same --data, --input-size and "
            "--normalize to compare.</p>"
        )
    parts.append(_charts(key, shown, columns))
    return f"<section>{''.join(parts)}</section>"


def unique_names(entries: list[Entry]) -> None:
    """Make entry names unique by prefixing the parent folder where two share a name."""
    counts = Counter(entry.name for entry in entries)
    for entry in entries:
        if counts[entry.name] > 1:
            entry.name = f"{entry.path.resolve().parent.name}/{entry.name}"
    seen: Counter[str] = Counter()
    for entry in entries:
        seen[entry.name] += 1
        if seen[entry.name] > 1:
            entry.name = f"{entry.name} ({seen[entry.name]})"


def _check_rank_by(rank_by: str, entries: list[Entry]) -> None:
    """``rank_by`` must be a metric some evaluation recorded (the default may be absent: each
    table then ranks by its first column)."""
    names = sorted(
        {
            metric
            for entry in entries
            for record in entry.evaluations.values()
            for metric, value in record.items()
            if _is_number(value)
        }
    )
    if rank_by == DEFAULT_RANK_BY or rank_by in names:
        return
    raise ConfigError(
        f"--rank-by {rank_by!r} is not a metric of these runs{did_you_mean(rank_by, names)}; "
        "they recorded: "
        f"{', '.join(names)}"
    )


def write_comparison(
    paths: list[str | Path], out: str | Path, *, rank_by: str = DEFAULT_RANK_BY
) -> tuple[Path, list[Entry]]:
    """Write the comparison page of ``paths`` (run directories / evaluation folders) to ``out``
    atomically; returns its path and the entries read. Nothing is written when an input is bad."""
    if not paths:
        raise ConfigError("compare needs at least one run directory; pass RUN_DIR...")
    entries = [read_entry(path) for path in paths]
    unique_names(entries)
    keys = sorted({key for entry in entries for key in entry.evaluations})
    if not keys:
        raise ConfigError(
            "none of the runs has recorded metrics to compare: evaluate them first with "
            "`labelless evaluate RUN_DIR --data NAME`"
        )
    _check_rank_by(rank_by, entries)
    check_can_create(Path(out), "--out")
    listing = "".join(
        f"<tr><td>{escape(e.name)}</td><td>{escape(e.architecture)}</td>"
        f"<td><code>{escape(str(e.path))}</code></td></tr>"
        for e in entries
    )
    sections = "".join(_section(i, key, entries, rank_by) for i, key in enumerate(keys))
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>labelless: comparison of {len(entries)} encoders</title>"
        f"<style>{STYLE}</style></head><body>"
        f"<h1>Comparison of {len(entries)} encoders</h1>"
        "<p>One table per evaluation (data [preprocessing]). [native] means each encoder at its "
        "own pretraining input size and normalisation.</p>"
        "<table><thead><tr><th>encoder</th><th>architecture</th><th>path</th></tr></thead>"
        f"<tbody>{listing}</tbody></table>{sections}"
        f"<script>{SCRIPT}</script></body></html>\n"
    )
    path = Path(out)
    write_atomic(path, lambda stream: stream.write(page.encode("utf-8")))
    return path, entries
