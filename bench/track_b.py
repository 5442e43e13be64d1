"""Track B (BENCHMARKS.md): semi-supervised learning within a wall-clock budget.

Per method, trains on the training split with ``--labels-per-class`` labels per class (the same
seeded split for every method) and the rest unlabelled, then reports the FINAL EMA model's
test accuracy (never a best-on-test pick) next to ``supervised`` on the same labels (the
floor), with the full protocol, one JSON line per run in ``bench/results/track_b.jsonl``.

    LABELLESS_DATA=../shared/data .venv/bin/python bench/track_b.py --dataset mnist
    LABELLESS_DATA=../shared/data .venv/bin/python bench/track_b.py --dataset cifar10
    LABELLESS_DATA=../shared/data .venv/bin/python bench/track_b.py --dataset cifar10 \\
        --init runs/bench-track-a          # from a track-A SimCLR encoder
    .venv/bin/python bench/track_b.py --dataset digits --budget 20 --no-record   # smoke test
    LABELLESS_DATA=../shared/data .venv/bin/python bench/track_b.py --dataset mnist \
        --known-classes 6 --methods supervised,fixmatch,iomatch,dac,wad --budget 240 --mu 3

``--known-classes K`` makes the split open-set: classes ``0..K-1`` are labelled and scored, the
others are only in the unlabelled pool (class mismatch); open-set methods also report the AUROC
of their outlier score at telling unknown-class test images from known ones. WAD's teacher is
the ``--init`` encoder when one is given, else the EMA model (``teacher: ema``).

Targets: MNIST, 10 labels/class, FixMatch >= 97% within 15 minutes; CIFAR-10, 25 labels/class,
FixMatch and FlexMatch >= supervised + 10 points within 30 minutes (and the same with --init).
Encoder: ResNet-18 with the CIFAR stem at width x0.25 (``resnet18_cifar``) on CIFAR-10 and digits;
on MNIST the "small CNN" of the target, ``small_cnn`` (five 3x3 convolutions, width 32, 0.14 M
parameters; ``--backbone resnet18_cifar`` for the ResNet). The budget is the training loop's
wall time (``trainer.max_time``: schedules fitted to it, the run ends annealed); ``max_epochs``
is out of reach. Shift check, final evaluation and the JSON line come after the budget.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import append_result, environment, git_commit, peak_rss_mb

import labelless

#: Budgets (seconds) and default settings per dataset.
DEFAULTS = {
    "mnist": {
        "budget": 900.0,
        "labels": 10,
        "methods": "supervised,fixmatch",
        "flip": False,
        "backbone": "small_cnn",
    },
    "cifar10": {
        "budget": 1800.0,
        "labels": 25,
        "methods": "supervised,fixmatch,flexmatch",
        "flip": True,
        "backbone": "resnet18_cifar",
    },
    "digits": {
        "budget": 60.0,
        "labels": 2,
        "methods": "supervised,fixmatch",
        "flip": False,
        "backbone": "resnet18_cifar",
    },
}
MAX_EPOCHS = 100_000  # out of reach: the budget ends the run


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="cifar10", choices=sorted(DEFAULTS))
    parser.add_argument("--methods", default=None, help="comma-separated; default per dataset")
    parser.add_argument("--labels-per-class", type=int, default=None)
    parser.add_argument("--budget", type=float, default=None, help="training seconds per method")
    parser.add_argument(
        "--backbone", default=None, help="encoder (default per dataset: small_cnn on MNIST)"
    )
    parser.add_argument("--width", type=float, default=None, help="resnet18_cifar: 0.25")
    parser.add_argument("--batch-size", type=int, default=64, help="labelled batch")
    parser.add_argument("--mu", type=int, default=7)
    parser.add_argument("--lr", type=float, default=0.03)
    parser.add_argument("--ema-momentum", type=float, default=0.999)
    parser.add_argument(
        "--threshold", type=float, default=None, help="confidence threshold (default: the paper's)"
    )
    parser.add_argument("--saa", action="store_true", help="SAA on the FixMatch family")
    parser.add_argument(
        "--known-classes", type=int, default=None, help="open-set split: label classes 0..K-1"
    )
    parser.add_argument("--init", default=None, help="pretrained encoder (track-A run dir)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/bench-track-b")
    parser.add_argument("--no-record", action="store_true", help="do not append to results")
    args = parser.parse_args(argv)
    defaults = DEFAULTS[args.dataset]
    args.methods = (args.methods or defaults["methods"]).split(",")
    args.labels_per_class = args.labels_per_class or defaults["labels"]
    args.budget = args.budget or defaults["budget"]
    args.flip = defaults["flip"]
    args.backbone = args.backbone or defaults["backbone"]
    if args.width is None:
        args.width = {"resnet18_cifar": 0.25, "small_cnn": 32}.get(args.backbone)
    return args


def method_options(args: argparse.Namespace, method: str) -> dict:
    if method == "supervised":
        return {}
    options = {"threshold": args.threshold} if args.threshold is not None else {}
    if method == "wad":
        options = {"teacher": "init" if args.init else "ema"}
    return options


def run_config(args: argparse.Namespace, method: str) -> dict:
    flip = {} if args.flip else {"hflip_p": 0.0}
    open_set = f"-open{args.known_classes}" if args.known_classes else ""
    return {
        "data": {"name": args.dataset},
        "backbone": {"name": args.backbone, "width": args.width, "init": args.init},
        "semi": {
            "method": method,
            "labels_per_class": args.labels_per_class,
            "mu": args.mu,
            "ema_momentum": args.ema_momentum,
            "saa": args.saa and method != "supervised",
            "known_classes": args.known_classes,
            "kwargs": method_options(args, method),
        },
        "views": {"weak": flip, "strong": flip},
        "optim": {
            "name": "sgd",
            "lr": args.lr,
            "weight_decay": 5e-4,
            "batch_size": args.batch_size,
            "warmup_epochs": 0,
            "min_lr_ratio": 0.2,
        },
        "trainer": {
            "max_epochs": MAX_EPOCHS,
            "max_time": args.budget,
            "threads": args.threads,
            "progress_bar": False,
        },
        "report": False,
        "seed": args.seed,
        "out": f"{args.out}-{args.dataset}{open_set}-{method}" + ("-init" if args.init else ""),
    }


def record(args, method: str, result, seconds: float) -> dict:
    metrics = result.metrics
    training = metrics["training"]
    return {
        "track": "B",
        "dataset": args.dataset,
        "split": f"train -> test, {args.labels_per_class} labels/class (seed {args.seed})"
        + (
            f"; open set: classes 0-{args.known_classes - 1} labelled and scored, the others "
            "only unlabelled"
            if args.known_classes
            else ""
        ),
        "known_classes": args.known_classes,
        "options": method_options(args, method),
        "labelled": metrics["split"]["labelled"],
        "unlabelled": metrics["split"]["unlabelled"],
        "backbone": args.backbone,
        "width": args.width,
        "method": method + ("+saa" if args.saa and method != "supervised" else ""),
        "init": training["init"],
        "batch_size": args.batch_size,
        "mu": args.mu,
        "lr": args.lr,
        "threshold": args.threshold if method != "supervised" else None,
        "budget_seconds": args.budget,
        "epochs": training["epochs_done"],
        "steps": training["steps"],
        "train_seconds": training["wall_seconds"],
        "total_seconds": round(seconds, 1),
        "samples_per_second": training["samples_per_second"],
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "test_top1": metrics.get("test_top1"),
        "test_top1_online": metrics.get("test_top1_online"),
        "open_set_auroc": metrics.get("open_set_auroc"),
        "shift": {k: metrics["shift"][k] for k in ("frechet_distance", "ratio", "shifted")}
        if metrics.get("shift")
        else None,
        "protocol": metrics["protocol"],
        "ended_by": training["schedule"].get("ended_by"),
        **environment(),
    }


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    for method in args.methods:
        commit = git_commit()  # the code the run starts from (commits may land during it)
        start = time.perf_counter()
        result = labelless.semi(config=run_config(args, method), overwrite=True)
        row = {**record(args, method, result, time.perf_counter() - start), "commit": commit}
        rows.append(row)
        print(
            f"{args.dataset} {method}: test top-1 (EMA, final) {row['test_top1']:.4f} after "
            f"{row['steps']} steps / {row['train_seconds']} s",
            flush=True,
        )
    floor = next((r["test_top1"] for r in rows if r["method"] == "supervised"), None)
    for row in rows:
        if floor is not None:
            row["gain_over_supervised"] = round(row["test_top1"] - floor, 4)
        if not args.no_record:
            append_result("track_b", row)
    return rows


if __name__ == "__main__":
    main()
