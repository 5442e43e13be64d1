"""The embedding queue of MoCo / NNCLR: FIFO pointer arithmetic, checkpointed state, neighbours."""

from __future__ import annotations

import torch

from labelless.methods.queue import EmbeddingQueue, nearest_neighbours


def _rows(start, n):
    return torch.arange(start, start + n, dtype=torch.float32)[:, None].repeat(1, 2)


def test_push_writes_at_the_pointer_and_wraps_around():
    queue = EmbeddingQueue(5, 2)
    assert len(queue.filled()) == 0
    queue.push(_rows(0, 3))  # rows 0..2
    assert int(queue.pointer) == 3 and int(queue.count) == 3
    assert torch.equal(queue.filled()[:, 0], torch.tensor([0.0, 1.0, 2.0]))
    queue.push(_rows(10, 4))  # slots 3, 4, then 0, 1 (overwriting the two oldest)
    assert int(queue.pointer) == (3 + 4) % 5 == 2 and int(queue.count) == 5
    assert torch.equal(queue.rows[:, 0], torch.tensor([12.0, 13.0, 2.0, 10.0, 11.0]))
    queue.push(_rows(20, 7))  # more than the queue holds: the newest 5 (22..26), from slot 2
    assert int(queue.pointer) == (2 + 5) % 5 == 2
    assert torch.equal(queue.rows[:, 0], torch.tensor([25.0, 26.0, 22.0, 23.0, 24.0]))


def test_push_takes_no_gradient_and_the_queue_is_checkpointed():
    queue = EmbeddingQueue(4, 3)
    keys = torch.randn(2, 3, requires_grad=True)
    queue.push(keys * 2)
    assert not queue.rows.requires_grad
    state = queue.state_dict()
    assert set(state) == {"rows", "pointer", "count"}
    restored = EmbeddingQueue(4, 3)
    restored.load_state_dict(state)
    assert torch.equal(restored.filled(), queue.filled()) and int(restored.pointer) == 2


def test_nearest_neighbours_by_cosine_similarity():
    support = torch.tensor([[1.0, 0.0], [0.0, 5.0], [-1.0, -1.0]])
    queries = torch.tensor([[3.0, 0.1], [0.1, 0.2], [-2.0, -1.0]], requires_grad=True)
    neighbours = nearest_neighbours(queries, support)
    # cosine, not dot product: the long [0, 5] row does not win for the first query
    assert torch.equal(neighbours, support[[0, 1, 2]])
    assert not neighbours.requires_grad
