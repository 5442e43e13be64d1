"""``--strategy`` names (``train/sharded.py``), the atomic replacement of a checkpoint folder
(``atomic.move_into_place``) and reading a sharded checkpoint's index (``rundir``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from labelless.atomic import move_into_place
from labelless.config import TrainerConfig
from labelless.errors import ConfigError
from labelless.rundir import check_checkpoint_fits, inspect_folder, read_checkpoint
from labelless.train.sharded import ShardedDataParallel, resolve_strategy
from labelless.train.trainer import build_trainer


def test_fsdp2_is_lightnings_model_parallel_strategy_with_pure_data_sharding():
    strategy = resolve_strategy(TrainerConfig(strategy="fsdp2", accelerator="cpu"))
    assert isinstance(strategy, ShardedDataParallel)
    assert strategy._tensor_parallel_size == 1 and strategy._save_distributed_checkpoint
    assert resolve_strategy(TrainerConfig(strategy="ddp")) == "ddp"


@pytest.mark.parametrize("name", ["fsdp", "fsdp_cpu_offload"])
def test_fsdp1_without_cuda_names_the_strategies_that_run_on_cpus(name, tmp_path):
    with pytest.raises(ConfigError) as error:
        build_trainer(TrainerConfig(strategy=name, accelerator="cpu"), tmp_path, [])
    message = str(error.value)
    assert "needs CUDA" in message and "--strategy fsdp2" in message and "ddp" in message


def _folder(path: Path, text: str) -> Path:
    path.mkdir()
    (path / "meta.pt").write_text(text)
    return path


def test_a_checkpoint_folder_replaces_the_last_one_through_a_link(tmp_path):
    target = tmp_path / "last.ckpt"
    target.write_text("a file checkpoint")  # the run's earlier checkpoint (another strategy)
    move_into_place(_folder(tmp_path / ".last.ckpt.tmp", "first"), target)
    assert target.is_symlink() and (target / "meta.pt").read_text() == "first"
    assert not os.path.isabs(os.readlink(target))  # relative: the run folder can move
    move_into_place(_folder(tmp_path / ".last.ckpt.tmp", "second"), target)
    assert (target / "meta.pt").read_text() == "second"
    # the link and the folder it names, no stale sibling (the first folder was removed)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([target.name, os.readlink(target)])


@pytest.mark.filterwarnings("ignore:torch.distributed is disabled")
def test_a_sharded_checkpoint_reads_as_its_metadata_and_weight_shapes(tmp_path):
    import torch.distributed.checkpoint as dcp

    model = torch.nn.Linear(3, 2)
    folder = tmp_path / "run" / "checkpoints" / "last.ckpt"
    folder.mkdir(parents=True)
    dcp.save({"state_dict": model.state_dict()}, checkpoint_id=str(folder))
    torch.save({"global_step": 6, "epoch": 1}, folder / "meta.pt")
    checkpoint = read_checkpoint(folder)
    assert checkpoint["global_step"] == 6
    assert {k: tuple(v.shape) for k, v in checkpoint["state_dict"].items()} == {
        "weight": (2, 3),
        "bias": (2,),
    }
    check_checkpoint_fits(folder, checkpoint, model)  # the same model: no error
    (tmp_path / "run" / "config.yaml").write_text("seed: 0\n")
    assert inspect_folder(tmp_path / "run").kind == "run"  # a folder checkpoint counts


def test_a_backbone_without_transformer_blocks_is_refused_with_ddp_as_the_fix():
    from labelless.backbones import create_backbone
    from labelless.methods import create_method
    from labelless.nn.sharding import shard_method

    backbone = create_backbone("resnet18_cifar", in_channels=1, width=0.125)
    method = create_method("byol", backbone, proj_hidden_dim=8, proj_dim=4, pred_hidden_dim=8)
    with pytest.raises(ConfigError, match=r"no transformer blocks.*--strategy ddp"):
        shard_method(method, mesh=None)  # refused before any process group is needed


def _module(backbone_name: str = "resnet18_cifar"):
    from labelless.backbones import create_backbone
    from labelless.methods import create_method
    from labelless.train.module import SSLModule

    backbone = create_backbone(backbone_name, in_channels=1, width=0.125)
    method = create_method("byol", backbone, proj_hidden_dim=8, proj_dim=4, pred_hidden_dim=8)
    optim = {"name": "sgd", "lr": 0.1, "weight_decay": 0.0, "momentum": 0.9, "batch_size": 8}
    return SSLModule(method, views=None, optim={**optim, "warmup_epochs": 0})


def _trainer(tmp_path: Path, strategy: str):
    cfg = TrainerConfig(accelerator="cpu", devices=2, strategy=strategy, progress_bar=False)
    return build_trainer(cfg, tmp_path, [])


def test_what_fsdp2_cannot_run_is_refused_before_the_run_starts(tmp_path):
    """``lifecycle.begin`` calls ``check_start`` before the run directory is opened."""
    with pytest.raises(ConfigError, match=r"no transformer blocks.*--strategy ddp"):
        _module().check_start(_trainer(tmp_path, "fsdp2"), None)
    _module().check_start(_trainer(tmp_path, "ddp"), None)  # ddp takes any backbone


def test_a_checkpoint_resumes_only_under_the_strategy_that_reads_it(tmp_path, monkeypatch):
    shards, single = _folder(tmp_path / "shards", "x"), tmp_path / "last.ckpt"
    single.write_bytes(b"x")
    module = _module()
    with pytest.raises(ConfigError, match=r"folder of shards .* resume with --strategy fsdp2"):
        module.check_start(_trainer(tmp_path, "ddp"), shards)
    module.check_start(_trainer(tmp_path, "ddp"), single)
    monkeypatch.setattr(module, "_check_shardable", lambda: None)  # judge the checkpoint only
    with pytest.raises(ConfigError, match=r"one file .* resume with the run's own strategy"):
        module.check_start(_trainer(tmp_path, "fsdp2"), single)
    module.check_start(_trainer(tmp_path, "fsdp2"), shards)
