"""Label-free model selection: does RankMe rank runs the way kNN accuracy does?

A sweep of short SimCLR runs on CIFAR-10 (ResNet-18-CIFAR x0.25, 32 px, the track-A recipe
``configs/cifar10/simclr.yaml``) that differ in one hyperparameter at a time (temperature,
learning rate, projector width, weight decay); each run trains for ``--budget`` seconds on a
``--train``-image subset of the training split with the schedule fitted to the budget. For every
run we record RankMe (Garrido et al. 2023, "RankMe: Assessing the Downstream Performance of
Pretrained Self-Supervised Representations by Their Rank"; no labels) of the final encoder's
embeddings of training images, and its kNN top-1 on the first ``--test`` test images (k=200,
T=0.1); then the Spearman and Kendall rank correlations between the two over the sweep, and
whether the run RankMe picks is the run kNN picks. One JSON line per run and one summary line
go to ``bench/results/rankme_select.jsonl``.

    LABELLESS_DATA=../shared/data .venv/bin/python bench/rankme_select.py             # 8 runs
    LABELLESS_DATA=../shared/data .venv/bin/python bench/rankme_select.py --budget 20 --no-save
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import append_result, data_available, environment

from labelless import api
from labelless.config import load_yaml
from labelless.data import DataSplits, load_dataset
from labelless.evaluate import embed, knn_accuracy, rankme

RECIPE = Path(__file__).resolve().parents[1] / "configs" / "cifar10" / "simclr.yaml"

# One change at a time from the recipe (temperature 0.2, LARS lr 1.0, projector 2048-256,
# weight decay 1e-5): settings known to help, hurt or barely matter.
SWEEP: dict[str, list[str]] = {
    "recipe": [],
    "temperature_0.05": ["method.kwargs.temperature=0.05"],
    "temperature_1.0": ["method.kwargs.temperature=1.0"],
    "lr_0.1": ["optim.lr=0.1"],
    "lr_4.0": ["optim.lr=4.0"],
    "proj_dim_16": ["method.kwargs.proj_dim=16"],
    "weight_decay_1e-3": ["optim.weight_decay=0.001"],
    "no_colour": ["views.overrides.jitter_p=0.0", "views.overrides.grayscale_p=0.0"],
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=60.0, help="training seconds per run")
    parser.add_argument("--train", type=int, default=20_000, help="training images used")
    parser.add_argument("--test", type=int, default=5_000, help="test images for kNN")
    parser.add_argument("--runs", nargs="+", default=None, help=f"default: all of {list(SWEEP)}")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-save", action="store_true")
    return parser.parse_args(argv)


def subset(splits: DataSplits, train: int, test: int, seed: int = 0) -> DataSplits:
    """Seeded random ``train`` / ``test`` images (CIFAR-10's files are sorted by class)."""
    rng = np.random.default_rng(seed)

    def pick(dataset, count):
        return dataset.subset(np.sort(rng.choice(len(dataset), min(count, len(dataset)), False)))

    return DataSplits(pick(splits.train, train), pick(splits.test, test))


def run_one(name: str, sets: list[str], data: DataSplits, args, out: Path) -> dict:
    config = load_yaml(RECIPE)
    config["trainer"].update(max_time=args.budget, progress_bar=False, threads=args.threads)
    config["monitor"].update(every_n_epochs=10**6, rankme=False)
    start = time.perf_counter()
    result = api.pretrain(data, config=config, overrides=sets, out=str(out / name))
    train_images = data.train.sample_rows(10_000)
    with torch.inference_mode():
        z_train = embed(result.encoder, train_images)
        z_ref, z_test = (
            embed(result.encoder, data.train.samples),
            embed(result.encoder, data.test.samples),
        )
    knn = knn_accuracy(
        z_ref,
        torch.as_tensor(data.train.labels),
        z_test,
        torch.as_tensor(data.test.labels),
        k=200,
        temperature=0.1,
    )
    return {
        "run": name,
        "sets": sets,
        "rankme_train": round(rankme(z_train), 2),
        "knn_top1": round(knn, 4),
        "steps": result.metrics["training"]["steps"],
        "seconds": round(time.perf_counter() - start, 1),
    }


def main(argv=None) -> dict:
    args = parse_args(argv)
    if not data_available():
        raise SystemExit("CIFAR-10 not found: set LABELLESS_DATA=../shared/data")
    torch.set_num_threads(args.threads)
    names = args.runs or list(SWEEP)
    data = subset(load_dataset("cifar10"), args.train, args.test)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            row = run_one(name, SWEEP[name], data, args, Path(tmp))
            rows.append(row)
            print(
                f"{name}: RankMe {row['rankme_train']:.1f}, kNN {row['knn_top1']:.3f}", flush=True
            )
            if not args.no_save:
                append_result(
                    "rankme_select",
                    {
                        **environment(),
                        **row,
                        "budget_s": args.budget,
                        "load_average_1min": round(os.getloadavg()[0], 2),
                    },
                )
    r = np.array([row["rankme_train"] for row in rows])
    k = np.array([row["knn_top1"] for row in rows])
    summary = {
        "summary": True,
        "runs": len(rows),
        "spearman": round(float(stats.spearmanr(r, k).statistic), 3),
        "kendall": round(float(stats.kendalltau(r, k).statistic), 3),
        "rankme_pick": rows[int(r.argmax())]["run"],
        "knn_best": rows[int(k.argmax())]["run"],
        "knn_of_rankme_pick": float(k[r.argmax()]),
        "knn_best_value": float(k.max()),
        "budget_s": args.budget,
        "train_images": len(data.train),
        "test_images": len(data.test),
        "protocol": (
            "SimCLR CIFAR-10 recipe, one hyperparameter changed per run, budget-fitted schedule; "
            "RankMe on 10k train embeddings (no labels); kNN k=200 T=0.1 on the test subset"
        ),
    }
    print(summary)
    if not args.no_save:
        append_result("rankme_select", {**environment(), **summary})
    return summary


if __name__ == "__main__":
    main()
