"""Graphs as ``Dataset``: the data layer's half of the graph modality.

A graph dataset is one of two kinds (``meta["level"]``):

- ``"node"``: one graph whose samples are its nodes. ``samples`` is a ``NodeIds`` array (int64
  node indices that carry the graph, ``ids.graph``), so ``subset``, ``len`` and labels work as for
  any dataset while the encoder always sees the whole graph. The training split holds every node
  (self-supervised pretraining is transductive, as in the papers) with only the training nodes'
  labels; the test split holds the test nodes. ``meta["splits"]`` keeps every split of the data
  (train / val / test node indices) for the node protocol, which picks its regularisation on the
  validation nodes.
- ``"graph"``: a set of graphs, ``samples`` an object array of ``Graph`` (one per sample). The
  training split holds every graph with the labels of the first fold's training graphs; the test
  split is the first fold's test graphs. ``meta["folds"]`` keeps the shipped folds and
  ``meta["all_labels"]`` every graph's label for the 10-fold SVM protocol.

The sample format registered here tells ``evaluate.embed`` how to embed graph samples (nodes
over their whole graph, graph sets in collated batches) and the training loader how to batch them
(the whole graph each step for nodes; shuffled, collated graphs for graph sets).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from labelless.data import register_file_loader
from labelless.data.builtin import BuiltinDataset, register_builtin
from labelless.data.dataset import Dataset, DataSplits
from labelless.data.formats import SampleFormat, register_format
from labelless.data.graph import Graph, collate_graphs, normalise_rows
from labelless.data.graphs import (
    GRAPH_DATASETS,
    HETEROPHILY,
    PLANETOID,
    GraphSetDataset,
    NodeDataset,
    load_graph_dataset,
)
from labelless.errors import ConfigError, DataError

LEVELS = ("node", "graph")


class NodeIds(np.ndarray):
    """int64 node indices into ``graph`` (every array derived from it keeps the graph)."""

    graph: Graph | None

    def __new__(cls, ids: Any, graph: Graph) -> NodeIds:
        array = np.asarray(ids, dtype=np.int64).view(cls)
        array.graph = graph
        return array

    def __array_finalize__(self, obj: Any) -> None:
        self.graph = getattr(obj, "graph", None)

    def __reduce__(self):  # pickles (checkpoints, spawn) with the graph
        return (NodeIds, (np.asarray(self), self.graph))


def graph_array(graphs: list[Graph]) -> np.ndarray:
    """An object array of ``graphs`` (numpy must not unpack them)."""
    array = np.empty(len(graphs), dtype=object)
    for i, graph in enumerate(graphs):
        array[i] = graph
    return array


def level_of(dataset: Dataset) -> str:
    """``"node"`` or ``"graph"`` (``meta["level"]``)."""
    level = dataset.meta.get("level")
    if level not in LEVELS:
        raise DataError(
            f"graph dataset {dataset.name!r} does not say whether its samples are nodes or "
            "graphs: load it with labelless.data.load_dataset or graph_splits()"
        )
    return level


def _numpy_splits(splits: list[dict[str, torch.Tensor]]) -> list[dict[str, np.ndarray]]:
    return [{key: np.asarray(value, dtype=np.int64) for key, value in s.items()} for s in splits]


def node_splits(data: NodeDataset, split: int = 0) -> DataSplits:
    """``data`` as train (all nodes, labels of split ``split``'s training nodes) and test (that
    split's test nodes) datasets; without splits, one training split with every label."""
    graph = data.graph.check()
    count = graph.num_nodes
    if count == 0:
        raise DataError(f"graph {data.name!r} has no nodes: give a graph with at least one node")
    y = None if graph.y is None else graph.y.numpy().astype(np.int64)
    meta: dict[str, Any] = {
        **data.meta,
        "level": "node",
        "splits": _numpy_splits(data.splits),
        "split": split,
    }
    if data.num_classes:
        meta["class_names"] = [str(c) for c in range(data.num_classes)]
    if not data.splits:
        return DataSplits(Dataset(NodeIds(np.arange(count), graph), y, "graph", data.name, meta))
    if not 0 <= split < len(data.splits):
        raise DataError(
            f"{data.name!r} has {len(data.splits)} split(s): data.options.split must be 0.."
            f"{len(data.splits) - 1}, got {split}"
        )
    chosen = meta["splits"][split]
    train_labels = np.full(count, -1, dtype=np.int64)
    train_labels[chosen["train"]] = y[chosen["train"]]
    train = Dataset(NodeIds(np.arange(count), graph), train_labels, "graph", data.name, meta)
    test_ids = chosen["test"]
    test = Dataset(NodeIds(test_ids, graph), y[test_ids], "graph", f"{data.name}:test", meta)
    return DataSplits(train, test)


def graph_set_splits(data: GraphSetDataset, fold: int = 0) -> DataSplits:
    """``data`` as train (every graph, labels of fold ``fold``'s training graphs) and test (that
    fold's test graphs) datasets; without folds, one training split with every label."""
    if not data.graphs:
        raise DataError(f"graph set {data.name!r} is empty: give it at least one graph")
    labels = data.labels().numpy().astype(np.int64)
    folds = [
        (np.asarray(tr, dtype=np.int64), np.asarray(te, dtype=np.int64)) for tr, te in data.folds
    ]
    meta: dict[str, Any] = {
        **data.meta,
        "level": "graph",
        "folds": folds,
        "fold": fold,
        "all_labels": torch.from_numpy(labels),
        "class_names": [str(c) for c in range(data.num_classes)],
    }
    samples = graph_array(data.graphs)
    if not folds:
        return DataSplits(Dataset(samples, labels, "graph", data.name, meta))
    if not 0 <= fold < len(folds):
        raise DataError(
            f"{data.name!r} has {len(folds)} folds: data.options.split must be 0.."
            f"{len(folds) - 1}, got {fold}"
        )
    train_ids, test_ids = folds[fold]
    train_labels = np.full(len(labels), -1, dtype=np.int64)
    train_labels[train_ids] = labels[train_ids]
    train = Dataset(samples, train_labels, "graph", data.name, meta)
    test = Dataset(samples[test_ids], labels[test_ids], "graph", f"{data.name}:test", meta)
    return DataSplits(train, test)


GRAPH_OPTIONS = ("split", "subgraph_nodes", "row_normalise")


def graph_splits(
    data: NodeDataset | GraphSetDataset,
    split: int = 0,
    subgraph_nodes: int | None = None,
    row_normalise: bool = False,
) -> DataSplits:
    """A loaded graph dataset (``data.graphs`` / ``data.graph_files``) as ``DataSplits``:
    ``split`` picks the split (Geom-GCN sets: 0..9) or the fold (graph sets) scored as test;
    ``subgraph_nodes`` trains node-level methods on random-walk subgraphs of about that many
    nodes (GraphSAINT, ``data.graph_sampling``) instead of the whole graph per step;
    ``row_normalise`` divides each node's features by their sum (Kipf & Welling's
    preprocessing of the citation sets, which the node methods' papers train on), recorded in
    ``meta["features"]``."""
    split = int(split)
    if isinstance(data, GraphSetDataset):
        for option, value in (("subgraph_nodes", subgraph_nodes), ("row_normalise", row_normalise)):
            if value not in (None, False):
                raise DataError(
                    f"{data.name!r} is a set of graphs, trained in batches of whole graphs: "
                    f"data.options.{option} applies to node-level graphs only; drop it"
                )
        return graph_set_splits(data, split)
    if row_normalise not in (True, False):
        raise ConfigError(
            f"data.options.row_normalise must be true or false, got {row_normalise!r}"
        )
    if row_normalise:
        graph, said = normalise_rows(data.graph, True)
        features = data.meta.get("features", "given")
        data = replace(data, graph=graph, meta={**data.meta, "features": f"{features}, {said}"})
    splits = node_splits(data, split)
    if subgraph_nodes is not None:
        splits.train.meta["subgraph_nodes"] = int(subgraph_nodes)
    return splits


# ---------------------------------------------------------------------------------------------
# Embedding and batching (the sample format's hooks)


def _device(encoder: torch.nn.Module, device) -> torch.device:
    if device is not None:
        return torch.device(device)
    parameter = next(encoder.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def embed_graph_samples(encoder: torch.nn.Module, samples, batch_size: int, device) -> torch.Tensor:
    """Embeddings ``float32 [N, D]`` on CPU: nodes (``NodeIds``) from one forward over their
    graph, graphs (an object array of ``Graph``) ``batch_size`` at a time, collated."""
    device = _device(encoder, device)
    was_training = encoder.training
    encoder.eval()
    try:
        with torch.inference_mode():
            if isinstance(samples, NodeIds) and samples.graph is not None:
                graph = samples.graph
                z = encoder(graph.to(device))
                if z.shape[0] != graph.num_nodes:
                    raise DataError(
                        f"the encoder gives {z.shape[0]} embedding(s) for a graph of "
                        f"{graph.num_nodes} nodes: it pools whole graphs (a readout), but this "
                        "data's samples are nodes; use an encoder trained without readout"
                    )
                return z[torch.from_numpy(np.asarray(samples))].float().cpu()
            if isinstance(samples, np.ndarray) and samples.dtype == object and len(samples):
                outputs = []
                for start in range(0, len(samples), batch_size):
                    batch = collate_graphs(list(samples[start : start + batch_size]))
                    z = encoder(batch.to(device))
                    if z.shape[0] != batch.num_graphs:
                        raise DataError(
                            "the encoder gives one embedding per node, but this data's samples "
                            "are whole graphs: use an encoder with a readout (backbone.kwargs."
                            "readout=sum)"
                        )
                    outputs.append(z.float().cpu())
                return torch.cat(outputs)
    finally:
        encoder.train(was_training)
    raise DataError(
        "graph samples must be the nodes of a loaded graph (Dataset.samples of node-level data) "
        f"or an array of Graph objects, got {type(samples).__name__}: load them with "
        "labelless.data.load_dataset"
    )


class WholeGraphBatches:
    """Node-level training: one batch per epoch, the whole graph, with the training split's
    labels only (``-1`` for every other node)."""

    def __init__(self, dataset: Dataset) -> None:
        ids = dataset.samples
        if not isinstance(ids, NodeIds) or ids.graph is None:
            raise DataError("node-level training needs the nodes of a loaded graph")
        labels = np.full(ids.graph.num_nodes, -1, dtype=np.int64)
        if dataset.labels is not None:
            labels[np.asarray(ids)] = dataset.labels
        self.labels = torch.from_numpy(labels)
        self.graph = Graph(ids.graph.x, ids.graph.edge_index, None, 1, self.labels)
        self.num_batches = 1

    def batch(self, epoch: int, index: int) -> dict[str, Any]:
        nodes = torch.arange(self.graph.num_nodes)
        return {"inputs": self.graph, "index": nodes, "label": self.labels}


class GraphSetBatches:
    """Graph-level training: ``batch_size`` graphs per batch in a fresh order per epoch (a
    function of ``(seed, epoch)`` only, so a resumed run continues exactly), the last incomplete
    batch dropped. The whole set is collated once; a batch is cut from it with tensor ops."""

    def __init__(self, dataset: Dataset, batch_size: int, seed: int = 0) -> None:
        graphs = list(dataset.samples)
        self.all = collate_graphs([Graph(g.x, g.edge_index, None, 1, None) for g in graphs])
        labels = dataset.labels if dataset.labels is not None else np.full(len(graphs), -1)
        self.labels = torch.from_numpy(np.asarray(labels, dtype=np.int64))
        self.batch_size = max(1, min(int(batch_size), len(graphs)))
        self.num_batches = len(graphs) // self.batch_size
        self.seed = int(seed)
        self.num_graphs = len(graphs)

    def rows(self, epoch: int, index: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + int(epoch))
        order = torch.randperm(self.num_graphs, generator=generator)
        return order[index * self.batch_size : (index + 1) * self.batch_size].sort().values

    def batch(self, epoch: int, index: int) -> dict[str, Any]:
        rows = self.rows(epoch, index)
        return {"inputs": select_graphs(self.all, rows), "index": rows, "label": self.labels[rows]}


def select_graphs(batch: Graph, rows: torch.Tensor) -> Graph:
    """The graphs ``rows`` (sorted ids) of the collated ``batch``, renumbered ``0..len-1``."""
    member = torch.zeros(batch.num_graphs, dtype=torch.bool)
    member[rows] = True
    new_graph_id = torch.full((batch.num_graphs,), -1, dtype=torch.long)
    new_graph_id[rows] = torch.arange(len(rows))
    graph_of_node = batch.graph_index()
    keep = member[graph_of_node]
    new_node_id = torch.cumsum(keep, 0) - 1
    edges = batch.edge_index[:, keep[batch.edge_index[0]]]
    return Graph(
        x=batch.x[keep],
        edge_index=new_node_id[edges],
        batch=new_graph_id[graph_of_node[keep]],
        num_graphs=len(rows),
        y=None,
    )


def graph_batches(dataset: Dataset, batch_size: int, seed: int = 0):
    """The training batches of a graph dataset (the sample format's ``batches`` hook)."""
    if level_of(dataset) == "graph":
        return GraphSetBatches(dataset, batch_size, seed)
    whole = WholeGraphBatches(dataset)
    subgraph_nodes = dataset.meta.get("subgraph_nodes")
    if subgraph_nodes is None or subgraph_nodes >= whole.graph.num_nodes:
        return whole
    from labelless.data.graph_sampling import SubgraphBatches

    return SubgraphBatches(whole.graph, whole.labels, int(subgraph_nodes), seed)


GRAPH_FORMAT = register_format(
    SampleFormat(
        "graph",
        1,
        description="nodes of one graph (NodeIds) or an object array of Graph",
        embed=embed_graph_samples,
        batches=graph_batches,
    )
)


# ---------------------------------------------------------------------------------------------
# Built-ins and user files


def _builtin_files(name: str) -> tuple[str, ...]:
    if name in PLANETOID:
        return (f"planetoid/{PLANETOID[name]}",)
    if name in HETEROPHILY:
        return (f"heterophily_graphs/{name}.npz",)
    tu = name.split(":", 1)[1]
    return (f"tu_graphs/{tu}/{tu}.txt",)


def _describe(name: str) -> str:
    if name in PLANETOID:
        kind = "structure only, structural features" if name == "pubmed" else "public split"
        return f"{name} citation graph, node classification ({kind})"
    if name in HETEROPHILY:
        return f"{name} heterophily graph, node classification (10 Geom-GCN splits)"
    return f"{name[3:]} graph classification set (TU, 10 folds)"


def _loader(name: str):
    def load(**options: Any) -> DataSplits:
        return graph_splits(load_graph_dataset(name), **options)

    return load


for _name in GRAPH_DATASETS:
    register_builtin(
        BuiltinDataset(
            _name,
            _describe(_name),
            _loader(_name),
            _builtin_files(_name),
            modality="graph",
            options=GRAPH_OPTIONS,
        )
    )


@register_file_loader(
    ".edges.csv",
    ".npz",
    options=("features", "labels", "undirected", "subgraph_nodes", "row_normalise"),
)
def load_graph_file(path: str | Path, **options: Any) -> DataSplits:
    """A user graph file: ``*.edges.csv`` (options ``features``, ``labels``: CSV paths) or a
    ``.npz`` of scipy sparse matrices; ``undirected`` (default true) stores each edge both ways,
    ``subgraph_nodes`` trains on random-walk subgraphs, ``row_normalise`` divides each node's
    features by their sum (``graph_splits``)."""
    from labelless.data.graph_files import read_graph_files, read_graph_npz

    path = Path(path)
    undirected = bool(options.get("undirected", True))
    shared = {
        "subgraph_nodes": options.get("subgraph_nodes"),
        "row_normalise": options.get("row_normalise", False),
    }
    if path.name.lower().endswith(".npz"):
        return graph_splits(read_graph_npz(path, undirected=undirected), **shared)
    graph = read_graph_files(
        path, options.get("features"), options.get("labels"), undirected=undirected
    )
    return graph_splits(graph, **shared)
