"""Runs across processes and machines, launched as on a cluster but on this one machine: two
torchrun agents of two processes each as two nodes (static ranks, and a c10d rendezvous), four
processes in a faked SLURM allocation, and a run moved from two processes to one mid-epoch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ..helpers import free_port
from .cli import (
    DDP_ON_CPU,
    SEMI,
    TINY,
    WIDE,
    one_line_error,
    ranks_trained_together,
    run_in_process,
)

pytestmark = [pytest.mark.slow, pytest.mark.distributed]

# Lightning's own launcher and srun start the processes of a node; the rest of a run's settings
# come from their environment. These would leak a launch of the test runner into the runs.
LAUNCH_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK", "GROUP_RANK", "MASTER_PORT")


def _clean_env(**extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in LAUNCH_VARIABLES and not key.startswith(("SLURM_", "TORCHELASTIC_"))
    }
    return dict(env, OMP_NUM_THREADS="1", **WIDE, **extra)


def _wait_all(processes: list[subprocess.Popen]) -> None:
    outputs = [process.communicate(timeout=600) for process in processes]
    for process, (_, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err[-3000:]


@pytest.mark.parametrize(
    ("command", "rendezvous"), [("pretrain", "static"), ("semi", "c10d")], ids=str
)
def test_two_torchrun_agents_of_two_processes_as_two_nodes(tmp_path, command, rendezvous):
    port = str(free_port())
    if rendezvous == "static":  # node ranks given, the first node's address as the master
        join = ["--master-addr", "127.0.0.1", "--master-port", port]
        per_node = [["--node-rank", "0", *join], ["--node-rank", "1", *join]]
    else:  # the agents meet at an endpoint and the rendezvous numbers the nodes
        join = ["--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}"]
        per_node = [[*join, "--rdzv-id", "labelless-test"]] * 2
    base = TINY if command == "pretrain" else SEMI
    args = [*base, "--epochs", "1", "--batch-size", "64", "--devices", "2", "--num-nodes", "2"]
    args += [*DDP_ON_CPU, "--out", str(tmp_path / "run")]
    launch = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2"]
    agents = [
        subprocess.Popen(
            [*launch, "--nproc-per-node", "2", *node, "-m", "labelless.cli", command, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_clean_env(),
        )
        for node in per_node
    ]
    _wait_all(agents)
    training = ranks_trained_together(tmp_path / "run", 4)
    assert training["steps"] >= 1


def test_four_tasks_of_a_faked_slurm_allocation(tmp_path):
    """What ``srun`` sets for ``--nodes 2 --ntasks-per-node 2``: Lightning reads the ranks and
    the world from it (its SLURM environment), labelless only decides which task writes."""
    allocation = {
        "SLURM_NTASKS": "4",
        "SLURM_NTASKS_PER_NODE": "2",
        "SLURM_NNODES": "2",
        "SLURM_JOB_ID": "424242",
        "SLURM_JOB_NAME": "labelless-test",
        "SLURM_NODELIST": "127.0.0.1",
        "MASTER_PORT": str(free_port()),
    }
    args = [*TINY, "--epochs", "1", "--batch-size", "64", "--devices", "2", "--num-nodes", "2"]
    args += [*DDP_ON_CPU, "--out", str(tmp_path / "run")]
    tasks = [
        subprocess.Popen(
            [sys.executable, "-m", "labelless.cli", "pretrain", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_clean_env(
                **allocation,
                SLURM_PROCID=str(task),
                SLURM_LOCALID=str(task % 2),
                SLURM_NODEID=str(task // 2),
            ),
        )
        for task in range(4)
    ]
    _wait_all(tasks)
    ranks_trained_together(tmp_path / "run", 4)
    assert not list(tmp_path.glob("run/**/*.tmp"))  # one task wrote, the others left it alone


# ``labelless ARGV`` that appends, per process, the sample indices of every training step to
# RECORD/rank<R>.jsonl; process 0 waits for a signal after its PAUSE-th optimiser step (0:
# never). A file, not ``python -c``: Lightning's launcher restarts this script for rank 1.
_RECORDING = """
import json, os, pathlib, signal, sys
from torch.optim.optimizer import register_optimizer_step_post_hook
from labelless.cli import main
from labelless.train.module import SSLModule
record, pause, marker = pathlib.Path(sys.argv[1]), int(sys.argv[2]), pathlib.Path(sys.argv[3])
training_step = SSLModule.training_step
def recorded(self, batch, batch_idx):
    row = {"step": self.global_step, "index": batch["index"].tolist()}
    with open(record / f"rank{self.global_rank}.jsonl", "a") as out:
        out.write(json.dumps(row) + "\\n")
    return training_step(self, batch, batch_idx)
SSLModule.training_step = recorded
done = 0
def wait(optimizer, args, kwargs):
    global done
    done += 1
    if done == pause and os.environ.get("LOCAL_RANK", "0") == "0":
        marker.touch()
        signal.pause()
register_optimizer_step_post_hook(wait)
sys.exit(main(sys.argv[4:]))
"""


def _steps(record: Path, before: int | None = None) -> dict[int, list[int]]:
    """Sample indices by step over every process's record (steps from ``before`` on dropped)."""
    steps: dict[int, list[int]] = {}
    for path in record.glob("rank*.jsonl"):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            if before is None or row["step"] < before:
                steps.setdefault(row["step"], []).extend(row["index"])
    return steps


def test_a_run_moved_from_two_processes_to_one_loses_and_repeats_no_sample(tmp_path):
    # a checkpoint every 3 steps of 2 x 64 samples; killed after step 8; resumed as 1 x 128
    harness = tmp_path / "harness.py"
    harness.write_text(_RECORDING)
    run, record, paused = tmp_path / "run", tmp_path / "two", tmp_path / "paused"
    record.mkdir()
    args = [*TINY, "--epochs", "2", "--set", "trainer.checkpoint_every_n_steps=3"]
    args += ["--out", str(run), "--batch-size", "64", "--devices", "2", *DDP_ON_CPU]
    two = subprocess.Popen(
        [sys.executable, str(harness), str(record), "8", str(paused), "pretrain", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_clean_env(),
        start_new_session=True,  # its rank-1 process too is killed with the group
    )
    while not paused.exists():
        assert two.poll() is None, two.communicate()
    os.killpg(two.pid, signal.SIGKILL)
    two.wait()
    saved = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["global_step"] == 6 and saved["step_shape"] == {"processes": 2, "batch_size": 64}

    wrong = run_in_process("pretrain", "--out", str(run), "--resume", "--devices", "1")
    assert wrong.returncode == 2
    assert "keep the global batch: on 1 process use --batch-size 128" in one_line_error(wrong)

    resumed_record = tmp_path / "one"
    resumed_record.mkdir()
    resume = ["--out", str(run), "--resume", "--devices", "1", "--batch-size", "128"]
    one = subprocess.run(
        [sys.executable, str(harness), str(resumed_record), "0", str(paused), "pretrain", *resume],
        capture_output=True,
        text=True,
        env=_clean_env(),
    )
    assert one.returncode == 0, one.stderr[-3000:]
    training = json.loads((run / "metrics.json").read_text())["training"]
    assert training["resumed_from_step"] == 6 and training["world_size"] == 1
    per_epoch = training["steps"] // 2  # digits' train split: 1437 rows, 11 steps of 128
    before, after = _steps(record, before=6), _steps(resumed_record)
    assert sorted(before) == list(range(6)) and sorted(after) == list(range(6, 2 * per_epoch))
    steps = {**before, **after}
    assert all(len(rows) == 128 for rows in steps.values())
    for epoch in (0, 1):  # every sample of an epoch once (the rows past the last step dropped)
        seen = [
            row for step in range(per_epoch * epoch, per_epoch * (epoch + 1)) for row in steps[step]
        ]
        assert len(set(seen)) == len(seen) == 128 * per_epoch
