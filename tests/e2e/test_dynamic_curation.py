"""Dynamic curation from the command line: its state survives kill -9 and --resume (the resumed
run equals the uninterrupted one bit for bit), its effect is logged, and data it cannot
re-weight is refused before anything is written."""

from __future__ import annotations

import csv
import json
import signal

import pytest
import torch
from PIL import Image

from .cli import (
    TINY,
    loss_by_step,
    one_line_error,
    run_cli,
    run_in_process,
    start_cli,
    wait_until_paused,
)

# Re-clustered at the end of every epoch (5 clusters of 512 fitted rows, all 1437 assigned).
CURATION = ["--set", "curation.every_n_epochs=1", "--set", "curation.clusters=5"]
CURATION += ["--set", "curation.sample=512"]


def _curation_log(run) -> list[dict[str, str]]:
    with (run / "logs" / "metrics.csv").open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("curation/entropy_after")]
    return [
        {key: value for key, value in row.items() if key.startswith("curation/")} for row in rows
    ]


@pytest.mark.slow
def test_kill_9_then_resume_with_dynamic_curation_equals_the_uninterrupted_run(tmp_path):
    # 5 steps an epoch, 4 epochs, a checkpoint every 2 steps: killed mid-epoch after step 8,
    # after the first update (end of epoch 0) and before the second (end of epoch 1)
    args = [*TINY, *CURATION, "--epochs", "4", "--batch-size", "256"]
    args += ["--set", "trainer.checkpoint_every_n_steps=2"]
    whole = run_cli("pretrain", *args, "--out", str(tmp_path / "whole"), one_thread=True)
    assert whole.returncode == 0, whole.stderr
    killed, paused = tmp_path / "killed", tmp_path / "paused"
    process = start_cli("pretrain", *args, "--out", str(killed), pause_after_step=8, marker=paused)
    wait_until_paused(process, paused)
    process.send_signal(signal.SIGKILL)
    process.wait()
    checkpoint = torch.load(killed / "checkpoints" / "last.ckpt", weights_only=True)
    assert 5 < checkpoint["global_step"] < 10  # in epoch 1, with the weights of epoch 0's end
    (state,) = [v for k, v in checkpoint["callbacks"].items() if "DynamicCuration" in k]
    assert state["epoch"] == 0 and len(state["assignment"]) == 1437
    resumed = run_cli("pretrain", "--out", str(killed), "--resume", one_thread=True)
    assert resumed.returncode == 0, resumed.stderr
    whole = tmp_path / "whole"
    assert (killed / "encoder.safetensors").read_bytes() == (
        whole / "encoder.safetensors"
    ).read_bytes()
    assert loss_by_step(killed / "logs" / "metrics.csv") == loss_by_step(
        whole / "logs" / "metrics.csv"
    )
    assert _curation_log(killed) == _curation_log(whole)
    record = json.loads((killed / "metrics.json").read_text())["training"]["dynamic_curation"]
    assert (
        record == json.loads((whole / "metrics.json").read_text())["training"]["dynamic_curation"]
    )
    # updates at the ends of epochs 0, 1, 2 (none after the last); sampling balanced after each
    assert [update["epoch"] for update in record["updates"]] == [0, 1, 2]
    for update in record["updates"]:
        assert update["entropy_after"] == pytest.approx(1.0)
        assert update["largest_share_after"] == pytest.approx(1 / update["clusters"])
        assert update["entropy_before"] < 1.0


def test_data_that_is_not_in_memory_is_refused_before_anything_is_written(tmp_path):
    out = tmp_path / "run"
    # a lazily decoded folder streams from files: no per-sample weights to set
    folder = tmp_path / "images"
    folder.mkdir()
    for index in range(4):
        Image.new("RGB", (8, 8), (index * 60, 0, 0)).save(folder / f"{index}.png")
    result = run_in_process(
        "pretrain", "--data", str(folder), *TINY[2:], *CURATION, "--set", "data.lazy=true",
        "--set", "curation.clusters=2", "--set", "curation.sample=4", "--batch-size", "2",
        "--out", str(out),
    )  # fmt: skip
    assert "re-weights data held in memory" in one_line_error(result)
    assert not out.exists()
