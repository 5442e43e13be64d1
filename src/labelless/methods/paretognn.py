"""ParetoGNN: Ju, Zhao, Wen, Yu, Shah, Ye, Zhang. "Multi-task Self-supervised Graph Neural
Networks Enable Stronger Task Generalization", ICLR 2023."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from labelless.augment.graph import GraphView
from labelless.backbones.gnn import GCNConv
from labelless.data.graph import Graph
from labelless.errors import ConfigError
from labelless.methods.base import Method, check_positive_options, register_method
from labelless.methods.graph_common import input_dim, input_graph, projector, require_level
from labelless.nn import sampling
from labelless.nn.graph_losses import cca_ssg, dgi, grace, sce
from labelless.nn.losses import sinkhorn, swav
from labelless.nn.min_norm import min_norm_weights

#: The pretext tasks, in the order a step computes them (and draws their randomness).
TASKS = ("reconstruction", "contrast", "infomax", "decorrelation", "link", "clustering")
NORMALISATIONS = ("l2", "none")


def parse_tasks(tasks: str | Sequence[str]) -> tuple[str, ...]:
    """Task names from a list or a comma-separated string, in ``TASKS`` order; unknown,
    repeated or no names are a ConfigError."""
    names = [t.strip() for t in tasks.split(",")] if isinstance(tasks, str) else list(tasks)
    names = [str(name) for name in names if str(name)]
    unknown = sorted(set(names) - set(TASKS))
    if unknown or not names or len(set(names)) != len(names):
        raise ConfigError(
            f"paretognn: tasks must be distinct names among {', '.join(TASKS)}, got {names}; "
            "e.g. --set method.kwargs.tasks=reconstruction,link"
        )
    return tuple(name for name in TASKS if name in names)


def hold_out_edges(
    graph: Graph, rate: float, generator: torch.Generator | None = None
) -> tuple[Graph, Tensor]:
    """Hide a random ``rate`` of the node pairs joined by an edge (at least one when there is
    any; never a self loop): returns the graph without them (both stored directions go) and the
    held-out pairs ``[2, P]`` (smaller id first), the positives of link prediction."""
    edges, count = graph.edge_index, graph.num_nodes
    low, high = torch.minimum(edges[0], edges[1]), torch.maximum(edges[0], edges[1])
    keys, pair = torch.unique(low * count + high, return_inverse=True)
    draws = sampling.rand((keys.numel(),), generator=generator, device=edges.device)
    draws = draws.masked_fill(keys // count == keys % count, 2.0)  # self loops stay
    held = draws < rate
    if keys.numel() and not bool(held.any()) and float(draws.min()) < 2.0:
        held[torch.argmin(draws)] = True
    positive = torch.stack([keys[held] // count, keys[held] % count])
    return replace(graph, edge_index=edges[:, ~held[pair]]), positive


def mgda_weights(gradients: Tensor, normalisation: str = "l2") -> Tensor:
    """Task weights ``[K]`` on the simplex from the tasks' gradients of the shared parameters
    ``[K, P]`` by multiple-gradient descent (``nn.min_norm.min_norm_weights``).

    ``"none"``: the min-norm point of the gradients' convex hull (Sener & Koltun 2018): the
    combined direction ``sum_k w_k g_k`` has a non-negative inner product with every ``g_k``.
    ``"l2"`` (ParetoGNN's default): the min-norm point ``u`` of the unit gradients ``g_k /
    |g_k|``, returned as loss weights ``w_k ~ u_k / |g_k|`` (normalised to sum to 1), so the
    combined direction is parallel to ``sum_k u_k g_k / |g_k|``, which keeps that property
    while a task's gradient scale no longer decides its weight. A task without gradient gets
    weight 0 there."""
    if normalisation not in NORMALISATIONS:
        raise ConfigError(
            f"paretognn: normalisation must be one of {', '.join(NORMALISATIONS)}, got "
            f"{normalisation!r}"
        )
    if normalisation == "none":
        return min_norm_weights(gradients)
    norms = gradients.norm(dim=1)
    live = norms > 0
    if not bool(live.any()):
        return torch.full_like(norms, 1.0 / len(norms))
    weights = torch.zeros_like(norms)
    unit = gradients[live] / norms[live, None]
    weights[live] = min_norm_weights(unit) / norms[live]
    return weights / weights.sum()


def _flat(params: Sequence[Tensor], grads: Sequence[Tensor | None]) -> Tensor:
    """``grads`` of ``params`` as one vector, zeros where a parameter got none."""
    return torch.cat(
        [
            torch.zeros(p.numel(), device=p.device, dtype=p.dtype) if g is None else g.reshape(-1)
            for p, g in zip(params, grads, strict=True)
        ]
    )


class _Reconstruction(nn.Module):
    """GraphMAE-style masked feature reconstruction head: the [MASK] token, the bias-free map to
    the decoder and a one-layer GCN decoder to the ``features`` input columns."""

    def __init__(self, dim: int, features: int) -> None:
        super().__init__()
        self.mask_token = nn.Parameter(torch.zeros(1, features))
        self.to_decoder = nn.Linear(dim, dim, bias=False)
        self.decoder = GCNConv(dim, features)


class _Discriminator(nn.Module):
    """DGI's bilinear discriminator ``h_i^T W s + b`` against one summary ``s [D]``, computed as
    ``h @ (W s)`` (one matrix-vector product instead of a bilinear form per node)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(dim, dim))
        self.bias = nn.Parameter(torch.zeros(()))
        nn.init.xavier_uniform_(self.weight)

    def forward(self, nodes: Tensor, summary: Tensor) -> Tensor:
        return nodes @ (self.weight @ summary) + self.bias


class _LinkScorer(nn.Module):
    """ParetoGNN's link head: ``logit(u, v) = w . (a_u * a_v)`` with ``a = relu(W h / |h|)``."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.hidden = nn.Linear(dim, hidden)
        self.out = nn.Linear(hidden, 1)

    def forward(self, nodes: Tensor, pairs: Tensor) -> Tensor:
        features = F.relu(self.hidden(F.normalize(nodes, dim=1)))
        return self.out(features[pairs[0]] * features[pairs[1]]).squeeze(-1)


@register_method("paretognn")
class ParetoGNN(Method):
    """Several pretext tasks on one shared GNN encoder, weighted each step by multiple-gradient
    descent so that no task's gradient dominates the encoder's update.

    Every task encodes its own version of the graph and has its own head; ``tasks`` picks a
    subset (``TASKS``):

    - ``reconstruction`` (the paper's p_recon): GraphMAE's masked features, ``mask_rate`` of the
      nodes get a learnt [MASK] token, re-masked codes, a GCN decoder, scaled cosine error.
    - ``contrast`` (p_minsg): GRACE on two views (edge dropping and feature masking at
      ``contrast_drop``), projector ``[D, H, D]``, temperature ``temperature``; the whole graph
      is the paper's sampled subgraph, cut to ``max_contrast_nodes`` random nodes for the loss.
    - ``infomax`` (p_ming): DGI, nodes vs the sigmoid mean summary, shuffled-feature negatives,
      bilinear discriminator.
    - ``decorrelation`` (p_decor): CCA-SSG on two views (``decor_drop``), weight ``lambd``.
    - ``link`` (p_link): ``link_rate`` of the edges held out of message passing are positives,
      as many uniform random node pairs negatives, BCE on the link head's logits.
    - ``clustering`` (the issue's clustering task; not one of the paper's five): balanced soft
      clustering of the clean embeddings: ``num_clusters`` learnt prototypes, cosine scores,
      Sinkhorn codes as the target distribution and their cross-entropy (self-labelling, Asano
      et al. 2020; the codes of SwAV, Caron et al. 2020), which cannot collapse into one cluster.

    Weights (``combine``): one ``torch.autograd.grad`` per task (``retain_graph``) gives its
    gradient of the encoder's parameters and of its own head's; ``mgda_weights`` solves the
    min-norm problem over the encoder gradients (``normalisation`` l2, as the paper's code).
    The step's loss has the value ``sum_t w_t L_t`` (weights detached) and a backward that only
    writes the gradients already computed: ``sum_t w_t g_t`` to the encoder, each task's own
    gradient to its head (task-specific parameters follow their task, Sener & Koltun 2018,
    Alg. 2). So a step costs K backward passes, one per task, and the trainer's backward is a
    dot product. (The MGDA-UB shortcut through one shared representation does not apply: each
    task encodes a different version of the graph.) Under ``torch.no_grad`` the last weights are
    reused. The output has ``task_weights`` ``[K]`` and ``loss_<task>`` / ``weight_<task>``
    scalars, detached, for the training log; the clean graph's embeddings come free when
    ``infomax`` or ``clustering`` runs, else they cost a forward when ``wants_embedding``.
    """

    modality = "graph"
    default_views = "none"
    summary = "multi-task: reconstruction, contrast, DGI, CCA-SSG, links, clusters; MGDA (Ju 2023)"
    #: The paper's encoder, GCN layers 512 -> 256 with PReLU after each, without its batch norm:
    #: the running statistics average the tasks' corrupted graphs, so the eval-mode embedding of
    #: the clean graph read mismatched ones (Cora probe 0.799 with batch norm, 0.825 without, 55
    #: steps; bench/paretognn_tuning.py).
    graph_backbones: ClassVar[dict[str, tuple[str, dict[str, Any]]]] = {
        "node": (
            "gcn",
            {"hidden_dim": 512, "out_dim": 256, "num_layers": 2, "activation": "prelu"},
        ),
    }

    def __init__(
        self,
        backbone: nn.Module,
        *,
        tasks: str | Sequence[str] = TASKS,
        normalisation: str = "l2",
        proj_hidden_dim: int = 512,
        mask_rate: float = 0.5,
        alpha: float = 3.0,
        contrast_drop: float = 0.3,
        temperature: float = 0.1,
        max_contrast_nodes: int = 1024,
        decor_drop: float = 0.2,
        lambd: float = 1e-3,
        link_rate: float = 0.15,
        num_clusters: int = 10,
        cluster_temperature: float = 0.1,
    ) -> None:
        super().__init__(backbone)
        require_level("paretognn", backbone, self.graph_backbones)
        check_positive_options(
            "method.kwargs",
            type(self),
            temperature=temperature,
            cluster_temperature=cluster_temperature,
        )
        for name, value in (("mask_rate", mask_rate), ("link_rate", link_rate)):
            if not 0.0 < value < 1.0:
                raise ConfigError(f"paretognn: {name} must lie in (0, 1), got {value}")
        mgda_weights(torch.ones(1, 1), normalisation)  # checks the name
        self.tasks = parse_tasks(tasks)
        self.normalisation, self.alpha, self.lambd = normalisation, float(alpha), float(lambd)
        self.mask_rate, self.link_rate = float(mask_rate), float(link_rate)
        self.temperature, self.cluster_temperature = temperature, cluster_temperature
        self.max_contrast_nodes = int(max_contrast_nodes)
        self.contrast_view = GraphView(edge_drop=contrast_drop, feature_mask=contrast_drop)
        self.decor_view = GraphView(edge_drop=decor_drop, feature_mask=decor_drop)
        dim, heads = self.embed_dim, nn.ModuleDict()
        builders: dict[str, Callable[[], nn.Module]] = {
            "reconstruction": lambda: _Reconstruction(dim, input_dim(backbone)),
            "contrast": lambda: projector([dim, proj_hidden_dim, dim], "relu"),
            "infomax": lambda: _Discriminator(dim),
            "decorrelation": nn.Identity,
            "link": lambda: _LinkScorer(dim, proj_hidden_dim),
            "clustering": lambda: nn.Linear(dim, int(num_clusters), bias=False),
        }
        for task in self.tasks:
            heads[task] = builders[task]()
        self.heads = heads
        count = len(self.tasks)
        self.register_buffer("last_weights", torch.full((count,), 1.0 / count), persistent=False)

    # --- the tasks: each returns its loss -------------------------------------------------

    def _reconstruction(self, graph: Graph, clean, generator) -> Tensor:
        head = self.heads["reconstruction"]
        count = max(1, int(self.mask_rate * graph.num_nodes))
        masked = sampling.randperm(graph.num_nodes, generator=generator, device=graph.x.device)
        masked = masked[:count]
        token = head.mask_token.to(graph.x.dtype).expand(count, -1)
        corrupted = replace(graph, x=graph.x.index_copy(0, masked, token))
        codes = head.to_decoder(self.backbone(corrupted)).index_fill(0, masked, 0.0)
        reconstruction = head.decoder(codes, self._structure(corrupted))
        return sce(reconstruction[masked], graph.x[masked], alpha=self.alpha)

    def _contrast(self, graph: Graph, clean, generator) -> Tensor:
        first = self.backbone(self.contrast_view(graph, generator))
        second = self.backbone(self.contrast_view(graph, generator))
        if graph.num_nodes > self.max_contrast_nodes:
            keep = sampling.randperm(graph.num_nodes, generator=generator, device=first.device)
            keep = keep[: self.max_contrast_nodes]
            first, second = first[keep], second[keep]
        head = self.heads["contrast"]
        return grace(head(first), head(second), self.temperature)

    def _infomax(self, graph: Graph, clean, generator) -> Tensor:
        order = sampling.randperm(graph.num_nodes, generator=generator, device=graph.x.device)
        shuffled = self.backbone(replace(graph, x=graph.x[order]))
        summary = torch.sigmoid(clean.mean(dim=0))
        discriminator = self.heads["infomax"]
        return dgi(discriminator(clean, summary), discriminator(shuffled, summary))

    def _decorrelation(self, graph: Graph, clean, generator) -> Tensor:
        first = self.backbone(self.decor_view(graph, generator))
        second = self.backbone(self.decor_view(graph, generator))
        return cca_ssg(first, second, self.lambd)

    def _link(self, graph: Graph, clean, generator) -> Tensor:
        kept, positive = hold_out_edges(graph, self.link_rate, generator)
        nodes = self.backbone(kept)
        count = max(1, positive.shape[1])
        negative = sampling.randint(
            0, graph.num_nodes, (2, count), generator=generator, device=positive.device
        )
        scorer = self.heads["link"]
        logits = torch.cat([scorer(nodes, positive), scorer(nodes, negative)])
        targets = torch.cat([logits.new_ones(positive.shape[1]), logits.new_zeros(count)])
        return F.binary_cross_entropy_with_logits(logits, targets)

    def _clustering(self, graph: Graph, clean, generator) -> Tensor:
        prototypes = F.normalize(self.heads["clustering"].weight, dim=1)
        scores = F.normalize(clean, dim=1) @ prototypes.T  # [N, K]
        return swav(scores, sinkhorn(scores), self.cluster_temperature)

    def _structure(self, graph: Graph):
        adjacency = getattr(self.backbone, "adjacency", None)
        return adjacency(graph) if callable(adjacency) else graph.edge_index

    # --- the step --------------------------------------------------------------------------

    def combine(self, losses: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        """``(loss, weights)`` for the tasks' ``losses`` (one per ``self.tasks``): MGDA weights
        ``[K]`` (detached) from the tasks' gradients of the backbone's parameters, and a loss
        whose value is ``sum_t w_t L_t`` and whose backward gives the backbone ``sum_t w_t
        g_t`` and each head the gradient of its own task's loss (Sener & Koltun 2018, Alg. 2:
        task-specific parameters follow their own task). Without gradients (``torch.no_grad``)
        the last weights are used and the loss is the weighted sum itself."""
        if len(losses) == 1:
            return losses[0], torch.ones(1, device=losses[0].device)
        values = torch.stack([loss.detach() for loss in losses])
        if not torch.is_grad_enabled() or not all(loss.requires_grad for loss in losses):
            weights = self.last_weights.to(values.dtype)
            return sum(w * loss for w, loss in zip(weights, losses, strict=True)), weights
        shared = [p for p in self.backbone.parameters() if p.requires_grad]
        if not shared:  # a frozen encoder: no shared gradient to weigh, keep the last weights
            weights = self.last_weights.to(values.dtype)
            return sum(w * loss for w, loss in zip(weights, losses, strict=True)), weights
        rows, surrogate = [], values.new_zeros(())
        for index, (task, loss) in enumerate(zip(self.tasks, losses, strict=True)):
            own = [p for p in self.heads[task].parameters() if p.requires_grad]
            grads = torch.autograd.grad(
                loss, shared + own, retain_graph=index < len(losses) - 1, allow_unused=True
            )
            rows.append(_flat(shared, grads[: len(shared)]))
            for param, grad in zip(own, grads[len(shared) :], strict=True):
                if grad is not None:
                    surrogate = surrogate + (param * grad).sum()
        gradients = torch.stack(rows)
        weights = mgda_weights(gradients.float(), self.normalisation).to(values.dtype)
        self.last_weights.copy_(weights)
        combined = weights.to(gradients.dtype) @ gradients
        surrogate = surrogate + (torch.cat([p.reshape(-1) for p in shared]) * combined).sum()
        return (weights * values).sum() + (surrogate - surrogate.detach()), weights

    def task_losses(
        self, graph: Graph, generator: torch.Generator | None = None, clean: Tensor | None = None
    ) -> list[Tensor]:
        """Each task's loss on ``graph``, in ``self.tasks`` order, every random draw from
        ``generator``; ``clean`` the backbone's output for ``graph`` (computed here when a task
        needs it and none is given)."""
        if clean is None and ("infomax" in self.tasks or "clustering" in self.tasks):
            clean = self.backbone(graph)
        steps = {
            "reconstruction": self._reconstruction,
            "contrast": self._contrast,
            "infomax": self._infomax,
            "decorrelation": self._decorrelation,
            "link": self._link,
            "clustering": self._clustering,
        }
        return [steps[task](graph, clean, generator) for task in self.tasks]

    def forward(self, views, batch, *, generator=None):
        graph = input_graph(views, batch)
        clean = None
        if "infomax" in self.tasks or "clustering" in self.tasks:
            clean = self.backbone(graph)
        losses = self.task_losses(graph, generator, clean)
        loss, weights = self.combine(losses)
        out: dict[str, Tensor] = {"loss": loss, "task_weights": weights}
        for task, weight, task_loss in zip(self.tasks, weights, losses, strict=True):
            out[f"loss_{task}"] = task_loss.detach()
            out[f"weight_{task}"] = weight
        if clean is not None:
            out["embedding"] = clean.detach()
        elif self.wants_embedding:
            with torch.no_grad():
                out["embedding"] = self.backbone(graph).detach()
        return out
