"""User graphs as ``NodeDataset`` (``labelless.data.graphs``): edge-list CSV files, ``.npz``
files of sparse matrices, networkx graphs and PyTorch Geometric ``Data`` objects.

Node ids must be integers ``0..N-1`` (the row order of the features). Edges of an undirected
graph are stored in both directions. Fixes are never silent: self-loops and duplicate edges of
a graph declared undirected are removed with a warning naming what was removed, and a graph
without node features gets structural ones (``graphs.degree_features``), which
``meta["features"]`` records. Everything else that is wrong raises ``DataError``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from labelless.data.graph import Graph
from labelless.data.graphs import NodeDataset, coalesce_edges, degree_features
from labelless.errors import DataError

STRUCTURAL = "structural (none given): log(1 + degree) and a one-hot degree bucket"


def _rows(path: Path, what: str) -> tuple[list[list[str]], int]:
    """Comma (or whitespace) separated cells of each non-empty line, without a header line
    (a first line whose cells are not all numbers); also the file line of the first row."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise DataError(f"cannot read the {what} file {str(path)!r}: {error}") from error
    rows = [[c.strip() for c in (ln.split(",") if "," in ln else ln.split())] for ln in lines]
    numbered = [(n, r) for n, r in enumerate(rows, 1) if any(r)]
    if not numbered:
        raise DataError(f"the {what} file {str(path)!r} is empty: it needs at least one row")
    try:
        [float(c) for c in numbered[0][1]]
    except ValueError:
        numbered = numbered[1:]  # a header
    if not numbered:
        raise DataError(f"the {what} file {str(path)!r} has a header but no rows")
    return [r for _, r in numbered], numbered[0][0]


def _edge_list(path: Path) -> np.ndarray:
    rows, first = _rows(path, "edge list")
    for offset, row in enumerate(rows):
        if len(row) != 2 or not all(c.lstrip("-").isdigit() for c in row):
            raise DataError(
                f"{path}: row {first + offset} is {','.join(row)!r}; every row must be two "
                "integer node ids 'source,target' (0-based, the row order of the features); map "
                "other ids (names, floats) to integers first"
            )
    edges = np.array(rows, dtype=np.int64).T
    if (edges < 0).any():
        raise DataError(f"{path}: negative node id {int(edges.min())}; ids must be 0..N-1")
    return edges


def _table(path: Path, what: str) -> np.ndarray:
    rows, first = _rows(path, what)
    try:
        table = np.array(rows, dtype=np.float64)
    except ValueError as error:
        raise DataError(
            f"{path}: the {what} rows (from line {first}) must be numbers with the same count per "
            f"row ({error})"
        ) from error
    return table.reshape(len(rows), -1)


def _fix_edges(edges: np.ndarray, num_nodes: int, undirected: bool, where: str) -> np.ndarray:
    """Range checks, then self-loops (undirected only) and duplicate rows removed with a
    warning; undirected edges symmetrised."""
    if edges.shape[1] == 0:
        raise DataError(f"{where}: the graph has no edges; give at least one edge")
    if num_nodes == 0:
        raise DataError(f"{where}: the graph has no nodes")
    past = np.flatnonzero((edges >= num_nodes).any(axis=0))
    if past.size:
        u, v = edges[:, past[0]]
        raise DataError(
            f"{where}: edge {u},{v} points past the {num_nodes} nodes ({past.size} such edges); "
            f"node ids must be 0..{num_nodes - 1}: give a feature row for every node, or "
            "renumber the nodes"
        )
    if undirected:
        loops = edges[0] == edges[1]
        if loops.any():
            warnings.warn(
                f"{where}: removed {int(loops.sum())} self-loops (nodes "
                f"{edges[0, loops][:5].tolist()}) from a graph declared undirected",
                stacklevel=3,
            )
            edges = edges[:, ~loops]
    fixed, duplicates = coalesce_edges(edges, num_nodes, symmetrise=undirected)
    if duplicates:
        warnings.warn(f"{where}: removed {duplicates} duplicate edges", stacklevel=3)
    return fixed


def _labels(y: Any, num_nodes: int, where: str) -> tuple[np.ndarray, int]:
    y = np.asarray(y).reshape(-1)
    if y.size != num_nodes:
        raise DataError(f"{where}: {y.size} labels for {num_nodes} nodes; give one per node")
    if y.dtype.kind == "f" and np.all(np.isnan(y) | (y == np.round(y))):
        y = np.where(np.isnan(y), -1, y)
    if y.dtype.kind not in "iufb":
        raise DataError(f"{where}: labels must be integer classes (-1 = unlabelled), got {y.dtype}")
    if y.dtype.kind == "f" and not np.all(y == np.round(y)):
        raise DataError(f"{where}: labels must be integer classes (-1 = unlabelled)")
    y = y.astype(np.int64)
    return y, int(y.max()) + 1 if y.size else 0


def _dataset(
    x, edges, y, name: str, meta: dict[str, Any], undirected: bool, num_nodes: int | None = None
) -> NodeDataset:
    """``x`` None: structural features for ``num_nodes`` nodes (default: the largest id + 1)."""
    if x is not None:
        num_nodes = len(x)
    elif num_nodes is None:
        num_nodes = int(edges.max()) + 1 if edges.size else 0
    edges = _fix_edges(edges, num_nodes, undirected, name)
    if x is None:
        x, meta = degree_features(edges, num_nodes), {**meta, "features": STRUCTURAL}
    labels, num_classes = (None, 0) if y is None else _labels(y, num_nodes, name)
    graph = Graph(
        x=torch.as_tensor(np.asarray(x, np.float32)),
        edge_index=torch.from_numpy(edges),
        y=None if labels is None else torch.from_numpy(labels),
    ).check()
    meta = {"num_nodes": graph.num_nodes, "num_edges": graph.num_edges, **meta}
    meta["symmetrised"] = undirected
    return NodeDataset(graph, [], num_classes, name, meta)


def read_graph_files(
    edges_csv: str | Path,
    features_csv: str | Path | None = None,
    labels_csv: str | Path | None = None,
    *,
    undirected: bool = True,
) -> NodeDataset:
    """A graph from CSV files (a header line is optional in each): ``edges_csv`` two integer
    columns ``source,target``; ``features_csv`` one row of numbers per node (row i = node i;
    without it, nodes are ``0..max id`` with structural features); ``labels_csv`` one integer
    class per node (-1 = unlabelled). ``undirected``: each edge is stored both ways."""
    edges_path = Path(edges_csv)
    edges = _edge_list(edges_path)
    x = None if features_csv is None else _table(Path(features_csv), "features")
    meta: dict[str, Any] = {"source": str(edges_path)}
    if x is not None:
        meta["features"] = f"{x.shape[1]} columns from {features_csv}"
    y = None
    if labels_csv is not None:
        y = _table(Path(labels_csv), "labels")
        if y.shape[1] != 1:
            raise DataError(f"{labels_csv}: the labels file must have one column, got {y.shape[1]}")
    return _dataset(x, edges, y, edges_path.stem, meta, undirected)


def read_graph_npz(path: str | Path, *, undirected: bool = True) -> NodeDataset:
    """A graph from ``.npz``: a ``scipy.sparse.save_npz`` adjacency, or the gnn-benchmark layout
    (Shchur et al. 2018): ``adj_data/adj_indices/adj_indptr/adj_shape`` (CSR adjacency), optional
    ``attr_*`` (CSR features) or ``attr_matrix`` (dense), optional ``labels``. Edge weights are
    ignored (every stored entry is an edge)."""
    import scipy.sparse as sp

    path = Path(path)
    try:
        d = dict(np.load(path, allow_pickle=False))
    except (OSError, ValueError) as error:
        raise DataError(f"cannot read {str(path)!r} as .npz: {error}") from error
    if "format" in d:  # scipy.sparse.save_npz
        adjacency = sp.load_npz(path)
        x = y = None
    elif "adj_data" in d:
        adjacency = sp.csr_matrix(
            (d["adj_data"], d["adj_indices"], d["adj_indptr"]), shape=tuple(d["adj_shape"])
        )
        x = d.get("attr_matrix")
        if "attr_data" in d:
            x = sp.csr_matrix(
                (d["attr_data"], d["attr_indices"], d["attr_indptr"]), tuple(d["attr_shape"])
            ).toarray()
        y = d.get("labels")
    else:
        raise DataError(
            f"{path}: no adjacency found (keys {sorted(d)[:8]}); save it with "
            "scipy.sparse.save_npz, or as adj_data/adj_indices/adj_indptr/adj_shape"
        )
    if adjacency.shape[0] != adjacency.shape[1]:
        raise DataError(f"{path}: the adjacency must be square, got {adjacency.shape}")
    coo = adjacency.tocoo()
    edges = np.stack([coo.row, coo.col]).astype(np.int64)
    if x is not None and len(x) != adjacency.shape[0]:
        raise DataError(f"{path}: {len(x)} feature rows for {adjacency.shape[0]} nodes")
    meta = {"source": str(path)}
    return _dataset(x, edges, y, path.stem, meta, undirected, adjacency.shape[0])


def from_networkx(graph: Any, *, feature_key: str = "x", label_key: str = "y") -> NodeDataset:
    """A networkx graph: nodes numbered in ``graph.nodes`` order (their ids in
    ``meta["node_ids"]``); node attributes ``feature_key`` (a vector) and ``label_key`` (an int)
    when every node has them. Directed graphs keep their edges as given."""
    try:
        import networkx  # noqa: F401  (checked, the graph object is duck-typed)
    except ImportError as error:
        raise DataError("from_networkx needs networkx: pip install networkx") from error
    ids = list(graph.nodes)
    if not ids:
        raise DataError("the networkx graph has no nodes")
    position = {node: i for i, node in enumerate(ids)}
    edges = np.array([[position[u], position[v]] for u, v in graph.edges], np.int64)
    edges = edges.T.reshape(2, -1)
    data = [graph.nodes[n] for n in ids]
    x = (
        np.array([d[feature_key] for d in data], np.float32)
        if all(feature_key in d for d in data)
        else None
    )
    y = np.array([d[label_key] for d in data]) if all(label_key in d for d in data) else None
    meta = {"source": "networkx", "node_ids": ids}
    if x is not None:
        meta["features"] = f"node attribute {feature_key!r}"
    return _dataset(x, edges, y, "networkx", meta, not graph.is_directed())


def from_pyg(data: Any, *, undirected: bool = True) -> NodeDataset:
    """A PyTorch Geometric ``Data`` (duck-typed: ``edge_index``, optional ``x``, ``y``,
    ``num_nodes``; torch_geometric is not imported). Node labels only (``y`` ``[N]``)."""
    edge_index = getattr(data, "edge_index", None)
    if edge_index is None:
        raise DataError("the graph object has no edge_index; pass a torch_geometric Data")
    edges = torch.as_tensor(edge_index).long().cpu().numpy()
    if edges.ndim != 2 or edges.shape[0] != 2:
        raise DataError(f"edge_index must be [2, edges], got {tuple(edges.shape)}")
    x = getattr(data, "x", None)
    x = None if x is None else torch.as_tensor(x).float().cpu().numpy()
    num_nodes = getattr(data, "num_nodes", None)
    y = getattr(data, "y", None)
    y = None if y is None else torch.as_tensor(y).cpu().numpy()
    meta: dict[str, Any] = {"source": "torch_geometric Data"}
    if x is not None:
        meta["features"] = "data.x"
    num_nodes = None if num_nodes is None else int(num_nodes)
    return _dataset(x, edges, y, "pyg", meta, undirected, num_nodes)
