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


def _assert_matches_one_process(per_process: list[dict], single: dict) -> None:
    """Per-sample outputs (``/mask``, ``/pseudo``) of the processes, concatenated, equal the
    single-process run's; every other entry (shared state) is the same on every process and
    equal to the single-process run's."""
    for key, value in single.items():
        if key.endswith(("/mask", "/pseudo")):  # each process holds its half of the batch
            together = torch.cat([part[key] for part in per_process])
            assert torch.allclose(together, value, atol=1e-6), key
        else:
            for part in per_process:
                assert torch.allclose(part[key], value, atol=1e-6), key


def test_state_and_statistics_match_one_process(per_process):
    _assert_matches_one_process(per_process, _run(_inputs()))


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


def _open_set_inputs() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(2)
    return {
        "index": torch.arange(8, 16),
        "head_probs": torch.softmax(3 * torch.randn(8, 3, CLASSES, generator=generator), -1),
        "probs": torch.softmax(3 * torch.randn(8, CLASSES, generator=generator), -1),
        "features": torch.nn.functional.normalize(torch.randn(8, 4, generator=generator), dim=-1),
    }


def _open_set_run(inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Two steps of DAC's scores (state, Otsu weights, memory bank) and IOMatch's alignment
    queue (issue 23)."""
    torch.manual_seed(0)
    dac = create_algorithm(
        "dac", Linear(), CLASSES, SampleState(NUM_SAMPLES, torch.arange(8, 16)),
        num_heads=3, proj_dim=4, bank_size=12,
    )  # fmt: skip
    iomatch = create_algorithm(
        "iomatch", Linear(), CLASSES, SampleState(NUM_SAMPLES, torch.arange(8, 16)),
        alignment_length=3,
    )  # fmt: skip
    out: dict[str, torch.Tensor] = {}
    for step in range(2):
        score = dac.inlier_scores(inputs["head_probs"], inputs["index"])
        _, out[f"dac{step}/mask"] = dac.sample_weights(inputs["index"])
        targets = torch.cat([inputs["probs"] * score[:, None], (1 - score)[:, None]], dim=1)
        dac.update_bank(inputs["features"], targets)
        out[f"iomatch{step}/pseudo"] = iomatch.align(inputs["probs"])
    for name, algorithm in (("dac", dac), ("iomatch", iomatch)):
        for key, value in algorithm.named_buffers():
            if not key.startswith(("model.", "ema")):
                out[f"{name}/{key}"] = value.clone().float()  # DAC's bank, IOMatch's queue
    return out


def _open_set_rank_results(rank: int) -> dict:
    return _open_set_run({k: v[rank * 4 : (rank + 1) * 4] for k, v in _open_set_inputs().items()})


def test_dac_and_iomatch_state_match_one_process():
    per_process = run_ranks(_open_set_rank_results, WORLD)
    single = _open_set_run(_open_set_inputs())
    local = _open_set_run({k: v[:4] for k, v in _open_set_inputs().items()})
    assert not torch.allclose(local["dac/bank.rows"], single["dac/bank.rows"])
    assert not torch.allclose(local["dac/state.open_score"], single["dac/state.open_score"])
    queue = "iomatch/class_probs_queue"
    assert not torch.allclose(local[queue], single[queue])
    _assert_matches_one_process(per_process, single)


def _wad_inputs() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return {
        "labelled": torch.randn(8, 4, generator=generator),
        "label": torch.arange(8) % CLASSES,
        "unlabelled": torch.randn(8, 4, generator=generator),
        "index": torch.arange(8, 16),
    }


def _wad_run(inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Two WAD steps with a promotion between them: the reference set (labelled teacher
    embeddings of every process), the promoted samples and the weights."""
    torch.manual_seed(0)
    state = SampleState(NUM_SAMPLES, torch.arange(8, 16))
    algorithm = create_algorithm("wad", Linear(), CLASSES, state, rounds=2, alpha=1.0)
    labelled = {"views": [inputs["labelled"]], "label": inputs["label"]}
    labelled["index"] = inputs["index"] - 8  # labelled samples 0..7
    unlabelled = {
        "views": [inputs["unlabelled"]],
        "index": inputs["index"],
        "label": inputs["label"],
    }
    out: dict[str, torch.Tensor] = {}
    for step in range(2):
        result = algorithm(labelled, unlabelled, 0.0)
        out[f"wad{step}/mask"] = result["mask"]
        out[f"wad{step}/pseudo"] = result["pseudo_labels"].float()
        algorithm.on_step_end(0.4)  # past the first of three phases: one promotion
    for key in ("wad_embedding", "wad_bank_label", "wad_pseudo", "wad_student_loss"):
        out[key] = state[key].clone().float()
    return out


def _wad_rank_results(rank: int) -> dict:
    return _wad_run({k: v[rank * 4 : (rank + 1) * 4] for k, v in _wad_inputs().items()})


def test_wad_reference_set_and_promotion_match_one_process():
    per_process = run_ranks(_wad_rank_results, WORLD)
    single = _wad_run(_wad_inputs())
    assert int((single["wad_bank_label"][8:] >= 0).sum()) == 2  # 1 * (1 - 1/2)^2 of 8
    _assert_matches_one_process(per_process, single)
