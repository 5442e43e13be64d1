"""``--strategy fsdp2``: sharded data parallelism (FSDP2) through Lightning's
``ModelParallelStrategy``, and the strategy names the trainer factory resolves.

Lightning's ``ModelParallelStrategy`` (2.4+) builds a 2-D device mesh (data parallel x tensor
parallel) and leaves the parallelisation to the module's ``configure_model`` hook, where
``SSLModule`` applies FSDP2 (``nn.sharding.shard_method``). We use it with pure data sharding:
data-parallel size = world size, tensor-parallel size 1. Its checkpoints are distributed
(``torch.distributed.checkpoint``): a folder with one file of shards per process, which
``AtomicLastCheckpoint`` puts in place atomically and ``--resume`` reads back.

It runs on CPUs as it stands (gloo process group, a ``cpu`` device mesh; checked with
Lightning 2.6 and torch 2.14), so no device check had to be lifted. FSDP1 (``--strategy
fsdp``, ``FullyShardedDataParallel``) is CUDA-only in Lightning: on a CPU it is refused here
with the two strategies that do run there.
"""

from __future__ import annotations

import torch
from lightning.pytorch.strategies import ModelParallelStrategy

from labelless.config import TrainerConfig
from labelless.errors import ConfigError

FSDP2 = "fsdp2"
FSDP1 = ("fsdp", "fsdp_cpu_offload")  # Lightning's registered FullyShardedDataParallel names


class ShardedDataParallel(ModelParallelStrategy):
    """``ModelParallelStrategy`` with every process in one data-parallel group: the
    data-parallel size is set to the world size (nodes x processes per node) when the processes
    are known, the tensor-parallel size is 1. Checkpoints are saved sharded."""

    def __init__(self) -> None:
        super().__init__(tensor_parallel_size=1, save_distributed_checkpoint=True)

    def setup_environment(self) -> None:
        # Lightning's "auto" would make the data-parallel size the number of nodes and the
        # tensor-parallel size the processes per node: set both for pure data sharding.
        self._data_parallel_size = self.num_nodes * self.num_processes
        super().setup_environment()


def uses_cuda(cfg: TrainerConfig) -> bool:
    """The trainer would run on CUDA GPUs: a GPU accelerator asked for, or ``auto`` with one."""
    wants = cfg.accelerator in ("gpu", "cuda", "auto")
    return wants and torch.cuda.is_available()


def resolve_strategy(cfg: TrainerConfig) -> str | ModelParallelStrategy:
    """What ``L.Trainer(strategy=...)`` gets for ``cfg.strategy``: ``fsdp2`` is a
    ``ShardedDataParallel``; other names pass through, but FSDP1 without CUDA is a ConfigError
    (Lightning's FullyShardedDataParallel strategy runs on CUDA only)."""
    if cfg.strategy == FSDP2:
        return ShardedDataParallel()
    if cfg.strategy in FSDP1 and not uses_cuda(cfg):
        raise ConfigError(
            f"--strategy {cfg.strategy} (FSDP1, FullyShardedDataParallel) needs CUDA GPUs and "
            f"this run has none (accelerator {cfg.accelerator!r}): on CPUs use --strategy fsdp2 "
            "(FSDP2, shards a ViT block by block) or --strategy ddp"
        )
    return cfg.strategy
