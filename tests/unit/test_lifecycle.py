"""``--init SOURCE`` carries the source run's recipe into a new run's config: defaults < the
source run's config < --config < --set < flags; never its data, output folder, length or seed."""

from __future__ import annotations

import pytest

from labelless.atomic import write_text_atomic
from labelless.config import build_config, dump_yaml
from labelless.errors import ConfigError
from labelless.lifecycle import resolve_run_config
from labelless.semi.api import SEMI
from labelless.verbs.pretrain import PRETRAIN


@pytest.fixture
def byol_run(tmp_path):
    """A finished-looking BYOL run directory (its config.yaml is all ``--init`` reads)."""
    run = tmp_path / "byol-digits"
    config = build_config(
        {
            "data": {"name": "digits"},
            "backbone": {"name": "resnet18_cifar", "width": 0.5, "init": "/elsewhere/source"},
            "method": {"name": "byol", "kwargs": {"proj_dim": 64}},
            "views": {"recipe": "byol", "size": 8, "overrides": {"hflip_p": 0.0}},
            "optim": {"name": "adamw", "lr": 0.002, "batch_size": 128},
            "trainer": {"max_epochs": 7},
            "monitor": {"knn_k": 20},
            "seed": 3,
            "out": str(tmp_path / "byol-digits"),
        }
    )
    run.mkdir()
    write_text_atomic(run / "config.yaml", dump_yaml(config))
    return run


def _pretrain(config=None, overrides=None, **flags):
    return resolve_run_config(PRETRAIN, config, overrides, False, flags)


def test_a_run_directory_carries_its_method_backbone_views_and_optimiser(byol_run):
    config = _pretrain(data="new_photos", init=str(byol_run))
    assert config.method.name == "byol" and config.method.kwargs == {"proj_dim": 64}
    assert (config.backbone.name, config.backbone.width) == ("resnet18_cifar", 0.5)
    assert config.backbone.init == str(byol_run)  # this run's start, not the source's
    assert config.views.recipe == "byol" and config.views.overrides == {"hflip_p": 0.0}
    assert config.views.size is None  # the new data's own size
    assert (config.optim.name, config.optim.lr, config.optim.batch_size) == ("adamw", 0.002, 128)
    # not carried: the data, the output folder, the training length, the seed, the monitor
    assert config.data.name == "new_photos" and config.out == "runs/byol-new_photos"
    assert config.trainer.max_epochs == 100 and config.seed == 0
    assert config.monitor.knn_k is None


def test_config_file_set_and_flags_override_what_init_carries(byol_run):
    config = _pretrain(
        {"optim": {"lr": 0.01}},
        ["optim.batch_size=32", "optim.weight_decay=0.5"],
        init=str(byol_run),
        lr=0.03,
        data="digits",
    )
    assert config.optim.name == "adamw"  # carried, under the file's partial section
    assert (config.optim.lr, config.optim.batch_size) == (0.03, 32)  # flag > --set > file
    assert config.optim.weight_decay == 0.5 and config.method.name == "byol"
    set_init = _pretrain(None, [f"backbone.init={byol_run}"], data="digits")
    assert set_init.method.name == "byol"  # --set backbone.init=... carries as --init does


def test_another_method_or_backbone_takes_none_of_the_source_recipe(byol_run):
    simclr = _pretrain(init=str(byol_run), method="simclr", data="digits")
    assert simclr.method.kwargs == {} and simclr.views.recipe is None
    assert simclr.optim.name == "lars"  # the defaults, not BYOL's AdamW
    assert simclr.backbone.width == 0.5  # the backbone still follows the source
    vit = _pretrain(init=str(byol_run), backbone="vit_tiny", data="digits")
    assert vit.backbone.width is None and vit.method.name == "byol"


def test_an_encoder_folder_carries_its_architecture(tmp_path):
    from labelless.backbones import create_backbone, save_encoder

    source = save_encoder(
        create_backbone("resnet18_cifar", in_channels=1, width=0.25), tmp_path / "source"
    )
    config = _pretrain(init=str(source), data="digits")
    assert (config.backbone.name, config.backbone.width) == ("resnet18_cifar", 0.25)
    assert config.backbone.kwargs == {} and config.method.name == "simclr"
    from_file = _pretrain(init=str(source / "encoder.safetensors"), data="digits")
    assert from_file.backbone.width == 0.25


def test_semi_takes_the_backbone_only(byol_run):
    config = resolve_run_config(SEMI, None, None, False, {"init": str(byol_run), "data": "digits"})
    assert (config.backbone.name, config.backbone.width) == ("resnet18_cifar", 0.5)
    assert config.semi.method == "fixmatch" and config.optim.name == "sgd"


def test_a_resume_keeps_the_global_batch_on_any_number_of_processes():
    from labelless.lifecycle import check_step_shape

    saved = {"processes": 2, "batch_size": 64}
    for processes, batch in ((2, 64), (1, 128), (4, 32)):
        check_step_shape(saved, processes, batch)  # 128 samples a step: accepted
    check_step_shape(None, 3, 7)  # a checkpoint of an older version records no shape
    with pytest.raises(ConfigError) as fewer:
        check_step_shape(saved, 1, 64)
    assert "took 128 samples a step (2 processes x --batch-size 64)" in str(fewer.value)
    assert "on 1 process use --batch-size 128" in str(fewer.value)
    with pytest.raises(ConfigError) as odd:
        check_step_shape(saved, 3, 64)
    assert "--devices / --num-nodes and --batch-size whose product is 128" in str(odd.value)


def test_slurm_tasks_know_which_one_writes(monkeypatch):
    from labelless.rundir import is_global_zero

    for name in ("RANK", "NODE_RANK", "GROUP_RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SLURM_NTASKS", "4")
    monkeypatch.setenv("SLURM_JOB_NAME", "train")
    for task, first in (("0", True), ("1", False), ("3", False)):
        monkeypatch.setenv("SLURM_PROCID", task)
        assert is_global_zero() is first
    monkeypatch.setenv("SLURM_JOB_NAME", "bash")  # an interactive allocation: not srun's tasks
    assert is_global_zero() is True
