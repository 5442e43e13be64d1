"""What each recorded metric is: a catalog filled by the modules that compute the metrics.

A module that writes a number into ``metrics.json`` declares it next to the code that computes
it, at import time::

    declare_metric("knn_top1", "kNN top-1 accuracy", family="knn", charted=True)
    declare_metric("few_shot_{shots}_top1", "{shots}-shot top-1 accuracy", family="few_shot")

``metric_info(name)`` and ``order_metrics(names)`` answer for any recorded name, exact or
matching a pattern (``{field}`` matches a run of letters, digits and dots, e.g. ``1`` or
``0.01``). Readers such as ``labelless compare`` derive their columns, directions and protocol
checks from here, so a metric is described once, where it is produced.

A new producer declares its metrics in its own module and adds that module's dotted name to
``PRODUCERS`` below: the catalog imports every producer on its first lookup, so a reader never
has to import them itself. Producers must not import Lightning (``labelless compare`` imports
them); a Lightning module keeps its names in a plain module beside it (``semi/metrics.py``).
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, replace

# Modules that declare metrics, imported on the first lookup. The catalog's order (hence compare's
# columns) is this order, then each module's order of declaration, whatever the import order.
PRODUCERS = (
    "labelless.evaluate.protocol",
    "labelless.evaluate.regression",
    "labelless.evaluate.timeseries",
    "labelless.evaluate.tabular",
    "labelless.evaluate.graphs",
    "labelless.evaluate.graph_sets",
    "labelless.semi.metrics",
)

_FIELD = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class MetricInfo:
    """One metric (or a family of names, ``name`` being a pattern such as
    ``few_shot_{shots}_top1``).

    - ``label``: for people; may use the pattern's fields (``"{shots}-shot top-1"``).
    - ``family``: the protocol family. Two numbers of a metric are comparable only when the
      settings of its family agree; ``settings`` names the ``protocol`` entries that hold them
      (default: the entry named like the family, e.g. ``protocol["knn"]``) and ``fitted`` the keys
      inside them that are results of a fit (a chosen weight decay), never compared.
    - ``higher_is_better``; ``best_at``: when set, closer to this value is better (alpha-ReQ: 1).
    - ``charted``: worth a bar chart; ``shown``: False for a companion number (the std over
      few-shot draws) that is not a column of its own.
    - ``declared``: False for the record ``metric_info`` makes up for an undeclared name.
    """

    name: str
    label: str
    family: str
    higher_is_better: bool = True
    best_at: float | None = None
    charted: bool = False
    shown: bool = True
    settings: tuple[str, ...] = ()
    fitted: tuple[str, ...] = ()
    declared: bool = True

    @property
    def direction(self) -> str:
        """``"higher is better"``, ``"lower is better"`` or ``"closer to X is better"``."""
        if self.best_at is not None:
            return f"closer to {self.best_at:g} is better"
        return "higher is better" if self.higher_is_better else "lower is better"

    def sort_key(self, value: float) -> float:
        """Smaller is better: for ranking values of this metric."""
        if self.best_at is not None:
            return abs(value - self.best_at)
        return -value if self.higher_is_better else value


_DECLARED: list[MetricInfo] = []
_RANKS: list[tuple[int, int]] = []  # per declaration: (position of its module in PRODUCERS, seq)
_PATTERNS: list[tuple[re.Pattern[str], int]] = []  # compiled name pattern -> index in _DECLARED
_loaded = False


def _compile(name: str) -> re.Pattern[str] | None:
    if not _FIELD.search(name):
        return None
    parts = _FIELD.split(name)  # literal, field, literal, field, ..., literal
    regex = "".join(
        re.escape(part) if i % 2 == 0 else f"(?P<{part}>[A-Za-z0-9.]+)"
        for i, part in enumerate(parts)
    )
    return re.compile(regex)


def declare_metric(
    name: str,
    label: str,
    family: str,
    *,
    higher_is_better: bool = True,
    best_at: float | None = None,
    charted: bool = False,
    shown: bool = True,
    settings: tuple[str, ...] | None = None,
    fitted: tuple[str, ...] = (),
) -> str:
    """Declare the metric ``name`` (or pattern) from the module that computes it; returns
    ``name``. Declaring the same record again (a module reloaded) is a no-op; another record
    under a declared name is an error. Declarations from a module outside ``PRODUCERS`` (a test)
    come after the producers' in the catalog order."""
    info = MetricInfo(
        name,
        label,
        family,
        higher_is_better=higher_is_better,
        best_at=best_at,
        charted=charted,
        shown=shown,
        settings=tuple(settings) if settings is not None else (family,),
        fitted=tuple(fitted),
    )
    for existing in _DECLARED:
        if existing.name == name:
            if existing != info:
                raise ValueError(f"metric {name!r} is already declared as {existing}")
            return name
    module = sys._getframe(1).f_globals.get("__name__", "")
    rank = PRODUCERS.index(module) if module in PRODUCERS else len(PRODUCERS)
    pattern = _compile(name)
    if pattern is not None:
        _PATTERNS.append((pattern, len(_DECLARED)))
    _RANKS.append((rank, len(_DECLARED)))
    _DECLARED.append(info)
    return name


def _load_producers() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in PRODUCERS:
            importlib.import_module(module)


def _lookup(name: str) -> tuple[tuple[int, int], MetricInfo] | None:
    """(catalog position, record) of ``name``: an exact declaration first, else the first
    pattern it matches in catalog order."""
    _load_producers()
    for index, info in enumerate(_DECLARED):
        if info.name == name:
            return _RANKS[index], info
    for pattern, index in sorted(_PATTERNS, key=lambda item: _RANKS[item[1]]):
        match = pattern.fullmatch(name)
        if match:
            info = _DECLARED[index]
            label = info.label.format(**match.groupdict())
            return _RANKS[index], replace(info, name=name, label=label)
    return None


def metric_info(name: str) -> MetricInfo:
    """The declared record of ``name`` (a pattern's record with this name and its label filled
    in), or for an undeclared name a stand-in: ``declared=False``, higher is better, its own
    family (no settings to compare), not charted."""
    found = _lookup(name)
    if found is not None:
        return found[1]
    return MetricInfo(name, name, family=name, settings=(), declared=False)


def order_metrics(names: Iterable[str]) -> list[str]:
    """``names`` in catalog order (the names of one pattern, and the undeclared names after all
    declared ones, keep the order given)."""
    names = list(dict.fromkeys(names))
    positions = {}
    for given, name in enumerate(names):
        found = _lookup(name)
        positions[name] = (0, *found[0], given) if found is not None else (1, 0, 0, given)
    return sorted(names, key=positions.__getitem__)


def declared_metrics() -> list[MetricInfo]:
    """Every declared record (patterns unexpanded), in catalog order."""
    _load_producers()
    return [_DECLARED[i] for i in sorted(range(len(_DECLARED)), key=_RANKS.__getitem__)]
