"""The commands that take more than a few seconds show progress on stderr (``labelless.progress``),
and the Python API stays quiet. A tiny encoder on digits, through ``labelless.cli.main``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from labelless import api
from labelless.backbones import create_backbone, save_encoder

from .cli import run_in_process


def _encoder(directory: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    backbone = create_backbone(
        "resnet18_cifar", in_channels=1, width=0.125, input_size=8, mean=[0.3], std=[0.3]
    )
    save_encoder(backbone, directory)
    return directory / "encoder.safetensors"


@pytest.fixture(scope="module")
def encoder(tmp_path_factory) -> Path:
    return _encoder(tmp_path_factory.mktemp("encoder"))


def _progress(result, first_line: str) -> str:
    """stderr of a successful command, whose progress starts with ``first_line`` and is not in
    stdout (piped results stay clean)."""
    assert result.returncode == 0, result.stderr[-2000:]
    assert first_line in result.stderr and first_line not in result.stdout, result.stderr
    return result.stderr


def test_evaluate_shows_each_protocol(encoder, tmp_path):
    result = run_in_process("evaluate", encoder, "--k", "20", "--out", tmp_path / "e")
    err = _progress(result, "embedding 1,437 samples")
    for line in ("embedding 1,437 samples", "kNN (k=20)", "linear probe", "few-shot", "k-means"):
        assert line in err, err
    assert "3/3" in err  # 1,437 train images in 512-image batches


def test_prune_shows_its_levels(encoder, tmp_path):
    args = ["--sparsity", "0.5", "--no-linear", "--k", "20", "--out", tmp_path / "p"]
    err = _progress(
        run_in_process("prune", encoder, "--data", "digits", *args), "pruning 2 sparsity"
    )
    assert "2/2" in err
    assert "embedding" not in err  # the embeddings of a level show only while they run


def test_finetune_shows_its_epochs(encoder, tmp_path):
    args = ["--data", "digits", "--epochs", "2", "--batch-size", "256", "--out", tmp_path / "f"]
    err = _progress(run_in_process("finetune", encoder, *args), "fine-tuning")
    assert "fine-tuning, epoch 2/2 (val top-1" in err, err
    assert "12/12" in err  # 2 epochs of 6 batches (1,293 fit samples)


def test_select_shows_its_runs(tmp_path):
    runs = []
    for seed in (0, 1):
        run = tmp_path / f"run{seed}"
        _encoder(run, seed)
        config = {"method": {"name": "simclr"}, "data": {"name": "digits"}}
        (run / "config.yaml").write_text(yaml.safe_dump(config))
        runs.append(run)
    err = _progress(run_in_process("select", *runs), "measuring rankme")
    assert "measuring rankme of 2 runs" in err and "2/2" in err


def test_the_python_api_is_quiet(encoder, tmp_path, capsys):
    api.evaluate(encoder, "digits", k=20, out=tmp_path / "quiet")
    assert "embedding" not in capsys.readouterr().err
