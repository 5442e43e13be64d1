"""``trainer.sync_batchnorm`` (``--sync-batchnorm``): handed to Lightning, which converts every
BatchNorm of the module (the key / teacher encoders' too) to torch's SyncBatchNorm under a
parallel strategy; refused up front for CPU processes, where torch's SyncBatchNorm cannot run
(``tests/integration/test_distributed_batchnorm.py`` shows torch's refusal and, on GPUs, the
global statistics)."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch.plugins import TorchSyncBatchNorm
from lightning.pytorch.strategies import SingleDeviceStrategy
from torch import nn

from labelless.backbones import create_backbone
from labelless.config import FLAG_KEYS, TrainerConfig, flags_to_keys, resolve_config
from labelless.errors import ConfigError
from labelless.methods import create_method
from labelless.semi.config import SEMI_FLAG_KEYS
from labelless.train.trainer import build_trainer


def test_the_flag_sets_the_key():
    assert not TrainerConfig().sync_batchnorm
    for table in (FLAG_KEYS, SEMI_FLAG_KEYS):
        assert flags_to_keys({"sync_batchnorm": True}, table) == {"trainer.sync_batchnorm": True}
    assert resolve_config(flags={"trainer.sync_batchnorm": True}).trainer.sync_batchnorm


@pytest.mark.parametrize(
    ("strategy", "devices", "message"),
    [
        ("ddp", 2, r"needs GPUs, but training runs on CPUs \(2 process"),
        ("ddp", 1, r"needs GPUs, but training runs on CPUs \(1 process"),  # a process group
        ("ddp_spawn", 2, "needs GPUs"),
        ("fsdp2", 2, "not applied by the strategy 'fsdp2'"),  # model-parallel: no conversion
    ],
)
def test_what_cannot_sync_is_refused_before_anything_runs(tmp_path, strategy, devices, message):
    cfg = TrainerConfig(accelerator="cpu", devices=devices, strategy=strategy, sync_batchnorm=True)
    with pytest.raises(ConfigError, match=message):
        build_trainer(cfg.model_copy(update={"progress_bar": False}), tmp_path, [])
    assert build_trainer(cfg.model_copy(update={"sync_batchnorm": False}), tmp_path, [])


def test_one_process_leaves_batchnorm_alone(tmp_path):
    cfg = TrainerConfig(accelerator="cpu", devices=1, sync_batchnorm=True, progress_bar=False)
    trainer = build_trainer(cfg, tmp_path, [])
    assert isinstance(trainer.strategy, SingleDeviceStrategy)  # no layer sync to apply


def _moco():
    torch.manual_seed(0)
    backbone = create_backbone("resnet18_cifar", in_channels=1, width=0.125, input_size=8)
    return create_method("moco_v2", backbone, proj_hidden_dim=8, proj_dim=4, queue_size=16)


def test_lightnings_conversion_reaches_the_key_encoder():
    """What Lightning's DDP strategy applies (``TorchSyncBatchNorm``) turns MoCo's BatchNorms,
    the key encoder's included, into SyncBatchNorm; outside a process group they compute what
    BatchNorm computes, and the EMA still pairs the online and key encoders."""
    method, converted = _moco(), TorchSyncBatchNorm().apply(_moco())
    norms = [type(m) for m in converted.modules() if "BatchNorm" in type(m).__name__]
    assert norms and set(norms) == {nn.SyncBatchNorm}
    assert any(isinstance(m, nn.SyncBatchNorm) for m in converted.key_encoder.modules())
    views = [torch.randn(6, 1, 8, 8), torch.randn(6, 1, 8, 8)]
    for _ in range(2):
        torch.testing.assert_close(converted(views, {})["loss"], method(views, {})["loss"])
        converted.on_step_end(0.5)
        method.on_step_end(0.5)
    torch.testing.assert_close(converted.state_dict(), method.state_dict())
