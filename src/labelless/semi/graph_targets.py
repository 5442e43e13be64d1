"""What the graph auxiliary tasks of ``labelless.semi.graph_tasks`` are trained towards, computed
once per graph and labelled set with tensor ops (loops run over hops, rounds or iterations,
never over nodes).

- ``hop_distances``: breadth-first search from a few source nodes at once, one sparse product
  per hop, capped at ``max_hops``.
- ``within_hops``: the sparse pattern of nodes at most ``hops`` hops away (the context of
  ContextLabel).
- ``label_propagation`` (Zhu, Ghahramani & Lafferty 2003, the harmonic function) and
  ``iterative_classification`` (Lu & Getoor 2003, ICA): the pseudo-labels ContextLabel reads for
  nodes without a label (Jin et al. 2020 use the same two).
- ``spectral_partition``: a deterministic graph partition for Distance2Clusters, METIS-free:
  k-means on the leading eigenvectors of the normalised adjacency of the largest connected
  component (Ng, Jordan & Weiss 2002), k-means++ seeded with a fixed generator.
- ``pca``: principal components of the node features (AttributeMask's targets).
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from scipy.sparse.csgraph import connected_components
from scipy.sparse.linalg import eigsh
from torch import Tensor

from labelless.errors import ConfigError

DENSE_EIGEN_LIMIT = 500  # below this many nodes the partition uses a dense eigendecomposition


def adjacency(edge_index: Tensor, num_nodes: int) -> Tensor:
    """Sparse COO ``[N, N]`` float32 with 1 at ``(target, source)`` for every edge that is not
    a self loop (duplicates counted once). For an undirected graph (both directions stored) it
    is symmetric."""
    source, target = edge_index
    keep = source != target
    indices = torch.stack([target[keep], source[keep]])
    ones = torch.ones(indices.shape[1])
    return _binary(_sparse(indices, ones, num_nodes))


def _sparse(indices: Tensor, values: Tensor, num_nodes: int) -> Tensor:
    return torch.sparse_coo_tensor(
        indices, values, (num_nodes, num_nodes), check_invariants=False
    ).coalesce()


def _binary(matrix: Tensor) -> Tensor:
    """The sparsity pattern of ``matrix`` with every stored value set to 1."""
    matrix = matrix.coalesce()
    return _sparse(matrix.indices(), torch.ones_like(matrix.values()), matrix.shape[0])


def node_degrees(edge_index: Tensor, num_nodes: int) -> Tensor:
    """int64 ``[N]``: distinct neighbours of each node (self loops and duplicates not counted)."""
    indices = adjacency(edge_index, num_nodes).indices()
    return torch.bincount(indices[0], minlength=num_nodes)


def hop_distances(edge_index: Tensor, num_nodes: int, sources: Tensor, max_hops: int) -> Tensor:
    """Shortest-path hop counts ``[N, S]`` from each of ``sources [S]`` to every node (0 at the
    source itself), -1 where the node is more than ``max_hops`` hops away or unreachable.
    Breadth-first search for all sources at once: hop ``h`` is one sparse product of the
    adjacency with the frontier of hop ``h - 1``."""
    matrix = adjacency(edge_index, num_nodes)
    columns = torch.arange(sources.numel())
    distance = torch.full((num_nodes, sources.numel()), -1, dtype=torch.long)
    distance[sources, columns] = 0
    frontier = torch.zeros(num_nodes, sources.numel())
    frontier[sources, columns] = 1.0
    for hop in range(1, max_hops + 1):
        reached = (torch.sparse.mm(matrix, frontier) > 0) & (distance < 0)
        if not bool(reached.any()):
            break
        distance[reached] = hop
        frontier = reached.float()
    return distance


def closeness(distance: Tensor) -> Tensor:
    """``1 / (1 + hops)`` of ``hop_distances`` (1 at the source), 0 where not reached: the
    regression targets of the distance tasks (bounded; far and unreachable nodes near 0)."""
    return torch.where(distance >= 0, 1.0 / (1.0 + distance.clamp_min(0).float()), 0.0)


def within_hops(edge_index: Tensor, num_nodes: int, hops: int) -> Tensor:
    """Sparse COO ``[N, N]`` with 1 at ``(i, j)`` when ``j != i`` is at most ``hops`` hops from
    ``i`` (each such node once, however many paths lead there)."""
    if hops < 1:
        raise ConfigError(f"a context needs hops >= 1, got {hops}")
    step = adjacency(edge_index, num_nodes)
    reach, power = step, step
    for _ in range(hops - 1):
        with warnings.catch_warnings():  # torch's note that sparse CSR is in beta
            warnings.filterwarnings("ignore", message=".*[Ss]parse.*", category=UserWarning)
            power = _binary(torch.sparse.mm(power, step))
        reach = _binary(reach + power)
    indices = reach.indices()
    keep = indices[0] != indices[1]
    return _sparse(indices[:, keep], torch.ones(int(keep.sum())), num_nodes)


def label_propagation(
    edge_index: Tensor,
    num_nodes: int,
    labelled: Tensor,
    labels: Tensor,
    num_classes: int,
    *,
    iterations: int = 100,
) -> Tensor:
    """Class probabilities ``[N, C]`` by the harmonic function (Zhu et al. 2003): ``F <- D^-1 A
    F`` with the labelled rows clamped to their one-hot label after every step. Rows that no
    label reaches stay uniform."""
    matrix = adjacency(edge_index, num_nodes)
    degree = torch.sparse.sum(matrix, dim=1).to_dense().clamp_min(1.0)
    clamp = F.one_hot(labels, num_classes).float()
    scores = torch.zeros(num_nodes, num_classes)
    scores[labelled] = clamp
    for _ in range(iterations):
        scores = torch.sparse.mm(matrix, scores) / degree[:, None]
        scores[labelled] = clamp
    total = scores.sum(dim=1, keepdim=True)
    uniform = torch.full_like(scores, 1.0 / num_classes)
    return torch.where(total > 0, scores / total.clamp_min(1e-12), uniform)


def softmax_regression(
    features: Tensor, labels: Tensor, num_classes: int, *, c: float = 1.0, max_iter: int = 100
) -> tuple[Tensor, Tensor]:
    """Multinomial logistic regression fitted with L-BFGS from zero: minimises the summed
    cross-entropy plus ``||W||^2 / (2 c)`` (scikit-learn's ``LogisticRegression(C=c)``
    objective). Returns ``(weight [F, C], bias [C])``; deterministic."""
    weight = torch.zeros(features.shape[1], num_classes, requires_grad=True)
    bias = torch.zeros(num_classes, requires_grad=True)
    optimiser = torch.optim.LBFGS([weight, bias], max_iter=max_iter, line_search_fn="strong_wolfe")

    def objective() -> Tensor:
        optimiser.zero_grad()
        loss = F.cross_entropy(features @ weight + bias, labels, reduction="sum")
        loss = loss + weight.pow(2).sum() / (2.0 * c)
        loss.backward()
        return loss

    with torch.enable_grad():
        optimiser.step(objective)
    return weight.detach(), bias.detach()


def iterative_classification(
    x: Tensor,
    edge_index: Tensor,
    labelled: Tensor,
    labels: Tensor,
    num_classes: int,
    *,
    rounds: int = 10,
    c: float = 1.0,
) -> Tensor:
    """Class probabilities ``[N, C]`` by the iterative classification algorithm (Lu & Getoor
    2003, "Link-based classification"), as Jin et al. 2020 use it: a logistic regression on the
    features bootstraps a label for every node; then, ``rounds`` times, a logistic regression on
    ``[features, counts of each class among the neighbours' current labels]`` is fitted on the
    labelled nodes and relabels the others. Labelled nodes keep their label throughout."""
    matrix = adjacency(edge_index, num_nodes=x.shape[0])
    weight, bias = softmax_regression(x[labelled], labels, num_classes, c=c)
    probs = torch.softmax(x @ weight + bias, dim=1)
    clamp = F.one_hot(labels, num_classes).float()
    for _ in range(rounds):
        current = F.one_hot(probs.argmax(dim=1), num_classes).float()
        current[labelled] = clamp
        relational = torch.cat([x, torch.sparse.mm(matrix, current)], dim=1)
        weight, bias = softmax_regression(relational[labelled], labels, num_classes, c=c)
        probs = torch.softmax(relational @ weight + bias, dim=1)
    probs[labelled] = clamp
    return probs


def kmeans(
    points: Tensor, k: int, *, iterations: int = 100, generator: torch.Generator | None = None
) -> Tensor:
    """Cluster ids ``[N]`` by Lloyd's k-means from a k-means++ start drawn from ``generator``
    (a fixed seed makes it deterministic); an emptied cluster restarts at the farthest point."""
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    first = int(torch.randint(points.shape[0], (1,), generator=generator))
    centres = points[first : first + 1]
    for _ in range(1, k):
        nearest = torch.cdist(points, centres).min(dim=1).values.pow(2)
        if float(nearest.sum()) <= 0:
            pick = int(nearest.argmax())
        else:
            pick = int(torch.multinomial(nearest / nearest.sum(), 1, generator=generator))
        centres = torch.cat([centres, points[pick : pick + 1]])
    assignment = torch.full((points.shape[0],), -1, dtype=torch.long)
    for _ in range(iterations):
        distance = torch.cdist(points, centres)
        new = distance.argmin(dim=1)
        if torch.equal(new, assignment):
            break
        assignment = new
        counts = torch.bincount(assignment, minlength=k)
        sums = torch.zeros_like(centres).index_add_(0, assignment, points)
        centres = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None], centres)
        for empty in torch.nonzero(counts == 0).flatten().tolist():  # at most k, rarely any
            centres[empty] = points[int(distance.min(dim=1).values.argmax())]
    return assignment


def spectral_partition(edge_index: Tensor, num_nodes: int, num_parts: int) -> Tensor:
    """Part ids ``[N]`` in ``0..num_parts-1``, -1 for nodes outside the largest connected
    component: k-means (fixed seed) on the row-normalised ``num_parts`` leading eigenvectors of
    ``D^-1/2 (A + I) D^-1/2`` over that component (Ng, Jordan & Weiss 2002). Deterministic."""
    source, target = edge_index.numpy()
    graph = sp.csr_matrix((np.ones(source.size), (target, source)), shape=(num_nodes,) * 2)
    graph = ((graph + graph.T) > 0).astype(np.float64)
    graph.setdiag(0)
    graph.eliminate_zeros()
    _, component = connected_components(graph, directed=False)
    largest = component == np.bincount(component).argmax()
    size = int(largest.sum())
    if num_parts < 1 or num_parts >= size:
        raise ConfigError(
            f"cannot cut the largest connected component ({size} nodes) into {num_parts} "
            "parts; choose num_clusters between 1 and the component's size - 1"
        )
    sub = graph[largest][:, largest] + sp.identity(size)
    scale = sp.diags(1.0 / np.sqrt(np.asarray(sub.sum(axis=1)).ravel()))
    normalised = scale @ sub @ scale
    if size <= DENSE_EIGEN_LIMIT:
        _, vectors = np.linalg.eigh(normalised.toarray())
        vectors = vectors[:, -num_parts:]
    else:
        start = np.full(size, 1.0 / np.sqrt(size))
        _, vectors = eigsh(normalised, k=num_parts, which="LA", v0=start)
    embedding = torch.from_numpy(vectors).float()
    embedding = F.normalize(embedding, dim=1)
    parts = torch.full((num_nodes,), -1, dtype=torch.long)
    parts[torch.from_numpy(np.flatnonzero(largest))] = kmeans(embedding, num_parts)
    return parts


def part_centres(edge_index: Tensor, parts: Tensor, num_parts: int) -> Tensor:
    """``[num_parts]`` node ids: in each part, the node with the most neighbours inside its own
    part (Jin et al. 2020's cluster centre; ties go to the lowest id)."""
    num_nodes = parts.numel()
    indices = adjacency(edge_index, num_nodes).indices()
    inside = (parts[indices[0]] == parts[indices[1]]) & (parts[indices[0]] >= 0)
    degree = torch.bincount(indices[0][inside], minlength=num_nodes).float()
    member = parts >= 0
    score = torch.where(member, degree, -1.0) - torch.arange(num_nodes) / (2.0 * num_nodes)
    best = torch.full((num_parts,), float("-inf")).scatter_reduce(
        0, parts.clamp_min(0)[member], score[member], "amax"
    )
    matches = member & (score == best[parts.clamp_min(0)])
    centres = torch.zeros(num_parts, dtype=torch.long)
    centres[parts[matches]] = torch.nonzero(matches).flatten()
    return centres


def pca(x: Tensor, dim: int) -> Tensor:
    """The first ``dim`` principal components of ``x [N, F]`` (centred), each scaled to unit
    variance: ``[N, dim]``. From the eigendecomposition of the ``F x F`` covariance or the
    ``N x N`` Gram matrix, whichever is smaller (deterministic, no random projection)."""
    centred = (x - x.mean(dim=0)).double()
    dim = min(dim, *centred.shape)
    if centred.shape[1] <= centred.shape[0]:
        _, vectors = torch.linalg.eigh(centred.T @ centred)
        components = centred @ vectors[:, -dim:].flip(1)
    else:
        _, vectors = torch.linalg.eigh(centred @ centred.T)  # left singular vectors
        components = vectors[:, -dim:].flip(1)
    scale = components.std(dim=0).clamp_min(1e-12)
    return (components / scale).float()
