"""Untimed accuracy check of ParetoGNN (``paretognn``) on a node-classification graph: the
multi-task model against each of its tasks alone, under the same CPU budget.

A plain torch loop (Adam, the whole graph every step, a CPU-second budget per run); the
embeddings of the trained encoder (eval mode) are scored with the lead's protocols:
``evaluate.graphs.node_probe`` (logistic regression, C chosen on the validation nodes, test
scored once; seeds of the probe), ``node_clustering`` (k-means NMI over seeds) and, with
``--link``, ``graph_links.link_prediction`` (the encoder trains on ``split_edges``' training
graph, 5% / 10% of the edges held out; the probe and clustering then read that model too).

    LABELLESS_DATA=/work/shared/data .venv/bin/python bench/paretognn_tuning.py \\
        --data cora --runs all reconstruction contrast --budget-s 300

``--runs``: ``all`` (every task) or task names, each one a run; ``a+b`` runs tasks a and b
together. One thread; each line reports the CPU seconds (``time.process_time``) of training.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from labelless.backbones import create_backbone
from labelless.data.graph_splits import split_edges
from labelless.data.graphs import load_graph_dataset
from labelless.evaluate.graph_links import link_prediction
from labelless.evaluate.graphs import node_clustering, node_probe
from labelless.methods.base import create_method
from labelless.methods.paretognn import TASKS, ParetoGNN


@torch.no_grad()
def embed(backbone, graph) -> torch.Tensor:
    backbone.eval()
    z = backbone(graph)
    backbone.train()
    return z


def evaluate(backbone, graph, labels, splits, split) -> dict:
    z = embed(backbone, graph)
    probe = node_probe(z, labels, splits, seeds=5)
    known = labels >= 0
    clusters = node_clustering(z[known], labels[known], seeds=3)
    scores = {"probe_acc": round(probe.mean, 4), "probe_std": round(probe.std, 4)}
    scores["nmi"] = round(clusters.nmi, 4)
    if split is not None:
        link = link_prediction(z, split)
        scores["link_test_auc"] = round(link["test_auc"], 4)
    return scores


def run(args, tasks: list[str], graph, labels, splits, split, seed: int) -> dict:
    torch.manual_seed(seed)
    options = {**ParetoGNN.graph_backbones["node"][1], **args.backbone}
    backbone = create_backbone("gcn", in_channels=graph.num_features, **options)
    method = create_method("paretognn", backbone, tasks=tasks, **args.kwargs)
    optimiser = torch.optim.AdamW(method.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    generator = torch.Generator().manual_seed(seed)
    train_graph = graph if split is None else split.train_graph
    batch = {"inputs": train_graph, "index": torch.arange(train_graph.num_nodes)}
    spent, steps, checkpoints, last = 0.0, 0, [], {}
    next_eval = args.eval_every_s
    while spent < args.budget_s and steps < args.max_steps:
        start = time.process_time()
        out = method([train_graph], batch, generator=generator)
        optimiser.zero_grad()
        out["loss"].backward()
        optimiser.step()
        spent += time.process_time() - start
        steps += 1
        last = {key: float(value) for key, value in out.items() if key.startswith("weight_")}
        if args.eval_every_s and spent >= next_eval:
            next_eval += args.eval_every_s
            scores = evaluate(method.backbone, train_graph, labels, splits, split)
            checkpoints.append({"steps": steps, "cpu_s": round(spent, 1), **scores})
            print(json.dumps({"tasks": tasks, "seed": seed, **checkpoints[-1]}), flush=True)
    final = evaluate(method.backbone, train_graph, labels, splits, split)
    return {
        "tasks": tasks,
        "seed": seed,
        "steps": steps,
        "train_cpu_s": round(spent, 1),
        **final,
        "last_weights": {k: round(v, 4) for k, v in last.items()},
        "checkpoints": checkpoints,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="cora")
    parser.add_argument("--runs", nargs="+", default=["all", *TASKS])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--budget-s", type=float, default=300.0, help="training CPU s per run")
    parser.add_argument("--max-steps", type=int, default=100000)
    parser.add_argument("--eval-every-s", type=float, default=0.0)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-5)
    parser.add_argument("--backbone", type=json.loads, default={}, help="JSON backbone options")
    parser.add_argument("--kwargs", type=json.loads, default={}, help="JSON method options")
    parser.add_argument("--link", action="store_true", help="train on a link split, add AUC")
    parser.add_argument(
        "--row-normalise", action="store_true", help="divide each node's features by their sum"
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    dataset = load_graph_dataset(args.data)
    graph, labels = dataset.graph, dataset.graph.y
    if args.row_normalise:  # DGI / GRACE / GraphMAE's preprocessing of the bag-of-words features
        graph = replace(graph, x=graph.x / graph.x.sum(1, keepdim=True).clamp(min=1e-12))
    split = split_edges(graph, 0.05, 0.1, seed=0) if args.link else None
    for name in args.runs:
        tasks = list(TASKS) if name == "all" else name.split("+")
        for seed in args.seeds:
            line = run(args, tasks, graph, labels, dataset.splits, split, seed)
            line.update(
                data=args.data,
                lr=args.lr,
                backbone=args.backbone,
                kwargs=args.kwargs,
                link_split=args.link,
                row_normalise=args.row_normalise,
            )
            print(json.dumps(line), flush=True)
            if args.out:
                with args.out.open("a") as handle:
                    handle.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
