"""Distillation benchmark (issue 21): a small student distilled from a stronger teacher vs the
same student pretrained by SimCLR, at the same wall-clock budget.

The student is ResNet-18-CIFAR x``--width`` (0.25) on the 50k CIFAR-10 train images (labels
unused). Arms, each given ``--budget`` seconds of training (``trainer.max_time``: the schedules
are fitted to it and the run ends annealed), one after another on an otherwise idle machine:

- ``simclr``: the track-A SimCLR recipe (``configs/cifar10/simclr.yaml``);
- one arm per ``--objectives`` entry (``seed``, ``cosine``; ``cosine-cached``: the teacher's
  embeddings of the un-augmented images computed once, ``--teacher-cache``):
  ``labelless distill TEACHER`` with the same optimiser, batch and views as the SimCLR arm
  (MoCo v2's view recipe at 32 px without blur, as every CIFAR-10 recipe here); only the
  objective differs.

The teacher is a run directory (``--teacher``), by default a track-A DCL encoder trained for 30
minutes (longer than the students; DCL is track A's best 15-minute method at x0.25):

    LABELLESS_DATA=../shared/data .venv/bin/python bench/track_a.py \\
        --config configs/cifar10/dcl.yaml --budget 1800 --out runs/distill-teacher
    LABELLESS_DATA=../shared/data .venv/bin/python bench/distill.py --teacher runs/distill-teacher
    .venv/bin/python bench/distill.py --quick   # digits, a teacher trained here, ~2 min: smoke

Scoring: every encoder's final kNN top-1 (k=200, T=0.1) and linear-probe top-1 on CIFAR-10 test
(the run's own final evaluation, the track-A protocol), the teacher's on the same protocol beside
them, with steps, images/s and the load average at the start of each arm.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import append_result, data_available, environment

from labelless import api
from labelless.config import load_yaml

ROOT = Path(__file__).resolve().parents[1]
OBJECTIVE_KWARGS = {
    # SEED's released defaults except the queue: 65,536 teacher embeddings of 128 dimensions
    # would be 1.3 epochs of CIFAR-10 old at the start of the run; 16,384 is ~1/3 epoch.
    "seed": {"queue_size": 16_384},
    "cosine": {"proj_hidden_dim": 2048},
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default="runs/distill-teacher", help="a run directory")
    parser.add_argument("--budget", type=float, default=600.0, help="training seconds per arm")
    parser.add_argument("--objectives", default="cosine,seed,cosine-cached", help="comma-separated")
    parser.add_argument("--skip-simclr", action="store_true", help="distillation arms only")
    parser.add_argument("--width", type=float, default=0.25, help="the student's width")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/bench-distill")
    parser.add_argument("--quick", action="store_true", help="digits, tiny budgets: a smoke run")
    return parser.parse_args(argv)


def recipe(args) -> dict:
    """The SimCLR recipe of the data (CIFAR-10's; digits' for ``--quick``) under the bench's
    terms: the budget ends the run, only the final evaluation."""
    config = load_yaml(ROOT / "configs" / ("digits" if args.quick else "cifar10") / "simclr.yaml")
    config["backbone"]["width"] = args.width
    config["trainer"].update(max_epochs=10_000, max_time=args.budget, progress_bar=False)
    config["trainer"]["threads"] = 2
    config["monitor"]["every_n_epochs"] = 10**6
    config["seed"] = args.seed
    return config


def distill_config(args, arm: str) -> dict:
    """The SimCLR arm's recipe with the distillation objective in place of SimCLR; an arm
    ``<objective>-cached`` distils towards the teacher's cached embeddings of the un-augmented
    images (``teacher_cache``: no teacher forward per step)."""
    objective, _, cached = arm.partition("-")
    config = recipe(args)
    views = config.setdefault("views", {})
    views["recipe"] = "moco"
    config["method"] = {
        "name": "seed" if objective == "seed" else "cosine_distill",
        "kwargs": {**OBJECTIVE_KWARGS[objective], "teacher_cache": cached == "cached"},
    }
    return config


def summary(arm: str, metrics: dict, seconds: float, load: float) -> dict:
    training = metrics.get("training", {})
    return {
        "arm": arm,
        "knn_top1": round(float(metrics["knn_top1"]), 4),
        "linear_top1": round(float(metrics["linear_top1"]), 4)
        if "linear_top1" in metrics
        else None,
        "rankme": round(float(metrics["rankme"]), 1) if "rankme" in metrics else None,
        "steps": training.get("steps"),
        "epochs_done": training.get("epochs_done"),
        "samples_per_second": training.get("samples_per_second"),
        "train_seconds": training.get("wall_seconds"),
        "arm_seconds": round(seconds, 1),
        "load_average_1min_at_start": load,
    }


def quick_teacher(args, out: Path) -> str:
    """``--quick``: a digits SimCLR teacher at width 0.5, trained here for 15 epochs."""
    config = recipe(args)
    config["backbone"]["width"] = 0.5
    config["trainer"].update(max_epochs=15, max_time=None)
    api.pretrain("digits", config=config, out=str(out / "teacher"), overwrite=True)
    return str(out / "teacher")


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    torch.set_num_threads(2)
    out = Path(args.out)
    if args.quick:
        args.budget = 15.0
        teacher = quick_teacher(args, out)
        data = "digits"
    else:
        if not data_available():
            raise SystemExit("set LABELLESS_DATA to the shared data folder (CIFAR-10)")
        if not (Path(args.teacher) / "encoder.safetensors").is_file():
            raise SystemExit(
                f"no teacher encoder in {args.teacher}: train one first with\n  bench/track_a.py "
                "--config configs/cifar10/dcl.yaml --budget 1800 --out runs/distill-teacher"
            )
        teacher, data = args.teacher, "cifar10"
    common = {
        "dataset": data,
        "student": f"resnet18_cifar x{args.width}",
        "teacher": teacher,
        "budget_seconds": args.budget,
        "seed": args.seed,
    }
    records, teacher_metrics = [], None
    arms = ([] if args.skip_simclr else ["simclr"]) + args.objectives.split(",")
    for arm in arms:
        load, started = round(os.getloadavg()[0], 2), time.perf_counter()
        if arm == "simclr":
            result = api.pretrain(data, config=recipe(args), out=str(out / arm), overwrite=True)
        else:
            result = api.distill(
                teacher, data, config=distill_config(args, arm), out=str(out / arm), overwrite=True
            )
            teacher_metrics = result.metrics["teacher"]
        record = summary(arm, result.metrics, time.perf_counter() - started, load)
        records.append(record)
        save(record, common, args)
    if teacher_metrics is not None:
        records.append(
            {
                **summary("teacher", teacher_metrics["metrics"], 0.0, None),
                "teacher_weights": teacher_metrics.get("weights"),
                "teacher_sha256": teacher_metrics.get("weights_sha256"),
            }
        )
        save(records[-1], common, args)
    return records


def save(record: dict, common: dict, args) -> None:
    """Print ``record`` and append it to bench/results/distill.jsonl as soon as its arm ends
    (not for ``--quick``)."""
    print(record, flush=True)
    if not args.quick:
        append_result("distill", {**environment(), **common, **record})


if __name__ == "__main__":
    main()
