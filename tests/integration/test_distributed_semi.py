"""Two gloo processes keep one semi-supervised state: SampleState rows written on either process
land on both, and FreeMatch / SoftMatch / FlexMatch statistics equal the single-process run on
the concatenated batch."""

from __future__ import annotations

import pytest
import torch

from labelless.semi.algorithms import create_algorithm
from labelless.semi.state import SampleState

from .spawn import run_ranks

pytestmark = pytest.mark.distributed

WORLD = 2
CLASSES = 3
NUM_SAMPLES = 16


class Linear(torch.nn.Module):
    embed_dim = 4

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 4)

    def forward(self, x):
        return self.layer(x)


def _inputs() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    probs = torch.softmax(3 * torch.randn(8, CLASSES, generator=generator), dim=-1)
    return {
        "index": torch.arange(8, 16),  # unlabelled samples 8..15, four per process
        "probs": probs,
        "status": torch.arange(8) % CLASSES,
    }


def _run(inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Write state rows and update each algorithm's statistics from ``inputs`` (twice, so the
    second step reads the synced first one)."""
    out: dict[str, torch.Tensor] = {}
    state = SampleState(NUM_SAMPLES, torch.arange(8, 16))
    state.add("status", fill=-1, dtype=torch.long)
    state.write("status", inputs["index"], inputs["status"])
    out["status"] = state["status"].clone()
    unlabelled = {"index": inputs["index"]}
    for name, options in (
        ("freematch", {"momentum": 0.5}),
        ("softmatch", {"momentum": 0.5}),
        ("flexmatch", {"threshold": 0.6}),
    ):
        torch.manual_seed(0)
        algo_state = SampleState(NUM_SAMPLES, torch.arange(8, 16))
        algorithm = create_algorithm(name, Linear(), CLASSES, algo_state, **options)
        for _ in range(2):
            mask, pseudo = algorithm.weights(inputs["probs"], unlabelled)
        out[f"{name}/mask"], out[f"{name}/pseudo"] = mask.float(), pseudo.float()
        buffers = {
            k: v for k, v in algorithm.named_buffers() if not k.startswith(("model.", "ema"))
        }
        for key, value in buffers.items():
            out[f"{name}/{key}"] = value.clone().float()
    return out


def _rank_results(rank: int) -> dict:
    return _run({k: v[rank * 4 : (rank + 1) * 4] for k, v in _inputs().items()})


@pytest.fixture(scope="module")
def per_process():
    return run_ranks(_rank_results, WORLD)


def test_state_and_statistics_match_one_process(per_process):
    single = _run(_inputs())
    per_sample = {key for key in single if key.endswith(("/mask", "/pseudo"))}
    for key, value in single.items():
        if key in per_sample:  # each process holds its half of the batch
            together = torch.cat([part[key] for part in per_process])
            assert torch.allclose(together, value, atol=1e-6), key
        else:  # shared state: the same on every process, equal to the single-process run
            for part in per_process:
                assert torch.allclose(part[key], value, atol=1e-6), key


def test_without_communication_the_state_differs():
    """The comparison above would catch a missing gather: half the rows, or another threshold."""
    single = _run(_inputs())
    local = _run({k: v[:4] for k, v in _inputs().items()})
    assert not torch.equal(local["status"], single["status"])
    assert not torch.allclose(
        local["freematch/global_threshold"], single["freematch/global_threshold"]
    )
    assert not torch.allclose(
        local["softmatch/confidence_mean"], single["softmatch/confidence_mean"]
    )
