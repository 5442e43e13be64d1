"""Graph datasets: the built-in node- and graph-classification benchmarks under the data root
(``$LABELLESS_DATA``), returned as ``Graph`` containers (``labelless.data.graph``). User files,
networkx and PyTorch Geometric graphs are read by ``labelless.data.graph_files``.

Node level (``NodeDataset``: one ``Graph`` with node labels, ``y = -1`` for unlabelled):

- ``cora``, ``citeseer``: ``planetoid/<name>.npz`` (Yang et al. 2016), bag-of-words features
  (raw 0/1), edges in both directions, the public split (20 labels per class / 500 / 1000).
- ``pubmed``: ``planetoid/pubmed_structure_only.npz``. **No features are shipped**: ``x`` is
  structural, ``log(1 + degree)`` followed by a one-hot degree bucket (``degree_features``);
  ``meta["features"]`` says so. Numbers on it are not comparable with PubMed papers.
- ``cornell``, ``texas``, ``wisconsin``, ``film``: ``heterophily_graphs/<name>.npz`` (Pei et
  al. 2020, Geom-GCN), the 10 fixed 60/20/20 splits. The files list directed edges; they are
  **symmetrised** here (``meta["symmetrised"]``), as GCN-style models assume.

Graph level (``GraphSetDataset``: one ``Graph`` per graph, ``y`` its label ``[1]``):
``tu:MUTAG``, ``tu:PROTEINS``, ``tu:NCI1``, ``tu:PTC``, ``tu:ENZYMES``, ``tu:IMDBBINARY``,
``tu:IMDBMULTI`` from ``tu_graphs/<NAME>/<NAME>.txt`` (the GIN / DGCNN text format) with the 10
folds of Xu et al. 2019 (``10fold_idx``). Node features are one-hot node tags; the IMDB sets
have no tags, so their features are one-hot degrees capped at ``DEGREE_CAP`` (400, GraphMAE's
cap; the IMDB sets stay below it). Labels are mapped to ``0..C-1`` in sorted order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from labelless.data.graph import Graph
from labelless.data.paths import data_root
from labelless.errors import DataError, unknown_name

DEGREE_CAP = 400
DEGREE_BUCKETS = 10
PLANETOID = {"cora": "cora.npz", "citeseer": "citeseer.npz", "pubmed": "pubmed_structure_only.npz"}
HETEROPHILY = ("cornell", "texas", "wisconsin", "film")
TU_SETS = ("MUTAG", "PROTEINS", "NCI1", "PTC", "ENZYMES", "IMDBBINARY", "IMDBMULTI")
GRAPH_DATASETS = (*PLANETOID, *HETEROPHILY, *(f"tu:{name}" for name in TU_SETS))


@dataclass(frozen=True)
class NodeDataset:
    """One graph for node classification. ``graph.y``: int64 ``[N]`` class per node, -1 =
    unlabelled (or ``None``); ``splits``: one dict per split (one for Planetoid, ten for the
    Geom-GCN sets, none for user graphs) mapping ``"train"``, ``"val"``, ``"test"`` to int64 node
    indices; ``meta``: how the graph was built (feature kind, symmetrisation, edge fixes)."""

    graph: Graph
    splits: list[dict[str, Tensor]]
    num_classes: int
    name: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GraphSetDataset:
    """Graphs for graph classification: each ``Graph`` has ``y`` int64 ``[1]``; ``folds``: the
    (train indices, test indices) pairs into ``graphs`` of the shipped cross-validation."""

    graphs: list[Graph]
    folds: list[tuple[Tensor, Tensor]]
    num_classes: int
    name: str
    meta: dict[str, Any] = field(default_factory=dict)

    def labels(self) -> Tensor:
        """int64 ``[num_graphs]``: the label of every graph."""
        return torch.cat([g.y.reshape(-1) for g in self.graphs])


# ---------------------------------------------------------------------------------------------
# Shared edge and feature helpers (also used by graph_files)


def coalesce_edges(
    edge_index: np.ndarray, num_nodes: int, *, symmetrise: bool
) -> tuple[np.ndarray, int]:
    """``[2, E]`` int64 -> the unique edges sorted by (source, target), with every reverse
    edge added when ``symmetrise``; also the number of duplicate edges dropped (before the
    reverse edges were added)."""
    src, dst = np.asarray(edge_index[0], np.int64), np.asarray(edge_index[1], np.int64)
    key = src * num_nodes + dst
    unique = np.unique(key)
    duplicates = int(key.size - unique.size)
    if symmetrise:
        s, d = unique // num_nodes, unique % num_nodes
        unique = np.unique(np.concatenate([unique, d * num_nodes + s]))
    return np.stack([unique // num_nodes, unique % num_nodes]), duplicates


def degrees(edge_index: np.ndarray, num_nodes: int) -> np.ndarray:
    """int64 ``[N]``: edges leaving each node (for a symmetric edge list, the degree)."""
    return np.bincount(np.asarray(edge_index[0], np.int64), minlength=num_nodes)


def degree_features(edge_index: np.ndarray, num_nodes: int) -> np.ndarray:
    """float32 ``[N, 1 + DEGREE_BUCKETS]``: ``log(1 + degree)`` and a one-hot bucket (0, 1, 2,
    3-4, 5-8, ..., powers of two; the last bucket holds every degree above 128). For graphs
    without node features."""
    degree = degrees(edge_index, num_nodes)
    bucket = np.zeros(num_nodes, np.int64)
    positive = degree > 0
    bucket[positive] = 1 + np.ceil(np.log2(degree[positive])).astype(np.int64)
    bucket = np.minimum(bucket, DEGREE_BUCKETS - 1)
    x = np.zeros((num_nodes, 1 + DEGREE_BUCKETS), np.float32)
    x[:, 0] = np.log1p(degree)
    x[np.arange(num_nodes), 1 + bucket] = 1.0
    return x


def one_hot(codes: np.ndarray, width: int) -> np.ndarray:
    x = np.zeros((codes.size, width), np.float32)
    x[np.arange(codes.size), codes] = 1.0
    return x


def dense_from_csr(data, indices, indptr, shape) -> np.ndarray:
    """float32 dense ``[rows, cols]`` from CSR arrays (numpy only)."""
    shape = tuple(int(s) for s in shape)
    x = np.zeros(shape, np.float32)
    rows = np.repeat(np.arange(shape[0]), np.diff(np.asarray(indptr)))
    x[rows, np.asarray(indices)] = data
    return x


def _file(root: Path | None, relative: str, name: str) -> Path:
    path = (data_root() if root is None else Path(root)) / relative
    if not path.is_file():
        raise DataError(
            f"graph dataset {name!r}: {str(path)!r} not found; set LABELLESS_DATA to the folder "
            f"holding {relative.split('/')[0]}/ (the shared offline data), or pass root="
        )
    return path


# ---------------------------------------------------------------------------------------------
# Node classification


def _node_dataset(x, y, edge_index, splits, name: str, meta: dict[str, Any]) -> NodeDataset:
    y = np.asarray(y, np.int64)
    graph = Graph(
        x=torch.from_numpy(np.ascontiguousarray(x, np.float32)),
        edge_index=torch.from_numpy(np.ascontiguousarray(edge_index, np.int64)),
        y=torch.from_numpy(y),
    ).check()
    meta = {"num_nodes": graph.num_nodes, "num_edges": graph.num_edges, **meta}
    return NodeDataset(graph, splits, int(y.max()) + 1, name, meta)


def load_planetoid(name: str, root: Path | None = None) -> NodeDataset:
    """``cora``, ``citeseer`` (features) or ``pubmed`` (structural features only); the public
    split. CiteSeer's 15 isolated test-range nodes without features have label -1."""
    path = _file(root, f"planetoid/{PLANETOID[name]}", name)
    with np.load(path) as d:
        y, edge_index = d["y"], d["edge_index"]
        split = {
            k: torch.from_numpy(d[f"{k}_idx"].astype(np.int64)) for k in ("train", "val", "test")
        }
        meta: dict[str, Any] = {"source": "Planetoid (Yang et al. 2016), public split"}
        if "x_data" in d.files:
            x = dense_from_csr(d["x_data"], d["x_indices"], d["x_indptr"], d["x_shape"])
            meta["features"] = "bag-of-words, raw 0/1"
        else:
            x = degree_features(edge_index, len(y))
            meta["features"] = (
                "structural only (no features shipped): log(1 + degree) and a one-hot degree "
                f"bucket of {DEGREE_BUCKETS}; not comparable with published PubMed numbers"
            )
    return _node_dataset(x, y, edge_index, [split], name, meta)


def load_heterophily(name: str, root: Path | None = None) -> NodeDataset:
    """Cornell, Texas, Wisconsin or Film with the 10 Geom-GCN splits; edges symmetrised."""
    path = _file(root, f"heterophily_graphs/{name}.npz", name)
    with np.load(path) as d:
        x = dense_from_csr(d["x_data"], d["x_indices"], d["x_indptr"], d["x_shape"])
        y, listed = d["y"], d["edge_index"]
        masks = {k: d[f"{k}_mask"] for k in ("train", "val", "test")}
    edge_index, _ = coalesce_edges(listed, len(y), symmetrise=True)
    splits = [
        {k: torch.from_numpy(np.flatnonzero(m[i]).astype(np.int64)) for k, m in masks.items()}
        for i in range(masks["train"].shape[0])
    ]
    meta = {
        "source": "Geom-GCN (Pei et al. 2020), 10 fixed 60/20/20 splits",
        "features": "bag-of-words, binary",
        "symmetrised": True,
        "directed_edges_in_file": int(listed.shape[1]),
    }
    return _node_dataset(x, y, edge_index, splits, name, meta)


# ---------------------------------------------------------------------------------------------
# TU graph classification (GIN / DGCNN text format)


def _token_counts(data: bytes) -> np.ndarray:
    """Whitespace-separated tokens on each non-empty line, without a Python loop over lines."""
    buf = np.frombuffer(data, np.uint8)
    space = (buf == 32) | (buf == 9) | (buf == 13) | (buf == 10)
    starts = ~space & np.concatenate(([True], space[:-1]))
    line = np.cumsum(buf == 10)
    counts = np.bincount(line[starts], minlength=int(line[-1]) + 1 if buf.size else 0)
    return counts[counts > 0]


def parse_tu_text(data: bytes, where: str = "TU text") -> dict[str, np.ndarray]:
    """Parse the GIN / DGCNN format (first line N; per graph ``n label``; per node ``tag m
    j1 .. jm`` with 0-based neighbours inside the graph). Returns int64 arrays ``nodes`` ``[G]``
    (node count per graph), ``labels`` ``[G]`` (raw), ``tags`` ``[total nodes]`` and ``edges``
    ``[2, E]`` (global node ids, as listed)."""
    try:
        tokens = np.fromiter(map(int, data.split()), np.int64)
    except ValueError as error:
        raise DataError(
            f"{where}: a value is not an integer ({error}); continuous node attributes are not "
            "supported, every token must be a count, a label, a tag or a node index"
        ) from error
    counts = _token_counts(data)
    if tokens.size == 0 or counts[0] != 1:
        raise DataError(f"{where}: the first line must hold only the number of graphs")
    offsets = np.cumsum(counts) - counts
    num_graphs, line = int(tokens[0]), 1
    headers = np.empty(num_graphs, np.int64)
    for g in range(num_graphs):  # per graph, not per node
        if line >= counts.size or counts[line] != 2:
            raise DataError(
                f"{where}: graph {g} should start with a line 'nodes label' (non-empty line "
                f"{line + 1}); the file is truncated or a node line has the wrong neighbour count"
            )
        headers[g] = line
        line += 1 + int(tokens[offsets[line]])
    if line != counts.size:
        raise DataError(f"{where}: {counts.size - line} lines after the {num_graphs} graphs")
    nodes, labels = tokens[offsets[headers]], tokens[offsets[headers] + 1]
    is_node = np.ones(counts.size, bool)
    is_node[0], is_node[headers] = False, False
    node_lines = np.flatnonzero(is_node)
    tags, m = tokens[offsets[node_lines]], tokens[offsets[node_lines] + 1]
    bad = np.flatnonzero(counts[node_lines] != m + 2)
    if bad.size:
        raise DataError(
            f"{where}: non-empty line {node_lines[bad[0]] + 1} announces {m[bad[0]]} neighbours "
            f"but has {counts[node_lines[bad[0]]] - 2}; node attributes are not supported"
        )
    first = np.repeat(offsets[node_lines] + 2 - (np.cumsum(m) - m), m)
    local = tokens[first + np.arange(int(m.sum()))]
    graph_of = np.repeat(np.arange(num_graphs), nodes)
    src = np.repeat(np.arange(int(nodes.sum())), m)
    owner = graph_of[src]
    if local.size and (local.min() < 0 or (local >= nodes[owner]).any()):
        g = int(owner[np.flatnonzero((local < 0) | (local >= nodes[owner]))[0]])
        raise DataError(f"{where}: graph {g} has a neighbour index outside 0..{nodes[g] - 1}")
    edges = np.stack([src, local + (np.cumsum(nodes) - nodes)[owner]])
    return {"nodes": nodes, "labels": labels, "tags": tags, "edges": edges}


def tu_graphs(parsed: dict[str, np.ndarray], name: str) -> GraphSetDataset:
    """Graphs from ``parse_tu_text``: edges made unique and symmetric, features one-hot tags (one
    distinct tag: one-hot degree capped at ``DEGREE_CAP``), labels mapped to ``0..C-1``."""
    nodes, total = parsed["nodes"], int(parsed["nodes"].sum())
    edges, duplicates = coalesce_edges(parsed["edges"], max(total, 1), symmetrise=True)
    label_values, labels = np.unique(parsed["labels"], return_inverse=True)
    tag_values, tags = np.unique(parsed["tags"], return_inverse=True)
    meta: dict[str, Any] = {
        "label_values": label_values.tolist(),
        "duplicate_edges_dropped": duplicates,
        "self_loops": int((edges[0] == edges[1]).sum()),
        "symmetrised": True,
    }
    if tag_values.size > 1:
        x = one_hot(tags, tag_values.size)
        meta["features"] = f"one-hot node tag ({tag_values.size} tags)"
    else:
        degree = degrees(edges, total)
        capped = np.minimum(degree, DEGREE_CAP)
        x = one_hot(capped, int(capped.max()) + 1 if total else 1)
        meta["features"] = (
            f"one-hot degree 0..{x.shape[1] - 1} (no node tags; degree capped at {DEGREE_CAP} "
            f"as in GraphMAE, {int((degree > DEGREE_CAP).sum())} nodes above the cap)"
        )
    graph_of_edge = np.repeat(np.arange(nodes.size), nodes)[edges[0]]
    local = torch.from_numpy(edges - (np.cumsum(nodes) - nodes)[graph_of_edge])
    x_parts = torch.from_numpy(x).split(nodes.tolist())
    edge_parts = local.split(np.bincount(graph_of_edge, minlength=nodes.size).tolist(), dim=1)
    y = torch.from_numpy(labels.astype(np.int64))
    graphs = [
        Graph(x=xs.clone(), edge_index=es.clone(), y=y[i : i + 1].clone())
        for i, (xs, es) in enumerate(zip(x_parts, edge_parts, strict=True))
    ]
    return GraphSetDataset(graphs, [], int(label_values.size), name, meta)


def _read_index(path: Path, size: int) -> Tensor:
    index = np.loadtxt(path, dtype=np.int64, ndmin=1)
    if index.size and (index.min() < 0 or index.max() >= size):
        raise DataError(f"{path}: graph index outside 0..{size - 1}")
    return torch.from_numpy(index)


def load_tu(name: str, root: Path | None = None) -> GraphSetDataset:
    """``tu:<NAME>`` with its 10 folds (``10fold_idx/train_idx-K.txt``, ``test_idx-K.txt``)."""
    path = _file(root, f"tu_graphs/{name}/{name}.txt", f"tu:{name}")
    dataset = tu_graphs(parse_tu_text(path.read_bytes(), str(path)), f"tu:{name}")
    fold_dir, size = path.parent / "10fold_idx", len(dataset.graphs)
    folds = [
        (
            _read_index(fold_dir / f"train_idx-{k}.txt", size),
            _read_index(fold_dir / f"test_idx-{k}.txt", size),
        )
        for k in range(1, 11)
        if (fold_dir / f"train_idx-{k}.txt").is_file()
    ]
    meta = {"source": "TU datasets in the GIN text format, folds of Xu et al. 2019", **dataset.meta}
    return GraphSetDataset(dataset.graphs, folds, dataset.num_classes, dataset.name, meta)


def load_graph_dataset(name: str, root: str | Path | None = None) -> NodeDataset | GraphSetDataset:
    """A built-in graph dataset (``GRAPH_DATASETS``) from ``root`` (default: the data root,
    ``$LABELLESS_DATA``). Node-level names give a ``NodeDataset``, ``tu:<NAME>`` a
    ``GraphSetDataset``; case does not matter."""
    root = None if root is None else Path(root)
    key = name.lower()
    if key in PLANETOID:
        return load_planetoid(key, root)
    if key in HETEROPHILY:
        return load_heterophily(key, root)
    tu = {f"tu:{n.lower()}": n for n in TU_SETS}
    if key in tu:
        return load_tu(tu[key], root)
    raise unknown_name("graph dataset", name, GRAPH_DATASETS)
