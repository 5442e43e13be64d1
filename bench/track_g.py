"""Track G: graphs. Self-supervised node and graph encoders against the papers' protocols, the
semi-supervised GCN with auxiliary tasks, the multi-task claim, heterophily and scale.

Every pretraining runs through the library's own verb (``labelless.pretrain`` with a shipped
recipe from ``configs/graphs/``), so what is measured is what a user runs; its CPU time
(``time.process_time``, all threads of this process) and wall time are recorded, with the load
average and the peak memory. Each row is appended to ``bench/results/track_g.jsonl``.

    LABELLESS_DATA=../shared/data .venv/bin/python bench/track_g.py                # all parts
    LABELLESS_DATA=../shared/data .venv/bin/python bench/track_g.py --parts node   # one part

Parts:

- ``node``: Cora, CiteSeer. One pretraining per seed (20 by default) with the shipped recipe;
  the papers' probe (logistic regression, C on the validation nodes, test once) on each, so
  the mean +- std is over pretraining seeds; clustering NMI; baselines in the same part: raw
  features + the same probe, a supervised GCN (20 seeds), the random-init encoder.
- ``graph``: MUTAG, PROTEINS. Five pretraining seeds, 10-fold SVM (C by inner CV) on each;
  baselines: the random-init encoder (five seeds) and the summed raw node features.
- ``semi``: Cora and CiteSeer public splits, 20 seeds: Kipf's GCN, GCN + auxiliary tasks, GCN +
  auxiliary tasks + pseudo-labels (``bench/graph_semi.py``'s arms).
- ``multitask``: Cora with 10% of its edges held out (5% validation): ParetoGNN with every task
  and each task alone, the same epochs each (or ``--budget`` seconds); node probe, clustering
  NMI, link AUC.
- ``heterophily``: Cornell, Texas, Wisconsin, Film: one pretraining, the probe on each of the 10
  Geom-GCN splits, against raw features with the same probe.
- ``scale``: PubMed full batch, then on random-walk subgraphs, each in a fresh process so its
  peak memory is its own.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import append_result, environment, peak_rss_mb

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs" / "graphs"
NODE_SETS = {"cora": "ccassg", "citeseer": "ccassg"}
GRAPH_SETS = {"tu:MUTAG": "graphcl", "tu:PROTEINS": "graphcl"}
HETEROPHILY = ("cornell", "texas", "wisconsin", "film")
SEMI_ARMS = ("plain", "selftask", "selftask+pl")
PARETO_TASKS = ("reconstruction", "contrast", "infomax", "decorrelation", "link", "clustering")


def config_of(method: str, data: str) -> Path:
    """The shipped recipe ``configs/graphs/<method>_<data>.yaml`` (``tu:`` dropped)."""
    return CONFIGS / f"{method}_{data.replace('tu:', '').lower()}.yaml"


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


def pretrain(data, method: str, config: Path | None, seed: int, **flags: Any) -> dict[str, Any]:
    """One pretraining through ``labelless.pretrain``: the encoder, the CPU seconds of the whole
    call (``time.process_time``: training, the run's final evaluation and report) and the
    training's own wall seconds."""
    import labelless

    with tempfile.TemporaryDirectory() as out:
        cpu, wall = time.process_time(), time.perf_counter()
        result = labelless.pretrain(
            data,
            method,
            config=str(config) if config is not None else None,
            out=str(Path(out) / "run"),
            seed=seed,
            **flags,
        )
        training = result.metrics.get("training", {})
        return {
            "encoder": result.encoder,
            "cpu_seconds": round(time.process_time() - cpu, 1),
            "wall_seconds": round(time.perf_counter() - wall, 1),
            "train_wall_seconds": training.get("wall_seconds"),
            "epochs": training.get("epochs_done"),
            "steps": training.get("steps"),
        }


def record(part: str, row: dict[str, Any]) -> None:
    row = {"track": "G", "part": part, **row, **environment(), "peak_rss_mib": peak_rss_mb()}
    append_result("track_g", row)
    shown = {k: v for k, v in row.items() if k not in ("per_seed", "protocol", "cpu", "torch")}
    print(shown, flush=True)


def spread(values: list[float]) -> dict[str, Any]:
    return {
        "mean": round(float(np.mean(values)), 4),
        "std": round(float(np.std(values)), 4),
        "per_seed": [round(float(v), 4) for v in values],
    }


def run_cost(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "cpu_seconds_per_run": round(float(np.mean([r["cpu_seconds"] for r in runs])), 1),
        "cpu_seconds_max": max(r["cpu_seconds"] for r in runs),
        "train_wall_seconds_per_run": round(
            float(np.mean([r["train_wall_seconds"] for r in runs])), 1
        ),
        "epochs": runs[0]["epochs"],
        "steps": runs[0]["steps"],
    }


def _node_graph(name: str, **options: Any):
    """(graph, split tensors, every node as NodeIds) of a node dataset loaded with ``options``
    (``row_normalise=True``: as the recipes load it, so the encoder embeds what it trained on)."""
    from labelless.data import load_dataset
    from labelless.data.graph_dataset import NodeIds

    splits = load_dataset(name, **options)
    graph = splits.train.samples.graph
    tensors = [{k: torch.as_tensor(v) for k, v in s.items()} for s in splits.train.meta["splits"]]
    return graph, tensors, NodeIds(np.arange(graph.num_nodes), graph)


def node_part(seeds: int, probe_seeds: int) -> None:
    from labelless.evaluate import embed
    from labelless.evaluate.graph_baselines import (
        random_init_embeddings,
        raw_feature_probe,
        supervised_gcn,
    )
    from labelless.evaluate.graphs import node_clustering, node_probe

    for name, method in NODE_SETS.items():
        config = config_of(method, name)
        graph, split_tensors, every = _node_graph(name, row_normalise=True)
        rows, runs, nmis, protocol = [], [], [], None
        for seed in range(seeds):
            run = pretrain(name, method, config, seed)
            z = embed(run["encoder"], every)
            probe = node_probe(z, graph.y, split_tensors, seeds=probe_seeds)
            rows.append(probe.mean)
            nmis.append(node_clustering(z, graph.y, seeds=[seed]).nmi)
            runs.append(run)
            protocol = probe.protocol
        record(
            "node",
            {
                "dataset": name,
                "method": method,
                "config": relative(config),
                "pretraining_seeds": seeds,
                **spread(rows),
                "nmi": round(float(np.mean(nmis)), 4),
                **run_cost(runs),
                "protocol": protocol,
            },
        )
        encoder = runs[-1]["encoder"]
        raw_graph = _node_graph(name)[0]
        for label, features in (
            ("raw features", raw_graph),
            ("raw features, row-normalised", graph),
        ):
            cpu = time.process_time()
            raw = raw_feature_probe(features, split_tensors, seeds=probe_seeds)
            record(
                "node",
                {
                    "dataset": name,
                    "method": label,
                    "mean": round(raw.mean, 4),
                    "std": round(raw.std, 4),
                    "cpu_seconds": round(time.process_time() - cpu, 1),
                },
            )
        cpu = time.process_time()
        gcn = supervised_gcn(graph, split_tensors, seeds=probe_seeds)
        record(
            "node",
            {
                "dataset": name,
                "method": "supervised GCN (Kipf & Welling, row-normalised features)",
                "mean": round(gcn.mean, 4),
                "std": round(gcn.std, 4),
                "cpu_seconds": round(time.process_time() - cpu, 1),
            },
        )
        chance = [
            node_probe(
                random_init_embeddings(encoder, every, seed=s), graph.y, split_tensors, seeds=1
            ).mean
            for s in range(5)
        ]
        record(
            "node",
            {
                "dataset": name,
                "method": f"random-init {encoder.meta.architecture}",
                **spread(chance),
            },
        )


def graph_part(seeds: int) -> None:
    from labelless.data import load_dataset
    from labelless.evaluate import embed
    from labelless.evaluate.graph_baselines import random_init_embeddings
    from labelless.evaluate.graph_sets import graph_svm

    for name, method in GRAPH_SETS.items():
        config = config_of(method, name)
        splits = load_dataset(name)
        graphs = list(splits.train.samples)
        labels = np.asarray(splits.train.meta["all_labels"])
        folds = splits.train.meta["folds"]
        accs, fold_stds, runs, protocol = [], [], [], None
        for seed in range(seeds):
            run = pretrain(name, method, config, seed)
            z = embed(run["encoder"], splits.train.samples)
            result = graph_svm(z, labels, folds, seeds=[seed])
            accs.append(result.mean)
            fold_stds.append(result.fold_std)
            runs.append(run)
            protocol = result.protocol
        record(
            "graph",
            {
                "dataset": name,
                "method": method,
                "config": relative(config),
                "pretraining_seeds": seeds,
                **spread(accs),
                "fold_std": round(float(np.mean(fold_stds)), 4),
                **run_cost(runs),
                "protocol": protocol,
            },
        )
        encoder = runs[-1]["encoder"]
        chance = [
            graph_svm(
                random_init_embeddings(encoder, graphs, seed=s), labels, folds, seeds=[s]
            ).mean
            for s in range(seeds)
        ]
        record(
            "graph",
            {
                "dataset": name,
                "method": f"random-init {encoder.meta.architecture}",
                **spread(chance),
            },
        )
        summed = torch.stack([g.x.sum(0) for g in graphs])
        raw = graph_svm(summed, labels, folds, seeds=list(range(seeds)))
        record(
            "graph",
            {
                "dataset": name,
                "method": "raw features (summed node features)",
                "mean": round(raw.mean, 4),
                "std": round(raw.std, 4),
            },
        )


def semi_part(seeds: int) -> None:
    from graph_semi import ARMS, run_arm

    from labelless.data.graphs import load_graph_dataset

    for name in ("cora", "citeseer"):
        dataset = load_graph_dataset(name)
        results = {}
        for arm in SEMI_ARMS:
            result = run_arm(dataset, {"name": arm, **ARMS[arm]}, list(range(seeds)), 64, 200)
            results[arm] = result
            gain = 100 * (result["test_mean"] - results["plain"]["test_mean"])
            record(
                "semi",
                {
                    "dataset": name,
                    "method": arm,
                    "settings": result["settings"],
                    "mean": result["test_mean"],
                    "std": result["test_std"],
                    "val_mean": result["val_mean"],
                    "points_over_plain": round(gain, 2),
                    "seeds": seeds,
                    "cpu_seconds": result["cpu_seconds"],
                    "per_seed": result["per_seed_test"],
                    "protocol": result["protocol"],
                },
            )


def multitask_part(budget: float | None, seeds: int) -> None:
    from labelless.data.graph_dataset import NodeIds, graph_splits
    from labelless.data.graph_splits import split_edges
    from labelless.data.graphs import NodeDataset, load_graph_dataset
    from labelless.evaluate import embed
    from labelless.evaluate.graph_links import link_prediction
    from labelless.evaluate.graphs import node_clustering, node_probe

    full = load_graph_dataset("cora")
    edges = split_edges(full.graph, val_fraction=0.05, test_fraction=0.1, seed=0)
    train_data = NodeDataset(edges.train_graph, full.splits, full.num_classes, "cora-train-edges")
    splits = graph_splits(train_data, row_normalise=True)
    graph = splits.train.samples.graph
    every = NodeIds(np.arange(graph.num_nodes), graph)
    config = config_of("paretognn", "cora")
    arms = {"all tasks (MGDA)": ",".join(PARETO_TASKS), **{t: t for t in PARETO_TASKS}}
    rows = {}
    for arm, tasks in arms.items():
        scores: dict[str, list[float]] = {"probe": [], "nmi": [], "link_auc": []}
        runs = []
        for seed in range(seeds):
            run = pretrain(
                splits,
                "paretognn",
                config,
                seed,
                overrides=[f"method.kwargs.tasks={tasks}"],
                **({} if budget is None else {"max_time": budget}),
            )
            z = embed(run["encoder"], every)
            scores["probe"].append(node_probe(z, full.graph.y, full.splits, seeds=1).mean)
            scores["nmi"].append(node_clustering(z, full.graph.y, seeds=[seed]).nmi)
            scores["link_auc"].append(link_prediction(z, edges)["test_auc"])
            runs.append(run)
        means = {k: round(float(np.mean(v)), 4) for k, v in scores.items()}
        rows[arm] = means
        record(
            "multitask",
            {
                "dataset": "cora",
                "method": f"paretognn: {arm}",
                "tasks": tasks,
                "budget_seconds": budget,
                "pretraining_seeds": seeds,
                **means,
                "average": round(float(np.mean(list(means.values()))), 4),
                **{f"{k}_std": round(float(np.std(v)), 4) for k, v in scores.items()},
                **run_cost(runs),
                "link_split": edges.protocol,
            },
        )
    multi = rows.pop("all tasks (MGDA)")
    best_probe = max(r["probe"] for r in rows.values())
    best_average = max(np.mean(list(r.values())) for r in rows.values())
    record(
        "multitask",
        {
            "dataset": "cora",
            "method": "claim",
            "probe_gap_to_best_single": round(100 * (multi["probe"] - best_probe), 2),
            "average_gap_to_best_single": round(
                100 * (float(np.mean(list(multi.values()))) - best_average), 2
            ),
        },
    )


def heterophily_part(probe_seeds: int) -> None:
    from labelless.evaluate import embed
    from labelless.evaluate.graph_baselines import raw_feature_probe
    from labelless.evaluate.graphs import node_probe

    for name in HETEROPHILY:
        graph, split_tensors, every = _node_graph(name, row_normalise=True)
        run = pretrain(name, "ccassg", config_of("ccassg", "heterophily"), 0)
        z = embed(run["encoder"], every)
        probe = node_probe(z, graph.y, split_tensors, seeds=probe_seeds)
        raw = raw_feature_probe(_node_graph(name)[0], split_tensors, seeds=probe_seeds)
        record(
            "heterophily",
            {
                "dataset": name,
                "method": "ccassg",
                "config": relative(config_of("ccassg", "heterophily")),
                "mean": round(probe.mean, 4),
                "std": round(probe.std, 4),
                "raw_features_mean": round(raw.mean, 4),
                "raw_features_std": round(raw.std, 4),
                "splits": len(split_tensors),
                "cpu_seconds": run["cpu_seconds"],
                "train_wall_seconds": run["train_wall_seconds"],
            },
        )


SCALE_SCRIPT = """
import json, sys, time, torch
torch.set_num_threads({threads})


def peak_mib():
    # VmHWM: this process's own peak (ru_maxrss carries the forking parent's peak over exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024



import labelless
from labelless.data import load_dataset
from labelless.data.graph_dataset import NodeIds
from labelless.evaluate import embed
from labelless.evaluate.graphs import node_probe
cpu = time.process_time()
result = labelless.pretrain("pubmed", "ccassg", config={config!r}, out={out!r}, seed=0,
    overrides={overrides!r})
cpu = time.process_time() - cpu
splits = load_dataset("pubmed")
graph = splits.train.samples.graph
z = embed(result.encoder, NodeIds(torch.arange(graph.num_nodes).numpy(), graph))
split = [{{k: torch.as_tensor(v) for k, v in s.items()}} for s in splits.train.meta["splits"]]
probe = node_probe(z, graph.y, split, seeds=5)
print("RESULT", json.dumps({{"probe": probe.mean, "cpu_seconds": round(cpu, 1),
    "train_wall_seconds": result.metrics["training"]["wall_seconds"],
    "steps": result.metrics["training"]["steps"],
    "peak_rss_mib": peak_mib()}}))
"""


def scale_part(threads: int) -> None:
    config = config_of("ccassg", "pubmed")
    settings = {
        "full batch": [],
        "random-walk subgraphs of 4000 nodes": ["data.options.subgraph_nodes=4000"],
    }
    for label, overrides in settings.items():
        with tempfile.TemporaryDirectory() as out:
            code = SCALE_SCRIPT.format(
                threads=threads, config=str(config), out=str(Path(out) / "run"), overrides=overrides
            )
            done = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT
            )
        line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
        if done.returncode or not line:
            raise RuntimeError(f"pubmed {label} failed:\n{done.stderr[-3000:]}")
        measured = json.loads(line[0][len("RESULT ") :])
        record(
            "scale",
            {
                "dataset": "pubmed",
                "method": f"ccassg, {label}",
                "config": relative(config),
                "overrides": overrides,
                "features": "structural (no features shipped)",
                "mean": round(measured.pop("probe"), 4),
                "process_peak_rss_mib": round(measured.pop("peak_rss_mib"), 1),
                **measured,
            },
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--parts", default="node,graph,semi,heterophily,scale,multitask")
    parser.add_argument("--node-seeds", type=int, default=20, help="pretraining seeds, node part")
    parser.add_argument("--graph-seeds", type=int, default=5, help="pretraining seeds, graph part")
    parser.add_argument("--semi-seeds", type=int, default=20)
    parser.add_argument("--multitask-seeds", type=int, default=2)
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        help="multitask wall seconds a run (default: none, every arm trains the recipe's epochs, "
        "the equal-epoch comparison of the ParetoGNN paper)",
    )
    parser.add_argument("--probe-seeds", type=int, default=20, help="classifier seeds per probe")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=UserWarning)
    parts = {
        "node": lambda: node_part(args.node_seeds, args.probe_seeds),
        "graph": lambda: graph_part(args.graph_seeds),
        "semi": lambda: semi_part(args.semi_seeds),
        "multitask": lambda: multitask_part(args.budget, args.multitask_seeds),
        "heterophily": lambda: heterophily_part(args.probe_seeds),
        "scale": lambda: scale_part(args.threads),
    }
    for part in args.parts.split(","):
        started = time.perf_counter()
        parts[part]()
        print(f"# part {part}: {time.perf_counter() - started:.0f} s wall", flush=True)


if __name__ == "__main__":
    main()
