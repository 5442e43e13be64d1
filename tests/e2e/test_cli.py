"""The command line as a person uses it: exit codes, one-line errors, listings.

User errors run in-process (``run_in_process``, the same ``main`` the console script calls);
one error, the listings and every verb's happy path run ``labelless`` in a fresh interpreter.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from .cli import one_line_error, run_cli, run_in_process


def test_missing_data_path(tmp_path):
    """The one user error that goes through a real ``labelless`` process."""
    out = tmp_path / "run"
    message = one_line_error(
        run_cli("pretrain", "--data", str(tmp_path / "no_such_folder"), "--out", str(out))
    )
    assert "does not exist" in message and "check the path" in message
    assert not out.exists()  # nothing half-written


def test_unknown_method(tmp_path):
    message = one_line_error(
        run_in_process("pretrain", "--method", "simclrr", "--out", str(tmp_path / "run"))
    )
    assert "unknown method 'simclrr'" in message and "simclr" in message and "byol" in message


def test_corrupt_config(tmp_path):
    config = tmp_path / "broken.yaml"
    config.write_text("optim: {lr: [0.1\n")
    message = one_line_error(run_in_process("pretrain", "--config", str(config)))
    assert "not valid YAML" in message and "fix its syntax" in message
    config.write_text("optim:\n  learning_rate: 0.1\n")
    message = one_line_error(run_in_process("pretrain", "--config", str(config)))
    assert "optim.learning_rate" in message


def test_bad_set_override():
    message = one_line_error(run_in_process("pretrain", "--set", "optim.lr"))
    assert "key=value" in message


def test_evaluate_missing_run(tmp_path):
    message = one_line_error(run_in_process("evaluate", str(tmp_path / "nothing")))
    assert "encoder" in message.lower()


def test_listings():
    methods = run_cli("methods")
    assert methods.returncode == 0
    assert "simclr" in methods.stdout and "byol" in methods.stdout
    tables = run_in_process("methods", "--modality", "tabular")
    assert "scarf" in tables.stdout and "simclr" not in tables.stdout
    assert "choose one of graph, image, tabular, timeseries" in one_line_error(
        run_in_process("methods", "--modality", "audio")
    )
    datasets = run_cli("datasets")
    assert datasets.returncode == 0
    for name in ("digits", "mnist", "fashion_mnist", "cifar10", "adult", "ucr:GunPoint"):
        assert name in datasets.stdout


@pytest.mark.data
def test_datasets_shows_real_data_available(data_root):
    result = run_in_process("datasets")
    line = next(row for row in result.stdout.splitlines() if "cifar10" in row)
    assert "yes" in line


@pytest.mark.slow
def test_pretrain_on_an_unlabelled_folder_then_evaluate(tmp_path):
    """A flat folder of photos (no labels, one corrupt file) trains; nothing is sized by N."""
    import json

    import numpy as np
    from PIL import Image

    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(40):
        side = int(rng.integers(20, 48))
        Image.fromarray(rng.integers(0, 256, (side, side + 3, 3), dtype=np.uint8)).save(
            photos / f"p{i}.jpg"
        )
    (photos / "truncated.jpg").write_bytes(b"\xff\xd8\xff\xe0garbage")
    out = tmp_path / "run"
    result = run_cli(
        "pretrain",
        "--data",
        str(photos),
        "--method",
        "simclr",
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--width",
        "0.125",
        "--view-size",
        "16",
        "--out",
        str(out),
        "--set",
        "data.load_size=24",
        "--set",
        "trainer.progress_bar=false",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["training"]["skipped_samples"] == 1
    assert metrics["rankme"] > 1 and "knn_top1" not in metrics  # label-free only
    assert (out / "report.html").is_file() and (out / "encoder.json").is_file()
    info = json.loads((out / "encoder.json").read_text())
    assert info["input_size"] == 16 and info["in_channels"] == 3
    # the unlabelled folder's encoder evaluated on a labelled set of another kind: a clear error
    mismatch = run_in_process("evaluate", str(out), "--data", "digits")
    assert mismatch.returncode == 2 and "3-channel" in mismatch.stderr


def test_init_from_another_architecture(tmp_path):
    """``--init`` with a source encoder of another width: one-line error, exit 2, no run."""
    from labelless.backbones import create_backbone, save_encoder

    source = save_encoder(
        create_backbone("resnet18_cifar", in_channels=1, width=0.25, input_size=8), tmp_path / "a"
    )
    out = tmp_path / "run"
    message = one_line_error(
        run_in_process("pretrain", "--init", str(source), "--width", "0.5", "--out", str(out))
    )
    assert "width=0.25" in message and "width=0.5" in message and "drop --init" in message
    assert not out.exists()
    message = one_line_error(
        run_in_process("pretrain", "--init", str(tmp_path / "nothing"), "--out", str(out))
    )
    assert "no encoder.safetensors" in message
    assert "--init" in run_in_process("pretrain", "--help").stdout


def run_verb(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return run_cli(*args, cwd=cwd, one_thread=True)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A real (one-epoch) digits run made by the CLI, shared by the verb tests below."""
    out = tmp_path_factory.mktemp("runs") / "digits"
    result = run_verb(
        "pretrain",
        "--data",
        "digits",
        "--method",
        "simclr",
        "--epochs",
        "1",
        "--width",
        "0.125",
        "--view-size",
        "8",
        "--out",
        str(out),
        "--set",
        "trainer.progress_bar=false",
        "--set",
        "trainer.threads=1",
        "--set",
        "monitor.knn_k=20",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return out


@pytest.mark.slow
def test_evaluate_verb_on_a_run_an_encoder_file_and_a_bad_path(pretrained, tmp_path):
    import json

    result = run_verb("evaluate", str(pretrained), "--data", "digits", "--k", "20")
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((pretrained / "metrics.json").read_text())
    assert "digits [native]" in metrics["evaluations"] and "training" in metrics
    out = tmp_path / "eval"
    weights = str(pretrained / "encoder.safetensors")
    result = run_verb("evaluate", weights, "--normalize", "dataset", "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "preprocessing overridden" in result.stdout
    record = json.loads((out / "metrics.json").read_text())
    assert list(record["evaluations"]) == ["digits [dataset-norm]"]
    message = one_line_error(run_in_process("evaluate", str(tmp_path / "nope"), "--out", str(out)))
    assert "does not exist" in message and "timm:NAME --weights FILE" in message
    message = one_line_error(run_in_process("evaluate", weights))
    assert "needs --out DIR" in message


@pytest.mark.slow
def test_compare_report_prune_finetune_select_verbs(pretrained, tmp_path):
    import json

    page = tmp_path / "compare.html"
    result = run_verb("compare", str(pretrained), str(pretrained), "--out", str(page))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "compared 2 encoders" in result.stdout and page.is_file()
    message = one_line_error(run_in_process("compare", str(tmp_path), "--out", str(page)))
    assert "no metrics.json" in message

    result = run_verb("report", str(pretrained))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Per-class accuracy" in (pretrained / "report.html").read_text()

    result = run_verb("prune", str(pretrained), "--sparsity", "0.5,0.25", "--no-linear")
    assert result.returncode == 0, result.stderr[-2000:]
    levels = json.loads((pretrained / "prune.json").read_text())["levels"]
    assert [row["sparsity"] for row in levels] == [0.0, 0.25, 0.5]
    message = one_line_error(run_in_process("prune", str(pretrained), "--sparsity", "half"))
    assert "comma-separated" in message

    result = run_verb("finetune", str(pretrained), "--epochs", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "fine-tuned test top-1" in result.stdout
    protocol = json.loads((pretrained / "finetune.json").read_text())["protocol"]
    assert protocol["validation_split"]["carved_from"] == "train"

    result = run_verb("select", str(pretrained), "--max-samples", "200")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "rankme" in result.stdout and "cannot compare methods" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("method", ["mae", "ijepa"])
def test_masked_methods_run_out_of_the_box(method, tmp_path):
    """``--method mae`` (or ijepa) alone: the run builds the ViT the method needs (its
    ``default_backbone``, sized to the 8 px digits), not the modality's ResNet, and trains.
    What it learns is ``tests/integration/test_method_zoo_vit.py``'s. At the default batch of
    256 one I-JEPA step of the default ViT-Tiny takes ~30 s on one CPU thread; at batch 32 a
    few seconds, and a 1-s budget ends the run after its first step (the run clock never stops
    before one), which is all this test needs: the whole test went from ~60 s to ~27 s (I-JEPA;
    MAE similar), most of the rest being start-up and the final embedding and report."""
    import json

    out = tmp_path / method
    result = run_verb(
        "pretrain",
        "--data",
        "digits",
        "--method",
        method,
        "--epochs",
        "1",
        "--batch-size",
        "32",
        "--max-time",
        "1",
        "--out",
        str(out),
        "--set",
        "trainer.progress_bar=false",
        "--set",
        "trainer.threads=1",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    encoder = json.loads((out / "encoder.json").read_text())
    assert encoder["architecture"] == "vit_tiny"
    assert encoder["kwargs"] == {"pool": "mean", "image_size": 8, "patch_size": 2}
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["training"]["steps"] >= 1 and 0.1 < metrics["knn_top1"] <= 1.0


@pytest.mark.slow
def test_init_from_a_run_directory_keeps_its_method(pretrained, tmp_path):
    """``--init RUN_DIR`` continues that run's recipe (here BYOL) on new data instead of
    switching to the default method; --data and --out are the new run's."""
    import shutil

    import yaml

    source = tmp_path / "byol-run"
    shutil.copytree(pretrained, source)
    config = yaml.safe_load((source / "config.yaml").read_text())
    config["method"] = {"name": "byol", "kwargs": {"proj_hidden_dim": 64, "proj_dim": 32}}
    config["views"]["recipe"] = "byol"
    (source / "config.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "continued"
    quiet = ["--set", "trainer.threads=1", "--set", "trainer.progress_bar=false"]
    result = run_verb(
        "pretrain",
        "--data",
        "digits",
        "--init",
        str(source),
        "--epochs",
        "1",
        "--out",
        str(out),
        *quiet,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["method"] == config["method"] and saved["views"]["recipe"] == "byol"
    assert saved["backbone"]["width"] == config["backbone"]["width"]
    assert saved["backbone"]["init"] == str(source.resolve()) and saved["out"] == str(out)
    assert saved["trainer"]["max_epochs"] == 1
