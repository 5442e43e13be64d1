"""The graph protocols (node probe, graph SVM, node clustering, link AUC) and baselines
(raw features, supervised GCN / GIN, random-init encoder) on small planted graphs; Cora
checks are marked ``data``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.model_selection import StratifiedKFold

from labelless.data.graph import Graph
from labelless.data.graph_dataset import NodeIds
from labelless.data.graph_splits import split_edges
from labelless.errors import ConfigError, DataError
from labelless.evaluate import graph_sets
from labelless.evaluate.graph_baselines import (
    random_init_embeddings,
    random_init_encoder,
    raw_feature_probe,
    supervised_gcn,
    supervised_gin,
)
from labelless.evaluate.graphs import (
    graph_svm,
    link_auc,
    link_prediction,
    node_clustering,
    node_probe,
    probe_seeds,
)


def planted_graph(num_nodes=240, num_classes=3, dim=16, signal=0.6, seed=0) -> Graph:
    """A stochastic block model (one block per class, dense inside, sparse across) whose
    features are a weak class signal plus noise: neighbours average the noise away."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(num_nodes) % num_classes
    same = y[:, None] == y[None, :]
    p = torch.where(same, 0.08, 0.004)
    upper = torch.triu(torch.rand(num_nodes, num_nodes, generator=g) < p, diagonal=1)
    source, target = upper.nonzero().T
    edge_index = torch.cat([torch.stack([source, target]), torch.stack([target, source])], 1)
    x = torch.randn(num_nodes, dim, generator=g)
    x[:, :num_classes] += signal * torch.nn.functional.one_hot(y, num_classes)
    return Graph(x, edge_index, None, 1, y)


def public_like_split(y: torch.Tensor, per_class=10, num_val=60, seed=0) -> dict:
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(y), generator=g)
    train = torch.cat([order[y[order] == c][:per_class] for c in range(int(y.max()) + 1)])
    rest = order[~torch.isin(order, train)]
    return {"train": train, "val": rest[:num_val], "test": rest[num_val:]}


# ---------------------------------------------------------------------------------------------
# node_probe


def test_node_probe_learns_planted_classes_and_records_runs(one_thread):
    y = torch.arange(300) % 3
    z = torch.randn(300, 8) + 4 * torch.nn.functional.one_hot(y, 8).float()
    splits = [public_like_split(y, seed=0), public_like_split(y, seed=1)]
    result = node_probe(z, y, splits, seeds=3, epochs=150)
    assert result.mean > 0.9
    assert len(result.runs) == 6 and {r["split"] for r in result.runs} == {0, 1}
    assert result.std == pytest.approx(float(np.std(result.accuracies)))
    assert len(result.protocol["split_means"]) == 2 and result.protocol["runs"] == 6
    assert "training nodes" in result.protocol["normalisation"]


def test_node_probe_std_over_seeds_is_the_spread_of_the_runs(one_thread):
    # Unconverged probes (5 Adam steps from different inits) differ from seed to seed.
    y = torch.arange(300) % 3
    z = torch.randn(300, 32) + 0.7 * torch.nn.functional.one_hot(y, 32).float()
    result = node_probe(z, y, [public_like_split(y)], seeds=[3, 4, 5, 6], epochs=5, C_grid=(1,))
    accuracies = result.accuracies
    assert [r["seed"] for r in result.runs] == [3, 4, 5, 6]
    assert len(set(accuracies)) > 1
    assert result.std == pytest.approx(float(np.std(accuracies))) and result.std > 0


def test_node_probe_chooses_C_on_validation_never_on_test(one_thread):
    # Train is 3:1 class 0; every test label is 0. The strongest penalty leaves only the bias
    # (the prior): it predicts 0 everywhere and is perfect on test, but poor on the balanced
    # validation nodes. The protocol must choose by validation and lose on test.
    g = torch.Generator().manual_seed(0)
    y = torch.cat([torch.zeros(30), torch.ones(10), torch.arange(40) % 2, torch.arange(40) % 2])
    y = y.long()
    z = torch.randn(120, 4, generator=g) + 2.0 * y[:, None].float()
    split = {"train": torch.arange(40), "val": torch.arange(40, 80), "test": torch.arange(80, 120)}
    labels = y.clone()
    labels[80:] = 0
    grid = (1e-4, 1e-2, 1.0, 100.0)
    result = node_probe(z, labels, [split], seeds=2, C_grid=grid, epochs=100)
    for run in result.runs:
        val = run["val_accuracies"]
        assert run["val_accuracy"] == max(val)
        assert val[grid.index(run["chosen_C"])] == max(val) and run["chosen_C"] != 1e-4
    strongest = node_probe(z, labels, [split], seeds=2, C_grid=(1e-4,), epochs=100)
    assert strongest.mean == 1.0 and result.mean < 0.8  # test would have chosen 1e-4
    # Test labels do not move the choice: only the score changes.
    relabelled = labels.clone()
    relabelled[80:] = y[80:]
    again = node_probe(z, relabelled, [split], seeds=2, C_grid=grid, epochs=100)
    assert [r["chosen_C"] for r in again.runs] == [r["chosen_C"] for r in result.runs]
    assert [r["val_accuracies"] for r in again.runs] == [r["val_accuracies"] for r in result.runs]
    assert again.mean > 0.8


def test_node_probe_default_seeds_and_bad_input():
    assert probe_seeds(None, 1) == list(range(20)) and probe_seeds(None, 10) == [0, 1]
    assert probe_seeds(3, 10) == [0, 1, 2] and probe_seeds([7, 9], 1) == [7, 9]
    z, y = torch.randn(10, 2), torch.zeros(10, dtype=torch.long)
    split = {"train": torch.arange(4), "val": torch.arange(4, 7), "test": torch.arange(7, 10)}
    with pytest.raises(ConfigError, match="normalise"):
        node_probe(z, y, [split], normalise="zscore")
    mask = torch.zeros(10, dtype=torch.bool)
    mask[:4] = True
    as_mask = node_probe(z, y, [dict(split, train=mask)], seeds=1, epochs=2, C_grid=(1,))
    assert as_mask.protocol["nodes"] == [{"train": 4, "val": 3, "test": 3}]
    with pytest.raises(DataError, match="outside"):
        node_probe(z, y, [dict(split, test=torch.tensor([10]))])
    with pytest.raises(DataError, match="lacks"):
        node_probe(z, y, [{"train": torch.arange(4)}])
    unlabelled = y.clone()
    unlabelled[7:] = -1
    with pytest.raises(DataError, match="no labelled test"):
        node_probe(z, unlabelled, [split])


# ---------------------------------------------------------------------------------------------
# graph_svm


def _blobs(num_graphs=60, dim=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(num_graphs) % 2
    return torch.randn(num_graphs, dim, generator=g) + 2.5 * y[:, None].float(), y


def test_graph_svm_ten_folds_and_seeds(one_thread):
    z, y = _blobs()
    result = graph_svm(z, y, seeds=2)  # no folds: stratified 10-fold from each seed
    assert result.mean > 0.85 and result.protocol["num_folds"] == 10
    assert len(result.runs) == 2 and all(len(r["chosen_C"]) == 10 for r in result.runs)
    assert result.std == pytest.approx(float(np.std([r["accuracy"] for r in result.runs])))
    assert "rbf" in result.protocol["classifier"]


def test_graph_svm_chooses_C_inside_the_training_fold(monkeypatch):
    z, y = _blobs()
    train, test = torch.arange(40), torch.arange(40, 60)
    seen = []
    original = graph_sets._svm_fold

    def spy(x, labels, tr, te, *args):
        seen.append(len(tr))
        return original(x, labels, tr, te, *args)

    monkeypatch.setattr(graph_sets, "_svm_fold", spy)
    first = graph_svm(z, y, [(train, test)], seeds=1)
    flipped = y.clone()
    flipped[test] = 1 - flipped[test]
    second = graph_svm(z, flipped, [(train, test)], seeds=1)
    assert seen == [40, 40] and first.protocol["outer_folds"] == "shipped folds"
    assert first.runs[0]["chosen_C"] == second.runs[0]["chosen_C"]
    assert first.mean == pytest.approx(1 - second.mean)


# ---------------------------------------------------------------------------------------------
# node_clustering and link prediction


def test_node_clustering_perfect_and_random():
    y = torch.arange(300) % 3
    perfect = node_clustering(torch.nn.functional.one_hot(y, 3).float(), y, seeds=3)
    assert perfect.nmi == pytest.approx(1.0) and perfect.ari == pytest.approx(1.0)
    assert perfect.nmi_std == pytest.approx(0.0) and len(perfect.runs) == 3
    noise = node_clustering(torch.randn(300, 8), y, seeds=3)
    assert noise.nmi < 0.05 and abs(noise.ari) < 0.05
    assert noise.protocol["num_clusters"] == 3


def test_link_auc_perfect_score():
    z = torch.nn.functional.one_hot(torch.arange(20) % 2, 2).float()
    pos = torch.tensor([[0, 2, 1], [4, 6, 3]])  # same parity: dot 1
    neg = torch.tensor([[0, 1, 2], [1, 4, 5]])  # different parity: dot 0
    result = link_auc(z, pos, neg)
    assert result.auc == 1.0 and result.ap == 1.0
    assert link_auc(z, neg, pos).auc == 0.0
    with pytest.raises(DataError, match=r"\[2, M\]"):
        link_auc(z, pos.T, neg)


def test_link_prediction_records_the_split():
    graph = planted_graph()
    split = split_edges(graph, seed=3)
    z = random_init_embeddings("gcn", split.train_graph, hidden_dim=16)
    result = link_prediction(z, split)
    assert 0.0 <= result["test_auc"] <= 1.0 and "val_auc" in result
    assert result["protocol"]["split"]["seed"] == 3
    assert result["protocol"]["positives"] == split.test_pos.shape[1]


# ---------------------------------------------------------------------------------------------
# Baselines


def test_supervised_gcn_beats_raw_features_on_a_planted_graph(one_thread):
    graph = planted_graph()
    splits = [public_like_split(graph.y)]
    gcn = supervised_gcn(graph, splits, seeds=2, epochs=60, row_normalise=False)
    raw = raw_feature_probe(graph, splits, seeds=2, epochs=100)
    assert gcn.mean > 0.9 and gcn.mean > raw.mean + 0.1
    assert raw.protocol["features"].startswith("raw node features")
    assert all(0 <= run["best_epoch"] < 60 for run in gcn.runs)
    # The kept epoch is chosen on validation: test labels do not move it.
    test = splits[0]["test"]
    relabelled = Graph(graph.x, graph.edge_index, None, 1, graph.y.clone())
    relabelled.y[test] = (relabelled.y[test] + 1) % 3
    again = supervised_gcn(relabelled, splits, seeds=2, epochs=60, row_normalise=False)
    assert [r["best_epoch"] for r in again.runs] == [r["best_epoch"] for r in gcn.runs]
    assert again.mean < 0.1
    with pytest.raises(ConfigError, match="non-negative"):
        supervised_gcn(graph, splits, seeds=1, epochs=1)  # planted features are Gaussian


def _cycles_and_stars(count=40):
    graphs = []
    for index in range(count):
        n = 5 + index % 4
        if index % 2:
            source = torch.zeros(n - 1, dtype=torch.long)
            target = torch.arange(1, n)
        else:
            source, target = torch.arange(n), (torch.arange(n) + 1) % n
        edges = torch.cat([torch.stack([source, target]), torch.stack([target, source])], 1)
        graphs.append(Graph(torch.ones(n, 1), edges, None, 1, torch.tensor([index % 2])))
    return graphs


def test_supervised_gin_separates_cycles_from_stars(one_thread):
    graphs = _cycles_and_stars()
    labels = np.arange(len(graphs)) % 2
    folds = [
        (torch.as_tensor(tr), torch.as_tensor(te))
        for tr, te in StratifiedKFold(4, shuffle=True, random_state=0).split(labels, labels)
    ]
    result = supervised_gin(graphs, folds, epochs=40, hidden=16, num_layers=2, batch_size=16)
    assert result.mean >= 0.9 and len(result.runs[0]["fold_accuracies"]) == 4
    assert "Errica" in result.protocol["selection"]


def test_random_init_encoder_is_seeded_and_rebuilds_a_backbone():
    graph = planted_graph(num_nodes=30)
    first = random_init_embeddings("gcn", graph, seed=1, hidden_dim=8)
    again = random_init_embeddings("gcn", graph, seed=1, hidden_dim=8)
    other = random_init_embeddings("gcn", graph, seed=2, hidden_dim=8)
    assert first.shape == (30, 8) and torch.equal(first, again) and not torch.equal(first, other)
    trained = random_init_encoder("gin", seed=0, in_channels=16, hidden_dim=8, readout="sum")
    fresh = random_init_encoder(trained, seed=5)
    assert fresh.meta.kwargs == trained.meta.kwargs and fresh.embed_dim == trained.embed_dim
    assert not torch.equal(next(fresh.parameters()), next(trained.parameters()))
    some = random_init_embeddings("gcn", NodeIds(np.array([3, 0]), graph), seed=1, hidden_dim=8)
    assert torch.equal(some, first[[3, 0]])
    pooled = random_init_embeddings(fresh, [graph, planted_graph(num_nodes=12)])
    assert pooled.shape == (2, 8) and not pooled.requires_grad


# ---------------------------------------------------------------------------------------------
# Real data


def _cora(data_root):
    if not (data_root / "planetoid" / "cora.npz").exists():
        pytest.skip("real datasets not available: planetoid/cora.npz is not under $LABELLESS_DATA")
    from labelless.data.graphs import load_graph_dataset

    return load_graph_dataset("cora", root=data_root)


@pytest.mark.data
def test_cora_public_split_gcn_and_raw_features(data_root, one_thread):
    cora = _cora(data_root)
    gcn = supervised_gcn(cora.graph, cora.splits, seeds=2)
    assert gcn.mean >= 0.78, gcn.runs
    raw = raw_feature_probe(cora.graph, cora.splits, seeds=2)
    assert 0.45 <= raw.mean <= 0.65, raw.runs
