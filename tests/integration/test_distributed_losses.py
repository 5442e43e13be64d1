"""Two gloo processes on CPU compute the same loss and gradients as one process on the full batch.

Each process holds half of the batch; every loss that needs the whole batch gathers embeddings or
all-reduces statistics with gradient. DDP averages parameter gradients over processes, so the
per-process gradient divided by the world size must equal the single-process gradient, and the mean
of the per-process losses must equal the single-process loss. All losses run in one spawned job.
"""

from __future__ import annotations

import pytest
import torch

from labelless.nn.losses import (
    barlow_twins,
    byol,
    dcl,
    dino,
    directpred_predictor,
    info_nce,
    mixed_barlow_twins,
    moco_v3,
    sinkhorn,
    sinkhorn_with_queue,
    swav,
    update_center,
    update_correlation,
    vicreg,
)

from .spawn import run_ranks

pytestmark = pytest.mark.distributed

WORLD = 2
BATCH = 8


def _swapped_prediction(scores0, scores1):
    codes0, codes1 = sinkhorn(scores0), sinkhorn(scores1)
    loss = (swav(scores1, codes0) + swav(scores0, codes1)) / 2
    return loss, {"codes0": codes0, "codes1": codes1}


def _swav_with_queue(scores0, scores1):
    # The queue's scores: the same rows on every process (a gathered queue), 6 of them.
    queued = torch.randn(6, scores0.shape[1], generator=torch.Generator().manual_seed(1)) * 0.5
    codes0 = sinkhorn_with_queue(scores0, queued)
    return swav(scores1, codes0), {"codes0": codes0}


def _dino_step(student, teacher):
    center = torch.linspace(-0.5, 0.5, student.shape[1])
    return dino(student, teacher, center), {"center": update_center(center, teacher)}


def _directpred_step(z0, z1):
    correlation = update_correlation(torch.eye(z0.shape[1]), z0, rho=0.3)
    predictor = directpred_predictor(correlation, eps=0.1)
    loss = byol(z0 @ predictor.T, z1)
    return loss, {"correlation": correlation, "predictor": predictor}


def _mixed_regulariser(z0, z1, z_mixed):
    # Neighbour swaps pair the same samples on one process of 8 or two of 4 (local permutations).
    permutation = torch.arange(z0.shape[0]) ^ 1
    return mixed_barlow_twins(z_mixed, z0, z1, permutation, 0.3), {}


# name -> (inputs it reads, function of those inputs -> (loss, outputs without gradient)).
CASES = {
    "info_nce": (("z0", "z1"), lambda z0, z1: (info_nce(z0, z1, 0.3), {})),
    "dcl": (("z0", "z1"), lambda z0, z1: (dcl(z0, z1, 0.3), {})),
    "dclw": (("z0", "z1"), lambda z0, z1: (dcl(z0, z1, 0.3, weighted=True, sigma=0.5), {})),
    "barlow_twins": (("z0", "z1"), lambda z0, z1: (barlow_twins(z0, z1, lambd=0.1), {})),
    "vicreg": (("z0", "z1"), lambda z0, z1: (vicreg(z0, z1), {})),
    "swav": (("scores0", "scores1"), _swapped_prediction),
    "swav_queue": (("scores0", "scores1"), _swav_with_queue),
    "dino": (("student", "teacher"), _dino_step),
    "moco_v3": (("z0", "z1"), lambda q, k: (moco_v3(q, k, 0.2), {})),
    "directpred": (("z0", "z1"), _directpred_step),
    "mixed_barlow_twins": (("z0", "z1", "z_mixed"), _mixed_regulariser),
}
SHARED_OUTPUTS = ("center", "correlation", "predictor")  # statistics every process holds whole


def _inputs() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)

    def draw(*shape):
        return torch.randn(*shape, generator=generator)

    return {
        "z0": draw(BATCH, 5),
        "z1": draw(BATCH, 5),
        "scores0": draw(BATCH, 6) * 0.5,
        "scores1": draw(BATCH, 6) * 0.5,
        "student": draw(BATCH, 6),
        "teacher": draw(BATCH, 6),
        "z_mixed": draw(BATCH, 5),
    }


def _run_case(name: str, inputs: dict[str, torch.Tensor]) -> dict:
    """The loss, the gradient of every input it reads, and its outputs without gradient."""
    keys, function = CASES[name]
    leaves = [inputs[key].clone().requires_grad_(True) for key in keys]
    loss, outputs = function(*leaves)
    loss.backward()
    grads = {key: leaf.grad for key, leaf in zip(keys, leaves, strict=True)}
    return {"loss": loss.detach(), "grads": grads, "outputs": outputs}


def _rank_results(rank: int) -> dict:
    half = BATCH // WORLD
    inputs = {k: v[rank * half : (rank + 1) * half] for k, v in _inputs().items()}
    return {name: _run_case(name, inputs) for name in CASES}  # same order on every rank


@pytest.fixture(scope="module")
def per_process():
    """Each rank's results, from one spawned job for every loss."""
    return run_ranks(_rank_results, WORLD)


@pytest.mark.parametrize("name", list(CASES))
def test_two_processes_match_one_process(per_process, name):
    single = _run_case(name, _inputs())
    parts = [results[name] for results in per_process]
    mean_loss = sum(part["loss"] for part in parts) / WORLD
    assert torch.allclose(mean_loss, single["loss"], rtol=1e-5, atol=1e-6)
    for key, grad in single["grads"].items():
        if grad is None:  # an input the loss only reads as a target
            assert all(part["grads"][key] is None for part in parts)
            continue
        distributed = torch.cat([part["grads"][key] for part in parts]) / WORLD
        assert torch.allclose(distributed, grad, rtol=1e-4, atol=1e-6), key
    for key, value in single["outputs"].items():
        if key in SHARED_OUTPUTS:  # the same centre (or correlation) on every process
            for part in parts:
                assert torch.allclose(part["outputs"][key], value, atol=1e-6)
        else:  # per-sample outputs, each process holding its half
            together = torch.cat([part["outputs"][key] for part in parts])
            assert torch.allclose(together, value, atol=1e-5), key


@pytest.mark.parametrize("name", list(CASES))
def test_the_whole_batch_matters(name):
    """Without communication the halves would give another loss (or centre): the check above is
    sensitive to a missing gather or all-reduce."""
    inputs = _inputs()
    halves = [{k: v[i * 4 : (i + 1) * 4] for k, v in inputs.items()} for i in range(WORLD)]
    single = _run_case(name, inputs)
    local = [_run_case(name, half) for half in halves]
    if name == "dino":  # the loss is per sample; the centre needs the whole batch
        assert not torch.allclose(local[0]["outputs"]["center"], single["outputs"]["center"])
        return
    local_loss = sum(part["loss"] for part in local) / WORLD
    assert not torch.allclose(local_loss, single["loss"], atol=1e-3)
