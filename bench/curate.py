"""Curation benchmark (issue 21): is a chosen subset better to pretrain on than a random one?

Part 1, a redundant, imbalanced, contaminated pool built from data we have: CIFAR-10 train with
``--base`` originals per class, two classes (airplane, automobile) heavily over-represented by
near-duplicates of their originals (a shift of up to 2 px, brightness x0.9-1.1, pixel noise),
and MNIST digits as out-of-domain images (upscaled to 32 px, grey in three channels). A proxy
encoder is pretrained on the whole pool; its embeddings choose ``--keep`` samples by each
strategy (``dedup`` first, then ``balanced`` k-means sampling; ``kcenter``; ``typical``), and a
seeded random subset of the same size is the baseline; ``oracle`` (a random subset of the clean
CIFAR originals, chosen with the pool's labels) is the ceiling no label-free choice can pass.
Every subset is pretrained for the same number of steps (same size, same epochs, same recipe
and seed).

Part 2, the clean pool: 50% of CIFAR-10 train chosen by SAS (Joshi & Mirzasoleiman 2023) from
the proxy's augmented-view embeddings vs a random 50%, same steps.

Scoring (labels used only here): kNN top-1 (k=200, T=0.1) of each encoder on CIFAR-10 test with
the clean CIFAR-10 train as the bank; each subset's class shares, out-of-domain share, planted
duplicates kept, Vendi score of its proxy embeddings. The accuracies do not depend on the
machine's load (steps, not seconds, are the budget); the times do.

    LABELLESS_DATA=../shared/data .venv/bin/python bench/curate.py            # ~30 min
    LABELLESS_DATA=../shared/data .venv/bin/python bench/curate.py --quick    # ~5 min, smoke
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import append_result, data_available, environment

from labelless import api
from labelless.config import load_yaml
from labelless.curate import (
    balanced_kmeans,
    k_center_greedy,
    near_duplicates,
    sas_subset,
    typical_subset,
    vendi_score,
    view_embeddings,
)
from labelless.curate.kmeans import kmeans
from labelless.data import load_dataset
from labelless.data.arrays import from_arrays
from labelless.data.dataset import DataSplits
from labelless.evaluate.embed import embed
from labelless.evaluate.knn import knn_evaluate

RECIPE = Path(__file__).resolve().parents[1] / "configs" / "cifar10" / "simclr.yaml"
OVER = (0, 1)  # airplane, automobile: the over-represented classes
OOD = 10  # the label the out-of-domain images carry in the pool (never scored)
#: Not curation strategies: the baseline, and the ceiling that knows which rows are clean.
REFERENCES = ("random", "oracle")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=int, default=1500, help="CIFAR originals per class")
    parser.add_argument(
        "--copies", type=int, default=5, help="near-duplicates per original of OVER"
    )
    parser.add_argument("--ood", type=int, default=6000, help="MNIST images in the pool")
    parser.add_argument("--keep", type=int, default=10_000, help="samples a subset keeps")
    parser.add_argument("--epochs", type=int, default=8, help="pretraining epochs per subset")
    parser.add_argument("--proxy-epochs", type=int, default=3, help="proxy pretraining epochs")
    parser.add_argument("--clean-epochs", type=int, default=3, help="part 2 epochs on 25k")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--clusters", type=int, default=100)
    parser.add_argument("--dedup-threshold", type=float, default=0.97)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/bench-curate")
    parser.add_argument("--skip-clean", action="store_true", help="part 1 only")
    parser.add_argument(
        "--strategies", default="random,balanced,kcenter,typical", help="part 1's, comma-separated"
    )
    parser.add_argument("--proxy", help="part 1: an earlier proxy run directory to reuse")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.base, args.copies, args.ood, args.keep = 200, 3, 500, 1000
        args.epochs, args.proxy_epochs, args.clean_epochs, args.clusters = 1, 1, 1, 20
    return args


def _mnist_as_cifar(images: np.ndarray) -> np.ndarray:
    """MNIST ``uint8 [N, 1, 28, 28]`` as ``[N, 3, 32, 32]`` (nearest upscale, grey x3)."""
    x = torch.from_numpy(images).float()
    x = torch.nn.functional.interpolate(x, size=(32, 32), mode="nearest")
    return x.round().clamp(0, 255).to(torch.uint8).expand(-1, 3, -1, -1).contiguous().numpy()


def near_copies(images: np.ndarray, copies: int, rng: np.random.Generator) -> np.ndarray:
    """``copies`` near-duplicates of each image: rolled by up to 2 px, brightness x0.9-1.1,
    Gaussian pixel noise of sd 4 (of 255); ``[N * copies, C, H, W]`` in image order."""
    source = np.repeat(images, copies, axis=0).astype(np.float32)
    shifts = rng.integers(-2, 3, size=(len(source), 2))
    out = np.empty_like(source)
    for dy in range(-2, 3):  # 25 shift groups, each one vectorised roll
        for dx in range(-2, 3):
            rows = np.nonzero((shifts[:, 0] == dy) & (shifts[:, 1] == dx))[0]
            out[rows] = np.roll(source[rows], (dy, dx), axis=(2, 3))
    out *= rng.uniform(0.9, 1.1, size=(len(out), 1, 1, 1)).astype(np.float32)
    out += rng.normal(0, 4, size=out.shape).astype(np.float32)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def build_pool(args, cifar: DataSplits, mnist: DataSplits) -> dict:
    """The pool's images, labels (OOD for MNIST), and which rows are planted copies."""
    rng = np.random.default_rng(args.seed)
    x, y = cifar.train.samples, np.asarray(cifar.train.labels)
    parts, labels, planted = [], [], []
    for c in range(10):
        rows = rng.permutation(np.nonzero(y == c)[0])[: args.base]
        parts.append(x[rows])
        labels.append(np.full(len(rows), c))
        planted.append(np.zeros(len(rows), bool))
        if c in OVER:
            parts.append(near_copies(x[rows], args.copies, rng))
            labels.append(np.full(len(rows) * args.copies, c))
            planted.append(np.ones(len(rows) * args.copies, bool))
    ood_rows = rng.permutation(len(mnist.train))[: args.ood]
    parts.append(_mnist_as_cifar(mnist.train.samples[ood_rows]))
    labels.append(np.full(len(ood_rows), OOD))
    planted.append(np.zeros(len(ood_rows), bool))
    return {
        "images": np.concatenate(parts),
        "labels": np.concatenate(labels),
        "planted": np.concatenate(planted),
    }


def pretrain(images: np.ndarray, labels: np.ndarray, epochs: int, args, out: Path):
    """SimCLR (the CIFAR-10 recipe at ``args.width``) on ``images`` for ``epochs``; the encoder."""
    config = load_yaml(RECIPE)
    config["backbone"]["width"] = args.width
    config["trainer"].update(max_epochs=epochs, max_time=None, progress_bar=False)
    config["monitor"]["every_n_epochs"] = 10_000
    config["seed"] = args.seed
    train = from_arrays(images, np.where(labels == OOD, -1, labels), name="pool")
    splits = DataSplits(train=train, test=None)  # scored by knn_score, with the clean bank
    started = time.perf_counter()
    result = api.pretrain(splits, config=config, out=str(out), overwrite=True)
    return result.encoder, time.perf_counter() - started


def knn_score(encoder, cifar: DataSplits) -> float:
    bank = embed(encoder, cifar.train.samples, batch_size=1024)
    queries = embed(encoder, cifar.test.samples, batch_size=1024)
    accuracy, _ = knn_evaluate(bank, cifar.train.labels, queries, cifar.test.labels, k=200)
    return round(float(accuracy), 4)


def describe(rows: np.ndarray, pool: dict, z: torch.Tensor) -> dict:
    labels = pool["labels"][rows]
    shares = np.bincount(labels, minlength=OOD + 1) / len(rows)
    return {
        "size": len(rows),
        "class_shares": [round(float(s), 4) for s in shares[:OOD]],
        "ood_share": round(float(shares[OOD]), 4),
        "planted_copies_kept": int(pool["planted"][rows].sum()),
        "vendi": round(vendi_score(z[torch.as_tensor(rows)]), 2),
    }


def choose(strategy: str, z: torch.Tensor, pool: dict, args) -> tuple[np.ndarray, dict]:
    """Indices of the pool ``strategy`` keeps, and what the choice found on the way."""
    if strategy == "random":
        rng = np.random.default_rng(args.seed + 1)
        return np.sort(rng.choice(len(z), size=args.keep, replace=False)), {}
    if strategy == "oracle":  # the ceiling: random originals, chosen with the pool's labels
        clean = np.nonzero(~pool["planted"] & (pool["labels"] != OOD))[0]
        rng = np.random.default_rng(args.seed + 1)
        return np.sort(rng.choice(clean, size=min(args.keep, len(clean)), replace=False)), {}
    groups = near_duplicates(z, args.dedup_threshold, seed=args.seed)
    survivors = np.nonzero(groups.keep)[0]
    dropped = np.setdiff1d(np.arange(len(z)), survivors)
    planted = pool["planted"]
    found = {
        "dedup_dropped": len(dropped),
        "dedup_precision": round(float(planted[dropped].mean()), 4) if len(dropped) else None,
        "dedup_recall": round(float(planted[dropped].sum() / planted.sum()), 4),
    }
    keep, zs = min(args.keep, len(survivors)), z[torch.as_tensor(survivors)]
    if strategy == "balanced":
        picked, _ = balanced_kmeans(zs, keep, args.clusters, seed=args.seed)
    elif strategy == "kcenter":
        picked, _ = k_center_greedy(zs, keep, seed=args.seed)
    elif strategy == "typical":
        picked, _, _ = typical_subset(zs, keep, args.clusters, seed=args.seed)
    else:
        raise ValueError(strategy)
    return survivors[np.asarray(picked)], found


def part_one(args, cifar, mnist, out: Path) -> list[dict]:
    pool = build_pool(args, cifar, mnist)
    print(f"pool: {len(pool['images'])} images ({pool['planted'].sum()} planted copies)")
    if args.proxy:  # reuse: the same pool and seed give the same proxy
        from labelless.encoders import load_any_encoder

        loaded = load_any_encoder(args.proxy)
        proxy, proxy_s = (loaded[0] if isinstance(loaded, tuple) else loaded), 0.0
    else:
        proxy, proxy_s = pretrain(
            pool["images"], pool["labels"], args.proxy_epochs, args, out / "proxy"
        )
    z = embed(proxy, pool["images"], batch_size=1024)
    records = []
    for strategy in args.strategies.split(","):
        started = time.perf_counter()
        rows, found = choose(strategy, z, pool, args)
        choose_s = time.perf_counter() - started
        epochs = max(1, round(args.epochs * args.keep / len(rows)))  # same steps if smaller
        encoder, train_s = pretrain(
            pool["images"][rows], pool["labels"][rows], epochs, args, out / strategy
        )
        record = {
            "part": "redundant pool",
            "strategy": strategy,
            "pool": len(pool["images"]),
            "epochs": epochs,
            "proxy_epochs": args.proxy_epochs,
            "dedup_threshold": args.dedup_threshold if strategy not in REFERENCES else None,
            "proxy_seconds": round(proxy_s, 1),
            "choose_seconds": round(choose_s, 1),
            "train_seconds": round(train_s, 1),
            "knn_top1": knn_score(encoder, cifar),
            **describe(rows, pool, z),
            **found,
        }
        save(record, args)
        records.append(record)
    return records


def part_two(args, cifar, out: Path) -> list[dict]:
    """SAS vs random at half of clean CIFAR-10 train (``--quick``: of its first 4000 rows), the
    proxy a short SimCLR on all of it."""
    images, labels = cifar.train.samples, np.asarray(cifar.train.labels)
    if args.quick:
        images, labels = images[:4000], labels[:4000]
    n, keep = len(images), len(images) // 2
    proxy, _ = pretrain(images, labels, args.proxy_epochs, args, out / "proxy2")
    from labelless.augment.views import view_recipe  # the recipe's two views, batched

    meta = proxy.meta
    pipeline = view_recipe("simclr", size=meta.input_size, mean=meta.mean, std=meta.std)
    views = view_embeddings(proxy, images, pipeline, seed=args.seed)
    latent = kmeans(embed(proxy, images, batch_size=1024), 10, seed=args.seed)
    chosen = {
        "sas": sas_subset(views, latent.assignment, keep).numpy(),
        "random": np.sort(np.random.default_rng(args.seed + 1).choice(n, keep, replace=False)),
    }
    records = []
    for strategy, rows in chosen.items():
        encoder, train_s = pretrain(
            images[rows], labels[rows], args.clean_epochs, args, out / f"clean-{strategy}"
        )
        shares = np.bincount(labels[rows], minlength=10) / len(rows)
        record = {
            "part": "clean pool, 50%",
            "strategy": strategy,
            "pool": n,
            "size": len(rows),
            "epochs": args.clean_epochs,
            "train_seconds": round(train_s, 1),
            "knn_top1": knn_score(encoder, cifar),
            "class_shares": [round(float(s), 4) for s in shares],
        }
        save(record, args)
        records.append(record)
    return records


def save(record: dict, args) -> None:
    """Print ``record`` and append it to bench/results/curate.jsonl (not for ``--quick``)."""
    print(record, flush=True)
    if not args.quick:
        append_result("curate", {**environment(), **record, "width": args.width})


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    if not data_available():
        raise SystemExit("set LABELLESS_DATA to the shared data folder (CIFAR-10 and MNIST)")
    torch.set_num_threads(2)
    cifar, mnist = load_dataset("cifar10"), load_dataset("mnist")
    out = Path(args.out)
    records = part_one(args, cifar, mnist, out)
    if not args.skip_clean:
        records += part_two(args, cifar, out)
    return records


if __name__ == "__main__":
    main()
