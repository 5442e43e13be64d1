"""Untimed accuracy check of the graph-level methods (graphcl, infograph, or any registered
graph method with a graph-level backbone) on a TU set: a plain torch loop, then the papers'
protocol (``evaluate.graph_sets.graph_svm``: RBF SVC on the raw embeddings, C chosen by inner
5-fold cross-validation on each training fold, accuracy on the shipped 10 folds; the inner CV
shuffled by the pretraining seed), mean +- std over the folds, then over pretraining seeds.

    LABELLESS_DATA=/work/shared/data .venv/bin/python bench/graph_level_tuning.py \\
        --method graphcl --data tu:MUTAG --epochs 20 --seeds 0 1 2

One thread (``torch.set_num_threads(1)``); every line reports the CPU seconds
(``time.process_time``) of pretraining and of the SVM. ``--random-init`` scores the encoder
without training (the floor). Results go to stdout as JSON lines (``--out`` appends them to a
file too).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from labelless.augment.graph import graph_views
from labelless.backbones import create_backbone
from labelless.data.graph import collate_graphs
from labelless.data.graphs import load_graph_dataset
from labelless.evaluate.graph_sets import graph_svm
from labelless.methods import create_method, graphcl, infograph  # noqa: F401  (registration)
from labelless.methods.base import METHODS


def build(method: str, in_channels: int, backbone_overrides: dict, method_kwargs: dict):
    name, options = METHODS[method].graph_backbones["graph"]
    backbone = create_backbone(name, in_channels=in_channels, **{**options, **backbone_overrides})
    return create_method(method, backbone, **method_kwargs)


def pretrain(model, graphs, *, epochs, batch_size, lr, seed, budget_s) -> dict:
    """Adam over shuffled batches of ``batch_size`` graphs; stops after ``epochs`` or when the
    process has used ``budget_s`` CPU seconds in this call."""
    views = graph_views(model.default_views)
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    start, steps, losses = time.process_time(), 0, []
    model.train()
    for _epoch in range(epochs):
        order = torch.randperm(len(graphs), generator=generator)
        for begin in range(0, len(graphs), batch_size):
            chosen = order[begin : begin + batch_size]
            if len(chosen) < 2:
                continue
            inputs = collate_graphs([graphs[i] for i in chosen.tolist()])
            batch = {"inputs": inputs, "index": chosen, "label": inputs.y}
            out = model(views(inputs, generator), batch, generator=generator)
            optimiser.zero_grad()
            out["loss"].backward()
            optimiser.step()
            model.on_step_end(0.0)
            steps += 1
            losses.append(float(out["loss"].detach()))
        if time.process_time() - start > budget_s:
            break
    return {"steps": steps, "first_loss": losses[0], "last_loss": float(np.mean(losses[-5:]))}


@torch.no_grad()
def embed(backbone, graphs, batch_size: int = 256) -> np.ndarray:
    backbone.eval()
    parts = [
        backbone(collate_graphs(graphs[i : i + batch_size]))
        for i in range(0, len(graphs), batch_size)
    ]
    return torch.cat(parts).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="graphcl")
    parser.add_argument("--data", default="tu:MUTAG")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--budget-s", type=float, default=300.0, help="CPU seconds per run")
    parser.add_argument("--kernel", default="rbf", choices=["linear", "rbf"])
    parser.add_argument("--standardise", action="store_true", help="z-score on the train fold")
    parser.add_argument(
        "--backbone", type=json.loads, default={}, help='JSON, e.g. {"num_layers": 5}'
    )
    parser.add_argument("--kwargs", type=json.loads, default={}, help="method options, JSON")
    parser.add_argument("--random-init", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    dataset = load_graph_dataset(args.data)
    labels = dataset.labels().numpy()
    in_channels = dataset.graphs[0].num_features
    results = []
    for seed in args.seeds:
        torch.manual_seed(seed)
        model = build(args.method, in_channels, args.backbone, args.kwargs)
        start = time.process_time()
        train = {"steps": 0}
        if not args.random_init:
            train = pretrain(
                model,
                dataset.graphs,
                epochs=args.epochs,
                batch_size=args.batch_size,
                lr=args.lr,
                seed=seed,
                budget_s=args.budget_s,
            )
        train_s = time.process_time() - start
        start = time.process_time()
        z = embed(model.backbone, dataset.graphs)
        svm = graph_svm(
            z, labels, dataset.folds, seeds=[seed], kernel=args.kernel, standardise=args.standardise
        )
        accuracies = svm.runs[0]["fold_accuracies"]
        line = {
            "method": args.method,
            "data": args.data,
            "seed": seed,
            "random_init": args.random_init,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "backbone": args.backbone,
            "kwargs": args.kwargs,
            "kernel": args.kernel,
            "standardise": args.standardise,
            **train,
            "train_cpu_s": round(train_s, 1),
            "svm_cpu_s": round(time.process_time() - start, 1),
            "acc_mean": round(float(np.mean(accuracies)), 4),
            "acc_std": round(float(np.std(accuracies)), 4),
        }
        results.append(line["acc_mean"])
        print(json.dumps(line), flush=True)
        if args.out:
            with args.out.open("a") as handle:
                handle.write(json.dumps(line) + "\n")
    if len(results) > 1:
        print(
            json.dumps(
                {
                    "seeds": args.seeds,
                    "mean": round(float(np.mean(results)), 4),
                    "std": round(float(np.std(results)), 4),
                }
            )
        )


if __name__ == "__main__":
    main()
