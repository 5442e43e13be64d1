"""Track A (BENCHMARKS.md): self-supervised pretraining on CIFAR-10 within a wall-clock budget.

Trains on the 50k CIFAR-10 train images (labels unused), then reports the FINAL encoder's kNN
(k=200, T=0.1, cosine, weighted votes), linear-probe top-1 and RankMe on the test split, training
images/s, and model FLOP utilisation against a float32 matmul ceiling measured in the same run.

    LABELLESS_DATA=../shared/data .venv/bin/python bench/track_a.py --budget 900
    LABELLESS_DATA=../shared/data .venv/bin/python bench/track_a.py --budget 180 --per-sample-aug
    .venv/bin/python bench/track_a.py --config configs/cifar10/dcl.yaml  # LABELLESS_DATA as above

``--config`` runs a shipped recipe (``configs/cifar10/<method>.yaml``: its method, backbone,
views, optimiser and budget) under the track's fixed terms (threads, seed, evaluation); a
``--budget`` given on the command line replaces the recipe's ``trainer.max_time``.

``--per-sample-aug`` makes the views with a torchvision v2 pipeline (the same ViewSpec
parameters) per sample in DataLoader workers, the way the anchor libraries do, as the baseline.
The library fits the schedules (LR warm-up and decay, EMA momentum) to the budget from the
measured step time (``trainer.max_time``; ``labelless.train.progress.RunClock``), so the run ends
annealed when the budget is spent; ``max_epochs`` is set out of reach.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    append_result,
    data_available,
    environment,
    matmul_ceiling_gflops,
    peak_rss_mb,
    set_view_grouping,
)

from labelless.backbones import save_encoder
from labelless.config import build_config, load_yaml
from labelless.data import load_dataset
from labelless.train.callbacks import RankMeMonitor, Throughput
from labelless.train.loader import train_loader
from labelless.train.module import SSLModule
from labelless.train.trainer import build_trainer
from labelless.verbs.components import build_components
from labelless.verbs.pretrain import final_metrics


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", help="a track-A recipe (configs/cifar10/<method>.yaml)")
    parser.add_argument("--method", default="simclr")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument(
        "--budget", type=float, default=None, help="training seconds (default 900, or the recipe's)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--optimizer", default="lars")
    parser.add_argument("--lr", type=float, default=1.0)
    parser.add_argument("--weight-decay", type=float, default=1e-5)
    parser.add_argument(
        "--warmup-epochs", type=float, default=1.0, help="LR warm-up (at most half of the run)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-sample-aug", action="store_true")
    parser.add_argument("--workers", type=int, default=2, help="workers for --per-sample-aug")
    parser.add_argument("--no-eval", action="store_true", help="throughput only")
    parser.add_argument(
        "--random-init",
        action="store_true",
        help="no training: evaluate the freshly initialised encoder (the floor a run must beat)",
    )
    parser.add_argument(
        "--group-views",
        choices=("auto", "on", "off"),
        default="auto",
        help="same-size views in one backbone call (methods.base.forward_grouped): auto groups "
        "on accelerators only; on / off force it",
    )
    parser.add_argument("--out", default="runs/bench-track-a")
    return parser.parse_args(argv)


#: Out of reach: the budget ends the run.
MAX_EPOCHS = 10_000


def run_config(args: argparse.Namespace):
    if args.config:
        return recipe_config(args)
    if args.budget is None:
        args.budget = 900.0
    return build_config(
        {
            "data": {"name": "cifar10"},
            "backbone": {"name": "resnet18_cifar", "width": args.width},
            "method": {"name": args.method},
            "views": {"size": 32},
            "optim": {
                "name": args.optimizer,
                "lr": args.lr,
                "weight_decay": args.weight_decay,
                "batch_size": args.batch_size,
                "warmup_epochs": args.warmup_epochs,
            },
            "trainer": {
                "max_epochs": MAX_EPOCHS,
                "max_time": args.budget,
                "threads": args.threads,
                "progress_bar": False,
            },
            "monitor": {"every_n_epochs": 10**6},
            "seed": args.seed,
            "out": args.out,
        }
    )


def recipe_config(args: argparse.Namespace):
    """A shipped recipe under the track's terms (its own budget unless --budget is given)."""
    data = load_yaml(args.config)
    trainer = data.setdefault("trainer", {})
    if args.budget is not None:
        trainer["max_time"] = args.budget
    trainer.update({"max_epochs": MAX_EPOCHS, "threads": args.threads, "progress_bar": False})
    data.setdefault("monitor", {})["every_n_epochs"] = 10**6
    data.update({"seed": args.seed, "out": args.out})
    config = build_config(data, source=args.config)
    if config.data.name != "cifar10":
        raise SystemExit(f"{args.config}: track A trains on cifar10, not {config.data.name}")
    args.method, args.width = config.method.name, config.backbone.width
    args.batch_size, args.budget = config.optim.batch_size, config.trainer.max_time
    args.optimizer, args.lr = config.optim.name, config.optim.lr
    args.weight_decay, args.warmup_epochs = config.optim.weight_decay, config.optim.warmup_epochs
    return config


class PerSampleViews(torch.utils.data.Dataset):
    """The baseline: each worker makes each sample's views with torchvision v2, one at a time."""

    def __init__(self, images: torch.Tensor, pipelines: list) -> None:
        self.images, self.pipelines = images, pipelines

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        image = self.images[index]
        return [pipeline(image) for pipeline in self.pipelines], index


def _collate(items):
    views = [torch.stack(v) for v in zip(*(item[0] for item in items), strict=True)]
    return {
        "views": views,
        "index": torch.tensor([item[1] for item in items]),
        "label": torch.full((len(items),), -1),
    }


def _worker_init(_):
    torch.set_num_threads(1)


def per_sample_loader(train, views, args) -> DataLoader:
    from augment import torchvision_pipeline

    pipelines = [torchvision_pipeline(spec, views.mean, views.std) for spec in views.specs]
    dataset = PerSampleViews(torch.from_numpy(train.samples), pipelines)
    return DataLoader(
        dataset,
        batch_size=args.batch_size,
        shuffle=True,
        drop_last=True,
        collate_fn=_collate,
        num_workers=args.workers,
        persistent_workers=args.workers > 0,
        worker_init_fn=_worker_init,
        generator=torch.Generator().manual_seed(args.seed),
    )


def flops_per_step(method, batch_views) -> float:
    """Training FLOPs of one step (forward + backward), counted by torch's FLOP counter."""
    with FlopCounterMode(display=False) as counter:
        out = method(batch_views, {})
        out["loss"].backward()
    method.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def random_init_floor(args, config, train, test, ceiling: float) -> dict:
    """The same evaluation on the encoder at initialisation (seeded), recorded as its own line."""
    torch.manual_seed(args.seed)
    _, method, _ = build_components(config, train)
    metrics, _ = final_metrics(config, method.backbone, train, test)
    record = {
        "track": "A",
        "dataset": "cifar10",
        "eval_split": "test (10,000)",
        "backbone": config.backbone.name,
        "backbone_kwargs": config.backbone.kwargs,
        "width": config.backbone.width,
        "method": "random_init",
        "recipe": args.config,
        "steps": 0,
        "epochs_done": 0.0,
        "matmul_ceiling_gflops": round(ceiling, 2),
        "seed": args.seed,
        **{key: metrics[key] for key in ("knn_top1", "linear_top1", "rankme")},
        "protocol": metrics["protocol"],
    }
    return _save(record)


def _save(record: dict) -> dict:
    """Add the machine, code and memory fields, append the line to track_a.jsonl, print it."""
    record.update(environment())
    record["peak_rss_mb"] = round(peak_rss_mb(), 1)
    record["peak_rss_children_mb"] = round(peak_rss_mb(children=True), 1)
    path = append_result("track_a", record)
    print({k: v for k, v in record.items() if k != "protocol"})
    print(f"appended to {path}")
    return record


def main(argv=None) -> dict:
    args = parse_args(argv)
    if not data_available():
        raise SystemExit("track A needs CIFAR-10: set LABELLESS_DATA to the shared data folder")
    torch.set_num_threads(args.threads)
    ceiling = matmul_ceiling_gflops()
    splits = load_dataset("cifar10")
    train, test = splits.train, splits.test
    config = run_config(args)
    if args.random_init:
        return random_init_floor(args, config, train, test, ceiling)
    _, probe_method, views = build_components(config, train)
    probe_batch = next(iter(train_loader(train, args.batch_size)))
    flops = flops_per_step(probe_method, views(probe_batch["inputs"]))
    del probe_method
    _, method, views = build_components(config, train)  # fresh weights for the run
    if args.group_views != "auto":
        set_view_grouping(method, args.group_views == "on")
    loader = (
        per_sample_loader(train, views, args)
        if args.per_sample_aug
        else train_loader(train, args.batch_size, seed=args.seed)
    )
    steps_per_epoch = len(train) // args.batch_size
    run_dir = Path(args.out)
    run_dir.mkdir(parents=True, exist_ok=True)
    throughput = Throughput()
    trainer = build_trainer(config.trainer, run_dir, [throughput, RankMeMonitor()])
    module = SSLModule(
        method,
        views,
        optim=config.optim.model_dump(),
        seed=args.seed,
        budget_seconds=config.trainer.max_time,  # schedules fitted to the budget
    )
    trainer.fit(module, loader)
    schedule = module.clock.summary()
    save_encoder(method.backbone, run_dir)  # for `bench/track_b.py --init RUN_DIR`

    ceiling = max(ceiling, matmul_ceiling_gflops())  # measured before and after training
    achieved = flops * throughput.steps / max(throughput.seconds, 1e-9) / 1e9
    record = {
        "track": "A",
        "dataset": "cifar10",
        "train_split": "train (50,000, labels unused)",
        "eval_split": "test (10,000)",
        "backbone": config.backbone.name,
        "backbone_kwargs": config.backbone.kwargs,
        "width": args.width,
        "recipe": args.config,
        "method_kwargs": config.method.kwargs,
        "method": args.method,
        "batch_size": args.batch_size,
        "optimizer": args.optimizer,
        "lr": args.lr,
        "budget_seconds": args.budget,
        "warmup_epochs": args.warmup_epochs,
        "epochs_estimated": round((schedule["estimated_total_steps"] or 0) / steps_per_epoch, 2),
        "schedule": schedule,
        "epochs_done": throughput.steps / steps_per_epoch,
        "steps": throughput.steps,
        "wall_seconds": round(throughput.seconds, 1),
        "images_per_second": round(throughput.samples_per_second, 1),
        "augmentation": (
            f"per-sample torchvision v2 in {args.workers} workers"
            if args.per_sample_aug
            else "batched tensor ops (labelless)"
        ),
        "flops_per_step": flops,
        "achieved_gflops": round(achieved, 2),
        "matmul_ceiling_gflops": round(ceiling, 2),
        "mfu": round(achieved / ceiling, 4),
        "channels_last": config.backbone.name.startswith("resnet"),
        "precision": "float32",
        "seed": args.seed,
        "group_views": args.group_views,
    }
    if not args.no_eval:
        metrics, _ = final_metrics(config, method.backbone, train, test)
        record.update({key: metrics[key] for key in ("knn_top1", "linear_top1", "rankme")})
        record["protocol"] = metrics["protocol"]
    return _save(record)


if __name__ == "__main__":
    main()
