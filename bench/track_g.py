"""Track G: graphs. Self-supervised node and graph encoders against the papers' protocols, the
semi-supervised GCN with auxiliary tasks, the multi-task claim, heterophily and scale.

Every pretraining runs through the library's own verb (``labelless.pretrain`` with a shipped
recipe from ``configs/graphs/``), so what is measured is what a user runs; its CPU time
(``time.process_time``, all threads of this process) and wall time are recorded, with the load
average and the peak memory. Each row is appended to ``bench/results/track_g.jsonl``.

    LABELLESS_DATA=../shared/data .venv/bin/python bench/track_g.py                # all parts
    LABELLESS_DATA=../shared/data .venv/bin/python bench/track_g.py --parts node   # one part

Parts: ``node`` (Cora, CiteSeer: node probe, 20 seeds, + raw features, supervised GCN, random
init), ``graph`` (MUTAG, PROTEINS: 10-fold SVM, 5 seeds, + raw features, random init), ``semi``
(GCN vs GCN + auxiliary tasks, Cora, 20 seeds), ``multitask`` (ParetoGNN vs each single task:
node probe, clustering NMI, link-prediction AUC on held-out edges), ``heterophily`` (Cornell,
Texas, Wisconsin, Film: 10 splits vs raw features), ``scale`` (PubMed full batch and on
random-walk subgraphs, peak memory).
"""

from __future__ import annotations

import argparse
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
GRAPH_SETS = {"tu:MUTAG": "graphmae", "tu:PROTEINS": "graphmae"}
HETEROPHILY = ("cornell", "texas", "wisconsin", "film")


def config_of(method: str, data: str) -> Path:
    """The shipped recipe ``configs/graphs/<method>_<data>.yaml`` (``tu:`` dropped)."""
    return CONFIGS / f"{method}_{data.replace('tu:', '').lower()}.yaml"


def pretrain(data, method: str, config: Path | None, seed: int, **flags: Any) -> dict[str, Any]:
    """One pretraining through ``labelless.pretrain``: the encoder, CPU and wall seconds."""
    import labelless

    with tempfile.TemporaryDirectory() as out:
        cpu, wall = time.process_time(), time.perf_counter()
        result = labelless.pretrain(
            data,
            method,
            config=str(config) if config is not None and config.is_file() else None,
            out=str(Path(out) / "run"),
            seed=seed,
            **flags,
        )
        return {
            "encoder": result.encoder,
            "cpu_seconds": round(time.process_time() - cpu, 1),
            "wall_seconds": round(time.perf_counter() - wall, 1),
            "epochs": result.metrics.get("training", {}).get("epochs_done"),
            "run_metrics": {k: v for k, v in result.metrics.items() if isinstance(v, (int, float))},
        }


def record(part: str, row: dict[str, Any]) -> None:
    row = {"track": "G", "part": part, **row, **environment(), "peak_rss_mib": peak_rss_mb()}
    append_result("track_g", row)
    shown = {k: v for k, v in row.items() if k not in ("runs", "protocol", "run_metrics")}
    print(shown, flush=True)


def _summary(result) -> dict[str, Any]:
    return {
        "mean": round(float(result.mean), 4),
        "std": round(float(result.std), 4),
        "runs": result.runs,
        "protocol": result.protocol,
    }


def node_part(seeds: int, probe_seeds: int) -> None:
    from labelless.data import load_dataset
    from labelless.data.graph_dataset import NodeIds
    from labelless.evaluate import embed
    from labelless.evaluate.graph_baselines import (
        random_init_embeddings,
        raw_feature_probe,
        supervised_gcn,
    )
    from labelless.evaluate.graphs import node_clustering, node_probe

    for name, method in NODE_SETS.items():
        splits = load_dataset(name)
        graph = splits.train.samples.graph
        split_tensors = [
            {k: torch.as_tensor(v) for k, v in s.items()} for s in splits.train.meta["splits"]
        ]
        every = NodeIds(np.arange(graph.num_nodes), graph)
        for seed in range(seeds):
            run = pretrain(name, method, config_of(method, name), seed)
            z = embed(run["encoder"], every)
            probe = node_probe(z, graph.y, split_tensors, seeds=probe_seeds)
            clusters = node_clustering(z, graph.y, seeds=[seed])
            record(
                "node",
                {
                    "dataset": name,
                    "method": method,
                    "seed": seed,
                    "config": str(config_of(method, name).relative_to(ROOT)),
                    **_summary(probe),
                    "nmi": round(float(clusters.nmi), 4),
                    **{k: run[k] for k in ("cpu_seconds", "wall_seconds", "epochs", "run_metrics")},
                },
            )
            encoder = run["encoder"]
        cpu = time.process_time()
        raw = raw_feature_probe(graph, split_tensors, seeds=probe_seeds)
        record(
            "node",
            {
                "dataset": name,
                "method": "raw features",
                **_summary(raw),
                "cpu_seconds": round(time.process_time() - cpu, 1),
            },
        )
        cpu = time.process_time()
        gcn = supervised_gcn(graph, split_tensors, seeds=probe_seeds)
        record(
            "node",
            {
                "dataset": name,
                "method": "supervised GCN",
                **_summary(gcn),
                "cpu_seconds": round(time.process_time() - cpu, 1),
            },
        )
        z0 = random_init_embeddings(encoder, every, seed=0)
        rand = node_probe(z0, graph.y, split_tensors, seeds=probe_seeds)
        record(
            "node",
            {
                "dataset": name,
                "method": f"random-init {encoder.meta.architecture}",
                **_summary(rand),
            },
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--parts", default="node,graph,semi,multitask,heterophily,scale")
    parser.add_argument("--seeds", type=int, default=1, help="pretraining seeds per setting")
    parser.add_argument("--probe-seeds", type=int, default=20, help="node protocol seeds")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=UserWarning)
    parts = {"node": lambda: node_part(args.seeds, args.probe_seeds)}
    for part in args.parts.split(","):
        parts[part]()


if __name__ == "__main__":
    main()
