"""Training from a shard set (``labelless convert`` + ``--data stream:DIR``): two processes split
every epoch exactly, and a run killed mid-epoch resumes bit for bit from litdata's loader state
that Lightning keeps in the checkpoint."""

from __future__ import annotations

import functools
import signal

import pytest
import torch

from labelless import api

from ..integration.spawn import run_ranks
from .cli import loss_by_step, run_cli, start_cli, wait_until_paused

pytest.importorskip(
    "litdata", reason="streaming needs the stream extra: pip install labelless[stream]"
)


def _indices_per_epoch(shards: str, rank: int, epochs: int = 2) -> list[list[int]]:
    from labelless.data.stream import stream_loader

    loader = stream_loader(f"stream:{shards}", 45, seed=0)  # made with the process group up
    return [[int(i) for batch in loader for i in batch["index"]] for _ in range(epochs)]


@pytest.mark.distributed
def test_two_processes_read_every_sample_once_per_epoch_in_a_new_order(tmp_path):
    api.convert("digits", tmp_path / "shards", split="test", chunk_size=32)  # 360 samples
    ranks = run_ranks(functools.partial(_indices_per_epoch, str(tmp_path / "shards")))
    for epoch in range(2):
        first, second = ranks[0][epoch], ranks[1][epoch]
        assert len(first) == len(second) == 180  # equal steps: 4 batches of 45 each
        assert sorted(first + second) == list(range(360))  # each sample once, none lost
    assert ranks[0][0] != ranks[0][1]  # a new order each epoch


@pytest.mark.slow
def test_kill_9_mid_epoch_then_resume_equals_the_uninterrupted_stream_run(tmp_path):
    api.convert("digits", tmp_path / "shards", split="test", chunk_size=32)  # 5 batches of 64
    args = [
        *("--data", f"stream:{tmp_path / 'shards'}", "--method", "simclr", "--epochs", "3"),
        *("--batch-size", "64", "--set", "backbone.width=0.125", "--set", "data.workers=0"),
        *("--set", "data.eval=digits", "--set", "trainer.progress_bar=false"),
        *("--set", "monitor.every_n_epochs=100", "--set", "trainer.checkpoint_every_n_steps=2"),
    ]
    whole = run_cli("pretrain", *args, "--out", str(tmp_path / "whole"), one_thread=True)
    assert whole.returncode == 0, whole.stderr
    killed, paused = tmp_path / "killed", tmp_path / "paused"
    process = start_cli("pretrain", *args, "--out", str(killed), pause_after_step=7, marker=paused)
    wait_until_paused(process, paused)
    process.send_signal(signal.SIGKILL)
    process.wait()
    step = torch.load(killed / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert step == 6  # mid-epoch 2 (5 steps an epoch), after the checkpoint at step 6
    resumed = run_cli("pretrain", "--out", str(killed), "--resume", one_thread=True)
    assert resumed.returncode == 0, resumed.stderr
    whole_encoder = (tmp_path / "whole" / "encoder.safetensors").read_bytes()
    assert (killed / "encoder.safetensors").read_bytes() == whole_encoder
    log = "logs/metrics.csv"
    assert loss_by_step(killed / log) == loss_by_step(tmp_path / "whole" / log)
