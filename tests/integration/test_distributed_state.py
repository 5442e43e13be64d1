"""State that lives beside the weights stays one state across processes: queues (MoCo, NNCLR,
SwAV) hold the keys of every process in the single-process order, and after DDP steps the EMA
teachers, DINO's centre and the queues are identical on every rank."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from labelless.methods import create_method
from labelless.methods.queue import EmbeddingQueue

from .spawn import run_ranks

pytestmark = pytest.mark.distributed

WORLD = 2
BATCH = 8


def _keys() -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return [torch.randn(BATCH, 3, generator=generator) for _ in range(3)]


def _queue_after_pushes(rank: int | None) -> dict[str, torch.Tensor]:
    """A 10-row queue after three pushes of 8 keys (the last wraps around); with a ``rank``,
    that process pushes only its half of each batch."""
    queue = EmbeddingQueue(10, 3)
    half = BATCH // WORLD
    for keys in _keys():
        queue.push(keys if rank is None else keys[rank * half : (rank + 1) * half])
    return {name: value.clone() for name, value in queue.state_dict().items()}


class Tiny(nn.Module):
    """A 4 -> 6 encoder without BatchNorm."""

    embed_dim = 6

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(4, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.layer(x))


# BatchNorm's running statistics are per process between steps: DDP broadcasts rank 0's at
# each forward (and rank 0 writes the checkpoint), so they are the one state allowed to differ.
BATCHNORM_STATISTICS = ("running_mean", "running_var", "num_batches_tracked")
METHODS = {
    "dino": {"out_dim": 16, "hidden_dim": 8, "bottleneck_dim": 4},
    "moco_v2": {"queue_size": 12, "proj_hidden_dim": 8, "proj_dim": 4},
    "nnclr": {"queue_size": 12, "proj_hidden_dim": 8, "proj_dim": 4, "pred_hidden_dim": 8},
    "swav": {"queue_size": 12, "proj_hidden_dim": 8, "proj_dim": 4, "num_prototypes": 5},
    "byol": {"proj_hidden_dim": 8, "proj_dim": 4, "pred_hidden_dim": 8},
}


def _state_after_ddp_steps(rank: int) -> dict[str, dict[str, torch.Tensor]]:
    """Each method trained 3 steps under DDP on this rank's half batches: its whole state
    (weights, teachers, centre, queues, BatchNorm statistics)."""
    out = {}
    for name, options in METHODS.items():
        torch.manual_seed(0)  # the same initial weights on every rank
        method = create_method(name, Tiny(), **options)
        frozen = name in ("dino", "swav")  # last layer / prototypes frozen for the first steps
        model = nn.parallel.DistributedDataParallel(method, find_unused_parameters=frozen)
        optimiser = torch.optim.SGD(method.parameters(), lr=0.1)
        generator = torch.Generator().manual_seed(10 + rank)
        for step in range(3):
            count = 4 if name == "swav" else 2  # swav: 2 global crops + 2 local ones
            views = [torch.randn(BATCH // WORLD, 4, generator=generator) for _ in range(count)]
            batch = {"index": torch.arange(BATCH // WORLD) + rank * BATCH // WORLD}
            loss = model(views, batch)["loss"]
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            method.on_step_end((step + 1) / 3)
        out[name] = {key: value.detach().clone() for key, value in method.state_dict().items()}
    return out


@pytest.fixture(scope="module")
def ranks():
    return run_ranks(_both, WORLD)


def _both(rank: int) -> dict:
    return {"queue": _queue_after_pushes(rank), "methods": _state_after_ddp_steps(rank)}


def test_a_queue_fed_by_two_processes_equals_the_single_process_queue(ranks):
    single = _queue_after_pushes(None)
    assert int(single["count"]) == 10 and int(single["pointer"]) == 4  # it wrapped around
    for rank in ranks:
        for name, value in single.items():
            assert torch.equal(rank["queue"][name], value), name


@pytest.mark.parametrize("name", sorted(METHODS))
def test_teachers_centres_and_queues_stay_identical_on_every_rank(ranks, name):
    first, second = ranks[0]["methods"][name], ranks[1]["methods"][name]
    assert first.keys() == second.keys()
    stateful = [
        key
        for key in first
        if any(
            s in key for s in ("teacher", "center", "queue", "support", "key", "momentum", "target")
        )
    ]
    assert stateful, f"{name} has no state beside its weights: {list(first)}"
    for key in first:
        if key.endswith(BATCHNORM_STATISTICS):
            continue
        torch.testing.assert_close(first[key], second[key], rtol=0, atol=1e-6, msg=key)
