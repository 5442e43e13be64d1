"""Evaluation speed: weighted kNN and the linear probe on 50,000 x 10,000 embeddings of dim 512.

Synthetic, class-structured Gaussian embeddings (10 classes; each sample is its class centre,
drawn once from N(0, s^2 I), plus N(0, I) noise), 50,000 train and 10,000 test, dimension 512,
float32, on ``--threads`` torch threads. Times, end to end from the embedding tensors:

- kNN: ``knn_accuracy`` (k=200, T=0.1, cosine, weighted votes; exact chunked torch search, or
  faiss when installed);
- linear probe: ``linear_probe`` with its defaults (standardised features, full-batch L-BFGS,
  weight decay chosen on a stratified 20% of train, refit on all train).

Each result line records wall and process-CPU seconds, the accuracies and the 1-minute load
average (other processes on the cores inflate wall time; CPU seconds / threads approximates the
wall time of a quiet machine when the work parallelises well).

    .venv/bin/python bench/eval.py                 # record to bench/results/eval.jsonl
    .venv/bin/python bench/eval.py --no-save --train 5000 --test 1000
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import append_result, environment, matmul_ceiling_gflops, peak_rss_mb

from labelless.evaluate import knn_accuracy, linear_probe
from labelless.evaluate.neighbours import load_faiss

TARGETS_S = {"knn": 5.0, "linear": 60.0}


def class_gaussians(
    num_train: int, num_test: int, dim: int, num_classes: int, spread: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(train_z, train_y, test_z, test_y): class centre ~ N(0, spread^2 I) plus N(0, I) noise."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(num_classes, dim, generator=generator) * spread

    def draw(count: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.randint(0, num_classes, (count,), generator=generator)
        return centres[labels] + torch.randn(count, dim, generator=generator), labels

    train_z, train_y = draw(num_train)
    test_z, test_y = draw(num_test)
    return train_z, train_y, test_z, test_y


def timed(run: Callable[[], object]) -> tuple[object, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = run()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=int, default=50_000)
    parser.add_argument("--test", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--spread", type=float, default=0.12, help="class-centre scale s")
    parser.add_argument("--k", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-save", action="store_true", help="do not append to results")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    data = class_gaussians(args.train, args.test, args.dim, args.classes, args.spread, args.seed)
    ceiling = matmul_ceiling_gflops()
    backend = "faiss" if load_faiss() is not None else "torch"
    knn_kwargs = {"k": args.k, "temperature": 0.1}
    runs = {
        "knn": lambda: knn_accuracy(*data, **knn_kwargs),
        "linear": lambda: linear_probe(*data, seed=args.seed),
    }
    records = []
    for name, run in runs.items():
        load_before = os.getloadavg()[0]
        result, wall, cpu = timed(run)
        protocol = (
            {"k": args.k, "temperature": 0.1, "similarity": "cosine", "backend": backend}
            if name == "knn"
            else {k: v for k, v in result.protocol.items() if k != "val_accuracies"}
        )
        record = {
            "bench": "eval",
            "protocol_name": name,
            "data": "synthetic class-structured Gaussians",
            "num_train": args.train,
            "num_test": args.test,
            "dim": args.dim,
            "num_classes": args.classes,
            "spread": args.spread,
            "seed": args.seed,
            "accuracy": result if name == "knn" else result.accuracy,
            "wall_s": round(wall, 3),
            "cpu_s": round(cpu, 3),
            "target_s": TARGETS_S[name],
            "meets_target": wall < TARGETS_S[name],
            "protocol": protocol,
            "load_average_1min_before": round(load_before, 2),
            "load_average_1min": round(os.getloadavg()[0], 2),
            "matmul_ceiling_gflops": round(ceiling, 1),
            "peak_rss_mb": round(peak_rss_mb(), 1),
            **environment(),
        }
        if name == "linear":
            record["weight_decay"] = result.weight_decay
            record["val_accuracy"] = result.val_accuracy
        records.append(record)
        print(
            f"{name:>6}: {wall:6.2f} s wall, {cpu:6.2f} s CPU, accuracy {record['accuracy']:.4f}, "
            f"target < {TARGETS_S[name]:.0f} s, load {record['load_average_1min']}",
            flush=True,
        )
        if not args.no_save:
            append_result("eval", record)
    return records


if __name__ == "__main__":
    main()
