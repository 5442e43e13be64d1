"""Full-batch semi-supervised node classification: a GNN trained on the labelled nodes'
cross-entropy plus self-supervised auxiliary tasks on all nodes (SelfTask-GNN, Jin et al. 2020,
"Self-supervised Learning on Graphs: Deep Insights and New Directions"; tasks in
``labelless.semi.graph_tasks``), optionally with confidence-thresholded pseudo-labels on the
unlabelled nodes (self-training: Lee 2013; Li, Han & Wu 2018 for GCNs) or Mean Teacher
consistency (Tarvainen & Valpola 2017) on the whole graph.

Protocol: every step sees the whole graph; only the training nodes' labels enter the loss
(the graph the model and the tasks read has ``y = -1`` everywhere else); the model kept is the
epoch with the best validation accuracy (ties: lower validation loss); the test nodes are
scored once, on that model. Each seed gets its own initialisation and dropout draws; with
several splits (the Geom-GCN sets), seed ``i`` runs on split ``i mod len(splits)``.

The default classifier (``graph_model.build_classifier``) is Kipf & Welling's GCN (ICLR 2017):
two GCN layers, ReLU, dropout before each, the second layer giving the class logits, Adam with
weight decay on the first layer only (and on the task heads). The auxiliary heads read the first
layer's output, as in Jin et al.'s code.

Why not the ``labelless.semi.algorithms`` classes: they push a batch of independent samples
(views concatenated along the batch) through ``head(backbone(x))``, while a node's logits
depend on its neighbours, so the unlabelled "samples" cannot be split off the graph. The
pseudo-labelling and Mean Teacher here reuse their loss functions (``confidence_mask``,
``cross_entropy``, ``linear_rampup``, ``softmax_mse``, ``sigmoid_rampup``) and ``nn.ema.EMA`` on
the nodes of the one graph.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from labelless.data.graph import Graph, normalise_rows
from labelless.errors import ConfigError, DataError, TrainingError
from labelless.nn.ema import EMA
from labelless.semi.graph_model import NodeClassifier, build_classifier
from labelless.semi.graph_tasks import GraphTask, LabelledNodes, TaskSpec, build_tasks
from labelless.semi.losses import (
    check_threshold,
    confidence_mask,
    cross_entropy,
    linear_rampup,
    sigmoid_rampup,
    softmax_mse,
)


@dataclass(frozen=True)
class PseudoLabelling:
    """Self-training on the unlabelled nodes: at each epoch, the classes predicted with
    confidence >= ``threshold`` by the previous epoch's dropout-free forward (the validation
    pass) are cross-entropy targets, averaged over all unlabelled nodes (masked ones count 0),
    weighted by ``weight * min(1, progress / rampup)``. Threshold 0.7: the best of 0.6 to
    0.95 on Cora's validation nodes with row-normalised features (with raw 0/1 features the
    softmax is sharper and 0.95 was best)."""

    threshold: float = 0.7
    weight: float = 1.0
    rampup: float = 0.2

    def __post_init__(self) -> None:
        check_threshold("pseudo-label threshold", self.threshold)


@dataclass(frozen=True)
class MeanTeacher:
    """Consistency with an EMA teacher (Tarvainen & Valpola 2017) on the whole graph: the
    student's class probabilities on every node are pulled towards the teacher's (the EMA of
    the student, ``momentum``, forward with its own dropout draw) by a squared error, weighted
    by ``weight * exp(-5 (1 - t)^2)`` over the first ``rampup`` of the run. The teacher is the
    model that is selected and scored, as in the image algorithm."""

    weight: float = 1.0
    momentum: float = 0.99
    rampup: float = 0.3

    def __post_init__(self) -> None:
        if not 0.0 <= self.momentum < 1.0:
            raise ConfigError(f"mean teacher momentum must be in [0, 1), got {self.momentum}")


@dataclass
class NodeSemiResult:
    """``metrics``: test / validation accuracy (mean and std over seeds, population std) and
    CPU seconds; ``protocol``: how it was measured; ``per_seed``: one dict per seed (split,
    best epoch, accuracies, validation curve, CPU seconds); ``model``: the first seed's
    selected classifier (``model(graph) -> [N, C]`` logits)."""

    metrics: dict[str, float]
    protocol: dict[str, Any]
    per_seed: list[dict[str, Any]] = field(default_factory=list)
    model: nn.Module | None = None


def _splits(graph: Graph, splits) -> list[dict[str, Tensor]]:
    listed = [splits] if isinstance(splits, Mapping) else list(splits)
    if not listed:
        raise DataError("node classification needs a split: {'train', 'val', 'test'} indices")
    for number, split in enumerate(listed):
        missing = {"train", "val", "test"} - set(split)
        if missing:
            raise DataError(f"split {number} lacks {sorted(missing)} node indices")
        parts = [torch.as_tensor(split[k]).long().cpu() for k in ("train", "val", "test")]
        everything = torch.cat(parts)
        if everything.numel() and (everything.min() < 0 or everything.max() >= graph.num_nodes):
            raise DataError(f"split {number} names nodes outside 0..{graph.num_nodes - 1}")
        if everything.unique().numel() != everything.numel():
            raise DataError(f"split {number}: train, val and test must be disjoint sets")
        if bool((graph.y[parts[0]] < 0).any()):
            raise DataError(f"split {number}: a training node has no label (y = -1)")
        if not bool((graph.y[parts[1]] >= 0).any()):
            raise DataError(f"split {number}: model selection needs labelled validation nodes")
    return [
        {k: torch.as_tensor(s[k]).long().cpu() for k in ("train", "val", "test")} for s in listed
    ]


def _accuracy(logits: Tensor, labels: Tensor, nodes: Tensor) -> float:
    known = nodes[labels[nodes] >= 0]
    if known.numel() == 0:
        return float("nan")
    return float((logits[known].argmax(dim=1) == labels[known]).float().mean())


@dataclass
class _Settings:
    epochs: int
    lr: float
    weight_decay: float
    decay_scope: str
    pseudo_label: PseudoLabelling | None
    mean_teacher: MeanTeacher | None
    classifier: dict[str, Any]


def _optimiser(model: NodeClassifier, tasks: list[GraphTask], s: _Settings) -> torch.optim.Adam:
    first = list(model.encoder.convs[0].parameters())
    chosen = {id(p) for p in first}
    rest = [p for p in model.parameters() if id(p) not in chosen]
    rest_decay = s.weight_decay if s.decay_scope == "all" else 0.0
    heads = [p for task in tasks for p in task.parameters()]
    groups = [
        {"params": first, "weight_decay": s.weight_decay},
        {"params": rest, "weight_decay": rest_decay},
        {"params": heads, "weight_decay": s.weight_decay},
    ]
    return torch.optim.Adam([g for g in groups if g["params"]], lr=s.lr)


def _unlabelled_terms(
    s: _Settings,
    progress: float,
    logits: Tensor,
    unlabelled: Tensor,
    previous: Tensor | None,
    teacher_logits: Tensor | None,
) -> Tensor:
    """The pseudo-label and Mean Teacher terms of a step (zero when neither is on)."""
    total = logits.new_zeros(())
    if s.pseudo_label is not None and previous is not None:
        mask, pseudo, _ = confidence_mask(previous[unlabelled], s.pseudo_label.threshold)
        term = (cross_entropy(logits[unlabelled], pseudo) * mask).mean()
        total = (
            total + s.pseudo_label.weight * linear_rampup(progress, s.pseudo_label.rampup) * term
        )
    if s.mean_teacher is not None and teacher_logits is not None:
        ramp = sigmoid_rampup(progress, s.mean_teacher.rampup)
        total = total + s.mean_teacher.weight * ramp * softmax_mse(logits, teacher_logits)
    return total


def _train_seed(
    graph: Graph,
    labels: Tensor,
    split: dict[str, Tensor],
    tasks: list[GraphTask],
    num_classes: int,
    seed: int,
    s: _Settings,
) -> tuple[NodeClassifier, dict[str, Any]]:
    """One seed: build, train ``s.epochs`` full-batch steps, keep the best validation epoch.
    ``graph.y`` holds the training labels only; ``labels`` (all of them) is read for the
    validation score each epoch and the test score once."""
    device = graph.x.device
    started = time.process_time()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_classifier(graph.num_features, num_classes, **s.classifier).to(device)
        for task in tasks:
            task.reset_head(model.hidden_dim)
    teacher = None if s.mean_teacher is None else EMA(model, s.mean_teacher.momentum, "warmup")
    evaluated = model if teacher is None else teacher.target  # Mean Teacher: the teacher
    generator = torch.Generator().manual_seed(seed)
    optimiser = _optimiser(model, tasks, s)
    train, val = split["train"].to(device), split["val"].to(device)
    unlabelled = torch.ones(graph.num_nodes, dtype=torch.bool, device=device)
    unlabelled[train] = False
    best: tuple[float, float] = (-1.0, float("inf"))
    best_state, best_epoch, curve, losses, previous = None, -1, [], [], None
    for epoch in range(s.epochs):
        progress = epoch / s.epochs
        model.train()
        inputs = graph
        for task in tasks:
            task.train()
            inputs = task.transform(inputs, generator)
        hidden, logits = model.forward_hidden(inputs, generator)
        loss = F.cross_entropy(logits[train], graph.y[train])
        for task in tasks:
            if task.weight > 0:
                loss = loss + task.weight * task.loss(hidden, generator)
        teacher_logits = None
        if teacher is not None:
            with torch.no_grad():
                teacher.target.train()  # its own dropout draw: the teacher's noise
                teacher_logits = teacher.target.forward_hidden(graph, generator)[1]
        loss = loss + _unlabelled_terms(s, progress, logits, unlabelled, previous, teacher_logits)
        if not torch.isfinite(loss):
            raise TrainingError(f"seed {seed}: the loss became {float(loss)} at epoch {epoch}")
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if teacher is not None:
            teacher.step(model, progress)
        losses.append(float(loss.detach()))
        evaluated.eval()
        with torch.no_grad():
            logits = evaluated(graph)
            previous = torch.softmax(logits, dim=1)
            for task in tasks:
                task.update(previous)
            val_loss = float(F.cross_entropy(logits[val], labels[val]))
            val_accuracy = _accuracy(logits, labels, val)
        curve.append(val_accuracy)
        if (val_accuracy, -val_loss) > (best[0], -best[1]):
            best, best_epoch = (val_accuracy, val_loss), epoch
            best_state = copy.deepcopy(evaluated.state_dict())
    evaluated.load_state_dict(best_state)
    evaluated.eval()
    with torch.no_grad():
        logits = evaluated(graph)
    record = {
        "seed": seed,
        "best_epoch": best_epoch,
        "val_accuracy": best[0],
        "val_loss": best[1],
        "test_accuracy": _accuracy(logits, labels, split["test"].to(device)),
        "train_accuracy": _accuracy(logits, labels, train),
        "val_curve": [round(v, 4) for v in curve],
        "loss_curve": [round(v, 5) for v in losses],
        "cpu_seconds": round(time.process_time() - started, 2),
    }
    return evaluated, record


def train_node_semi(
    graph: Graph,
    splits: Mapping[str, Tensor] | Sequence[Mapping[str, Tensor]],
    *,
    num_classes: int | None = None,
    tasks: TaskSpec = None,
    seeds: Sequence[int] = (0,),
    epochs: int = 200,
    backbone: str = "gcn",
    hidden_dim: int = 64,
    num_layers: int = 2,
    dropout: float = 0.5,
    lr: float = 0.01,
    weight_decay: float = 5e-4,
    decay_scope: str = "first",
    pseudo_label: PseudoLabelling | None = None,
    mean_teacher: MeanTeacher | None = None,
    aux_layer: int = 0,
    input_dropout: float | None = None,
    row_normalise: bool | None = None,
    backbone_kwargs: Mapping[str, Any] | None = None,
    device: str | torch.device = "cpu",
) -> NodeSemiResult:
    """Train a node classifier on ``graph`` (``y`` [N] labels, -1 = unknown) with the training
    nodes of ``splits`` (one ``{"train", "val", "test"}`` dict of node indices, or a list of
    them) plus the auxiliary ``tasks`` (see ``graph_tasks.build_tasks``: names with weights,
    e.g. ``"context_label=1"``, or ``GraphTask`` objects), once per seed. ``decay_scope``:
    ``"first"`` (Kipf & Welling: weight decay on the first layer; heads always decay) or
    ``"all"``. ``row_normalise``: Kipf & Welling's feature rows summing to one (``None``: when
    the features are non-negative). ``pseudo_label`` / ``mean_teacher``: add self-training or
    Mean Teacher consistency on the unlabelled nodes. Returns the mean and
    std test accuracy over seeds, the protocol, per-seed records and the first seed's model."""
    if graph.y is None or graph.y.shape != (graph.num_nodes,):
        raise DataError("semi-supervised node classification needs node labels y [N] (-1 = none)")
    if decay_scope not in ("first", "all"):
        raise ConfigError(f"decay_scope must be 'first' or 'all', got {decay_scope!r}")
    if epochs < 1 or not seeds:
        raise ConfigError(f"need epochs >= 1 and at least one seed, got {epochs}, {list(seeds)}")
    graph, features = normalise_rows(graph.to(device), row_normalise)
    labels = graph.y
    num_classes = int(labels.max()) + 1 if num_classes is None else int(num_classes)
    split_list = _splits(graph, splits)
    task_list = build_tasks(tasks)
    classifier = {
        "backbone": backbone,
        "hidden_dim": hidden_dim,
        "num_layers": num_layers,
        "dropout": dropout,
        "aux_layer": aux_layer,
        "input_dropout": dropout if input_dropout is None else input_dropout,
        **(backbone_kwargs or {}),
    }
    settings = _Settings(
        epochs, lr, weight_decay, decay_scope, pseudo_label, mean_teacher, classifier
    )
    per_seed, first_model, prepared = [], None, None
    for number, seed in enumerate(seeds):
        split_number = number % len(split_list)
        split = split_list[split_number]
        hidden_labels = torch.full_like(labels, -1)
        hidden_labels[split["train"]] = labels[split["train"]]
        seen = replace(graph, y=hidden_labels)
        if prepared != split_number:
            labelled = LabelledNodes(split["train"], labels[split["train"]].cpu(), num_classes)
            for task in task_list:
                task.prepare(seen.to("cpu"), labelled)
                task.to(device)
            prepared = split_number
        model, record = _train_seed(
            seen, labels, split, task_list, num_classes, int(seed), settings
        )
        per_seed.append({"split": split_number, **record})
        if first_model is None:
            first_model = model
    return NodeSemiResult(
        metrics=_summary(per_seed),
        protocol={
            **_protocol(settings, task_list, seeds, split_list, num_classes),
            "features": features,
        },
        per_seed=per_seed,
        model=first_model,
    )


def _summary(per_seed: list[dict[str, Any]]) -> dict[str, float]:
    test = np.array([r["test_accuracy"] for r in per_seed])
    val = np.array([r["val_accuracy"] for r in per_seed])
    return {
        "test_accuracy": float(test.mean()),
        "test_accuracy_std": float(test.std()),
        "val_accuracy": float(val.mean()),
        "val_accuracy_std": float(val.std()),
        "num_seeds": float(len(per_seed)),
        "cpu_seconds": float(sum(r["cpu_seconds"] for r in per_seed)),
    }


def _protocol(settings, tasks, seeds, splits, num_classes) -> dict[str, Any]:
    return {
        "task": "transductive semi-supervised node classification, full batch",
        "model": {**settings.classifier, "num_classes": num_classes, "head": "last GNN layer"},
        "optimiser": {
            "name": "adam",
            "lr": settings.lr,
            "weight_decay": settings.weight_decay,
            "decay_scope": settings.decay_scope,
        },
        "epochs": settings.epochs,
        "selection": "epoch with the best validation accuracy (ties: lower validation loss)",
        "test": "scored once, on the selected model",
        "labels_in_loss": "training nodes only (tasks read training labels only)",
        "aux_tasks": [{"name": t.name, **t.options()} for t in tasks],
        "aux_input": f"output of GNN layer {settings.classifier['aux_layer']} (-1: the logits)",
        "pseudo_label": None if settings.pseudo_label is None else asdict(settings.pseudo_label),
        "mean_teacher": None if settings.mean_teacher is None else asdict(settings.mean_teacher),
        "evaluated_model": "EMA teacher" if settings.mean_teacher is not None else "the model",
        "seeds": [int(s) for s in seeds],
        "num_splits": len(splits),
        "split_sizes": {k: int(v.numel()) for k, v in splits[0].items()},
        "std": "population std over seeds",
    }
