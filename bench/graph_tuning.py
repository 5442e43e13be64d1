"""Untimed tuning of the graph methods (GraphMAE, GRACE, BGRL, CCA-SSG, DGI) on the built-in
graph datasets: a plain torch loop over the method, then the papers' probes.

- Node data (cora, citeseer, ...): the whole graph every step; after pretraining a logistic
  regression (sklearn, lbfgs) on the frozen embeddings of the training nodes, standardised or L2-
  normalised, with C chosen on the validation nodes and the test nodes scored once.
- Graph data (tu:MUTAG, tu:PROTEINS, ...): shuffled batches of graphs; an SVC on the pooled
  embeddings with C chosen by 5-fold inner CV on each shipped training fold, accuracy averaged
  over the 10 shipped test folds.

Each line printed (and appended to ``--out`` as JSON) holds the settings, the accuracy, the
random-init encoder's accuracy and the CPU seconds of pretraining (``time.process_time``, one
thread). Needs LABELLESS_DATA (e.g. /work/shared/data). Example:

    LABELLESS_DATA=/work/shared/data python bench/graph_tuning.py --method ccassg --data cora \
        --epochs 50 --lr 1e-3 --views edge_drop=0.4 feature_mask=0.1 --row-normalise
"""

from __future__ import annotations

import argparse
import json
import math
import time
import warnings
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from labelless.augment.graph import graph_views
from labelless.backbones import create_backbone
from labelless.data.graph import Graph, collate_graphs, normalise_rows
from labelless.data.graphs import GraphSetDataset, load_graph_dataset
from labelless.evaluate.graph_sets import graph_svm
from labelless.evaluate.graphs import node_probe as library_node_probe
from labelless.methods import bgrl, dgi, graph_contrast, graphmae  # noqa: F401  (registration)
from labelless.methods.base import METHODS, create_method

PROBE_C = [10.0**k for k in np.arange(-3.0, 3.01, 0.5)]
SVM_C = [1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0]
PROBE_SEEDS = 5


def parse_options(items: list[str] | None) -> dict[str, Any]:
    """``key=value`` strings to a dict (values read as JSON when they parse, else strings)."""
    options: dict[str, Any] = {}
    for item in items or []:
        key, _, value = item.partition("=")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def build(args, in_channels: int, level: str):
    cls = METHODS[args.method]
    kind, kwargs = cls.graph_backbones[level]
    kind = args.backbone or kind
    kwargs = {**kwargs, **parse_options(args.backbone_set)}
    backbone = create_backbone(kind, in_channels=in_channels, **kwargs)
    method = create_method(args.method, backbone, **parse_options(args.set))
    return method, {"kind": kind, **kwargs}


def optimiser(args, method, steps: int):
    params = [p for p in method.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=args.lr, weight_decay=args.wd)
    if args.schedule == "cosine":  # GraphMAE's per-epoch (1 + cos(pi t / T)) / 2
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: (1 + math.cos(math.pi * s / steps)) / 2
        )
    else:
        sched = None
    return opt, sched


def train_step(method, opt, sched, views, batch, generator, progress: float) -> float:
    out = method(views, batch, generator=generator)
    opt.zero_grad(set_to_none=True)
    out["loss"].backward()
    opt.step()
    if sched is not None:
        sched.step()
    method.on_step_end(progress)
    return float(out["loss"].detach())


@torch.no_grad()
def embed_nodes(backbone, graph: Graph) -> np.ndarray:
    backbone.eval()
    emb = backbone(graph).numpy()
    backbone.train()
    return emb


def scale(emb: np.ndarray, how: str) -> np.ndarray:
    if how == "l2":
        return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    if how == "std":
        return StandardScaler().fit_transform(emb)
    return emb


def node_probe(emb: np.ndarray, y: np.ndarray, split: dict, how: str) -> tuple[float, float]:
    """(val accuracy at the chosen C, test accuracy) of logistic regression: the library's
    protocol (``evaluate.graphs.node_probe``: Adam, 5 classifier seeds) for ``std`` / ``l2``,
    sklearn's lbfgs for ``sk-std`` / ``sk-l2``."""
    if not how.startswith("sk-"):
        normalise = {"std": "standard", "l2": "l2", "none": "none"}[how]
        result = library_node_probe(emb, y, [split], seeds=PROBE_SEEDS, normalise=normalise)
        return float(result.protocol["val_accuracy"]), float(result.mean)
    emb = scale(emb, how[3:])
    tr, va, te = (split[k].numpy() for k in ("train", "val", "test"))
    best = (-1.0, None)
    for c in PROBE_C:
        clf = LogisticRegression(C=c, max_iter=2000).fit(emb[tr], y[tr])
        acc = clf.score(emb[va], y[va])
        if acc > best[0]:
            best = (acc, clf)
    return best[0], float(best[1].score(emb[te], y[te]))


def run_node(args, data) -> dict[str, Any]:
    graph = data.graph
    if args.row_normalise:
        graph = normalise_rows(graph, True)[0]
    y = graph.y.numpy()
    split = data.splits[0]
    method, backbone_kwargs = build(args, graph.num_features, "node")
    init = node_probe(embed_nodes(method.backbone, graph), y, split, args.scale)[1]
    views = graph_views(args.recipe or method.default_views, **parse_options(args.views))
    opt, sched = optimiser(args, method, args.epochs)
    generator = torch.Generator().manual_seed(args.seed)
    batch = {"inputs": graph, "index": torch.arange(graph.num_nodes), "label": graph.y}
    curve, start = [], time.process_time()
    for epoch in range(args.epochs):
        loss = train_step(
            method, opt, sched, views(graph, generator), batch, generator, (epoch + 1) / args.epochs
        )
        if args.eval_every and (epoch + 1) % args.eval_every == 0:
            pause = time.process_time()
            val, test = node_probe(embed_nodes(method.backbone, graph), y, split, args.scale)
            curve.append((epoch + 1, round(loss, 4), round(val, 4), round(test, 4)))
            print("  epoch", *curve[-1], flush=True)
            start += time.process_time() - pause
    cpu = time.process_time() - start
    val, test = node_probe(embed_nodes(method.backbone, graph), y, split, args.scale)
    return {
        "val": val,
        "test": test,
        "init_test": init,
        "cpu_s": cpu,
        "curve": curve,
        "backbone": backbone_kwargs,
    }


@torch.no_grad()
def embed_graphs(backbone, graphs: list[Graph], batch_size: int = 256) -> np.ndarray:
    backbone.eval()
    parts = [
        backbone(collate_graphs(graphs[i : i + batch_size])).numpy()
        for i in range(0, len(graphs), batch_size)
    ]
    backbone.train()
    return np.concatenate(parts)


def svm_probe(emb: np.ndarray, y: np.ndarray, folds, how: str) -> tuple[float, float]:
    """Mean and std of the 10 shipped folds' test accuracy; C by 5-fold inner CV: the library's
    ``graph_svm`` (one seed) for ``std`` / ``l2`` / ``none`` (``std``: standardised in each
    training fold), sklearn directly for ``sk-*``."""
    if not how.startswith("sk-"):
        emb = scale(emb, "l2") if how == "l2" else emb
        result = graph_svm(emb, y, folds, seeds=1, standardise=how == "std")
        return float(result.mean), float(result.fold_std)
    emb = scale(emb, how[3:])
    accs = []
    for train, test in folds:
        tr, te = train.numpy(), test.numpy()
        inner = StratifiedKFold(5, shuffle=True, random_state=0)
        search = GridSearchCV(SVC(), {"C": SVM_C}, cv=inner).fit(emb[tr], y[tr])
        accs.append(search.score(emb[te], y[te]))
    return float(np.mean(accs)), float(np.std(accs))


def run_graph(args, data: GraphSetDataset) -> dict[str, Any]:
    graphs, y = data.graphs, data.labels().numpy()
    method, backbone_kwargs = build(args, graphs[0].num_features, "graph")
    init = svm_probe(embed_graphs(method.backbone, graphs), y, data.folds, args.scale)[0]
    views = graph_views(args.recipe or method.default_views, **parse_options(args.views))
    per_epoch = math.ceil(len(graphs) / args.batch_size)
    opt, sched = optimiser(args, method, args.epochs * per_epoch)
    generator = torch.Generator().manual_seed(args.seed)
    curve, start, step = [], time.process_time(), 0
    for epoch in range(args.epochs):
        order = torch.randperm(len(graphs), generator=generator).tolist()
        for i in range(0, len(graphs), args.batch_size):
            members = order[i : i + args.batch_size]
            inputs = collate_graphs([graphs[j] for j in members])
            batch = {"inputs": inputs, "index": torch.tensor(members), "label": inputs.y}
            step += 1
            loss = train_step(
                method,
                opt,
                sched,
                views(inputs, generator),
                batch,
                generator,
                step / (args.epochs * per_epoch),
            )
        if args.eval_every and (epoch + 1) % args.eval_every == 0:
            pause = time.process_time()
            acc = svm_probe(embed_graphs(method.backbone, graphs), y, data.folds, args.scale)[0]
            curve.append((epoch + 1, round(loss, 4), round(acc, 4)))
            print("  epoch", *curve[-1], flush=True)
            start += time.process_time() - pause
    cpu = time.process_time() - start
    acc, std = svm_probe(embed_graphs(method.backbone, graphs), y, data.folds, args.scale)
    return {
        "test": acc,
        "test_std": std,
        "init_test": init,
        "cpu_s": cpu,
        "curve": curve,
        "backbone": backbone_kwargs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--method", required=True, choices=["graphmae", "grace", "bgrl", "ccassg", "dgi"]
    )
    parser.add_argument("--data", required=True)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--wd", type=float, default=0.0)
    parser.add_argument("--schedule", choices=["none", "cosine"], default="none")
    parser.add_argument("--batch-size", type=int, default=32, help="graphs per step (graph data)")
    parser.add_argument("--backbone", help="gcn, gat or gin instead of the method's default")
    parser.add_argument("--backbone-set", nargs="*", help="backbone kwargs key=value")
    parser.add_argument("--set", nargs="*", help="method kwargs key=value")
    parser.add_argument("--recipe", help="graph view recipe instead of the method's default")
    parser.add_argument("--views", nargs="*", help="view overrides key=value (edge_drop_1=0.2)")
    parser.add_argument("--row-normalise", action="store_true", help="features / row sums")
    parser.add_argument(
        "--scale",
        choices=["std", "l2", "none", "sk-std", "sk-l2", "sk-none"],
        default="std",
        help="probe input scaling; sk-*: sklearn instead of the library's protocol",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--eval-every", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", help="append one JSON line per seed here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=UserWarning)
    data = load_graph_dataset(args.data)
    results = []
    for seed in args.seeds:
        args.seed = seed
        torch.manual_seed(seed)
        run = run_graph if isinstance(data, GraphSetDataset) else run_node
        result = run(args, data)
        line = {
            "method": args.method,
            "data": args.data,
            "seed": seed,
            "epochs": args.epochs,
            "lr": args.lr,
            "wd": args.wd,
            "schedule": args.schedule,
            "method_kwargs": parse_options(args.set),
            "views": parse_options(args.views),
            "recipe": args.recipe,
            "row_normalise": args.row_normalise,
            "scale": args.scale,
            "batch_size": args.batch_size,
            **result,
        }
        results.append(line)
        print(json.dumps({k: v for k, v in line.items() if k != "curve"}), flush=True)
        if args.out:
            with open(args.out, "a") as handle:
                handle.write(json.dumps(line) + "\n")
    tests = [r["test"] for r in results]
    cpus = [r["cpu_s"] for r in results]
    print(
        f"# {args.method} {args.data}: test {np.mean(tests):.4f} +- {np.std(tests):.4f} over "
        f"{len(tests)} seeds, pretraining {np.mean(cpus):.1f} CPU s",
        flush=True,
    )


if __name__ == "__main__":
    main()
