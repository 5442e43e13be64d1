"""The evaluation verbs refuse bad options and wrong inputs with a one-line error naming the fix
(labelless.verbs), in process through the CLI's ``main``: exit 2, no traceback, nothing written."""

from __future__ import annotations

import numpy as np
import pytest

from labelless.cli import main


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    """An exported (untrained) 1-channel encoder: ``encoder.safetensors`` + ``encoder.json``."""
    from labelless.backbones import create_backbone, save_encoder

    folder = tmp_path_factory.mktemp("encoder")
    backbone = create_backbone("resnet18_cifar", in_channels=1, width=0.125, input_size=8)
    save_encoder(backbone, folder)
    return folder


def _error(argv, capsys) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert all(line.startswith(("error:", "warning:")) for line in lines), captured.err
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, captured.err
    return errors[0]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--k", "-5"], "--k (kNN neighbours) must be an integer >= 1, got -5"),
        (["--k", "0"], "--k (kNN neighbours) must be an integer >= 1, got 0"),
        (["--temperature", "0"], "--temperature (kNN vote temperature) must be a number > 0"),
        (["--temperature", "-0.1"], "--temperature (kNN vote temperature) must be a number > 0"),
        (["--seed", "-1"], "--seed must be an integer >= 0"),
        (["--test-fraction", "1.5"], "--test-fraction must be a fraction strictly between 0 and 1"),
        (["--test-fraction", "0.2"], "drop them (the flags --target / --test-fraction"),
    ],
)
def test_evaluate_refuses_bad_numbers_before_writing(
    encoder_dir, tmp_path, capsys, options, message
):
    out = tmp_path / "eval"
    line = _error(
        ["evaluate", str(encoder_dir / "encoder.safetensors"), "--out", str(out), *options], capsys
    )
    assert message in line
    assert not out.exists()


@pytest.mark.parametrize(
    ("verb", "options", "message"),
    [
        ("prune", ["--k", "0"], "--k (kNN neighbours) must be an integer >= 1"),
        (
            "prune",
            ["--temperature", "0"],
            "--temperature (kNN vote temperature) must be a number > 0",
        ),
        ("prune", ["--sparsity", "1.0"], "fractions in [0, 1)"),
        ("finetune", ["--epochs", "0"], "--epochs must be an integer >= 1, got 0"),
        ("finetune", ["--batch-size", "1"], "--batch-size must be an integer >= 2, got 1"),
        ("finetune", ["--lr", "0"], "--lr must be a number > 0, got 0.0"),
        ("finetune", ["--val-fraction", "1"], "--val-fraction must be a fraction strictly between"),
        ("finetune", ["--weight-decay", "-1"], "--weight-decay must be >= 0"),
        ("finetune", ["--encoder-lr-scale", "0"], "--encoder-lr-scale must be in (0, 1]"),
    ],
)
def test_prune_and_finetune_refuse_bad_numbers_before_writing(
    encoder_dir, tmp_path, capsys, verb, options, message
):
    out = tmp_path / verb
    line = _error([verb, str(encoder_dir), "--data", "digits", "--out", str(out), *options], capsys)
    assert message in line
    assert not out.exists()


def test_select_refuses_max_samples_zero(tmp_path, capsys):
    line = _error(["select", str(tmp_path), "--max-samples", "0"], capsys)
    assert "--max-samples (images measured) must be an integer >= 2, got 0" in line


def test_evaluate_on_a_folder_that_is_no_run_says_so(tmp_path, capsys):
    folder = tmp_path / "documents"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    line = _error(["evaluate", str(folder)], capsys)
    assert "is not a labelless run directory" in line and "nor an encoder file" in line
    assert "timm:NAME --weights FILE" in line and "needs --out" not in line
    line = _error(["evaluate", str(folder / "notes.txt"), "--out", str(tmp_path / "o")], capsys)
    assert "is not a labelless run directory" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["documents"]


def test_evaluate_on_unlabelled_data_says_how_to_give_labels(encoder_dir, tmp_path, capsys):
    from PIL import Image

    images = tmp_path / "flat"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(images / f"{i}.png")
    out = tmp_path / "eval"
    line = _error(["evaluate", str(encoder_dir), "--data", str(images), "--out", str(out)], capsys)
    assert "has no labels" in line and "one sub-folder per class" in line
    assert "labelless select RUN --measure rankme" in line and "built-in" not in line
    table = tmp_path / "rows.csv"
    table.write_text("a,b\n" + "".join(f"{i},{i * 2}\n" for i in range(60)))
    line = _error(["evaluate", str(encoder_dir), "--data", str(table), "--out", str(out)], capsys)
    assert "has no labels" in line and "--target COLUMN" in line
    assert not out.exists()


def test_evaluate_warns_on_a_collapsed_encoder(tmp_path, capsys):
    import torch

    from labelless.backbones import create_backbone, save_encoder

    backbone = create_backbone("resnet18_cifar", in_channels=1, width=0.125, input_size=8)
    with torch.no_grad():
        for parameter in backbone.parameters():
            parameter.zero_()
    save_encoder(backbone, tmp_path / "zero")
    out = tmp_path / "eval"
    argv = ["evaluate", str(tmp_path / "zero"), "--data", "digits", "--k", "5", "--out", str(out)]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "warning: the encoder looks collapsed on digits (RankMe" in err
    assert (out / "metrics.json").is_file()
