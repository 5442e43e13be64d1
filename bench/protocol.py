"""Evaluation protocol: how much kNN / linear-probe accuracy moves when an encoder is fed at
another size or normalisation than it was pretrained with.

After Corley et al. 2024, "Revisiting pre-trained remote sensing model benchmarks: resizing and
normalization matters": the same frozen encoder, the same train/test images, three input
protocols: native (the encoder's pretraining size and statistics, from encoder.json), resized to
another size (default 64 px instead of 32), and normalised with ImageNet's statistics instead of
the pretraining data's.

    LABELLESS_DATA=../shared/data .venv/bin/python bench/protocol.py --run runs/cifar10-simclr
    LABELLESS_DATA=../shared/data .venv/bin/python bench/protocol.py   # pretrains ~60 s first

Without a run directory, a tiny SimCLR (ResNet-18-CIFAR x0.25, configs/cifar10/simclr.yaml) is
pretrained for ``--pretrain-seconds`` on the training subset. Evaluation uses a seeded subset of
``--train-samples`` train and ``--test-samples`` test images (the same for every protocol).
Without CIFAR-10 under $LABELLESS_DATA the script says so and exits 0.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import append_result, data_available, environment, peak_rss_mb

from labelless import api
from labelless.backbones import load_encoder
from labelless.config import load_yaml
from labelless.data import DataSplits, from_arrays, load_dataset
from labelless.encoders import resolve_preprocessing
from labelless.evaluate import embed, knn_accuracy, linear_probe

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "cifar10" / "simclr.yaml"


def subset(dataset, count: int, seed: int):
    if count >= len(dataset):
        return dataset
    rows = np.sort(np.random.default_rng(seed).choice(len(dataset), count, replace=False))
    names = dataset.meta.get("class_names")
    part = from_arrays(
        dataset.samples[rows], dataset.labels[rows], name=dataset.name, class_names=names
    )
    part.meta.update(mean=dataset.meta["mean"], std=dataset.meta["std"])
    return part


def pretrain_tiny(splits: DataSplits, seconds: float, out: Path, threads: int) -> Path:
    config = load_yaml(CONFIG)
    config["trainer"].update(max_time=seconds, progress_bar=False, threads=threads)
    config["monitor"]["every_n_epochs"] = 10_000
    result = api.pretrain(splits, config=config, out=str(out))
    return result.run_dir


def evaluate(encoder, train, test, protocol: dict, seed: int) -> dict:
    meta = encoder.meta
    pre = resolve_preprocessing(
        meta,
        data_mean=train.meta["mean"],
        data_std=train.meta["std"],
        input_size=protocol.get("input_size"),
        normalize=protocol.get("normalize"),
    )
    start = time.perf_counter()
    options = {"input_size": pre.input_size, "mean": pre.mean, "std": pre.std}
    train_z, test_z = (
        embed(encoder, train.samples, **options),
        embed(encoder, test.samples, **options),
    )
    embed_seconds = time.perf_counter() - start
    knn = knn_accuracy(train_z, train.labels, test_z, test.labels, k=200, temperature=0.1)
    probe = linear_probe(train_z, train.labels, test_z, test.labels, seed=seed)
    return {
        "protocol": protocol["name"],
        "preprocessing": pre.protocol(),
        "knn_top1": knn,
        "linear_top1": probe.accuracy,
        "linear_weight_decay": probe.weight_decay,
        "embed_seconds": round(embed_seconds, 1),
        "seconds": round(time.perf_counter() - start, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", help="run directory of an encoder pretrained on CIFAR-10")
    parser.add_argument("--pretrain-seconds", type=float, default=60.0)
    parser.add_argument("--train-samples", type=int, default=10_000)
    parser.add_argument("--test-samples", type=int, default=2_000)
    parser.add_argument("--resize", type=int, default=64, help="the mismatched input size")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-save", action="store_true", help="print only, no results line")
    args = parser.parse_args()
    if not data_available():
        print("CIFAR-10 not found under $LABELLESS_DATA (cifar10_jpeg/cifar10_jpeg.npz): skipped")
        return 0
    torch.set_num_threads(args.threads)
    load_average = os.getloadavg()[0]
    full = load_dataset("cifar10")
    train = subset(full.train, args.train_samples, args.seed)
    test = subset(full.test, args.test_samples, args.seed + 1)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        if args.run:
            run_dir = Path(args.run)
        else:
            run_dir = pretrain_tiny(
                DataSplits(train, test), args.pretrain_seconds, Path(scratch) / "run", args.threads
            )
        encoder = load_encoder(run_dir)
        encoder_source = str(run_dir) if args.run else f"tiny SimCLR, {args.pretrain_seconds:g} s"
        protocols = [
            {"name": "native"},
            {"name": f"resized to {args.resize} px", "input_size": args.resize},
            {"name": "ImageNet normalisation", "normalize": "imagenet"},
        ]
        rows = [evaluate(encoder, train, test, protocol, args.seed) for protocol in protocols]
    native = rows[0]
    for row in rows:
        row["knn_delta"] = row["knn_top1"] - native["knn_top1"]
        row["linear_delta"] = row["linear_top1"] - native["linear_top1"]
        print(
            f"{row['protocol']:<26} kNN {row['knn_top1']:.4f} ({row['knn_delta']:+.4f})  "
            f"linear {row['linear_top1']:.4f} ({row['linear_delta']:+.4f})  {row['seconds']} s"
        )
    record = {
        "bench": "protocol",
        **environment(),
        "encoder": encoder_source,
        "encoder_meta": encoder.meta.to_dict(),
        "train_samples": len(train),
        "test_samples": len(test),
        "knn": {"k": 200, "temperature": 0.1},
        "results": rows,
        "wall_seconds": round(time.perf_counter() - start, 1),
        "load_average_1min_start": round(load_average, 2),
        "load_average_1min_end": round(os.getloadavg()[0], 2),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    if not args.no_save:
        print(f"appended to {append_result('protocol', record)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
