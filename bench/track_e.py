"""Track E, time series: TS2Vec on the bundled UCR/UEA classification sets against 1-NN DTW, and
TS2Vec representations for ETTh1 forecasting (ridge at horizons 24, 48, 168, 336, 720).

Protocol (``../shared/docs/BENCHMARKS.md``, track E), on ``--threads`` torch threads:

- Encoder: ``ts_cnn`` (TS2Vec's dilated CNN: hidden 64, 10 residual blocks, 320-d output,
  timestamp masking p=0.5 while training). Method ``ts2vec`` (alpha 0.5), views ``ts2vec``
  (two overlapping random crops, at most 3000 steps), AdamW lr 1e-3, batch 8 (TS2Vec's
  defaults), a plain PyTorch loop. Each set trains for ``--iters`` steps (TS2Vec: 200) or
  ``--budget-s`` seconds, whichever ends first; the steps done are recorded.
- Classification: TS2Vec's SVM protocol on instance embeddings (RBF SVC, C by 5-fold CV on
  train), on the official test split, final encoder. Floor: the same SVM on a random-init
  encoder of the same seed. Baseline: 1-NN dependent DTW, Sakoe-Chiba band 10% of the longer
  series (exact, lower-bound pruned).
- Forecasting (ETTh1, multivariate, 7 channels): TS2Vec trained on the training segment (12
  months) cut into sections of at most 3000 steps, ``--forecast-budget-s`` seconds; then the
  representation of the last step of a 201-step lookback window -> next H steps of all channels
  by ridge regression (alpha by sqrt(MSE) + MAE on validation), MSE / MAE on the standardised
  test segment; train windows every ``--train-stride`` steps. Floor: a random-init encoder.

    LABELLESS_DATA=../shared/data OMP_NUM_THREADS=1 .venv/bin/python bench/track_e.py
    LABELLESS_DATA=../shared/data .venv/bin/python bench/track_e.py --sets GunPoint --no-save
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import append_result, environment, peak_rss_mb

from labelless.augment.timeseries import series_lengths, timeseries_views
from labelless.backbones import create_backbone
from labelless.data import load_dataset
from labelless.data.forecasting import load_forecasting
from labelless.data.timeseries import UCR_SETS
from labelless.evaluate.timeseries import (
    HORIZONS,
    dtw_1nn,
    encode_series,
    forecast_features,
    forecasting_ridge,
    svm_accuracy,
)
from labelless.methods import create_method

CLASSIFICATION = [n for n, d in UCR_SETS.items() if "regression" not in d]
BACKBONE = {"hidden_dim": 64, "embed_dim": 320, "depth": 10}
DTW_WINDOW = 0.1
LOOKBACK = 201


def pretrain(x: np.ndarray, args: argparse.Namespace, seed: int, budget_s: float):
    """TS2Vec on ``x [N, C, T]`` for ``args.iters`` steps or ``budget_s`` seconds."""
    torch.manual_seed(seed)
    encoder = create_backbone("ts_cnn", in_channels=x.shape[1], **BACKBONE)
    random_init = create_backbone("ts_cnn", in_channels=x.shape[1], **BACKBONE)
    random_init.load_state_dict(encoder.state_dict())
    method = create_method("ts2vec", encoder)
    views = timeseries_views("ts2vec")
    optimizer = torch.optim.AdamW(method.parameters(), lr=args.lr)
    generator = torch.Generator().manual_seed(seed)
    data = torch.as_tensor(x)
    lengths = series_lengths(data)
    batch = min(args.batch_size, len(data))
    steps, losses, start = 0, [], time.perf_counter()
    method.train()
    while steps < args.iters and time.perf_counter() - start < budget_s:
        index = torch.randperm(len(data), generator=generator)[:batch]
        longest = int(lengths[index].max())
        out = method(views(data[index, :, :longest], generator=generator), {})
        optimizer.zero_grad(set_to_none=True)
        out["loss"].backward()
        optimizer.step()
        losses.append(float(out["loss"].detach()))
        steps += 1
    wall = time.perf_counter() - start
    info = {
        "steps": steps,
        "train_s": round(wall, 2),
        "samples_per_s": round(steps * batch / max(wall, 1e-9), 2),
        "first_loss": round(losses[0], 4) if losses else None,
        "final_loss": round(float(np.mean(losses[-10:])), 4) if losses else None,
        "batch_size": batch,
    }
    return encoder, random_init, info


def save(record: dict, args: argparse.Namespace) -> None:
    """Stamp the machine and code on ``record`` and append it (unless ``--no-save``)."""
    record.update(
        {
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "load_average_1min": round(os.getloadavg()[0], 2),
            **environment(),
        }
    )
    if not args.no_save:
        append_result("track_e", record)


def classification(name: str, args: argparse.Namespace) -> list[dict]:
    splits = load_dataset(f"ucr:{name}")
    train, test = splits.train, splits.test
    start = time.perf_counter()
    dtw = dtw_1nn(train.samples, train.labels, test.samples, test.labels, window=DTW_WINDOW)
    dtw_s = time.perf_counter() - start
    records = []
    for seed in args.seeds:
        encoder, random_init, info = pretrain(train.samples, args, seed, args.budget_s)
        ours = svm_accuracy(
            encode_series(encoder, train.samples),
            train.labels,
            encode_series(encoder, test.samples),
            test.labels,
        )
        floor = svm_accuracy(
            encode_series(random_init, train.samples),
            train.labels,
            encode_series(random_init, test.samples),
            test.labels,
        )
        record = {
            "bench": "track_e",
            "task": "classification",
            "dataset": f"ucr:{name}",
            "split": "official train -> test",
            "num_train": len(train),
            "num_test": len(test),
            "channels": int(train.samples.shape[1]),
            "max_length": int(train.samples.shape[2]),
            "method": "ts2vec",
            "backbone": {"name": "ts_cnn", **BACKBONE},
            "seed": seed,
            **info,
            "budget_s": args.budget_s,
            "max_steps": args.iters,
            "lr": args.lr,
            "ts2vec_svm_accuracy": ours.accuracy,
            "svm_C": ours.C,
            "random_init_svm_accuracy": floor.accuracy,
            "dtw_1nn_accuracy": dtw,
            "dtw_s": round(dtw_s, 2),
            "protocol": {
                "svm": ours.protocol,
                "svm_searched": ours.searched,
                "dtw": f"1-NN dependent DTW, squared Euclidean, Sakoe-Chiba {DTW_WINDOW:.0%}",
                "final_encoder": True,
            },
        }
        save(record, args)
        records.append(record)
        print(
            f"{name:>22} seed {seed}: ts2vec {ours.accuracy:.4f} (random init "
            f"{floor.accuracy:.4f}) dtw {dtw:.4f} | {info['steps']} steps "
            f"{info['train_s']:.0f} s, dtw {dtw_s:.0f} s",
            flush=True,
        )
    return records


def _ridge(encoder, series, args) -> tuple[dict, float]:
    start = time.perf_counter()
    train_end = series.borders[0]
    steps = np.concatenate(
        [
            np.arange(LOOKBACK - 1, train_end, args.train_stride),
            np.arange(train_end, len(series.values)),
        ]
    )
    features = np.full((len(series.values), encoder.embed_dim), np.nan, dtype=np.float32)
    features[steps] = forecast_features(encoder, series.values, steps, LOOKBACK).numpy()
    train_steps = np.arange(LOOKBACK - 1, train_end, args.train_stride)
    result = forecasting_ridge(
        features, series.values, series.borders, HORIZONS, train_steps, LOOKBACK
    )
    return result, time.perf_counter() - start


def forecasting(name: str, args: argparse.Namespace) -> list[dict]:
    series = load_forecasting(name)
    train = series.split("train")
    sections = math.ceil(len(train) / 3000)
    bounds = np.linspace(0, len(train), sections + 1).astype(int)
    width = int(np.diff(bounds).max())
    x = np.full((sections, train.shape[1], width), np.nan, dtype=np.float32)
    for index, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        x[index, :, : hi - lo] = train[lo:hi].T
    records = []
    for seed in args.seeds[:1]:
        settings = argparse.Namespace(**{**vars(args), "iters": 10**9})
        encoder, random_init, info = pretrain(x, settings, seed, args.forecast_budget_s)
        ours, ours_s = _ridge(encoder, series, args)
        floor, _ = _ridge(random_init, series, args)
        for horizon in HORIZONS:
            record = {
                "bench": "track_e",
                "task": "forecasting",
                "dataset": name,
                "split": "ETT standard: train 12 / val 4 / test 4 months",
                "horizon": horizon,
                "method": "ts2vec",
                "backbone": {"name": "ts_cnn", **BACKBONE},
                "seed": seed,
                **info,
                "budget_s": args.forecast_budget_s,
                "sections": sections,
                "ts2vec_mse": ours[horizon]["mse"],
                "ts2vec_mae": ours[horizon]["mae"],
                "ridge_alpha": ours[horizon]["alpha"],
                "random_init_mse": floor[horizon]["mse"],
                "random_init_mae": floor[horizon]["mae"],
                "ridge_s": round(ours_s, 1),
                "protocol": {
                    "lookback": LOOKBACK,
                    "features": "representation of the last lookback step",
                    "train_stride": args.train_stride,
                    "train_samples": ours[horizon]["train_samples"],
                    "test_samples": ours[horizon]["test_samples"],
                    "alpha_selection": "sqrt(MSE) + MAE on validation",
                    "scale": "standardised with train mean/std",
                },
            }
            save(record, args)
            records.append(record)
            print(
                f"{name} H={horizon:>3}: MSE {record['ts2vec_mse']:.3f} MAE "
                f"{record['ts2vec_mae']:.3f} (random init {record['random_init_mse']:.3f} / "
                f"{record['random_init_mae']:.3f}) | {info['steps']} steps",
                flush=True,
            )
    return records


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", nargs="+", default=CLASSIFICATION)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--iters", type=int, default=200, help="max steps per UCR set")
    parser.add_argument("--budget-s", type=float, default=45.0, help="max seconds per UCR set")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--forecast", nargs="*", default=["etth1"])
    parser.add_argument("--no-forecast", action="store_true")
    parser.add_argument("--forecast-budget-s", type=float, default=150.0)
    parser.add_argument("--train-stride", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-save", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    records = []
    for name in args.sets:
        records += classification(name, args)
    for name in [] if args.no_forecast else args.forecast:
        records += forecasting(name, args)
    accuracy = [r for r in records if r["task"] == "classification"]
    if accuracy:
        mean = {
            key: float(np.mean([r[key] for r in accuracy]))
            for key in ("ts2vec_svm_accuracy", "random_init_svm_accuracy", "dtw_1nn_accuracy")
        }
        wins = sum(r["ts2vec_svm_accuracy"] > r["dtw_1nn_accuracy"] for r in accuracy)
        ties = sum(r["ts2vec_svm_accuracy"] == r["dtw_1nn_accuracy"] for r in accuracy)
        print(
            f"average over {len(accuracy)} runs: ts2vec {mean['ts2vec_svm_accuracy']:.4f}, "
            f"random init {mean['random_init_svm_accuracy']:.4f}, dtw "
            f"{mean['dtw_1nn_accuracy']:.4f}; ts2vec wins {wins}, ties {ties}",
            flush=True,
        )
        records.append(
            {
                "bench": "track_e",
                "task": "classification_summary",
                "sets": args.sets,
                "seeds": args.seeds,
                **{f"mean_{k}": v for k, v in mean.items()},
                "ts2vec_wins": wins,
                "ties": ties,
            }
        )
    total = time.perf_counter() - start
    if accuracy:
        records[-1]["total_wall_s"] = round(total, 1)
        save(records[-1], args)
    print(f"total {total / 60:.1f} min", flush=True)
    return records


if __name__ == "__main__":
    main()
