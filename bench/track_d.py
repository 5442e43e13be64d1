"""Track D: self-supervised pretraining on tables, evaluated at 100% and 1% of the labels.

Per dataset (Adult, California housing, Covertype 100k from ``$LABELLESS_DATA``), per method:
pretrain the encoder on the unlabelled training rows with a plain PyTorch loop over the method
(``out = method(views(x, generator=g), batch); out["loss"].backward()``) for ``--budget``
seconds (or ``--epochs``), then evaluate it with ``labelless.evaluate.tabular.evaluate_table``:
a linear and an MLP head on the frozen embeddings and fine-tuning encoder + linear head, at
100% of the training labels and at 1% (a stratified draw per seed). Baselines on the same rows:
HistGradientBoosting and the same MLP encoder trained from scratch. Accuracy for
classification, RMSE (dollars) for California housing; final values, test split never used to
choose anything.

    LABELLESS_DATA=../shared/data OMP_NUM_THREADS=1 .venv/bin/python bench/track_d.py
    LABELLESS_DATA=../shared/data .venv/bin/python bench/track_d.py --datasets adult \
        --budget 20 --no-record  # a quick look, nothing recorded
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import append_result, environment, peak_rss_mb

from labelless.augment.tabular import tabular_views
from labelless.backbones import create_backbone
from labelless.data import load_dataset
from labelless.evaluate.tabular import evaluate_table
from labelless.methods import create_method

DATASETS = ("adult", "california_housing", "covertype")
# method -> (backbone, backbone options, method options)
SETUPS = {
    "scarf": ("mlp", {}, {"temperature": 0.2}),
    "vime": ("mlp", {}, {}),
    "tjepa": ("ft_transformer", {"reg_tokens": 2, "depth": 2}, {}),
}


def build(method: str, train, seed: int):
    backbone_name, backbone_options, method_options = SETUPS[method]
    torch.manual_seed(seed)
    backbone = create_backbone(
        backbone_name,
        in_channels=train.samples.shape[1],
        num_numeric=len(train.meta["numeric"]),
        cardinalities=train.meta["cardinalities"],
        **backbone_options,
    )
    return create_method(method, backbone, **method_options)


def pretrain(method, train, *, budget_s: float, epochs: int, batch_size: int, lr: float, seed: int):
    """A plain loop: AdamW, shuffled mini-batches, views made on the batch; stops at ``epochs``
    or when ``budget_s`` seconds have passed (the EMA schedule assumes ``epochs``)."""
    views = tabular_views(method.default_views, reference=train.samples, meta=train.meta, seed=seed)
    optimiser = torch.optim.AdamW(method.parameters(), lr=lr, weight_decay=1e-5)
    rows = torch.from_numpy(train.samples)
    generator = torch.Generator().manual_seed(seed)
    steps_per_epoch = len(rows) // batch_size
    total, step, losses = epochs * steps_per_epoch, 0, []
    start = time.perf_counter()
    method.train()
    for _ in range(epochs):
        order = torch.randperm(len(rows), generator=generator)
        for i in range(steps_per_epoch):
            index = order[i * batch_size : (i + 1) * batch_size]
            out = method(views(rows[index], generator=generator), {"index": index})
            optimiser.zero_grad(set_to_none=True)
            out["loss"].backward()
            optimiser.step()
            step += 1
            method.on_step_end(step / total)
            losses.append(float(out["loss"].detach()))
        if time.perf_counter() - start > budget_s:
            break
    seconds = time.perf_counter() - start
    return {
        "steps": step,
        "epochs_done": round(step / steps_per_epoch, 2),
        "pretrain_seconds": round(seconds, 1),
        "samples_per_s": round(step * batch_size / seconds, 1),
        "loss_first": round(float(np.mean(losses[:20])), 4),
        "loss_last": round(float(np.mean(losses[-20:])), 4),
    }


def summarise(results: list[dict]) -> dict:
    """Mean and std per (protocol, fraction) over the seeds."""
    table: dict[str, dict] = {}
    for protocol in dict.fromkeys(r["protocol"] for r in results):
        for fraction in dict.fromkeys(r["fraction"] for r in results):
            values = [
                r["value"]
                for r in results
                if r["protocol"] == protocol and r["fraction"] == fraction
            ]
            if values:
                table[f"{protocol}@{fraction:g}"] = {
                    "mean": round(float(np.mean(values)), 4),
                    "std": round(float(np.std(values)), 4),
                    "n": len(values),
                }
    return table


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--methods", nargs="+", default=["scarf"], choices=list(SETUPS))
    parser.add_argument("--budget", type=float, default=150.0, help="pretraining seconds")
    parser.add_argument("--epochs", type=int, default=100, help="pretraining epochs at most")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="1%% draws")
    parser.add_argument("--max-steps", type=int, default=3000, help="supervised steps at most")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument(
        "--repeat-full", action="store_true", help="repeat the 100%% runs for every seed too"
    )
    parser.add_argument("--no-record", action="store_true", help="do not append to results")
    return parser.parse_args(argv)


def run_dataset(name: str, args: argparse.Namespace) -> list[dict]:
    splits = load_dataset(name)
    train, test = splits.train, splits.test
    lines = []
    common = {"dataset": name, "num_train": len(train), "num_test": len(test), **environment()}
    jobs = [] if args.no_baselines else [("baselines", None)]
    jobs += [(method, method) for method in args.methods]
    for label, method_name in jobs:
        start = time.perf_counter()
        if method_name is None:  # the MLP from scratch and gradient-boosted trees
            encoder = build("scarf", train, args.seeds[0]).backbone
            protocols, info = ("scratch", "gbdt"), {}
        else:
            method = build(method_name, train, args.seeds[0])
            info = pretrain(
                method,
                train,
                budget_s=args.budget,
                epochs=args.epochs,
                batch_size=args.batch_size,
                lr=args.lr,
                seed=args.seeds[0],
            )
            encoder, protocols = method.backbone, ("linear", "mlp", "finetune")
        results = evaluate_table(
            encoder,
            train,
            test,
            fractions=(1.0, 0.01),
            seeds=args.seeds,
            protocols=protocols,
            max_steps=args.max_steps,
            repeat_full=args.repeat_full,
        )
        line = {
            **common,
            "method": label,
            "backbone": encoder.meta.architecture,
            "backbone_kwargs": encoder.meta.kwargs if method_name else SETUPS["scarf"][1],
            "batch_size": args.batch_size,
            "lr": args.lr,
            **info,
            "method_kwargs": SETUPS[label][2] if method_name else {},
            "protocol": "frozen linear / MLP heads (lr 1e-3, wd 1e-4); finetune: encoder + MLP "
            "head, lr 1e-4; scratch: same encoder + MLP head from init, lr 1e-3; AdamW, epochs by "
            "early stopping (val accuracy) on 20% of the labelled train rows, then refit on all "
            "of them; 1% = stratified seeded draw per seed; test scored once at the end",
            "repeat_full": args.repeat_full,
            "summary": summarise(results),
            "results": results,
            "seconds": round(time.perf_counter() - start, 1),
            "peak_rss_mb": round(peak_rss_mb(), 1),
        }
        print(name, label, info, line["summary"], f"{line['seconds']} s", flush=True)
        lines.append(line)
        if not args.no_record:
            append_result("track_d", line)
    return lines


def main(argv: Sequence[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if not os.environ.get("LABELLESS_DATA"):
        print("set LABELLESS_DATA to the folder with adult/, california_housing/, ...")
    lines = []
    for name in args.datasets:
        lines += run_dataset(name, args)
    return lines


if __name__ == "__main__":
    main()
