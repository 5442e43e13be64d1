"""``labelless semi`` on node-classification graphs: a full-batch GNN classifier on the labelled
nodes plus self-supervised auxiliary tasks on all nodes (``semi.graph_train``), as a run.

The image algorithms (FixMatch and kin) push batches of independent samples through the model;
a node's prediction depends on its neighbours, so graphs get their own methods:

- ``gcn``: the supervised GCN (Kipf & Welling 2017) on the labelled nodes, the baseline;
- ``selftask``: the GCN with auxiliary self-supervised tasks (SelfTask-GNN, Jin et al. 2020),
  ``semi.kwargs.tasks`` (default ``SELFTASK_DEFAULT``);
- ``pseudo_label``: the GCN with confidence-thresholded pseudo-labels on the unlabelled nodes
  (Lee 2013; Li, Han & Wu 2018), ``semi.kwargs.threshold`` / ``weight`` / ``rampup``.

One run trains one seed (``seed``) for ``trainer.max_epochs`` full-batch epochs with Adam at
``optim.lr`` / ``optim.weight_decay`` and keeps the epoch with the best validation accuracy; the
test nodes are scored once. A graph run takes seconds, so it writes no checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from labelless.data import DataSplits
from labelless.errors import ConfigError, DataError

SELFTASK_DEFAULT = "context_label=1,distance2labeled=1"
GRAPH_SEMI_METHODS = {
    "gcn": "supervised GCN on the labelled nodes (Kipf & Welling 2017), the baseline",
    "selftask": "GCN + self-supervised auxiliary tasks on all nodes (Jin et al. 2020)",
    "pseudo_label": "GCN + confidence-thresholded pseudo-labels on unlabelled nodes (Lee 2013)",
}
#: semi.kwargs a graph method takes besides its own (the classifier's shape).
CLASSIFIER_OPTIONS = ("backbone", "hidden_dim", "num_layers", "dropout", "decay_scope")
METHOD_OPTIONS = {
    "gcn": (),
    "selftask": ("tasks",),
    "pseudo_label": ("threshold", "weight", "rampup"),
}


def _node_split(train, config) -> dict[str, torch.Tensor]:
    """The labelled nodes (the training split's labels), and the validation and test nodes of
    the data's split; a graph without splits gets a seeded one (20 labelled nodes per class
    unless ``semi.labels_per_class``, 500 validation nodes, the rest test)."""
    labelled = np.flatnonzero(train.labels >= 0) if train.labels is not None else np.array([])
    splits = train.meta.get("splits") or []
    if splits:
        chosen = splits[int(train.meta.get("split", 0))]
        return {
            "train": torch.as_tensor(labelled),
            "val": torch.as_tensor(chosen["val"]),
            "test": torch.as_tensor(chosen["test"]),
        }
    y = train.samples.graph.y
    if y is None or not bool((y >= 0).any()):
        raise DataError(
            f"{train.name!r} has no node labels: semi-supervised node classification needs a few "
            "(a labels CSV next to the edge list, -1 = unlabelled)"
        )
    rng = np.random.default_rng(config.seed)
    known = np.flatnonzero(y.numpy() >= 0)
    per_class = config.semi.labels_per_class or 20
    order = rng.permutation(known)
    picked = np.concatenate(
        [order[y.numpy()[order] == c][:per_class] for c in np.unique(y.numpy()[known])]
    )
    rest = np.setdiff1d(order, picked, assume_unique=True)
    rest = rng.permutation(rest)
    val = rest[: min(500, len(rest) // 2)]
    test = np.setdiff1d(rest, val)
    return {
        "train": torch.as_tensor(np.sort(picked)),
        "val": torch.as_tensor(np.sort(val)),
        "test": torch.as_tensor(test),
    }


def run_graph_semi(config, splits: DataSplits, run_dir: Path) -> tuple[dict[str, Any], Any]:
    """Train ``config.semi.method`` on the node graph of ``splits``; save the classifier as the
    run's encoder. Returns ``(metrics, model)``."""
    from labelless.backbones import save_encoder
    from labelless.semi.graph_train import PseudoLabelling, train_node_semi

    method = config.semi.method
    train = splits.train
    if train.meta.get("level") != "node":
        raise DataError(
            f"{train.name!r} is a set of graphs: labelless semi on graphs classifies nodes; for "
            "graph classification pretrain an encoder (labelless pretrain) and evaluate it"
        )
    options = dict(config.semi.kwargs)
    allowed = (*CLASSIFIER_OPTIONS, *METHOD_OPTIONS[method])
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(
            f"semi.kwargs {unknown} are not options of the graph method {method!r}; it takes "
            f"{', '.join(allowed)}"
        )
    tasks = options.pop("tasks", SELFTASK_DEFAULT) if method == "selftask" else None
    pseudo = None
    if method == "pseudo_label":
        pseudo = PseudoLabelling(
            **{key: options.pop(key) for key in METHOD_OPTIONS[method] if key in options}
        )
    graph = train.samples.graph
    split = _node_split(train, config)
    result = train_node_semi(
        graph,
        split,
        num_classes=train.num_classes or None,
        tasks=tasks,
        seeds=[config.seed],
        epochs=config.trainer.max_epochs,
        lr=config.optim.lr,
        weight_decay=config.optim.weight_decay,
        pseudo_label=pseudo,
        **options,
    )
    save_encoder(result.model.encoder, run_dir)
    seed_record = result.per_seed[0]
    metrics: dict[str, Any] = {
        "test_top1": result.metrics["test_accuracy"],
        "val_top1": result.metrics["val_accuracy"],
        "protocol": {**result.protocol, "method": method},
        "split": {
            "labelled": int(split["train"].numel()),
            "val": int(split["val"].numel()),
            "test": int(split["test"].numel()),
            "num_classes": int(train.num_classes),
            "seed": config.seed,
        },
        "training": {
            "method": method,
            "epochs_done": config.trainer.max_epochs,
            "best_epoch": seed_record.get("best_epoch"),
            "cpu_seconds": round(result.metrics["cpu_seconds"], 2),
            "stopped_by": "max_epochs",
            "final_not_best": False,
        },
    }
    return metrics, result.model
