"""``labelless distill`` on digits: a run directory with the student's encoder and the
teacher's SHA-256, bad teachers refused before anything is written, resume, recipes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from labelless import api
from labelless.backbones import create_backbone, load_encoder, save_encoder
from labelless.cli import main
from labelless.config import build_config, load_yaml
from labelless.data import load_dataset
from labelless.methods import create_method

pytestmark = pytest.mark.slow

RECIPES = sorted((Path(__file__).resolve().parents[2] / "configs" / "distill").glob("*.yaml"))
QUICK = [
    "--set",
    "trainer.progress_bar=false",
    "--set",
    "monitor.every_n_epochs=100",
    "--set",
    "trainer.threads=1",
    "--set",
    "method.kwargs.queue_size=256",
]


def _teacher(folder: Path, *, channels: int = 1, width: float = 0.25, size: int = 8) -> Path:
    """An encoder saved as a finished run would (random weights: a teacher all the same)."""
    meta = load_dataset("digits").train.meta
    torch.manual_seed(1)
    encoder = create_backbone(
        "resnet18_cifar",
        in_channels=channels,
        width=width,
        input_size=size,
        mean=list(meta["mean"]) * channels,
        std=list(meta["std"]) * channels,
    )
    return save_encoder(encoder, folder)


def _distill(teacher: Path, out: Path, *extra: str) -> int:
    args = ["distill", str(teacher), "--data", "digits", "--width", "0.125", "--view-size", "8"]
    return main([*args, "--epochs", "1", "--out", str(out), *QUICK, *extra])


def test_distill_writes_the_student_and_records_the_teacher(tmp_path):
    teacher = _teacher(tmp_path / "teacher")
    assert _distill(teacher, tmp_path / "run") == 0
    run = tmp_path / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    sha = hashlib.sha256((teacher / "encoder.safetensors").read_bytes()).hexdigest()
    assert metrics["teacher"]["weights_sha256"] == sha
    assert metrics["teacher"]["metrics"]["knn_top1"] > 0.1  # on the student's protocol
    assert metrics["distill"]["objective"] == "seed" and metrics["knn_top1"] > 0.1
    config = load_yaml(run / "config.yaml")
    assert config["method"]["kwargs"]["teacher_sha256"] == sha
    assert config["method"]["kwargs"]["teacher"] == str(teacher.resolve())
    student = load_encoder(run)  # the student alone: width 0.125, not the teacher's 0.25
    assert student.meta.kwargs["width"] == 0.125
    assert set(student.state_dict()) == set(load_encoder(teacher).state_dict())
    assert student.embed_dim < load_encoder(teacher).embed_dim


def test_cosine_with_ssl_and_a_teacher_of_another_preprocessing(tmp_path):
    teacher = _teacher(tmp_path / "teacher", width=0.125, size=16)
    with pytest.warns(UserWarning, match="more parameters"):
        result = api.distill(
            teacher,
            "digits",
            objective="cosine",
            ssl="simclr",
            ssl_weight=0.5,
            width=0.25,
            view_size=8,
            epochs=1,
            out=str(tmp_path / "run"),
            overrides=[*QUICK[1::2][:3], "method.kwargs.proj_hidden_dim=64"],
        )
    record = result.metrics["distill"]
    assert record["objective"] == "cosine_distill" and record["ssl_method"] == "simclr"
    assert record["teacher_inputs"].startswith("Retarget(size=16")
    assert result.metrics["teacher"]["metrics"]["protocol"]["preprocessing"]["input_size"] == 16


@pytest.mark.parametrize(
    "teacher_args, message",
    [
        (["{rgb}"], "3-channel images"),
        (["{missing}"], "does not exist"),
        (["timm:resnet18"], "--teacher-weights FILE"),
        (["{gray}", "--objective", "kl"], "unknown distillation objective"),
    ],
)
def test_bad_teachers_exit_2_before_anything_is_written(tmp_path, capsys, teacher_args, message):
    paths = {
        "rgb": _teacher(tmp_path / "rgb", channels=3),
        "gray": _teacher(tmp_path / "gray"),
        "missing": tmp_path / "nowhere",
    }
    teacher, *rest = (arg.format(**paths) for arg in teacher_args)
    out = tmp_path / "run"
    code = main(["distill", teacher, "--data", "digits", "--out", str(out), *rest, *QUICK])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_distill_resumes_and_refuses_a_changed_teacher(tmp_path, capsys):
    teacher = _teacher(tmp_path / "teacher")
    out = tmp_path / "run"
    assert _distill(teacher, out) == 0
    steps = json.loads((out / "metrics.json").read_text())["training"]["steps"]
    resumed = main(["distill", "--out", str(out), "--resume", "--epochs", "2"])
    assert resumed == 0
    training = json.loads((out / "metrics.json").read_text())["training"]
    assert training["resumed_from_step"] == steps and training["epochs_done"] == 2
    _teacher(teacher, width=0.125)  # other weights under the same name
    assert main(["distill", "--out", str(out), "--resume", "--epochs", "3"]) == 2
    assert "teacher's weights changed" in capsys.readouterr().err


def test_a_cached_teacher_and_pseudo_labels_and_a_resume_that_keeps_them(tmp_path):
    teacher = _teacher(tmp_path / "teacher")
    out = tmp_path / "run"
    assert _distill(teacher, out, "--teacher-cache", "--pseudo-labels", "10") == 0
    record = json.loads((out / "metrics.json").read_text())["distill"]
    rows = len(load_dataset("digits").train)
    labels = record["pseudo_labels"]  # k-means of the cached rows, learnt by a cluster head
    assert labels["clusters"] == 10 and sum(labels["cluster_sizes"]) == rows
    assert min(labels["cluster_sizes"]) > 0
    assert record["teacher_online"] is False
    assert (
        record["teacher_targets"]
        == f"cached: its embedding of each un-augmented sample ({rows} rows)"
    )
    assert load_yaml(out / "config.yaml")["method"]["kwargs"]["teacher_cache"] is True
    assert main(["distill", "--out", str(out), "--resume", "--epochs", "2"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["distill"]["teacher_online"] is False and metrics["training"]["epochs_done"] == 2
    assert metrics["distill"]["pseudo_labels"] == labels  # the same clusters after the resume


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_distill_recipes_build(path):
    config = build_config(load_yaml(path), str(path))
    options = {k: v for k, v in config.method.kwargs.items() if k != "student_from_teacher"}
    backbone = create_backbone(
        config.backbone.name or "resnet18_cifar",
        in_channels=1,
        width=config.backbone.width or 0.25,
        input_size=config.views.size,
    )
    teacher = create_backbone("resnet18_cifar", in_channels=1, width=0.25)
    method = create_method(config.method.name, backbone, teacher=teacher, **options)
    assert method.teacher_dim == teacher.embed_dim
