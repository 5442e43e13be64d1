"""KRR-ST end to end on digits: a teacher from a short SimCLR run, a synthetic set of 100 images
distilled from it, and a fresh ResNet-18-CIFAR x0.25 pretrained on that set, compared with the
random-init floor and with the same pretraining on 100 random real images and their targets."""

from __future__ import annotations

import copy

import pytest
import torch

from labelless import api
from labelless.backbones import load_encoder
from labelless.curate import distill_dataset, pretrain_on_synthetic, teacher_targets
from labelless.demo import DEMO_CONFIG
from labelless.evaluate import embed, knn_accuracy

pytestmark = pytest.mark.slow

TEACHER_EPOCHS = 5
SYNTHETIC_SIZE = 100
STEPS = 150  # outer steps of KRR-ST
EPOCHS = 150  # pretraining epochs on the 100 images


def _knn(encoder, digits) -> float:
    train, test = digits.train, digits.test
    return knn_accuracy(
        embed(encoder, train.samples),
        torch.as_tensor(train.labels),
        embed(encoder, test.samples),
        torch.as_tensor(test.labels),
        k=20,
        temperature=0.1,
    )


def _teacher_run(folder):
    """A short SimCLR run of the demo recipe at width 0.25: its run directory."""
    config = copy.deepcopy(DEMO_CONFIG)
    config["backbone"]["width"] = 0.25
    config["trainer"].update(
        {"progress_bar": False, "max_epochs": TEACHER_EPOCHS, "max_time": None, "threads": 1}
    )
    config["monitor"]["every_n_epochs"] = 1000
    return api.pretrain(config=config, out=str(folder)).run_dir


def test_krrst_pretraining_beats_the_floor_and_matches_random_real_images(
    tmp_path, digits, random_init_knn, one_thread
):
    teacher = _teacher_run(tmp_path / "teacher")
    meta = digits.train.meta
    embeddings = teacher_targets(
        load_encoder(teacher),
        digits.train.samples,
        mean=meta["mean"],
        std=meta["std"],
    )
    options = {"teacher_embeddings": embeddings, "seed": 0}
    distilled = distill_dataset(digits.train, teacher, SYNTHETIC_SIZE, steps=STEPS, **options)
    real = distill_dataset(digits.train, teacher, SYNTHETIC_SIZE, steps=0, **options)
    assert distilled.record["teacher"]["weights_sha256"]
    students = {
        name: pretrain_on_synthetic(synthetic, epochs=EPOCHS, batch_size=50, seed=0)
        for name, synthetic in (("krrst", distilled), ("real", real))
    }
    scores = {name: _knn(student, digits) for name, student in students.items()}
    floor = random_init_knn(students["krrst"], k=20)
    numbers = f"KRR-ST {scores['krrst']:.3f}, random real {scores['real']:.3f}, floor {floor:.3f}"
    # Measured (floor 0.828; 150 steps, 150 epochs). This 5-epoch teacher (kNN 0.814): seed 0
    # KRR-ST 0.878 vs random real 0.850, seed 1 0.872 vs 0.856. A 10-epoch teacher (kNN 0.914):
    # seed 0 0.892 vs 0.897, seed 1 0.875 vs 0.892. Asserted: the floor margin (measured
    # +0.044 to +0.064) and KRR-ST within 0.03 of random real (measured -0.017 to +0.028).
    assert scores["krrst"] >= floor + 0.03, numbers
    assert scores["krrst"] >= scores["real"] - 0.03, numbers
