"""The layer rules of docs/architecture.md, checked on the source: the import graph of
``labelless`` (module-level and function-level imports) has no cycle, no import goes up a layer,
no module imports another module's private names, no verb branches on a modality's name, and
files stay readable (api.py under 350 lines, every module under 500)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"

# Lowest first; a module may import its own layer and the layers below. The longest matching
# prefix decides a module's layer (``labelless.report.compare`` is a verb, ``labelless.report``
# draws). Keep in step with the "Layers" section of docs/architecture.md.
LAYERS: dict[str, int] = {
    # 0: importable from anywhere
    "labelless.errors": 0,
    "labelless.config": 0,
    "labelless.config_sections": 0,
    "labelless.runtime": 0,
    "labelless.atomic": 0,
    "labelless.runfiles": 0,
    "labelless.progress": 0,
    "labelless.semi.config": 0,
    # 1: data
    "labelless.data": 1,
    # 2: building blocks
    "labelless.nn": 2,
    "labelless.augment": 2,
    "labelless.backbones": 2,
    # 3: methods and semi-supervised algorithms (no Lightning)
    "labelless.methods": 3,
    "labelless.semi.algorithms": 3,
    "labelless.semi.losses": 3,
    "labelless.semi.splits": 3,
    "labelless.semi.state": 3,
    "labelless.semi.saa": 3,
    "labelless.semi.shift": 3,
    # 4: evaluation and reports (no Lightning)
    "labelless.evaluate": 4,
    "labelless.report": 4,
    "labelless.semi.metrics": 4,
    "labelless.prune": 4,
    "labelless.finetune": 4,
    "labelless.curate": 4,
    "labelless.audit": 4,
    # 5: training (Lightning)
    "labelless.train": 5,
    "labelless.semi.module": 5,
    "labelless.semi.loader": 5,
    "labelless.semi.evaluation": 5,
    # 6: runs and verbs
    "labelless.lifecycle": 6,
    "labelless.rundir": 6,
    "labelless.encoders": 6,
    "labelless.modalities": 6,
    "labelless.verbs": 6,
    "labelless.report.compare": 6,
    "labelless.semi.api": 6,
    "labelless.semi.graph_run": 6,
    "labelless.semi": 6,
    "labelless.api": 6,
    "labelless.demo": 6,
    # 7: entry points
    "labelless.cli": 7,
    "labelless": 7,
}
# Where a modality's name may be compared: its own descriptor modules and the data formats.
MODALITY_HOMES = ("labelless/modalities/", "labelless/data/formats.py")
MODALITY_BRANCH = re.compile(r"modality\s*(?:==|!=|\bin\b|\bnot in\b)\s*[\(\[{]?\s*[\"']")


def _modules() -> dict[str, Path]:
    modules = {}
    for path in (SRC / "labelless").rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        parts = parts[:-1] if parts[-1] == "__init__" else parts
        modules[".".join(parts)] = path
    return modules


MODULES = _modules()


def _imports(name: str, path: Path) -> list[tuple[str, ast.ImportFrom | ast.Import]]:
    """``(imported module, node)`` for every import of a labelless module in ``path``."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        for target in targets:
            if target in MODULES and target != name and not name.startswith(f"{target}."):
                found.append((target, node))
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def layer(name: str) -> int:
    matches = [prefix for prefix in LAYERS if name == prefix or name.startswith(f"{prefix}.")]
    if not matches:
        raise AssertionError(f"{name} has no layer: add it to LAYERS and docs/architecture.md")
    return LAYERS[max(matches, key=len)]


def _cycles() -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in {target for target, _ in GRAPH[node]}:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in MODULES:
        if node not in index:
            visit(node)
    return found


def test_the_graph_is_read():
    """The checks below see real edges (a parser that found none would pass them all)."""
    assert len(MODULES) > 100
    edges = {(name, target) for name, targets in GRAPH.items() for target, _ in targets}
    assert ("labelless.api", "labelless.verbs.pretrain") in edges
    assert ("labelless.train.callbacks", "labelless.evaluate.rankme") in edges  # in a function


def test_no_import_cycles():
    assert _cycles() == []


def test_no_import_goes_up_a_layer():
    upward = [
        f"{name} (layer {layer(name)}) imports {target} (layer {layer(target)}), line {node.lineno}"
        for name, targets in GRAPH.items()
        for target, node in targets
        if layer(target) > layer(name)
    ]
    assert upward == []


def test_no_module_imports_private_names_of_another():
    private = [
        f"{name} imports {node.module}.{alias.name}"
        for name, targets in GRAPH.items()
        for _, node in targets
        if isinstance(node, ast.ImportFrom) and node.module and node.module != name
        for alias in node.names
        if alias.name.startswith("_") and not alias.name.startswith("__")
    ]
    assert sorted(set(private)) == []


def test_no_modality_branches_outside_the_modality_modules():
    branches = []
    for path in MODULES.values():
        relative = path.relative_to(SRC).as_posix()
        if relative.startswith(MODALITY_HOMES):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if MODALITY_BRANCH.search(line):
                branches.append(f"{relative}:{number}: {line.strip()}")
    assert branches == []


@pytest.mark.parametrize(
    "line, branch",
    [
        ('if train.modality == "image":', True),
        ("if meta.modality != 'tabular':", True),
        ('if modality in ("image", None):', True),
        ("if METHODS[name].modality == train.modality:", False),
        ("modality = get_modality(name)", False),
    ],
)
def test_the_branch_pattern(line, branch):
    assert bool(MODALITY_BRANCH.search(line)) is branch


def test_files_stay_readable():
    assert len((SRC / "labelless" / "api.py").read_text().splitlines()) < 350
    long = {
        path.relative_to(SRC).as_posix(): count
        for path in MODULES.values()
        if (count := len(path.read_text().splitlines())) > 500
    }
    assert long == {}
