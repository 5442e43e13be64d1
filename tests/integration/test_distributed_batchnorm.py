"""What each process's BatchNorm sees under data parallelism, on 2 gloo processes (CPU).

MoCo v2's shuffling BN (He et al. 2020, sec. 3.3): the key encoder's BatchNorm on each rank
normalises a shuffled share of the global batch, every sample exactly once over the ranks, with
samples of both ranks' batches; the query encoder's BatchNorm sees the rank's own batch; the keys
come back in sample order, each equal to the key encoder applied to the sub-batch that held it
(so the queue and the loss are those of keys normalised with the other sub-batch's statistics);
without BatchNorm the shuffle changes nothing.

``trainer.sync_batchnorm``: torch's SyncBatchNorm refuses CPU inputs (why a CPU run refuses the
option, ``train/trainer.py``), and on GPUs every rank normalises with the global statistics.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from labelless.methods import create_method
from labelless.methods.moco import queue_info_nce

from .spawn import run_ranks

pytestmark = pytest.mark.distributed

WORLD = 2
HALF = 8  # samples per process
STEPS = 2  # the second step reads a queue filled by the first
OPTIONS = {"queue_size": 64, "proj_hidden_dim": 8, "proj_dim": 4, "temperature": 0.5}


class TinyBN(nn.Module):
    """BatchNorm on the 4 input features, then 4 -> 6: the BatchNorm's input is the view's rows
    themselves, so the rows that reach it name the samples."""

    embed_dim = 6

    def __init__(self, batchnorm: bool = True) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(4) if batchnorm else nn.Identity()
        self.layer = nn.Linear(4, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.layer(self.norm(x)))


def _global_views() -> list[list[torch.Tensor]]:
    """Per step, the two views of the whole batch of ``WORLD * HALF`` samples (rank r holds rows
    ``r * HALF`` to ``(r + 1) * HALF``)."""
    generator = torch.Generator().manual_seed(7)
    return [[torch.randn(WORLD * HALF, 4, generator=generator) for _ in range(2)] for _ in range(2)]


def _method(shuffle_bn: bool, batchnorm: bool = True):
    torch.manual_seed(0)  # the same weights on every rank and in the parent process
    return create_method("moco_v2", TinyBN(batchnorm), shuffle_bn=shuffle_bn, **OPTIONS)


def _moco_steps(rank: int, shuffle_bn: bool, batchnorm: bool = True) -> dict:
    """Two MoCo steps on this rank's half of each batch: the rows each BatchNorm saw, the losses
    and the queue after each step."""
    method = _method(shuffle_bn, batchnorm)
    seen: dict[str, list[torch.Tensor]] = {"key": [], "query": []}
    if batchnorm:
        for name, norm in (
            ("key", method.key_encoder.target[0].norm),
            ("query", method.backbone.norm),
        ):
            norm.register_forward_pre_hook(
                lambda _, args, name=name: seen[name].append(args[0].clone())
            )
    generator = torch.Generator().manual_seed(100 + rank)  # as the module's: per rank
    mine = slice(rank * HALF, (rank + 1) * HALF)
    losses, queues = [], []
    for v0, v1 in _global_views():
        losses.append(method([v0[mine], v1[mine]], {}, generator=generator)["loss"].detach())
        queues.append(method.queue.filled().clone())
    return {"seen": seen, "losses": losses, "queues": queues}


def _sync_batchnorm_on_cpu(rank: int) -> str:
    """What torch says when a SyncBatchNorm runs on CPU inside a process group."""
    norm = nn.SyncBatchNorm.convert_sync_batchnorm(nn.Sequential(nn.BatchNorm1d(3)))
    try:
        norm(torch.randn(4, 3))
    except ValueError as error:
        return str(error)
    return "ran"


def _all(rank: int) -> dict:
    return {
        "shuffled": _moco_steps(rank, shuffle_bn=True),
        "plain": _moco_steps(rank, shuffle_bn=False),
        "identity_shuffled": _moco_steps(rank, shuffle_bn=True, batchnorm=False),
        "identity_plain": _moco_steps(rank, shuffle_bn=False, batchnorm=False),
        "sync_batchnorm_cpu": _sync_batchnorm_on_cpu(rank),
    }


@pytest.fixture(scope="module")
def ranks():
    return run_ranks(_all, WORLD)


def _where(rows: torch.Tensor, batch: torch.Tensor) -> list[int]:
    """For each row of ``rows``, its index in ``batch`` (rows are exact copies)."""
    matches = (rows[:, None, :] == batch[None, :, :]).all(dim=2)
    assert (matches.sum(dim=1) == 1).all(), "a row that is not exactly one sample of the batch"
    return matches.int().argmax(dim=1).tolist()


def test_each_rank_key_batchnorm_sees_a_shuffled_share_of_the_global_batch(ranks):
    for step, (v0, v1) in enumerate(_global_views()):
        held = [_where(rank["shuffled"]["seen"]["key"][step], v1) for rank in ranks]
        assert sorted(held[0] + held[1]) == list(range(WORLD * HALF))  # every sample once
        for rank, samples in enumerate(held):
            homes = {sample // HALF for sample in samples}
            assert homes == {0, 1}, f"step {step}: rank {rank}'s key BN saw one rank's samples"
            query = _where(ranks[rank]["shuffled"]["seen"]["query"][step], v0)
            assert query == list(range(rank * HALF, (rank + 1) * HALF))  # queries: own batch
            plain = _where(ranks[rank]["plain"]["seen"]["key"][step], v1)
            assert plain == query  # without the shuffle the key BN sees the queries' samples


def test_unshuffled_keys_belong_to_their_samples_and_give_the_loss(ranks):
    """The queue (keys of both ranks, in sample order) holds, for sample s, the key encoder's
    output for s computed in the sub-batch that held it; the loss is queue InfoNCE of the own
    queries against those keys, with the queue of the previous step as negatives."""
    method = _method(shuffle_bn=False)
    negatives = torch.zeros(0, OPTIONS["proj_dim"])
    for step, (v0, v1) in enumerate(_global_views()):
        keys = torch.zeros(WORLD * HALF, OPTIONS["proj_dim"])
        own_batch_keys = torch.zeros_like(keys)
        with torch.no_grad():
            for rank in ranks:
                rows = rank["shuffled"]["seen"]["key"][step]
                keys[_where(rows, v1)] = method.key_encoder(rows)
            for r in range(WORLD):
                own_batch_keys[r * HALF : (r + 1) * HALF] = method.key_encoder(
                    v1[r * HALF : (r + 1) * HALF]
                )
        queue = ranks[0]["shuffled"]["queues"][step]
        new = queue[len(negatives) :]
        torch.testing.assert_close(new, F.normalize(keys, dim=1), rtol=0, atol=1e-6)
        assert not torch.allclose(new, F.normalize(own_batch_keys, dim=1), atol=1e-3)
        assert torch.equal(ranks[1]["shuffled"]["queues"][step], queue)  # one queue
        for r, rank in enumerate(ranks):
            mine = slice(r * HALF, (r + 1) * HALF)
            with torch.no_grad():
                queries = method.projector(method.backbone(v0[mine]))
                expected = queue_info_nce(queries, keys[mine], negatives, OPTIONS["temperature"])
            got = rank["shuffled"]["losses"][step]
            torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
        negatives = queue
    assert ranks[0]["shuffled"]["losses"][1] > 0  # a real loss: the queue was not empty


def test_without_batchnorm_the_shuffle_changes_nothing(ranks):
    for rank in ranks:
        for step in range(STEPS):
            for key in ("losses", "queues"):
                torch.testing.assert_close(
                    rank["identity_shuffled"][key][step],
                    rank["identity_plain"][key][step],
                    rtol=0,
                    atol=1e-6,
                )


def test_one_process_shuffle_bn_is_a_no_op():
    """No process group: the keys are the key encoder's on the batch as it is."""
    shuffled, plain = _method(shuffle_bn=True), _method(shuffle_bn=False)
    for v0, v1 in _global_views():
        assert torch.equal(shuffled([v0, v1], {})["loss"], plain([v0, v1], {})["loss"])
    assert torch.equal(shuffled.queue.filled(), plain.queue.filled())


def test_torch_sync_batchnorm_refuses_cpu_processes(ranks):
    """The reason CPU runs refuse ``trainer.sync_batchnorm``. If this fails, torch runs
    SyncBatchNorm on CPU now: lift the refusal in ``train/trainer.py``."""
    for rank in ranks:
        assert "expected input tensor to be on GPU" in rank["sync_batchnorm_cpu"]


def _sync_batchnorm_on_gpus(rank: int) -> dict[str, torch.Tensor]:
    device = torch.device("cuda", rank)
    norm = nn.SyncBatchNorm(3).to(device)
    batch = torch.randn(WORLD * HALF, 3, generator=torch.Generator().manual_seed(3)) * 2 + 1
    out = norm(batch[rank * HALF : (rank + 1) * HALF].to(device))
    return {"out": out.cpu(), "running_mean": norm.running_mean.cpu(), "batch": batch}


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="SyncBatchNorm runs on GPUs only")
def test_sync_batchnorm_gives_every_rank_the_global_statistics():
    ranks = run_ranks(_sync_batchnorm_on_gpus, WORLD, backend="nccl")
    batch = ranks[0]["batch"]
    expected = F.batch_norm(batch, None, None, training=True)  # over the global batch
    for r, rank in enumerate(ranks):
        torch.testing.assert_close(rank["out"], expected[r * HALF : (r + 1) * HALF])
        torch.testing.assert_close(rank["running_mean"], 0.1 * batch.mean(dim=0))
