"""Self-supervised auxiliary tasks for semi-supervised node classification: SelfTask-GNN (Jin,
Derr, Liu, Wang, Wang, Liu & Tang 2020, "Self-supervised Learning on Graphs: Deep Insights and
New Directions", arXiv:2006.10141).

The classifier's hidden node embeddings ``[N, D]`` feed, besides the class head, one small head
per task, and the training loss is the labelled nodes' cross-entropy plus ``sum_t weight_t *
loss_t`` (the paper's joint training). Each task's targets are computed once per graph and
labelled set (``prepare``; see ``labelless.semi.graph_targets``), its head is rebuilt per seed
(``reset_head``), and a training step only gathers, multiplies and averages tensors.

Structure-only tasks (the paper's "basic" pretext tasks):

- ``node_property``: each node's degree, as three buckets (at most 2, 3-7, more than 7
  neighbours: the paper's classification) or a regression of the standardised log-degree.
- ``distance2clusters``: closeness ``1 / (1 + hops)`` to the centre of each part of a graph
  partition. The paper cuts the graph with METIS; here the partition is spectral (k-means on
  the leading eigenvectors of the normalised adjacency of the largest component, fixed seed),
  and a part's centre is its node with the most neighbours inside the part, as in the paper.
- ``attribute_mask``: the features of a random fraction of the unlabelled nodes are zeroed in
  the input and their principal components (the paper's PCA-reduced features) regressed.

Label-aware tasks (the paper's SelfTask direction). They read the labels of the training nodes
only (``LabelledNodes``), never those of validation or test nodes:

- ``distance2labeled``: for every class, the mean (and optionally max / min) closeness to the
  labelled nodes of that class.
- ``context_label``: the class distribution of the nodes within ``hops`` hops, counting the
  labelled nodes' labels and, for the others, pseudo-labels from label propagation (``lp``),
  the iterative classification algorithm (``ica``) or both (``lp+ica``: summed probabilities,
  the paper's combined agent); the head's softmax is pulled towards it with a squared error.

Every random draw (attribute masks, head dropout) comes from the step's ``generator``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from labelless.data.graph import Graph
from labelless.errors import ConfigError, unknown_name
from labelless.nn import sampling
from labelless.semi.graph_targets import (
    closeness,
    hop_distances,
    iterative_classification,
    label_propagation,
    node_degrees,
    part_centres,
    pca,
    spectral_partition,
    within_hops,
)

PSEUDO_SOURCES = ("lp", "ica", "lp+ica")


@dataclass(frozen=True)
class LabelledNodes:
    """What label-aware tasks may read: the training nodes ``index [L]``, their ``labels [L]``
    and the number of classes. Validation and test labels never reach a task."""

    index: Tensor
    labels: Tensor
    num_classes: int

    def unlabelled_mask(self, num_nodes: int) -> Tensor:
        mask = torch.ones(num_nodes, dtype=torch.bool)
        mask[self.index] = False
        return mask


def dropout(
    h: Tensor, p: float, training: bool, generator: torch.Generator | None = None
) -> Tensor:
    """Inverted dropout whose mask comes from ``generator`` (``F.dropout`` takes none)."""
    if not training or p <= 0.0:
        return h
    keep = sampling.rand(tuple(h.shape), generator=generator, device=h.device) >= p
    return h * keep / (1.0 - p)


class GraphTask(nn.Module):
    """Base class of an auxiliary task: ``prepare`` (targets, once per graph and labelled set),
    ``reset_head(in_dim)`` (a fresh linear head), ``transform`` (the step's training input;
    identity unless the task corrupts it) and ``loss(hidden, generator)`` (a scalar)."""

    name: ClassVar[str] = ""
    label_aware: ClassVar[bool] = False

    def __init__(self, weight: float = 1.0) -> None:
        super().__init__()
        if not weight >= 0.0:
            raise ConfigError(f"task {self.name!r}: weight must be >= 0, got {weight}")
        self.weight = float(weight)
        self.head: nn.Module | None = None

    def prepare(self, graph: Graph, labelled: LabelledNodes) -> None:
        raise NotImplementedError

    def output_dim(self) -> int:
        raise NotImplementedError

    def reset_head(self, in_dim: int) -> None:
        device = next((b.device for b in self.buffers()), torch.device("cpu"))
        self.head = nn.Linear(in_dim, self.output_dim()).to(device)

    def transform(self, graph: Graph, generator: torch.Generator | None = None) -> Graph:
        return graph

    def loss(self, hidden: Tensor, generator: torch.Generator | None = None) -> Tensor:
        raise NotImplementedError

    def update(self, predictions: Tensor) -> None:
        """After each epoch: the classifier's dropout-free class probabilities ``[N, C]`` (model
        outputs, no labels). Tasks with fixed targets ignore them."""

    def options(self) -> dict[str, Any]:
        """What the run record says about this task."""
        return {"weight": self.weight}

    def _keep(self, name: str, value: Tensor) -> None:
        self.register_buffer(name, value, persistent=False)


class NodeProperty(GraphTask):
    """Degree of each node: ``kind="buckets"``, cross-entropy over degree <= ``bounds[0]``,
    <= ``bounds[1]``, above (Jin et al.'s 2 and 7); ``kind="regression"``, squared error to the
    standardised ``log(1 + degree)``. All nodes."""

    name = "node_property"

    def __init__(self, weight: float = 1.0, *, kind: str = "buckets", bounds=(2, 7)) -> None:
        super().__init__(weight)
        if kind not in ("buckets", "regression"):
            raise unknown_name("node_property kind", kind, ("buckets", "regression"))
        self.kind, self.bounds = kind, tuple(int(b) for b in bounds)

    def prepare(self, graph: Graph, labelled: LabelledNodes) -> None:
        degree = node_degrees(graph.edge_index.cpu(), graph.num_nodes)
        if self.kind == "buckets":
            self._keep("target", torch.bucketize(degree, torch.tensor(self.bounds)))
        else:
            value = torch.log1p(degree.float())
            self._keep("target", ((value - value.mean()) / value.std().clamp_min(1e-12))[:, None])

    def output_dim(self) -> int:
        return len(self.bounds) + 1 if self.kind == "buckets" else 1

    def loss(self, hidden: Tensor, generator: torch.Generator | None = None) -> Tensor:
        out = self.head(hidden)
        if self.kind == "buckets":
            return F.cross_entropy(out, self.target)
        return F.mse_loss(out, self.target)

    def options(self) -> dict[str, Any]:
        return {**super().options(), "kind": self.kind, "bounds": list(self.bounds)}


class Distance2Clusters(GraphTask):
    """Closeness ``1 / (1 + hops)`` (0 beyond ``max_hops``) of every node to the centre of
    each of ``num_clusters`` spectral parts (Jin et al. use METIS); squared error, all nodes."""

    name = "distance2clusters"

    def __init__(self, weight: float = 1.0, *, num_clusters: int = 10, max_hops: int = 10):
        super().__init__(weight)
        self.num_clusters, self.max_hops = int(num_clusters), int(max_hops)

    def prepare(self, graph: Graph, labelled: LabelledNodes) -> None:
        edges = graph.edge_index.cpu()
        parts = spectral_partition(edges, graph.num_nodes, self.num_clusters)
        centres = part_centres(edges, parts, self.num_clusters)
        distance = hop_distances(edges, graph.num_nodes, centres, self.max_hops)
        self._keep("parts", parts)
        self._keep("target", closeness(distance))

    def output_dim(self) -> int:
        return self.num_clusters

    def loss(self, hidden: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return F.mse_loss(self.head(hidden), self.target)

    def options(self) -> dict[str, Any]:
        return {
            **super().options(),
            "num_clusters": self.num_clusters,
            "max_hops": self.max_hops,
            "partition": "spectral k-means on the largest connected component (no METIS)",
        }


class AttributeMask(GraphTask):
    """Zero the features of ``mask_rate`` of the unlabelled nodes (a new draw every step) and
    regress their first ``pca_dim`` unit-variance principal components (``None``: the raw
    features) from the hidden embeddings; squared error over the masked nodes."""

    name = "attribute_mask"

    def __init__(self, weight: float = 1.0, *, mask_rate: float = 0.1, pca_dim: int | None = 64):
        super().__init__(weight)
        if not 0.0 < mask_rate < 1.0:
            raise ConfigError(f"attribute_mask: mask_rate must be in (0, 1), got {mask_rate}")
        self.mask_rate, self.pca_dim = float(mask_rate), pca_dim
        self.masked: Tensor | None = None

    def prepare(self, graph: Graph, labelled: LabelledNodes) -> None:
        x = graph.x.detach().cpu().float()
        self._keep("target", x if self.pca_dim is None else pca(x, int(self.pca_dim)))
        self._keep("candidates", torch.nonzero(labelled.unlabelled_mask(graph.num_nodes))[:, 0])

    def output_dim(self) -> int:
        return int(self.target.shape[1])

    def transform(self, graph: Graph, generator: torch.Generator | None = None) -> Graph:
        count = max(1, round(self.mask_rate * self.candidates.numel()))
        order = sampling.randperm(
            self.candidates.numel(), generator=generator, device=self.candidates.device
        )
        self.masked = self.candidates[order[:count]]
        x = graph.x.clone()
        x[self.masked] = 0.0
        return replace(graph, x=x)

    def loss(self, hidden: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if self.masked is None:
            raise RuntimeError("attribute_mask: call transform() before loss() in each step")
        masked, self.masked = self.masked, None
        return F.mse_loss(self.head(hidden[masked]), self.target[masked])

    def options(self) -> dict[str, Any]:
        return {**super().options(), "mask_rate": self.mask_rate, "pca_dim": self.pca_dim}


STATISTICS = ("mean", "max", "min")


class Distance2Labeled(GraphTask):
    """For each class and each of ``stats`` (``mean``, ``max``, ``min``), that statistic of the
    closeness ``1 / (1 + hops)`` (0 beyond ``max_hops``) to the labelled nodes of the class;
    squared error over the unlabelled nodes (as Jin et al.'s code)."""

    name = "distance2labeled"
    label_aware = True

    def __init__(self, weight: float = 1.0, *, stats=("mean",), max_hops: int = 10) -> None:
        super().__init__(weight)
        self.stats = tuple(stats)
        for stat in self.stats:
            if stat not in STATISTICS:
                raise unknown_name("distance2labeled statistic", stat, STATISTICS)
        self.max_hops = int(max_hops)

    def prepare(self, graph: Graph, labelled: LabelledNodes) -> None:
        edges = graph.edge_index.cpu()
        near = closeness(hop_distances(edges, graph.num_nodes, labelled.index, self.max_hops))
        member = F.one_hot(labelled.labels, labelled.num_classes).bool()  # [L, C]
        spread = near[:, :, None].expand(-1, -1, labelled.num_classes)  # [N, L, C]
        counts = member.sum(dim=0)
        columns = {
            "mean": (near @ member.float()) / counts.clamp_min(1),
            "max": spread.masked_fill(~member, float("-inf")).amax(dim=1),
            "min": spread.masked_fill(~member, float("inf")).amin(dim=1),
        }
        target = torch.cat([columns[stat] for stat in self.stats], dim=1)
        present = counts.bool().repeat(len(self.stats))
        self._keep("target", torch.where(present, target, 0.0))
        self._keep("nodes", labelled.unlabelled_mask(graph.num_nodes))

    def output_dim(self) -> int:
        return int(self.target.shape[1])

    def loss(self, hidden: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return F.mse_loss(self.head(hidden[self.nodes]), self.target[self.nodes])

    def options(self) -> dict[str, Any]:
        return {**super().options(), "stats": list(self.stats), "max_hops": self.max_hops}


class ContextLabel(GraphTask):
    """The class distribution of the nodes within ``hops`` hops (the node itself excluded, each
    node once): labelled nodes count with their label, the others with a pseudo-label from
    ``pseudo`` (``lp``, ``ica``, ``lp+ica``; one-hot argmax, or the probabilities when
    ``soft``). Loss: squared error between ``softmax(head(dropout(hidden)))`` and that
    distribution, averaged over the unlabelled nodes with a non-empty context (Jin et al.).

    ``refresh``: after every epoch the pseudo-labels become the argmax of the source's
    probabilities averaged with the classifier's own dropout-free predictions, and the targets
    are recounted (one sparse product); the spirit of Jin et al.'s label correction, which
    corrects the context labels with the model being trained."""

    name = "context_label"
    label_aware = True

    def __init__(
        self,
        weight: float = 1.0,
        *,
        hops: int = 2,
        pseudo: str = "lp+ica",
        soft: bool = False,
        refresh: bool = False,
        dropout: float = 0.5,
    ) -> None:
        super().__init__(weight)
        if pseudo not in PSEUDO_SOURCES:
            raise unknown_name("context_label pseudo-label source", pseudo, PSEUDO_SOURCES)
        self.hops, self.pseudo, self.soft = int(hops), pseudo, bool(soft)
        self.refresh, self.dropout = bool(refresh), float(dropout)

    def pseudo_probabilities(self, graph: Graph, labelled: LabelledNodes) -> Tensor:
        """``[N, C]``: the pseudo-label source's class probabilities."""
        edges, x = graph.edge_index.cpu(), graph.x.detach().cpu().float()
        args = (labelled.index, labelled.labels, labelled.num_classes)
        probs = torch.zeros(graph.num_nodes, labelled.num_classes)
        if "lp" in self.pseudo.split("+"):
            probs = probs + label_propagation(edges, graph.num_nodes, *args)
        if "ica" in self.pseudo.split("+"):
            probs = probs + iterative_classification(x, edges, *args)
        return probs / probs.sum(dim=1, keepdim=True)

    def prepare(self, graph: Graph, labelled: LabelledNodes) -> None:
        probs = self.pseudo_probabilities(graph, labelled)
        self._keep("source", probs)
        self._keep("labelled", labelled.index)
        self._keep("labels", F.one_hot(labelled.labels, labelled.num_classes).float())
        self._keep("context", within_hops(graph.edge_index.cpu(), graph.num_nodes, self.hops))
        total = torch.sparse.sum(self.context, dim=1).to_dense()
        self._keep("nodes", labelled.unlabelled_mask(graph.num_nodes) & (total > 0))
        self._count(probs)

    def _count(self, probs: Tensor) -> None:
        """Targets from pseudo-label probabilities ``[N, C]`` (labelled rows replaced)."""
        votes = probs if self.soft else F.one_hot(probs.argmax(dim=1), probs.shape[1]).float()
        votes = votes.clone()
        votes[self.labelled] = self.labels
        counts = torch.sparse.mm(self.context, votes)
        self._keep("pseudo_labels", votes.argmax(dim=1))
        self._keep("target", counts / counts.sum(dim=1, keepdim=True).clamp_min(1e-12))

    def update(self, predictions: Tensor) -> None:
        if self.refresh:
            self._count((self.source + predictions.detach()) / 2.0)

    def output_dim(self) -> int:
        return int(self.target.shape[1])

    def loss(self, hidden: Tensor, generator: torch.Generator | None = None) -> Tensor:
        h = dropout(hidden[self.nodes], self.dropout, self.training, generator)
        return F.mse_loss(torch.softmax(self.head(h), dim=1), self.target[self.nodes])

    def options(self) -> dict[str, Any]:
        return {
            **super().options(),
            "hops": self.hops,
            "pseudo": self.pseudo,
            "soft": self.soft,
            "refresh": self.refresh,
            "dropout": self.dropout,
        }


TASKS: dict[str, type[GraphTask]] = {
    cls.name: cls
    for cls in (NodeProperty, Distance2Clusters, AttributeMask, Distance2Labeled, ContextLabel)
}

TaskSpec = str | Mapping[str, Any] | Sequence[GraphTask] | None


def create_task(name: str, weight: float = 1.0, **options: Any) -> GraphTask:
    """A task by its registry name; unknown names and options are ConfigErrors."""
    if name not in TASKS:
        raise unknown_name("graph auxiliary task", name, list(TASKS))
    try:
        return TASKS[name](weight, **options)
    except TypeError as error:
        raise ConfigError(f"invalid options for graph task {name!r}: {error}") from error


def build_tasks(spec: TaskSpec) -> list[GraphTask]:
    """Tasks from ``"context_label=10,distance2labeled=1"`` (name=weight, weight 1 when left
    out), a mapping ``{name: weight}`` or ``{name: {"weight": w, **options}}``, or a sequence of
    ``GraphTask`` objects (returned as a list). ``None`` or ``""``: no task."""
    if not spec:
        return []
    if isinstance(spec, str):
        pairs = [item.strip().partition("=") for item in spec.split(",") if item.strip()]
        try:
            return [create_task(n.strip(), float(w) if sep else 1.0) for n, sep, w in pairs]
        except ValueError as error:
            raise ConfigError(
                f"graph tasks {spec!r}: write name=weight pairs separated by commas, e.g. "
                "context_label=10,distance2labeled=1"
            ) from error
    if isinstance(spec, Mapping):
        tasks = []
        for name, value in spec.items():
            options = dict(value) if isinstance(value, Mapping) else {"weight": value}
            tasks.append(create_task(name, **options))
        return tasks
    tasks = list(spec)
    if not all(isinstance(task, GraphTask) for task in tasks):
        raise ConfigError("graph tasks: a sequence must hold GraphTask objects (or pass names)")
    return tasks
