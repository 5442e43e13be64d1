"""kNN against a brute-force numpy computation of Wu et al.'s weighted vote."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from labelless.errors import DataError
from labelless.evaluate import knn_accuracy, knn_predict


def brute_force_votes(train_z, train_y, test_z, k, temperature, num_classes):
    train = train_z / np.linalg.norm(train_z, axis=1, keepdims=True)
    test = test_z / np.linalg.norm(test_z, axis=1, keepdims=True)
    votes = np.zeros((len(test), num_classes))
    for i, query in enumerate(test):
        similarity = np.array([float(query @ t) for t in train])
        for j in np.argsort(-similarity)[:k]:
            votes[i, train_y[j]] += np.exp(similarity[j] / temperature)
    return votes


def test_knn_matches_brute_force():
    rng = np.random.default_rng(2)  # a draw without near-tied votes
    train_z, test_z = rng.normal(size=(40, 5)), rng.normal(size=(25, 5))
    train_y = rng.integers(0, 4, size=40)
    votes = brute_force_votes(train_z, train_y, test_z, k=3, temperature=0.5, num_classes=4)
    top_two = np.sort(votes, axis=1)[:, -2:]
    assert (top_two[:, 1] > top_two[:, 0] * 1.01).all()  # no near-ties: the argmax is unambiguous

    predicted = knn_predict(train_z, train_y, test_z, k=3, temperature=0.5)
    assert predicted.dtype == torch.int64
    np.testing.assert_array_equal(predicted.numpy(), votes.argmax(axis=1))
    expected_accuracy = float((votes.argmax(axis=1) == train_y[:25]).mean())
    accuracy = knn_accuracy(train_z, train_y, test_z, train_y[:25], k=3, temperature=0.5)
    assert accuracy == pytest.approx(expected_accuracy)


def test_weights_beat_majority():
    # Two far class-0 neighbours against one very close class-1 neighbour: at T=0.05 the close one
    # outweighs both (exp(1/0.05) > 2 exp(0.8/0.05)); a plain majority vote would say class 0.
    train_z = np.array([[1.0, 0.0], [0.8, 0.6], [0.8, -0.6]])
    train_y = np.array([1, 0, 0])
    query = np.array([[1.0, 0.0]])
    assert knn_predict(train_z, train_y, query, k=3, temperature=0.05).item() == 1
    assert knn_predict(train_z, train_y, query, k=3, temperature=100.0).item() == 0


def test_chunked_equals_unchunked_and_k_is_clipped():
    generator = torch.Generator().manual_seed(0)
    train_z, test_z = (
        torch.randn(50, 8, generator=generator),
        torch.randn(37, 8, generator=generator),
    )
    train_y = torch.randint(0, 5, (50,), generator=generator)
    whole = knn_predict(train_z, train_y, test_z, k=7, chunk_size=1024)
    chunked = knn_predict(train_z, train_y, test_z, k=7, chunk_size=5)
    assert torch.equal(whole, chunked)
    clipped = knn_predict(train_z, train_y, test_z, k=10_000)  # k > N uses every train sample
    assert torch.equal(clipped, knn_predict(train_z, train_y, test_z, k=50))


def test_unlabelled_train_entries_are_ignored():
    generator = torch.Generator().manual_seed(0)
    train_z, test_z = (
        torch.randn(30, 6, generator=generator),
        torch.randn(20, 6, generator=generator),
    )
    train_y = torch.randint(0, 3, (30,), generator=generator)
    train_y[::3] = -1
    labelled = train_y >= 0
    with_unlabelled = knn_predict(train_z, train_y, test_z, k=4)
    without = knn_predict(train_z[labelled], train_y[labelled], test_z, k=4)
    assert torch.equal(with_unlabelled, without)
    # Unlabelled test samples do not count toward accuracy.
    test_y = without.clone()
    test_y[:5] = -1
    assert knn_accuracy(train_z, train_y, test_z, test_y, k=4) == 1.0


def test_bad_input_raises_data_error():
    with pytest.raises(DataError, match="every train label is -1"):
        knn_predict(np.ones((3, 2)), np.full(3, -1), np.ones((1, 2)))
    with pytest.raises(DataError, match="same encoder"):
        knn_predict(np.ones((3, 2)), np.zeros(3), np.ones((1, 4)))


def separated_clusters(num_per_class: int, seed: int, num_classes: int = 5, dim: int = 32):
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(size=(num_classes, dim)) * 10
    labels = np.repeat(np.arange(num_classes), num_per_class)
    return centres[labels] + rng.normal(size=(len(labels), dim)), labels


def test_knn_on_well_separated_clusters_is_perfect():
    train_z, train_y = separated_clusters(40, seed=0)
    test_z, test_y = separated_clusters(10, seed=1)
    assert knn_accuracy(train_z, train_y, test_z, test_y, k=20, backend="torch") == 1.0


class FakeFaiss:
    """faiss's IndexFlatIP contract in numpy: exact inner-product search, best first."""

    @staticmethod
    def omp_set_num_threads(count):
        assert count >= 1

    class IndexFlatIP:
        def __init__(self, dim):
            self.dim, self.data = dim, np.zeros((0, dim), dtype=np.float32)

        def add(self, x):
            assert x.dtype == np.float32 and x.shape[1] == self.dim
            self.data = np.concatenate([self.data, x])

        def search(self, queries, k):
            scores = queries @ self.data.T
            order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
            return np.take_along_axis(scores, order, axis=1), order.astype(np.int64)


def test_faiss_is_optional_and_used_when_installed(monkeypatch):
    from labelless.errors import ConfigError
    from labelless.evaluate import neighbours

    generator = torch.Generator().manual_seed(0)
    train_z, test_z = (
        torch.randn(80, 6, generator=generator),
        torch.randn(30, 6, generator=generator),
    )
    train_y = torch.randint(0, 4, (80,), generator=generator)
    reference = knn_predict(train_z, train_y, test_z, k=9, backend="torch")

    monkeypatch.setattr(neighbours, "load_faiss", lambda: None)  # not installed
    assert neighbours.resolve_backend("auto", torch.device("cpu")) == "torch"
    assert torch.equal(knn_predict(train_z, train_y, test_z, k=9), reference)
    with pytest.raises(ConfigError, match=r"pip install 'labelless\[faiss\]'"):
        knn_predict(train_z, train_y, test_z, backend="faiss")

    monkeypatch.setattr(neighbours, "load_faiss", lambda: FakeFaiss)  # installed
    assert neighbours.resolve_backend("auto", torch.device("cpu")) == "faiss"
    assert torch.equal(knn_predict(train_z, train_y, test_z, k=9), reference)
    z = torch.nn.functional.normalize(train_z, dim=1)
    for offset in (0, 20):  # leave-one-out search of rows offset.. against all rows
        faiss_result = neighbours.top_k_similar(z[offset : offset + 30], z, 5, self_offset=offset)
        torch_result = neighbours.top_k_similar(
            z[offset : offset + 30], z, 5, self_offset=offset, backend="torch"
        )
        assert torch.equal(faiss_result[1], torch_result[1])
        torch.testing.assert_close(faiss_result[0], torch_result[0])
        assert not (faiss_result[1] == torch.arange(offset, offset + 30)[:, None]).any()


def test_real_faiss_and_torch_agree():
    """With faiss installed (the ``faiss`` extra), its exact search and the torch one return the
    same neighbours, similarities and kNN predictions on a small set."""
    pytest.importorskip("faiss", reason="faiss is optional: pip install 'labelless[faiss]'")
    from labelless.evaluate import neighbours

    generator = torch.Generator().manual_seed(1)
    train_z, test_z = (
        torch.randn(300, 16, generator=generator),
        torch.randn(70, 16, generator=generator),
    )
    train_y = torch.randint(0, 5, (300,), generator=generator)
    assert neighbours.resolve_backend("auto", torch.device("cpu")) == "faiss"
    assert torch.equal(
        knn_predict(train_z, train_y, test_z, k=20, backend="faiss"),
        knn_predict(train_z, train_y, test_z, k=20, backend="torch"),
    )
    z = torch.nn.functional.normalize(train_z, dim=1)
    found = {
        backend: neighbours.top_k_similar(z[100:170], z, 10, self_offset=100, backend=backend)
        for backend in ("faiss", "torch")
    }
    assert torch.equal(found["faiss"][1], found["torch"][1])
    torch.testing.assert_close(found["faiss"][0], found["torch"][0])
