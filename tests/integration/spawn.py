"""Launching a small gloo job on 127.0.0.1 for the multi-process tests."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ..helpers import free_port


def _entry(
    rank: int, port: int, world: int, out_dir: str, work: Callable[[int], object], backend: str
) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group(backend, rank=rank, world_size=world)
    try:
        torch.save(work(rank), os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def run_ranks(work: Callable[[int], object], world: int = 2, backend: str = "gloo") -> list:
    """``work(rank)`` in ``world`` spawned processes of one process group (gloo unless
    ``backend`` says otherwise, e.g. nccl on GPUs); each rank's result. ``work`` must be a
    module-level function (it is pickled by name)."""
    with tempfile.TemporaryDirectory() as out_dir:
        args = (free_port(), world, out_dir, work, backend)
        mp.spawn(_entry, args=args, nprocs=world, join=True)
        return [torch.load(os.path.join(out_dir, f"rank{r}.pt")) for r in range(world)]
