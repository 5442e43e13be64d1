"""The graph papers' evaluation protocols on frozen embeddings, each with its record.

- ``node_probe``: node classification (DGI, Velickovic et al. 2019; GRACE, Zhu et al. 2020;
  GraphMAE, Hou et al. 2022): multinomial logistic regression on frozen node embeddings,
  standardised with the training nodes' statistics (or L2-normalised), its inverse
  regularisation C chosen by accuracy on the validation nodes, the test nodes scored once with
  the chosen C; repeated over classifier seeds (random initialisation, Adam for a fixed number
  of epochs as DGI's and GraphMAE's probes) and over every given split (the 10 Geom-GCN splits).
  All seeds and C values of a split train together as one ``[D, models * classes]`` weight.
- ``graph_svm`` (``evaluate.graph_sets``, imported here): graph classification (InfoGraph,
  GraphCL, GraphMAE): an RBF SVC, C chosen by 5-fold CV inside each training fold, 10-fold
  test accuracy over seeds.
- ``node_clustering``: k-means with k = number of classes on L2-normalised embeddings, NMI and
  ARI over k-means seeds.
- ``link_prediction`` / ``link_auc`` (``evaluate.graph_links``, imported here): ROC AUC and
  average precision of the dot-product (or cosine) score of held-out edges against sampled
  non-edges (GAE, Kipf & Welling 2016); the split is ``data.graph_splits.split_edges``.

Baselines (raw features, supervised GCN / GIN, random-init encoder): ``evaluate.graph_baselines``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from labelless.errors import ConfigError, DataError
from labelless.evaluate.catalog import declare_metric
from labelless.evaluate.clustering import kmeans_clustering
from labelless.evaluate.graph_links import LinkResult, link_auc, link_prediction, pair_scores
from labelless.evaluate.graph_sets import GraphSVMResult, graph_svm, mean_std
from labelless.evaluate.knn import ArrayLike, as_float_tensor, as_label_tensor
from labelless.progress import task

# GRACE's grid is 2^-10..2^10; half decades cover a similar range in 17 fits per seed (a decade
# grid put every Cora encoder's choice on C = 1e-3; the half steps between gained ~0.5 points).
NODE_C_GRID = tuple(float(f"{10 ** (k / 2):.3g}") for k in range(-8, 9))
NODE_PROBE_RUNS = 20  # runs in total when ``seeds`` is not given (GraphMAE: 20 seeds)
PROBE_EPOCHS = 300  # GraphMAE's max_epoch_f on Cora, CiteSeer and PubMed
PROBE_LR = 0.01  # DGI's and GraphMAE's probe learning rate
NORMALISATIONS = ("standard", "l2", "none")

__all__ = [
    "GraphSVMResult",
    "LinkResult",
    "NodeClusteringResult",
    "NodeProbeResult",
    "fit_probes",
    "graph_svm",
    "link_auc",
    "link_prediction",
    "node_clustering",
    "node_probe",
    "pair_scores",
]

declare_metric(
    "node_probe_top1",
    "node logistic regression test accuracy (C on validation nodes)",
    "node_probe",
    charted=True,
    fitted=("chosen_C", "val_accuracy", "split_means"),
)
declare_metric(
    "node_probe_std",
    "node probe accuracy, std over runs",
    "node_probe",
    shown=False,
    fitted=("chosen_C", "val_accuracy", "split_means"),
)
declare_metric("node_clustering_nmi", "k-means NMI of node embeddings", "node_clustering")


# ---------------------------------------------------------------------------------------------
# Node classification


@dataclass
class NodeProbeResult:
    """Test accuracy mean / std over runs (every split x every seed), one entry per run in
    ``runs`` (split, seed, chosen C, validation and test accuracy), and the protocol."""

    mean: float
    std: float
    runs: list[dict[str, Any]]
    protocol: dict[str, Any] = field(default_factory=dict)

    @property
    def accuracies(self) -> list[float]:
        """Test accuracy of each run (split-major, then seed)."""
        return [run["test_accuracy"] for run in self.runs]

    per_seed = accuracies


def probe_seeds(seeds: int | Sequence[int] | None, num_splits: int) -> list[int]:
    """The classifier seeds run on each split: ``n`` -> ``0..n-1``; ``None`` -> enough for
    ``NODE_PROBE_RUNS`` runs over ``num_splits`` splits."""
    if seeds is None:
        return list(range(max(1, math.ceil(NODE_PROBE_RUNS / num_splits))))
    if isinstance(seeds, int):
        if seeds < 1:
            raise ConfigError(f"seeds must be >= 1, got {seeds}")
        return list(range(seeds))
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ConfigError("seeds is empty: give a count or at least one seed")
    return seeds


def _normalise(x: torch.Tensor, fit: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "standard":
        reference = x[fit]
        std = reference.std(0)
        # A column constant on the training nodes keeps its scale (as sklearn's StandardScaler):
        # dividing by ~0 would blow up the nodes outside train that differ there.
        return (x - reference.mean(0)) / torch.where(std > 1e-6, std, torch.ones_like(std))
    if kind == "l2":
        return F.normalize(x, dim=1)
    return x


def labelled_split(split: dict, labels: torch.Tensor, index: int) -> dict[str, torch.Tensor]:
    """``split``'s train / val / test nodes (index tensors or boolean masks) as index tensors,
    unlabelled nodes (-1) dropped; a DataError for a missing part or an index out of range."""
    missing = {"train", "val", "test"} - set(split)
    if missing:
        raise DataError(f"split {index} lacks {sorted(missing)}: give train, val and test nodes")
    nodes = {}
    for part in ("train", "val", "test"):
        chosen = torch.as_tensor(split[part]).reshape(-1).to(labels.device)
        if chosen.dtype == torch.bool:  # a node mask (PyG's train_mask)
            if len(chosen) != len(labels):
                raise DataError(
                    f"split {index} {part}: a mask of {len(chosen)} for {len(labels)} nodes"
                )
            chosen = chosen.nonzero().squeeze(1)
        chosen = chosen.long()
        if len(chosen) and not 0 <= int(chosen.min()) <= int(chosen.max()) < len(labels):
            raise DataError(f"split {index} {part}: node index outside 0..{len(labels) - 1}")
        chosen = chosen[labels[chosen] >= 0]  # unlabelled nodes cannot be scored
        if len(chosen) == 0:
            raise DataError(f"split {index} has no labelled {part} node")
        nodes[part] = chosen
    return nodes


def fit_probes(
    x: torch.Tensor,
    y: torch.Tensor,
    inverse_c: torch.Tensor,
    seeds: Sequence[int],
    num_classes: int,
    *,
    epochs: int = PROBE_EPOCHS,
    lr: float = PROBE_LR,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logistic regressions on ``x [n, D]`` for every (seed, C): ``weight [S, C, D, K]``,
    ``bias [S, C, K]``.

    Model (s, c) minimises ``mean CE + (1 / (2 C n)) ||W||^2`` (sklearn's C, divided by n),
    from a Glorot-uniform weight drawn from ``seed`` (shared by that seed's C values) and a
    zero bias, with full-batch Adam (``lr``, ``epochs`` steps). The models share nothing but
    the input: Adam is per-parameter, so training them together equals training each alone.
    """
    n, dim = x.shape
    num_seeds, num_c = len(seeds), len(inverse_c)
    bound = math.sqrt(6.0 / (dim + num_classes))
    inits = [
        (torch.rand(dim, num_classes, generator=torch.Generator().manual_seed(s)) * 2 - 1) * bound
        for s in seeds
    ]
    weight = torch.stack(inits)[:, None].expand(num_seeds, num_c, dim, num_classes)
    # [D, S * C * K]: one GEMM gives every model's logits.
    weight = weight.permute(2, 0, 1, 3).reshape(dim, -1).to(x.device).clone().requires_grad_()
    bias = torch.zeros(num_seeds * num_c * num_classes, device=x.device, requires_grad=True)
    penalty = (inverse_c / n).repeat(num_seeds).to(x.device)  # [S * C]
    optimizer = torch.optim.Adam([weight, bias], lr=lr)
    targets = y[:, None].expand(n, num_seeds * num_c)
    with torch.enable_grad():
        for _ in range(epochs):
            optimizer.zero_grad(set_to_none=True)
            logits = torch.addmm(bias, x, weight).view(n, -1, num_classes)
            loss = F.cross_entropy(logits.transpose(1, 2), targets, reduction="sum") / n
            squares = weight.square().view(dim, -1, num_classes).sum((0, 2))
            (loss + 0.5 * (penalty * squares).sum()).backward()
            optimizer.step()
    weight = weight.detach().view(dim, num_seeds, num_c, num_classes).permute(1, 2, 0, 3)
    return weight, bias.detach().view(num_seeds, num_c, num_classes)


def _scores(
    x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Accuracy and mean cross-entropy ``[S, C]`` of every model on ``(x, y)``."""
    logits = torch.einsum("nd,scdk->nksc", x, weight) + bias.permute(2, 0, 1)[None]
    accuracy = (logits.argmax(1) == y[:, None, None]).float().mean(0)
    targets = y[:, None, None].expand(-1, *logits.shape[2:])
    return accuracy, F.cross_entropy(logits, targets, reduction="none").mean(0)


def _probe_split(x, labels, nodes, c_grid, seeds, num_classes, normalise, epochs, lr):
    x = _normalise(x, nodes["train"], normalise)
    inverse_c = torch.tensor([1.0 / c for c in c_grid], dtype=torch.float32)
    train = nodes["train"]
    weight, bias = fit_probes(
        x[train], labels[train], inverse_c, seeds, num_classes, epochs=epochs, lr=lr
    )
    val_accuracy, val_loss = _scores(x[nodes["val"]], labels[nodes["val"]], weight, bias)
    # Best validation accuracy; ties: lower validation loss. Test labels are not read here.
    best = val_accuracy == val_accuracy.max(dim=1, keepdim=True).values
    chosen = val_loss.masked_fill(~best, float("inf")).argmin(dim=1)  # [S]
    rows = torch.arange(len(seeds))
    best_weight, best_bias = weight[rows, chosen][:, None], bias[rows, chosen][:, None]
    test_accuracy, _ = _scores(x[nodes["test"]], labels[nodes["test"]], best_weight, best_bias)
    return [
        {
            "seed": seed,
            "chosen_C": float(c_grid[int(chosen[i])]),
            "val_accuracy": float(val_accuracy[i, chosen[i]]),
            "val_accuracies": [float(v) for v in val_accuracy[i]],
            "test_accuracy": float(test_accuracy[i, 0]),
        }
        for i, seed in enumerate(seeds)
    ]


def node_probe(
    z: ArrayLike,
    labels: ArrayLike,
    splits: Sequence[dict[str, ArrayLike]],
    *,
    seeds: int | Sequence[int] | None = None,
    C_grid: Sequence[float] = NODE_C_GRID,
    normalise: str = "standard",
    epochs: int = PROBE_EPOCHS,
    lr: float = PROBE_LR,
) -> NodeProbeResult:
    """The node-classification protocol of DGI / GRACE / GraphMAE on frozen embeddings.

    Args:
        z: ``[N, D]`` node embeddings (numpy or torch).
        labels: ``[N]`` integer classes, -1 = unlabelled (such nodes are dropped from splits).
        splits: one or more ``{"train", "val", "test"}`` node-index dicts; every split is run.
        seeds: classifier seeds run on each split (a count ``n`` means ``0..n-1``); default:
            20 runs in total (20 seeds on one split, 2 on each of the 10 Geom-GCN splits).
        C_grid: inverse L2 strengths (sklearn's C); model (seed, C) minimises
            ``mean CE + ||W||^2 / (2 C n_train)``.
        normalise: ``"standard"`` (mean / std of the split's training nodes), ``"l2"`` (each
            row to unit norm, GRACE) or ``"none"``.
        epochs, lr: full-batch Adam steps and learning rate, from a seeded Glorot init.

    For each (split, seed) the C with the best validation accuracy (ties: lower validation
    loss) is chosen and only that classifier is scored on the test nodes: test labels never
    enter the choice. Returns mean / std (population) of the test accuracy over all runs.
    """
    if normalise not in NORMALISATIONS:
        raise ConfigError(f"normalise must be one of {NORMALISATIONS}, got {normalise!r}")
    c_grid = [float(c) for c in C_grid]
    if not c_grid or min(c_grid) <= 0:
        raise ConfigError(f"C_grid must hold positive values, got {list(C_grid)}")
    if not splits:
        raise DataError("node_probe needs at least one split of train / val / test nodes")
    x = as_float_tensor(z, "node embeddings")
    y = as_label_tensor(labels, len(x), "node labels").to(x.device)
    split_nodes = [labelled_split(split, y, i) for i, split in enumerate(splits)]
    seed_list = probe_seeds(seeds, len(split_nodes))
    num_classes = int(y.max()) + 1
    runs: list[dict[str, Any]] = []
    with task("node probe", len(split_nodes)) as bar:
        for index, nodes in enumerate(split_nodes):
            for run in _probe_split(
                x, y, nodes, c_grid, seed_list, num_classes, normalise, epochs, lr
            ):
                runs.append({"split": index, **run})
            bar.advance()
    mean, std = mean_std([run["test_accuracy"] for run in runs])
    split_means = [
        mean_std([r["test_accuracy"] for r in runs if r["split"] == i])[0]
        for i in range(len(split_nodes))
    ]
    protocol = {
        "classifier": "multinomial logistic regression, loss = mean CE + ||W||^2 / (2 C n_train)",
        "optimizer": f"full-batch Adam lr={lr}, {epochs} epochs, Glorot-uniform init per seed",
        "normalisation": {
            "standard": "standardised with the mean / std of the split's training nodes",
            "l2": "each embedding L2-normalised",
            "none": "none",
        }[normalise],
        "C_grid": c_grid,
        "selection": "per run, the C with the best validation accuracy (ties: lower val loss); "
        "the test nodes scored once with it",
        "chosen_C": [run["chosen_C"] for run in runs],
        "val_accuracy": mean_std([run["val_accuracy"] for run in runs])[0],
        "seeds": seed_list,
        "splits_used": len(split_nodes),
        "runs": len(runs),
        "std": "population std over all runs (split x seed)",
        "split_means": split_means,
        "num_classes": num_classes,
        "nodes": [{k: len(v) for k, v in nodes.items()} for nodes in split_nodes],
    }
    return NodeProbeResult(mean, std, runs, protocol)


# ---------------------------------------------------------------------------------------------
# Node clustering


@dataclass
class NodeClusteringResult:
    """NMI and ARI mean / std over k-means seeds, per-seed scores and the protocol."""

    nmi: float
    nmi_std: float
    ari: float
    ari_std: float
    runs: list[dict[str, Any]]
    protocol: dict[str, Any] = field(default_factory=dict)

    @property
    def per_seed(self) -> list[float]:
        """The NMI of each seed."""
        return [run["nmi"] for run in self.runs]


def node_clustering(
    z: ArrayLike,
    labels: ArrayLike,
    *,
    seeds: int | Sequence[int] = 5,
    n_init: int = 1,
    normalize: bool = True,
) -> NodeClusteringResult:
    """k-means (k = number of classes, k-means++ with ``n_init`` restarts per seed) on the
    labelled nodes' embeddings (L2-normalised when ``normalize``), scored by NMI and ARI
    against the labels (``evaluate.clustering.kmeans_clustering``), for each seed."""
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_list:
        raise ConfigError("seeds must be >= 1")
    runs = [
        {
            "seed": seed,
            **kmeans_clustering(z, labels, n_init=n_init, seed=seed, normalize=normalize),
        }
        for seed in seed_list
    ]
    nmi, nmi_std = mean_std([run["nmi"] for run in runs])
    ari, ari_std = mean_std([run["ari"] for run in runs])
    protocol = {
        "algorithm": f"k-means++ ({n_init} restart(s) per seed, lowest inertia), Lloyd iterations",
        "num_clusters": runs[0]["num_clusters"],
        "features": "L2-normalised" if normalize else "as given",
        "nodes": "every labelled node (label -1 dropped)",
        "seeds": seed_list,
        "scores": "NMI (arithmetic normalisation), ARI; mean and population std over seeds",
    }
    return NodeClusteringResult(nmi, nmi_std, ari, ari_std, runs, protocol)
