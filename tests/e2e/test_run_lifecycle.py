"""The run lifecycle from the command line: failed resumes change nothing, kills lose nothing,
kill -9 + --resume equals the uninterrupted run bit for bit, several processes train one run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
from pathlib import Path

import pytest
import torch

from labelless.rundir import LOCK, MARKER, RunDir

from ..helpers import snapshot
from .cli import (
    DDP_ON_CPU,
    SEMI,
    TINY,
    loss_by_step,
    one_line_error,
    ranks_trained_together,
    run_cli,
    run_in_process,
    start_cli,
    wait_until_paused,
)

pytestmark = pytest.mark.slow  # every test here trains or launches runs (make test, not test-fast)


@pytest.fixture(scope="module")
def finished_runs(tmp_path_factory):
    """A pretraining run ended by a 2-second budget and a 1-epoch semi-supervised run, on
    digits; ``announced.txt`` and ``announced_semi.txt`` hold what they said on stderr."""
    root = tmp_path_factory.mktemp("finished")
    budget = ["--epochs", "1000", "--max-time", "2"]
    pretrain = run_in_process("pretrain", *TINY, *budget, "--out", str(root / "pretrain"))
    assert pretrain.returncode == 0, pretrain.stderr[-2000:]
    (root / "announced.txt").write_text(pretrain.stderr)
    semi = run_in_process("semi", *SEMI, "--epochs", "1", "--out", str(root / "semi"))
    assert semi.returncode == 0, semi.stderr[-2000:]
    (root / "announced_semi.txt").write_text(semi.stderr)
    return root


@pytest.fixture
def run_copy(finished_runs, tmp_path):
    def copy(command: str) -> Path:
        target = tmp_path / command
        shutil.copytree(finished_runs / command, target)
        (target / LOCK).unlink(missing_ok=True)
        return target

    return copy


@pytest.mark.parametrize("command", ["pretrain", "semi"])
def test_a_failed_resume_changes_nothing(run_copy, command):
    run = run_copy(command)
    checkpoint = run / "checkpoints" / "last.ckpt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])  # truncated
    before = snapshot(run)
    result = run_in_process(command, "--out", str(run), "--resume", "--epochs", "2")
    code, err = result.returncode, result.stderr
    assert code == 2 and err.startswith("error: cannot resume") and "Traceback" not in err
    assert "not a readable checkpoint" in err and "--overwrite" in err
    assert snapshot(run) == before  # config.yaml and logs/metrics.csv untouched


def test_resume_with_other_data_or_method_names_the_settings(run_copy):
    run = run_copy("pretrain")
    before = snapshot(run)
    result = run_in_process(
        "pretrain", "--out", str(run), "--resume", "--method", "byol", "--lr", "0.1"
    )
    err = result.stderr
    assert result.returncode == 2
    assert "method.name ('simclr' -> 'byol')" in err and "optim.lr" in err
    assert "another --out" in err
    assert snapshot(run) == before


def test_a_second_process_cannot_resume_a_run_in_use(run_copy):
    run = run_copy("pretrain")
    with RunDir(run, action="resume").open():
        result = run_in_process("pretrain", "--out", str(run), "--resume", "--epochs", "2")
    code, err = result.returncode, result.stderr
    assert code == 2 and "in use by another labelless process" in err
    assert f"pid {os.getpid()}" in err


def test_outputs_are_readable_by_others_and_marked_as_a_run(finished_runs):
    for command in ("pretrain", "semi"):
        run = finished_runs / command
        assert (run / MARKER).is_file()
        for name in ("config.yaml", "metrics.json", "encoder.json", "logs/metrics.csv"):
            mode = stat.S_IMODE((run / name).stat().st_mode)
            assert mode & 0o044 == 0o044, (name, oct(mode))
        training = json.loads((run / "metrics.json").read_text())["training"]
        assert training["world_size"] == 1 and training["ranks_agree"] is None
    assert (
        json.loads((finished_runs / "semi" / "metrics.json").read_text())["training"]["stopped_by"]
        == "max_epochs"
    )


def test_a_time_budget_says_it_ended_the_run(finished_runs):
    announced = (finished_runs / "announced.txt").read_text()
    assert "stopped: the 2 s budget" in announced and "steps (epoch " in announced
    assert "the final evaluation follows, outside the budget" in announced
    semi = (finished_runs / "announced_semi.txt").read_text()
    assert "trained 1 epoch (" in semi and "the final evaluation follows" in semi
    training = json.loads((finished_runs / "pretrain" / "metrics.json").read_text())["training"]
    assert training["stopped_by"] == "time budget" and training["epochs_done"] < 1000


def test_overwrite_of_the_data_folder_and_user_files_keeps_every_byte(tmp_path):
    from PIL import Image

    photos = tmp_path / "photos"
    for label in ("cats", "dogs"):
        (photos / label).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(photos / label / f"{i}.png")
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "plan.txt").write_text("keep me")
    work = tmp_path / "work"
    work.mkdir()
    before = snapshot(tmp_path)
    for out, fragment in ((photos, "training data"), (".", "working directory"), (notes, "not a")):
        result = run_in_process(
            "pretrain", "--data", str(photos), "--out", str(out), "--overwrite", cwd=work
        )
        assert result.returncode == 2 and fragment in result.stderr, result.stderr
    assert snapshot(tmp_path) == before


def test_several_nodes_without_a_launcher_is_an_error(tmp_path, monkeypatch):
    for name in ("RANK", "NODE_RANK", "GROUP_RANK", "TORCHELASTIC_RUN_ID", "SLURM_NTASKS"):
        monkeypatch.delenv(name, raising=False)
    result = run_in_process("pretrain", *TINY, "--num-nodes", "2", "--out", str(tmp_path / "r"))
    assert result.returncode == 2 and "torchrun" in result.stderr
    assert not (tmp_path / "r").exists()


# ---- processes killed and resumed (subprocesses, as a person runs them) ----------------------


@pytest.mark.slow
def test_kill_9_then_resume_equals_the_uninterrupted_run_bit_for_bit(tmp_path):
    # 5 steps an epoch, 4 epochs, a checkpoint every 2 steps: killed mid-epoch after step 8
    args = [
        *TINY,
        "--epochs",
        "4",
        "--batch-size",
        "256",
        "--set",
        "trainer.checkpoint_every_n_steps=2",
    ]
    whole = run_cli("pretrain", *args, "--out", str(tmp_path / "whole"), one_thread=True)
    assert whole.returncode == 0, whole.stderr
    killed = tmp_path / "killed"
    paused = tmp_path / "paused"
    process = start_cli("pretrain", *args, "--out", str(killed), pause_after_step=8, marker=paused)
    wait_until_paused(process, paused)
    process.send_signal(signal.SIGKILL)
    process.wait()
    step = torch.load(killed / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert 0 < step < 20  # the kill came mid-run, after a checkpoint
    resumed = run_cli("pretrain", "--out", str(killed), "--resume", one_thread=True)
    assert resumed.returncode == 0, resumed.stderr
    for name in ("encoder.safetensors",):
        assert (killed / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()
    # the log: each step once (rows logged after the checkpoint were dropped), the same losses
    assert loss_by_step(killed / "logs" / "metrics.csv") == loss_by_step(
        tmp_path / "whole" / "logs" / "metrics.csv"
    )
    assert (
        json.loads((killed / "metrics.json").read_text())["training"]["resumed_from_step"] == step
    )


@pytest.mark.slow
def test_kill_9_in_the_first_epoch_then_the_same_command_works(tmp_path):
    args = [*TINY, "--epochs", "1", "--batch-size", "32", "--out", str(tmp_path / "run")]
    paused = tmp_path / "paused"
    process = start_cli("pretrain", *args, pause_after_step=1, marker=paused)
    wait_until_paused(process, paused)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "run" / "checkpoints" / "last.ckpt").exists()  # a stub
    resume = run_in_process("pretrain", "--out", str(tmp_path / "run"), "--resume")
    assert "stopped before its first checkpoint" in one_line_error(resume)
    again = run_cli("pretrain", *args, one_thread=True)  # no --overwrite needed
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "run" / "encoder.safetensors").is_file()


@pytest.mark.slow
def test_ctrl_c_says_how_to_resume_and_exits_130(tmp_path):
    args = [*TINY, "--epochs", "50", "--batch-size", "64", "--out", str(tmp_path / "run")]
    paused = tmp_path / "paused"
    every_step = ["--set", "trainer.checkpoint_every_n_steps=1"]
    process = start_cli("pretrain", *args, *every_step, pause_after_step=3, marker=paused)
    wait_until_paused(process, paused)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate()
    assert process.returncode == 130, err
    assert "interrupted:" in err and f"--out {tmp_path / 'run'} --resume" in err
    assert "Traceback" not in err


# ---- several processes --------------------------------------------------------------------


@pytest.mark.distributed
@pytest.mark.parametrize("command", ["pretrain", "semi"])
def test_ddp_on_two_cpu_processes_from_the_cli(tmp_path, command):
    base = TINY if command == "pretrain" else SEMI
    single = run_cli(
        command, *base, "--epochs", "1", "--out", str(tmp_path / "one"), one_thread=True
    )
    assert single.returncode == 0, single.stderr
    result = run_cli(
        command,
        *base,
        "--epochs",
        "1",
        "--devices",
        "2",
        *DDP_ON_CPU,
        "--out",
        str(tmp_path / "two"),
        one_thread=True,
    )
    assert result.returncode == 0, result.stderr
    two = ranks_trained_together(tmp_path / "two", 2)
    one = json.loads((tmp_path / "one" / "metrics.json").read_text())["training"]
    assert two["steps"] == one["steps"] // 2  # each process took half of every epoch
