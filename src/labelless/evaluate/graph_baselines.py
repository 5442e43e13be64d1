"""Baselines the graph protocols are reported against, each with its record.

- ``raw_feature_probe``: ``node_probe`` on the raw node features (DGI's "raw features" row).
- ``supervised_gcn``: a 2-layer GCN trained on the labelled training nodes (Kipf & Welling,
  ICLR 2017: 64 hidden units for our default, ReLU, dropout 0.5, Adam lr 0.01, weight decay
  5e-4 on the first layer, 200 epochs, row-normalised features); the epoch with the best
  validation accuracy is kept and scored once on the test nodes.
- ``supervised_gin``: a GIN graph classifier (Xu et al., ICLR 2019: sum aggregation, 2-layer
  MLPs with batch norm, the sum readout of every layer concatenated, dropout 0.5 and a linear
  layer, Adam lr 0.01 halved every 50 epochs) trained on each training fold, with the epoch
  chosen on a held-out 10% of that fold (Errica et al., ICLR 2020: Xu et al. chose the epoch
  on the test folds); the test fold is scored once.
- ``random_init_embeddings``: the random-init baseline is the same protocol on a freshly
  initialised encoder's embeddings; this builds that encoder from a seed and embeds.

All training is full-batch (nodes) or mini-batches cut from one collated batch (graphs), in
plain torch with the project's GNN backbones; embedding runs under ``torch.inference_mode``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from labelless.backbones.gnn import Adjacency, GCNConv
from labelless.backbones.registry import create_backbone
from labelless.data.graph import Graph, collate_graphs
from labelless.data.graph_dataset import NodeIds, embed_graph_samples, select_graphs
from labelless.errors import ConfigError, DataError
from labelless.evaluate.graph_sets import GraphSVMResult, mean_std
from labelless.evaluate.graphs import NodeProbeResult, labelled_split, node_probe, probe_seeds
from labelless.progress import task


def raw_feature_probe(
    graph: Graph, splits: Sequence[dict], **probe_options: Any
) -> NodeProbeResult:
    """``node_probe(graph.x, graph.y, splits, **probe_options)``, recorded as raw features."""
    if graph.y is None:
        raise DataError("the raw-feature probe needs node labels (graph.y)")
    result = node_probe(graph.x, graph.y, splits, **probe_options)
    result.protocol["features"] = f"raw node features ({graph.num_features} columns)"
    return result


# ---------------------------------------------------------------------------------------------
# Supervised GCN on node classification


def _best_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


class KipfGCN(nn.Module):
    """Kipf & Welling's node classifier from the project's ``GCNConv`` layers: dropout -> GCN
    -> ReLU -> dropout -> GCN, ``(features, adjacency) -> [N, num_classes]`` logits.

    The features are held as their non-zero entries (``SparseFeatures``): input dropout draws
    only for those (the paper's sparse dropout; zeros stay zero either way) and the first
    layer multiplies the sparse matrix. On Cora's 2708 x 1433 bag of words a dense dropout
    draw took 68% of a training step."""

    def __init__(self, in_dim: int, hidden: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.first, self.second = GCNConv(in_dim, hidden), GCNConv(hidden, num_classes)
        self.dropout = dropout

    def forward(self, features: SparseFeatures, adjacency: Adjacency) -> torch.Tensor:
        x = features.dropped(self.dropout if self.training else 0.0)
        # GCNConv.forward with a sparse input: transform, then propagate (out <= in columns).
        h = adjacency.gcn(torch.sparse.mm(x, self.first.linear.weight.T)) + self.first.bias
        h = F.dropout(F.relu(h), self.dropout, self.training)
        return self.second(h, adjacency)


class SparseFeatures:
    """A node-feature matrix ``[N, F]`` kept as its non-zero entries."""

    def __init__(self, x: torch.Tensor) -> None:
        self.indices = x.nonzero().T  # [2, nnz], row-major order: already coalesced
        self.values = x[self.indices[0], self.indices[1]]
        self.shape = tuple(x.shape)

    def dropped(self, rate: float) -> torch.Tensor:
        """The sparse matrix with each non-zero entry dropped with probability ``rate`` and
        the rest scaled by ``1 / (1 - rate)``."""
        indices, values = self.indices, self.values
        if rate > 0:
            keep = torch.rand(len(values), device=values.device) >= rate
            indices, values = indices[:, keep], values[keep] / (1 - rate)
        return torch.sparse_coo_tensor(
            indices, values, self.shape, is_coalesced=True, check_invariants=False
        )


def _gcn_run(graph, nodes, num_classes, seed, epochs, hidden, dropout, lr, weight_decay):
    adjacency, features = Adjacency(graph.edge_index, graph.num_nodes), SparseFeatures(graph.x)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = KipfGCN(graph.num_features, hidden, num_classes, dropout)
        optimizer = torch.optim.Adam(
            [
                {"params": model.first.parameters(), "weight_decay": weight_decay},
                {"params": model.second.parameters(), "weight_decay": 0.0},
            ],
            lr=lr,
        )
        train, val, y = nodes["train"], nodes["val"], graph.y
        best, state, best_epoch = (-1.0, 0.0), None, 0
        for epoch in range(epochs):
            model.train()
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(features, adjacency)[train], y[train]).backward()
            optimizer.step()
            model.eval()
            with torch.no_grad():
                logits = model(features, adjacency)[val]
            accuracy = float((logits.argmax(1) == y[val]).float().mean())
            key = (accuracy, -float(F.cross_entropy(logits, y[val])))
            if key > best:  # best validation accuracy, ties: lower validation loss
                best, state, best_epoch = key, _best_state(model), epoch
        model.load_state_dict(state)
        model.eval()
        with torch.inference_mode():
            test = nodes["test"]
            predicted = model(features, adjacency)[test].argmax(1)
            test_accuracy = float((predicted == y[test]).float().mean())
    return {
        "seed": seed,
        "best_epoch": best_epoch,
        "val_accuracy": best[0],
        "test_accuracy": test_accuracy,
    }


def supervised_gcn(
    graph: Graph,
    splits: Sequence[dict],
    *,
    seeds: int | Sequence[int] | None = None,
    epochs: int = 200,
    hidden: int = 64,
    dropout: float = 0.5,
    lr: float = 0.01,
    weight_decay: float = 5e-4,
    row_normalise: bool = True,
) -> NodeProbeResult:
    """Test accuracy of a supervised 2-layer GCN (Kipf & Welling 2017) on each split and seed
    (seeds as ``node_probe``: default 20 runs in total), trained on the split's labelled
    training nodes only; the epoch with the best validation accuracy (ties: lower validation
    loss) is restored and scores the test nodes once. ``row_normalise`` divides each node's
    features by their sum, as Kipf & Welling's preprocessing."""
    if graph.y is None:
        raise DataError("the supervised GCN needs node labels (graph.y)")
    labels = graph.y.long()
    x = graph.x.float()
    if row_normalise:
        if bool((x < 0).any()):
            raise ConfigError(
                "row_normalise divides each node's features by their sum, which needs "
                "non-negative features (bag of words, counts): pass row_normalise=False"
            )
        x = x / x.sum(1, keepdim=True).clamp_min(1e-12)
    graph = Graph(x, graph.edge_index, None, 1, labels)
    split_nodes = [labelled_split(split, labels, i) for i, split in enumerate(splits)]
    if not split_nodes:
        raise DataError("supervised_gcn needs at least one split of train / val / test nodes")
    seed_list = probe_seeds(seeds, len(split_nodes))
    num_classes = int(labels.max()) + 1
    options = (epochs, hidden, dropout, lr, weight_decay)
    runs = []
    with task("supervised GCN", len(split_nodes) * len(seed_list)) as bar:
        for index, nodes in enumerate(split_nodes):
            for seed in seed_list:
                runs.append({"split": index, **_gcn_run(graph, nodes, num_classes, seed, *options)})
                bar.advance()
    mean, std = mean_std([run["test_accuracy"] for run in runs])
    protocol = {
        "model": f"2-layer GCN (Kipf & Welling 2017), {hidden} hidden units, ReLU, dropout "
        f"{dropout} before each layer",
        "features": "row-normalised" if row_normalise else "as given",
        "optimizer": f"Adam lr={lr}, weight decay {weight_decay} on the first layer, {epochs} "
        "full-batch epochs on the training nodes",
        "selection": "the epoch with the best validation accuracy (ties: lower val loss); test "
        "scored once with it",
        "seeds": seed_list,
        "splits_used": len(split_nodes),
        "runs": len(runs),
        "std": "population std over all runs (split x seed)",
    }
    return NodeProbeResult(mean, std, runs, protocol)


# ---------------------------------------------------------------------------------------------
# Supervised GIN on graph classification


def _holdout(labels: np.ndarray, rows: np.ndarray, fraction: float, seed: int):
    """``(fit, val)`` rows: a seeded, stratified ``fraction`` of ``rows`` for validation."""
    from sklearn.model_selection import train_test_split

    _, counts = np.unique(labels[rows], return_counts=True)
    stratify = labels[rows] if counts.min() >= 2 else None
    fit, val = train_test_split(rows, test_size=fraction, random_state=seed, stratify=stratify)
    return np.sort(fit), np.sort(val)


def _gin_model(in_dim, num_classes, hidden, num_layers, dropout) -> nn.Module:
    encoder = create_backbone(
        "gin",
        in_channels=in_dim,
        hidden_dim=hidden,
        num_layers=num_layers,
        activation="relu",
        norm="batch",
        readout="sum",
        concat_layers=True,
    )
    return nn.Sequential(encoder, nn.Dropout(dropout), nn.Linear(encoder.embed_dim, num_classes))


def _accuracy_and_loss(model, graph, labels) -> tuple[float, float]:
    model.eval()
    with torch.no_grad():
        logits = model(graph)
    accuracy = float((logits.argmax(1) == labels).float().mean())
    return accuracy, float(F.cross_entropy(logits, labels))


def _gin_fold(data, labels, rows, seed, settings) -> dict[str, Any]:
    """One fold: train on ``fit`` rows, keep the best epoch on ``val``, score ``test`` once."""
    fit, val, test = (torch.as_tensor(r, dtype=torch.long) for r in rows)
    epochs, batch_size, lr = settings["epochs"], settings["batch_size"], settings["lr"]
    y = torch.as_tensor(labels)
    val_graph = select_graphs(data, val)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _gin_model(
            data.num_features,
            int(y.max()) + 1,
            settings["hidden"],
            settings["num_layers"],
            settings["dropout"],
        )
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=50, gamma=0.5)
        generator = torch.Generator().manual_seed(seed)
        best, state, best_epoch = (-1.0, 0.0), None, 0
        for epoch in range(epochs):
            model.train()
            order = fit[torch.randperm(len(fit), generator=generator)]
            for start in range(0, len(order), batch_size):
                rows_batch = order[start : start + batch_size].sort().values
                if len(rows_batch) < 2:  # batch norm needs two graphs' worth of statistics
                    continue
                optimizer.zero_grad(set_to_none=True)
                logits = model(select_graphs(data, rows_batch))
                F.cross_entropy(logits, y[rows_batch]).backward()
                optimizer.step()
            schedule.step()
            accuracy, loss = _accuracy_and_loss(model, val_graph, y[val])
            if (accuracy, -loss) > best:
                best, state, best_epoch = (accuracy, -loss), _best_state(model), epoch
        model.load_state_dict(state)
        test_accuracy, _ = _accuracy_and_loss(model, select_graphs(data, test), y[test])
    return {"best_epoch": best_epoch, "val_accuracy": best[0], "test_accuracy": test_accuracy}


def supervised_gin(
    graphs: Sequence[Graph],
    folds: Sequence[tuple[Any, Any]],
    *,
    seeds: int | Sequence[int] = 1,
    epochs: int = 100,
    hidden: int = 64,
    num_layers: int = 4,
    dropout: float = 0.5,
    lr: float = 0.01,
    batch_size: int = 128,
    val_fraction: float = 0.1,
) -> GraphSVMResult:
    """10-fold test accuracy of a supervised GIN (Xu et al. 2019, see the module docstring)
    over ``folds`` ((train, test) graph indices) and ``seeds``; ``mean`` / ``std`` as
    ``graph_svm`` (std over seeds of the fold mean; ``fold_std`` over folds). ``num_layers``
    GIN layers (Xu et al.'s 5 layers count the input); ``epochs`` is short by default (Xu et
    al. train 350)."""
    if not folds:
        raise DataError("supervised_gin needs (train, test) folds of graph indices")
    if not 0 < val_fraction < 1:
        raise ConfigError(f"val_fraction must be in (0, 1), got {val_fraction}")
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_list:
        raise ConfigError("seeds must be >= 1")
    labels = np.concatenate([np.asarray(g.y).reshape(-1) for g in graphs]).astype(np.int64)
    if len(labels) != len(graphs):
        raise DataError("every graph needs one label (graph.y of shape [1])")
    data = collate_graphs([Graph(g.x.float(), g.edge_index, None, 1, None) for g in graphs])
    settings = {
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "hidden": hidden,
        "num_layers": num_layers,
        "dropout": dropout,
    }
    runs = []
    with task("supervised GIN", len(seed_list) * len(folds)) as bar:
        for seed in seed_list:
            fold_runs = []
            for train, test in folds:
                fit, val = _holdout(labels, np.asarray(train), val_fraction, seed)
                rows = (fit, val, np.sort(np.asarray(test)))
                fold_runs.append(_gin_fold(data, labels, rows, seed, settings))
                bar.advance()
            accuracies = [run["test_accuracy"] for run in fold_runs]
            fold_mean, fold_std = mean_std(accuracies)
            runs.append(
                {
                    "seed": seed,
                    "accuracy": fold_mean,
                    "fold_std": fold_std,
                    "fold_accuracies": accuracies,
                    "best_epochs": [run["best_epoch"] for run in fold_runs],
                }
            )
    mean, std = mean_std([run["accuracy"] for run in runs])
    protocol = {
        "model": f"GIN (Xu et al. 2019): {num_layers} GIN layers of {hidden}, 2-layer MLPs, "
        "batch norm, ReLU, sum readout of every layer concatenated, dropout "
        f"{dropout}, linear classifier",
        "optimizer": f"Adam lr={lr} halved every 50 epochs, {epochs} epochs, batches of "
        f"{batch_size} graphs",
        "selection": f"the epoch with the best accuracy on a stratified {val_fraction:.0%} of "
        "the training fold (Errica et al. 2020); the test fold scored once with it",
        "folds": len(folds),
        "seeds": seed_list,
        "std": "population std over seeds of the 10-fold mean; fold_std: std over folds",
    }
    return GraphSVMResult(mean, std, mean_std([r["fold_std"] for r in runs])[0], runs, protocol)


# ---------------------------------------------------------------------------------------------
# Random-init encoder


def random_init_encoder(
    backbone: str | Callable[[], nn.Module] | nn.Module, *, seed: int = 0, **kwargs: Any
) -> nn.Module:
    """A freshly initialised encoder drawn from ``seed``: ``backbone`` is a registered name
    (``create_backbone(name, **kwargs)``, ``in_channels`` among them), a zero-argument factory,
    or a built encoder whose ``meta`` (architecture, options, input width) is rebuilt."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if isinstance(backbone, str):
            return create_backbone(backbone, **kwargs)
        if isinstance(backbone, nn.Module):
            meta = getattr(backbone, "meta", None)
            if meta is None:
                raise ConfigError(
                    "a random-init copy of an encoder needs its meta (architecture and "
                    "options): pass a backbone name or a factory instead"
                )
            options = {k: v for k, v in meta.kwargs.items() if k not in kwargs}
            return create_backbone(
                meta.architecture, in_channels=meta.in_channels, **options, **kwargs
            )
        return backbone()


def embed_graph_data(
    encoder: nn.Module, data: Graph | NodeIds | Sequence[Graph], *, batch_size: int = 256
) -> torch.Tensor:
    """``encoder``'s embeddings in eval mode under ``torch.inference_mode``: of one graph's
    nodes (``[N, D]``), of the nodes ``NodeIds`` name (a loaded node dataset's samples), or
    of each graph in a sequence (``[G, D]``, ``batch_size`` at a time)."""
    if isinstance(data, NodeIds):
        return embed_graph_samples(encoder, data, batch_size, None)
    was_training = encoder.training
    encoder.eval()
    try:
        with torch.inference_mode():
            if isinstance(data, Graph):
                return encoder(data).float()
            parts = [
                encoder(collate_graphs(list(data[start : start + batch_size]))).float()
                for start in range(0, len(data), batch_size)
            ]
            return torch.cat(parts)
    finally:
        encoder.train(was_training)


def random_init_embeddings(
    backbone: str | Callable[[], nn.Module] | nn.Module,
    data: Graph | NodeIds | Sequence[Graph],
    *,
    seed: int = 0,
    **kwargs: Any,
) -> torch.Tensor:
    """The random-init baseline's embeddings: ``random_init_encoder(backbone, seed=seed,
    **kwargs)`` applied to ``data`` (``embed_graph_data``). With a name, ``in_channels``
    defaults to the data's feature count. Score them with the same protocol as the trained
    encoder (``node_probe`` / ``graph_svm``) to get the baseline row."""
    first = data.graph if isinstance(data, NodeIds) else data
    first = first if isinstance(first, Graph) else first[0]
    if isinstance(backbone, str):
        kwargs.setdefault("in_channels", first.num_features)
    encoder = random_init_encoder(backbone, seed=seed, **kwargs)
    return embed_graph_data(encoder, data)
