"""Two gloo processes on CPU compute the same loss and gradients as one process on the full batch.

Each process holds half of the batch; negatives are gathered with gradient. DDP averages parameter
gradients over processes, so the per-process gradient divided by the world size must equal the
single-process gradient.
"""

from __future__ import annotations

import os
import socket
import tempfile

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from labelless.nn.losses import info_nce

pytestmark = pytest.mark.distributed

WORLD = 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank: int, port: int, z0: torch.Tensor, z1: torch.Tensor, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        torch.set_num_threads(1)
        half = len(z0) // WORLD
        part0 = z0[rank * half : (rank + 1) * half].clone().requires_grad_(True)
        part1 = z1[rank * half : (rank + 1) * half].clone().requires_grad_(True)
        loss = info_nce(part0, part1, 0.3)
        loss.backward()
        torch.save(
            {"loss": loss.detach(), "g0": part0.grad, "g1": part1.grad},
            os.path.join(out_dir, f"rank{rank}.pt"),
        )
    finally:
        dist.destroy_process_group()


def test_info_nce_gathers_negatives_with_gradient():
    torch.manual_seed(0)
    z0, z1 = torch.randn(8, 5), torch.randn(8, 5)
    full0, full1 = z0.clone().requires_grad_(True), z1.clone().requires_grad_(True)
    single = info_nce(full0, full1, 0.3)
    single.backward()
    with tempfile.TemporaryDirectory() as out_dir:
        mp.spawn(_worker, args=(_free_port(), z0, z1, out_dir), nprocs=WORLD, join=True)
        parts = [torch.load(os.path.join(out_dir, f"rank{r}.pt")) for r in range(WORLD)]
    mean_loss = sum(p["loss"] for p in parts) / WORLD
    assert torch.allclose(mean_loss, single.detach(), atol=1e-6)
    grad0 = torch.cat([p["g0"] for p in parts]) / WORLD
    grad1 = torch.cat([p["g1"] for p in parts]) / WORLD
    assert torch.allclose(grad0, full0.grad, atol=1e-6)
    assert torch.allclose(grad1, full1.grad, atol=1e-6)
    # Without gathering, negatives from the other process would be missing: the loss differs.
    local_only = (info_nce(z0[:4], z1[:4], 0.3) + info_nce(z0[4:], z1[4:], 0.3)) / 2
    assert not torch.allclose(local_only, single.detach(), atol=1e-3)
