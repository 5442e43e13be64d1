"""Semi-supervised node classification with auxiliary tasks (SelfTask-GNN): every task's target
against a hand computation on a 6-node graph, the graph helpers (BFS, context, label
propagation, partition, PCA), and the trainer's protocol (selection on validation nodes only,
no label of a non-training node in any loss, better than features alone on a planted
partition)."""

from __future__ import annotations

import pytest
import torch

from labelless.data.graph import Graph
from labelless.errors import ConfigError, DataError
from labelless.semi.graph_targets import (
    closeness,
    hop_distances,
    label_propagation,
    part_centres,
    pca,
    softmax_regression,
    spectral_partition,
    within_hops,
)
from labelless.semi.graph_tasks import (
    AttributeMask,
    ContextLabel,
    Distance2Clusters,
    Distance2Labeled,
    LabelledNodes,
    NodeProperty,
    build_tasks,
)
from labelless.semi.graph_train import (
    MeanTeacher,
    PseudoLabelling,
    normalise_rows,
    train_node_semi,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def undirected(pairs: list[tuple[int, int]]) -> torch.Tensor:
    edges = torch.tensor(pairs).T
    return torch.cat([edges, edges.flip(0)], dim=1)


# 0 - 1 - 2 - 3
#     |       |
#     4       5
SIX = undirected([(0, 1), (1, 2), (2, 3), (1, 4), (3, 5)])
LABELLED = LabelledNodes(torch.tensor([0, 4, 5]), torch.tensor([0, 0, 1]), num_classes=2)


def six_graph(features: int = 3) -> Graph:
    x = torch.arange(6 * features, dtype=torch.float32).reshape(6, features) % 5
    return Graph(x=x, edge_index=SIX, y=torch.tensor([0, -1, -1, -1, 0, 1]))


def test_hop_distances_are_breadth_first_search_capped():
    distance = hop_distances(SIX, 6, torch.tensor([0, 5]), max_hops=10)
    assert distance.T.tolist() == [[0, 1, 2, 3, 2, 4], [4, 3, 2, 1, 4, 0]]
    capped = hop_distances(SIX, 6, torch.tensor([0, 5]), max_hops=3)
    assert capped.T.tolist() == [[0, 1, 2, 3, 2, -1], [-1, 3, 2, 1, -1, 0]]
    assert closeness(capped)[:, 0].tolist() == pytest.approx([1, 1 / 2, 1 / 3, 1 / 4, 1 / 3, 0])


def test_within_hops_counts_each_node_once_and_never_the_node_itself():
    one = within_hops(SIX, 6, 1).to_dense()
    two = within_hops(SIX, 6, 2).to_dense()
    assert one.sum(dim=1).tolist() == [1, 3, 2, 2, 1, 1]
    assert torch.nonzero(two[2]).flatten().tolist() == [0, 1, 3, 4, 5]
    assert torch.nonzero(two[1]).flatten().tolist() == [0, 2, 3, 4]
    assert two.diagonal().sum() == 0 and two.max() == 1


def test_node_property_targets_are_degree_buckets_and_standardised_log_degree():
    buckets = NodeProperty(kind="buckets", bounds=(1, 2))
    buckets.prepare(six_graph(), LABELLED)
    assert buckets.target.tolist() == [0, 2, 1, 1, 0, 0]  # degrees 1 3 2 2 1 1
    default = NodeProperty()
    default.prepare(six_graph(), LABELLED)
    assert default.target.tolist() == [0, 1, 0, 0, 0, 0]  # <= 2, 3-7, > 7
    regression = NodeProperty(kind="regression")
    regression.prepare(six_graph(), LABELLED)
    log_degree = torch.log1p(torch.tensor([1.0, 3, 2, 2, 1, 1]))
    expected = (log_degree - log_degree.mean()) / log_degree.std()
    assert regression.target[:, 0] == pytest.approx(expected.tolist(), abs=1e-6)


def test_distance2labeled_targets_are_closeness_statistics_per_class():
    task = Distance2Labeled(stats=("mean", "max", "min"))
    task.prepare(six_graph(), LABELLED)
    # class 0 labelled at nodes 0 and 4, class 1 at node 5; closeness 1 / (1 + hops)
    mean0 = [(1 + 1 / 3) / 2, 1 / 2, 1 / 3, 1 / 4, (1 / 3 + 1) / 2, 1 / 5]
    mean1 = [1 / 5, 1 / 4, 1 / 3, 1 / 2, 1 / 5, 1]
    assert task.target[:, 0].tolist() == pytest.approx(mean0)
    assert task.target[:, 1].tolist() == pytest.approx(mean1)
    assert task.target[0, 2:].tolist() == pytest.approx([1, 1 / 5, 1 / 3, 1 / 5])  # max, min
    assert task.nodes.tolist() == [False, True, True, True, False, False]


def test_context_label_counts_training_labels_and_pseudo_labels_of_the_rest():
    task = ContextLabel(hops=1, pseudo="lp")
    pseudo = torch.tensor([1, 0, 1, 1, 1, 0])  # wrong for labelled nodes 0, 4, 5 on purpose
    task.pseudo_probabilities = lambda graph, labelled: torch.eye(2)[pseudo]
    task.prepare(six_graph(), LABELLED)
    # votes: labelled 0 -> 0, 4 -> 0, 5 -> 1 (true labels win); pseudo 1 -> 0, 2 -> 1, 3 -> 1
    assert task.target[1].tolist() == pytest.approx([2 / 3, 1 / 3])  # neighbours 0, 2, 4
    assert task.target[2].tolist() == pytest.approx([1 / 2, 1 / 2])  # neighbours 1, 3
    assert task.target[3].tolist() == pytest.approx([0, 1])  # neighbours 2, 5
    two = ContextLabel(hops=2, pseudo="lp")
    two.pseudo_probabilities = task.pseudo_probabilities
    two.prepare(six_graph(), LABELLED)
    assert two.target[2].tolist() == pytest.approx([3 / 5, 2 / 5])  # 0, 1, 3, 4, 5
    assert two.nodes.tolist() == [False, True, True, True, False, False]


def test_context_label_refresh_recounts_with_the_models_predictions():
    fixed, refreshed = ContextLabel(hops=1), ContextLabel(hops=1, refresh=True)
    for task in (fixed, refreshed):
        task.pseudo_probabilities = lambda graph, labelled: torch.tensor([[0.6, 0.4]] * 6)
        task.prepare(six_graph(), LABELLED)
    assert refreshed.target[2].tolist() == pytest.approx([1, 0])  # 1 and 3 both pseudo 0
    predictions = torch.tensor([[0.1, 0.9]] * 6)  # averaged with 0.6 / 0.4: class 1
    fixed.update(predictions)
    refreshed.update(predictions)
    assert fixed.target[2].tolist() == pytest.approx([1, 0])
    assert refreshed.pseudo_labels.tolist() == [0, 1, 1, 1, 0, 1]  # labelled 0, 4, 5 kept
    assert refreshed.target[1].tolist() == pytest.approx([2 / 3, 1 / 3])  # 0, 2, 4
    assert refreshed.target[2].tolist() == pytest.approx([0, 1])


def test_label_propagation_is_the_harmonic_function():
    path = undirected([(0, 1), (1, 2), (2, 3)])
    probs = label_propagation(path, 4, torch.tensor([0, 3]), torch.tensor([0, 1]), 2)
    assert probs[:, 0].tolist() == pytest.approx([1, 2 / 3, 1 / 3, 0], abs=1e-5)


def test_spectral_partition_finds_two_cliques_and_centres_by_inside_degree():
    clique_a = [(i, j) for i in range(5) for j in range(i + 1, 5)]
    clique_b = [(i + 5, j + 5) for i, j in clique_a]
    edges = undirected([*clique_a, *clique_b, (4, 5), (3, 10)])  # 10 hangs on 3; 11 alone
    parts = spectral_partition(edges, 12, 2)
    assert parts[11] == -1
    assert len(set(parts[:5].tolist())) == 1 and len(set(parts[5:10].tolist())) == 1
    assert parts[0] != parts[5] and parts[10] == parts[0]
    centres = part_centres(edges, parts, 2)
    assert centres[parts[0]] == 3 and centres[parts[5]] == 5  # 3: 5 inside; 5..9 tie: lowest
    task = Distance2Clusters(num_clusters=2)
    task.prepare(Graph(x=torch.ones(12, 1), edge_index=edges), LABELLED)
    assert task.target[:, int(parts[0])].tolist()[:5] == pytest.approx([1 / 2] * 3 + [1, 1 / 2])
    assert task.target[11].tolist() == [0, 0]


def test_pca_matches_the_singular_vectors_with_unit_variance():
    x = torch.randn(30, 6, generator=torch.Generator().manual_seed(0)) * torch.arange(1, 7)
    components = pca(x, 2)
    u, _, _ = torch.linalg.svd(x - x.mean(0), full_matrices=False)
    for column in range(2):
        cosine = torch.nn.functional.cosine_similarity(components[:, column], u[:, column], 0)
        assert abs(float(cosine)) == pytest.approx(1.0, abs=1e-4)
        assert components[:, column].std() == pytest.approx(1.0, abs=1e-5)
    wide = pca(x.T, 2)  # 6 nodes, 30 features: through the Gram matrix
    assert wide.shape == (6, 2) and wide.std(0).tolist() == pytest.approx([1, 1], abs=1e-5)


def test_attribute_mask_zeroes_unlabelled_rows_and_regresses_them():
    task = AttributeMask(mask_rate=0.5, pca_dim=None)
    graph = six_graph()
    task.prepare(graph, LABELLED)
    task.reset_head(4)
    masked_graph = task.transform(graph, torch.Generator().manual_seed(0))
    masked = task.masked.tolist()
    assert len(masked) == 2 and set(masked) <= {1, 2, 3}  # round(0.5 * 3), unlabelled only
    assert masked_graph.x[masked].abs().sum() == 0
    keep = [i for i in range(6) if i not in masked]
    assert torch.equal(masked_graph.x[keep], graph.x[keep])
    hidden = torch.randn(6, 4)
    expected = torch.nn.functional.mse_loss(task.head(hidden[masked]), graph.x[masked])
    assert float(task.loss(hidden).detach()) == pytest.approx(float(expected.detach()))


def test_build_tasks_reads_names_weights_and_options():
    tasks = build_tasks("context_label=10, distance2labeled")
    assert [(t.name, t.weight) for t in tasks] == [("context_label", 10), ("distance2labeled", 1)]
    tasks = build_tasks({"context_label": {"weight": 2, "pseudo": "ica", "hops": 1}})
    assert tasks[0].options()["pseudo"] == "ica" and tasks[0].hops == 1
    with pytest.raises(ConfigError, match="unknown graph auxiliary task"):
        build_tasks("context_labels=1")
    with pytest.raises(ConfigError, match="name=weight"):
        build_tasks("context_label=lots")
    with pytest.raises(ConfigError, match="invalid options"):
        build_tasks({"context_label": {"weight": 1, "hopz": 2}})


# ------------------------------------------------------------------------------------------
# The trainer


def planted_partition(seed: int = 0, classes: int = 3, size: int = 40) -> tuple[Graph, dict]:
    """Communities with p_in 0.15, p_out 0.01 and weak features (class mean 0.5, noise 1):
    the graph carries most of the signal. 5 labels per class, 10 validation nodes per class."""
    generator = torch.Generator().manual_seed(seed)
    y = torch.arange(classes).repeat_interleave(size)
    n = y.numel()
    same = y[:, None] == y[None, :]
    draw = torch.rand(n, n, generator=generator)
    upper = torch.triu((draw < torch.where(same, 0.15, 0.01)).float(), diagonal=1)
    edge_index = torch.nonzero(upper + upper.T).T.contiguous()
    x = 0.5 * torch.eye(classes, 8)[y] + torch.randn(n, 8, generator=generator)
    order = torch.randperm(n, generator=generator)
    by_class = [order[y[order] == c] for c in range(classes)]
    split = {
        "train": torch.cat([idx[:5] for idx in by_class]),
        "val": torch.cat([idx[5:15] for idx in by_class]),
        "test": torch.cat([idx[15:] for idx in by_class]),
    }
    return Graph(x=x, edge_index=edge_index, y=y), split


def quick(graph, split, **kwargs):
    options = {"epochs": 30, "hidden_dim": 16, "seeds": (0,), **kwargs}
    return train_node_semi(graph, split, **options)


def test_selection_reads_validation_nodes_only():
    graph, split = planted_partition()
    result = quick(graph, split, tasks={"context_label": {"pseudo": "lp"}, "distance2labeled": 1})
    record = result.per_seed[0]
    assert record["val_curve"][record["best_epoch"]] == max(record["val_curve"])
    shuffled_y = graph.y.clone()
    test = split["test"]
    shuffled_y[test] = (graph.y[test] + 1) % 3  # every test label wrong
    shuffled = quick(Graph(graph.x, graph.edge_index, y=shuffled_y), split)
    plain = quick(graph, split)
    assert shuffled.per_seed[0]["best_epoch"] == plain.per_seed[0]["best_epoch"]
    assert shuffled.per_seed[0]["val_curve"] == plain.per_seed[0]["val_curve"]
    # what the wrong test labels changed is the test score, and only that
    assert shuffled.per_seed[0]["test_accuracy"] < 0.3 < plain.per_seed[0]["test_accuracy"]


def test_labels_of_non_training_nodes_never_enter_the_loss():
    graph, split = planted_partition()
    permuted = graph.y.clone()
    hidden = torch.cat([split["val"], split["test"]])
    permuted[hidden] = graph.y[hidden][torch.randperm(hidden.numel())]
    tasks = {"context_label": {"pseudo": "lp"}, "distance2labeled": 1, "attribute_mask": 1}
    one = quick(graph, split, tasks=tasks, pseudo_label=PseudoLabelling(threshold=0.5))
    two = quick(Graph(graph.x, graph.edge_index, y=permuted), split, tasks=tasks,
                pseudo_label=PseudoLabelling(threshold=0.5))  # fmt: skip
    assert one.per_seed[0]["loss_curve"] == two.per_seed[0]["loss_curve"]
    test_only = graph.y.clone()
    test_only[split["test"]] = permuted[split["test"]]
    three = quick(Graph(graph.x, graph.edge_index, y=test_only), split, tasks=tasks,
                  pseudo_label=PseudoLabelling(threshold=0.5))  # fmt: skip
    weights = zip(one.model.state_dict().items(), three.model.state_dict().items(), strict=True)
    for (name, a), (_, b) in weights:
        assert torch.equal(a, b), name


def test_gcn_with_tasks_beats_features_alone_on_a_planted_partition():
    graph, split = planted_partition(seed=1)
    train, test = split["train"], split["test"]
    weight, bias = softmax_regression(graph.x[train], graph.y[train], 3)
    predicted = (graph.x[test] @ weight + bias).argmax(1)
    features_only = float((predicted == graph.y[test]).float().mean())
    result = quick(graph, split, epochs=60, tasks="context_label=1", seeds=(0, 1))
    assert result.metrics["test_accuracy"] > features_only + 0.2
    assert result.metrics["test_accuracy"] > 0.8
    assert result.protocol["aux_tasks"][0]["name"] == "context_label"
    assert result.protocol["split_sizes"] == {"train": 15, "val": 30, "test": 75}


def test_a_pseudo_label_threshold_nothing_reaches_changes_nothing():
    graph, split = planted_partition()
    plain = quick(graph, split)
    never = quick(graph, split, pseudo_label=PseudoLabelling(threshold=1.0))
    some = quick(graph, split, pseudo_label=PseudoLabelling(threshold=0.5, rampup=0.0))
    assert never.per_seed[0]["loss_curve"] == plain.per_seed[0]["loss_curve"]
    assert some.per_seed[0]["loss_curve"] != plain.per_seed[0]["loss_curve"]


def test_mean_teacher_scores_the_ema_teacher_and_its_consistency_trains_the_student():
    graph, split = planted_partition(seed=2)
    plain = quick(graph, split, epochs=60)
    teacher = quick(graph, split, epochs=60, mean_teacher=MeanTeacher(weight=5.0))
    assert teacher.protocol["evaluated_model"] == "EMA teacher"
    assert teacher.per_seed[0]["loss_curve"] != plain.per_seed[0]["loss_curve"]
    assert teacher.metrics["test_accuracy"] > 0.8
    assert all(not p.requires_grad for p in teacher.model.parameters())  # the EMA copy
    with pytest.raises(ConfigError, match="momentum"):
        MeanTeacher(momentum=1.0)


def test_row_normalisation_is_kipfs_and_skips_signed_features():
    graph = six_graph()
    normalised, said = normalise_rows(graph, None)
    assert normalised.x.sum(dim=1).tolist() == pytest.approx([1.0] * 6)
    assert torch.allclose(normalised.x * graph.x.sum(dim=1, keepdim=True), graph.x)
    assert said.startswith("row-normalised")
    signed = Graph(x=graph.x - 2.0, edge_index=SIX, y=graph.y)
    assert normalise_rows(signed, None)[0] is signed
    with pytest.raises(ConfigError, match="non-negative"):
        normalise_rows(signed, True)
    assert normalise_rows(graph, False) == (graph, "as given")


def test_bad_splits_and_options_are_clear_errors():
    graph, split = planted_partition()
    overlapping = {**split, "test": torch.cat([split["test"], split["train"][:1]])}
    with pytest.raises(DataError, match="disjoint"):
        quick(graph, overlapping)
    with pytest.raises(DataError, match="lacks"):
        quick(graph, {"train": split["train"]})
    unlabelled = graph.y.clone()
    unlabelled[split["train"][0]] = -1
    with pytest.raises(DataError, match="no label"):
        quick(Graph(graph.x, graph.edge_index, y=unlabelled), split)
    with pytest.raises(ConfigError, match="decay_scope"):
        quick(graph, split, decay_scope="some")


@pytest.mark.data
def test_cora_public_split_plain_gcn(data_root):
    from labelless.data.graphs import load_graph_dataset

    cora = load_graph_dataset("cora")
    result = train_node_semi(cora.graph, cora.splits, seeds=(0,), epochs=100)
    assert result.protocol["split_sizes"] == {"train": 140, "val": 500, "test": 1000}
    assert 0.78 < result.metrics["test_accuracy"] < 0.85
