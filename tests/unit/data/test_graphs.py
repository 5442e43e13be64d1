"""Graph loading: the TU text parser, user files (each bad input's message), symmetrisation and
the built-in graph datasets (real data, marked ``data``)."""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from labelless.data.graph import collate_graphs
from labelless.data.graph_files import (
    from_networkx,
    from_pyg,
    read_graph_files,
    read_graph_npz,
)
from labelless.data.graphs import (
    GraphSetDataset,
    NodeDataset,
    degree_features,
    load_graph_dataset,
    parse_tu_text,
    tu_graphs,
)
from labelless.errors import ConfigError, DataError

TU_SNIPPET = b"""2
3 5
1 2 1 2
1 1 0
7 1 0
2 -1
7 1 1
7 1 0
"""


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_tu_snippet_by_hand():
    data = tu_graphs(parse_tu_text(TU_SNIPPET), "snippet")
    assert data.num_classes == 2 and data.meta["label_values"] == [-1, 5]
    first, second = data.graphs
    assert first.y.tolist() == [1] and second.y.tolist() == [0]
    assert first.x.tolist() == [[1, 0], [1, 0], [0, 1]] and second.x.tolist() == [[0, 1], [0, 1]]
    assert first.edge_index.tolist() == [[0, 0, 1, 2], [1, 2, 0, 0]]
    assert second.edge_index.tolist() == [[0, 1], [1, 0]]
    batch = collate_graphs(data.graphs)
    assert batch.edge_index[:, -2:].tolist() == [[3, 4], [4, 3]] and batch.y.tolist() == [1, 0]


def test_tu_single_tag_gives_degree_features_and_symmetrises():
    text = b"1\n3 0\n0 1 1\n0 1 2\n0 0\n"  # edges listed on one side only
    data = tu_graphs(parse_tu_text(text), "star")
    graph = data.graphs[0]
    assert graph.edge_index.tolist() == [[0, 1, 1, 2], [1, 0, 2, 1]]
    assert graph.x.tolist() == [[0, 1, 0], [0, 0, 1], [0, 1, 0]]  # degrees 1, 2, 1
    assert "one-hot degree" in data.meta["features"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"1\n2 0\n0 2 1\n0 1 0\n", "announces 2 neighbours but has 1"),
        (b"1\n2 0\n0 1 5\n0 1 0\n", "neighbour index outside 0..1"),
        (b"2\n2 0\n0 1 1\n0 1 0\n", "truncated"),
        (b"1\n1 0\n0 0 0.5\n", "not an integer"),
    ],
)
def test_tu_bad_text(text, message):
    with pytest.raises(DataError, match=message):
        parse_tu_text(text)


def test_degree_features_buckets():
    edges = np.array([[1, 2, 2, 3, 3, 3], [0, 0, 1, 0, 1, 2]])
    x = degree_features(edges, 4)
    assert np.allclose(x[:, 0], np.log1p([0, 1, 2, 3]))
    assert x[:, 1:].argmax(1).tolist() == [0, 1, 2, 3]


def test_edge_csv_symmetrised_with_optional_header(tmp_path):
    edges = _write(tmp_path, "e.csv", "source,target\n0,1\n1,2\n")
    data = read_graph_files(edges)
    assert isinstance(data, NodeDataset) and data.meta["symmetrised"]
    assert data.graph.edge_index.tolist() == [[0, 1, 1, 2], [1, 0, 2, 1]]
    assert data.graph.num_nodes == 3 and "structural" in data.meta["features"]
    directed = read_graph_files(_write(tmp_path, "d.csv", "0,1\n1,2\n"), undirected=False)
    assert directed.graph.edge_index.tolist() == [[0, 1], [1, 2]]


def test_edge_csv_with_features_and_labels(tmp_path):
    edges = _write(tmp_path, "e.csv", "0,1\n")
    feats = _write(tmp_path, "x.csv", "a,b\n1,2\n3,4\n5,6\n")
    labels = _write(tmp_path, "y.csv", "label\n0\n1\n-1\n")
    data = read_graph_files(edges, feats, labels)
    assert data.graph.x.tolist() == [[1, 2], [3, 4], [5, 6]]  # node 2 isolated
    assert data.graph.y.tolist() == [0, 1, -1] and data.num_classes == 2


def test_edge_past_feature_rows(tmp_path):
    feats = _write(tmp_path, "x.csv", "1\n2\n3\n")
    with pytest.raises(DataError, match=r"edge 0,5 points past the 3 nodes.*feature row"):
        read_graph_files(_write(tmp_path, "e.csv", "0,1\n0,5\n"), feats)


def test_label_rows_must_match(tmp_path):
    feats = _write(tmp_path, "x.csv", "1\n2\n3\n")
    labels = _write(tmp_path, "y.csv", "0\n1\n0\n1\n")
    with pytest.raises(DataError, match="4 labels for 3 nodes"):
        read_graph_files(_write(tmp_path, "e.csv", "0,1\n"), feats, labels)


def test_self_loops_and_duplicates_are_reported(tmp_path):
    edges = _write(tmp_path, "e.csv", "0,1\n1,1\n0,1\n1,2\n")
    with pytest.warns(UserWarning) as record:
        data = read_graph_files(edges)
    messages = " ".join(str(w.message) for w in record)
    assert "removed 1 self-loops (nodes [1])" in messages
    assert "removed 1 duplicate edges" in messages
    assert data.graph.edge_index.tolist() == [[0, 1, 1, 2], [1, 0, 2, 1]]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty"),
        ("source,target\n", "header but no rows"),
        ("a,b\nx,y\n", "two integer node ids"),
        ("0,1.5\n", "two integer node ids"),
        ("0,1,2\n", "two integer node ids"),
        ("0,-1\n", "negative node id"),
    ],
)
def test_bad_edge_files(tmp_path, text, message):
    with pytest.raises(DataError, match=message):
        read_graph_files(_write(tmp_path, "e.csv", text))


def test_npz_scipy_and_gnn_benchmark_layout(tmp_path):
    import scipy.sparse as sp

    adjacency = sp.csr_matrix(np.array([[0, 1, 0], [1, 0, 0], [0, 0, 0]], np.float32))
    sp.save_npz(tmp_path / "a.npz", adjacency)
    data = read_graph_npz(tmp_path / "a.npz")
    assert data.graph.num_nodes == 3 and data.graph.edge_index.tolist() == [[0, 1], [1, 0]]
    np.savez(
        tmp_path / "b.npz",
        adj_data=adjacency.data,
        adj_indices=adjacency.indices,
        adj_indptr=adjacency.indptr,
        adj_shape=adjacency.shape,
        attr_matrix=np.eye(3, dtype=np.float32),
        labels=np.array([0, 1, 1]),
    )
    data = read_graph_npz(tmp_path / "b.npz")
    assert data.graph.x.tolist() == np.eye(3).tolist() and data.num_classes == 2
    np.savez(tmp_path / "c.npz", foo=np.zeros(2))
    with pytest.raises(DataError, match="no adjacency found"):
        read_graph_npz(tmp_path / "c.npz")


def test_networkx():
    nx = pytest.importorskip("networkx")
    graph = nx.Graph()
    graph.add_nodes_from([("a", {"x": [1.0], "y": 0}), ("b", {"x": [2.0], "y": 1})])
    graph.add_edge("a", "b")
    data = from_networkx(graph)
    assert data.meta["node_ids"] == ["a", "b"] and data.graph.x.tolist() == [[1.0], [2.0]]
    assert data.graph.edge_index.tolist() == [[0, 1], [1, 0]] and data.graph.y.tolist() == [0, 1]
    directed = from_networkx(nx.DiGraph([(0, 1)]))
    assert directed.graph.edge_index.tolist() == [[0], [1]]
    with pytest.raises(DataError, match="no nodes"):
        from_networkx(nx.Graph())


def test_pyg_duck_typed():
    data = SimpleNamespace(
        x=torch.ones(3, 2), edge_index=torch.tensor([[0, 1], [1, 0]]), y=torch.tensor([0, 1, 2])
    )
    result = from_pyg(data)
    assert result.graph.num_nodes == 3 and result.num_classes == 3
    bare = from_pyg(SimpleNamespace(x=None, edge_index=torch.tensor([[0], [1]]), num_nodes=4))
    assert bare.graph.num_nodes == 4 and "structural" in bare.meta["features"]
    with pytest.raises(DataError, match="points past the 2 nodes"):
        from_pyg(SimpleNamespace(x=torch.ones(2, 1), edge_index=torch.tensor([[0], [2]])))


def test_a_real_pyg_data_object():
    """What ``from_pyg`` duck-types, from torch_geometric itself (the ``graphs`` extra)."""
    pyg_data = pytest.importorskip(
        "torch_geometric.data", reason="torch_geometric is optional: pip install labelless[graphs]"
    )
    edges = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])
    data = pyg_data.Data(
        x=torch.arange(6.0).view(3, 2), edge_index=edges, y=torch.tensor([0, 1, 0])
    )
    result = from_pyg(data)
    assert result.graph.num_nodes == 3 and result.num_classes == 2
    assert result.graph.x.tolist() == [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]
    assert sorted(map(tuple, result.graph.edge_index.T.tolist())) == sorted(
        map(tuple, edges.T.tolist())
    )
    isolated = from_pyg(pyg_data.Data(edge_index=torch.tensor([[0], [1]]), num_nodes=5))
    assert isolated.graph.num_nodes == 5


def test_unknown_and_missing_builtins(tmp_path):
    with pytest.raises(ConfigError, match="unknown graph dataset"):
        load_graph_dataset("kora")
    with pytest.raises(DataError, match="LABELLESS_DATA"):
        load_graph_dataset("cora", root=tmp_path)
    with pytest.raises(DataError, match="tu_graphs"):
        load_graph_dataset("tu:MUTAG", root=tmp_path)


# ---------------------------------------------------------------------------------------------
# Real data


def _builtin(root, name, relative):
    if not (root / relative).exists():
        pytest.skip(f"real datasets not available: {relative} is not under $LABELLESS_DATA")
    return load_graph_dataset(name)


@pytest.mark.data
def test_cora_and_citeseer(data_root):
    cora = _builtin(data_root, "cora", "planetoid/cora.npz")
    graph = cora.graph
    assert (graph.num_nodes, graph.num_edges, graph.num_features) == (2708, 10556, 1433)
    assert cora.num_classes == 7 and len(cora.splits) == 1
    assert [len(cora.splits[0][k]) for k in ("train", "val", "test")] == [140, 500, 1000]
    citeseer = _builtin(data_root, "citeseer", "planetoid/citeseer.npz")
    graph = citeseer.graph
    assert (graph.num_nodes, graph.num_edges, graph.num_features) == (3327, 9104, 3703)
    assert citeseer.num_classes == 6 and int((graph.y == -1).sum()) == 15
    assert [len(citeseer.splits[0][k]) for k in ("train", "val", "test")] == [120, 500, 1000]


@pytest.mark.data
def test_pubmed_structural_and_film_symmetrised(data_root):
    pubmed = _builtin(data_root, "pubmed", "planetoid/pubmed_structure_only.npz")
    assert pubmed.graph.num_nodes == 19717 and "structural" in pubmed.meta["features"]
    film = _builtin(data_root, "film", "heterophily_graphs/film.npz")
    assert film.graph.num_nodes == 7600 and len(film.splits) == 10 and film.meta["symmetrised"]
    edges = film.graph.edge_index
    assert edges.shape[1] >= film.meta["directed_edges_in_file"]
    assert set(map(tuple, edges.T.tolist())) == set(map(tuple, edges.flip(0).T.tolist()))


@pytest.mark.data
def test_mutag_and_imdb(data_root):
    start = time.perf_counter()
    mutag = _builtin(data_root, "tu:MUTAG", "tu_graphs/MUTAG/MUTAG.txt")
    assert isinstance(mutag, GraphSetDataset) and time.perf_counter() - start < 2
    assert len(mutag.graphs) == 188 and mutag.num_classes == 2 and len(mutag.folds) == 10
    assert np.bincount(mutag.labels().numpy()).tolist() == [63, 125]
    assert mutag.graphs[0].num_features == 7
    assert all(len(train) + len(test) == 188 for train, test in mutag.folds)
    imdb = _builtin(data_root, "tu:IMDBBINARY", "tu_graphs/IMDBBINARY/IMDBBINARY.txt")
    assert len(imdb.graphs) == 1000 and "one-hot degree" in imdb.meta["features"]
    graph = imdb.graphs[0]
    degree = torch.bincount(graph.edge_index[0], minlength=graph.num_nodes)
    assert torch.equal(graph.x.argmax(1), degree)
