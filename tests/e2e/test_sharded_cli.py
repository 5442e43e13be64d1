"""``--strategy fsdp2`` from the command line: DINO with a small ViT trains on 2 CPU processes
(gloo) with sharded weights and EMA teacher, writes sharded checkpoints, and a run killed
after a checkpoint and resumed ends with the uninterrupted run's encoder, bit for bit.
``--strategy fsdp`` (FSDP1) on a CPU is a one-line error."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch

from .cli import (
    loss_by_step,
    one_line_error,
    run_cli,
    run_in_process,
    start_cli_processes,
    wait_until_paused,
)

# DINO on digits with a 2-block ViT (8 px views, 2 px patches): 5 steps an epoch on 2 processes
# at 128 samples each; a checkpoint every 2 steps and at each epoch end.
SHARDED = [
    "--data",
    "digits",
    "--method",
    "dino",
    "--backbone",
    "vit_tiny",
    *("--set", "backbone.kwargs.image_size=8", "--set", "backbone.kwargs.patch_size=2"),
    *("--set", "backbone.kwargs.embed_dim=32", "--set", "backbone.kwargs.depth=2"),
    *("--set", "backbone.kwargs.num_heads=2", "--set", "backbone.kwargs.pool=mean"),
    *("--set", "method.kwargs.out_dim=64", "--set", "method.kwargs.hidden_dim=64"),
    *("--set", "method.kwargs.bottleneck_dim=32"),
    *("--set", "trainer.progress_bar=false", "--set", "monitor.every_n_epochs=100"),
    *("--set", "trainer.threads=1", "--set", "trainer.checkpoint_every_n_steps=2"),
    *("--epochs", "2", "--batch-size", "128"),
    *("--devices", "2", "--strategy", "fsdp2", "--accelerator", "cpu"),
]


@pytest.mark.slow
@pytest.mark.distributed
def test_fsdp2_trains_a_vit_with_an_ema_teacher_and_resumes_from_its_shards(tmp_path):
    whole = run_cli("pretrain", *SHARDED, "--out", str(tmp_path / "whole"), one_thread=True)
    assert whole.returncode == 0, whole.stderr[-3000:]
    training = json.loads((tmp_path / "whole" / "metrics.json").read_text())["training"]
    assert training["world_size"] == 2 and training["steps"] == 10
    assert training["ranks_agree"] is True  # the gathered weights are the same on both ranks
    checkpoint = tmp_path / "whole" / "checkpoints" / "last.ckpt"
    assert checkpoint.is_symlink() and checkpoint.is_dir()  # a folder of shards, linked
    assert sorted(p.name for p in checkpoint.iterdir() if p.suffix == ".distcp") == [
        "__0_0.distcp",
        "__1_0.distcp",
    ]
    assert len(list(checkpoint.parent.iterdir())) == 2  # the link and its folder, nothing stale

    killed = tmp_path / "killed"
    paused = tmp_path / "paused"
    run = ("pretrain", *SHARDED, "--out", str(killed))
    process = start_cli_processes(*run, pause_after_step=7, marker=paused, folder=tmp_path)
    wait_until_paused(process, paused)
    os.killpg(process.pid, signal.SIGKILL)  # every process of the run, as a lost node would
    process.wait()
    saved = torch.load(killed / "checkpoints" / "last.ckpt" / "meta.pt", weights_only=True)
    assert saved["global_step"] == 6  # checkpoints at steps 2, 4, 5 (epoch end), 6
    resumed = run_cli("pretrain", "--out", str(killed), "--resume", one_thread=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    # model, teacher, optimiser, centre, run clock and random streams came back: the same
    # losses at every step and the same exported (gathered) encoder as the uninterrupted run
    assert loss_by_step(killed / "logs" / "metrics.csv") == loss_by_step(
        tmp_path / "whole" / "logs" / "metrics.csv"
    )
    for name in ("encoder.safetensors", "encoder.json"):
        assert (killed / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()
    record = json.loads((killed / "metrics.json").read_text())["training"]
    assert record["resumed_from_step"] == 6 and record["steps"] == 10


def test_fsdp1_on_a_cpu_says_to_use_fsdp2_or_ddp(tmp_path):
    result = run_in_process(
        "pretrain",
        *("--data", "digits", "--method", "simclr", "--epochs", "1"),
        *("--strategy", "fsdp", "--accelerator", "cpu", "--out", str(tmp_path / "run")),
    )
    message = one_line_error(result)
    assert "needs CUDA" in message and "--strategy fsdp2" in message
    assert "--strategy ddp" in message
    assert not Path(tmp_path / "run").exists()  # refused before the run directory was made


def test_fsdp2_of_a_resnet_is_refused_before_the_run_directory_exists(tmp_path):
    result = run_in_process(
        "pretrain",
        *("--data", "digits", "--method", "simclr", "--epochs", "1", "--devices", "2"),
        *("--strategy", "fsdp2", "--accelerator", "cpu", "--out", str(tmp_path / "run")),
    )
    assert result.returncode == 2
    assert "no transformer blocks" in one_line_error(result)
    assert not Path(tmp_path / "run").exists()
