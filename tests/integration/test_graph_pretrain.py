"""Graphs through the verbs on real data: a short CCA-SSG pretraining on Cora beats its
random-init encoder under the papers' node probe, and evaluate / report / compare / select read
the graph runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from labelless import api
from labelless.data import load_dataset
from labelless.data.graph_dataset import NodeIds
from labelless.evaluate.graph_baselines import random_init_embeddings
from labelless.evaluate.graphs import node_probe

pytestmark = [pytest.mark.data, pytest.mark.slow]

RECIPE = Path(__file__).resolve().parents[2] / "configs" / "graphs" / "ccassg_cora.yaml"


def test_cora_pretraining_beats_random_init_and_the_verbs_read_graph_runs(data_root, tmp_path):
    # 30 of the recipe's 50 epochs (about 9 s of training here); epochs, not a time budget, so
    # the margin does not depend on the machine's speed.
    run = api.pretrain(config=str(RECIPE), epochs=30, out=str(tmp_path / "a"), seed=0)
    trained = run.metrics["node_probe_top1"]
    splits = load_dataset("cora", row_normalise=True)
    graph = splits.train.samples.graph
    every = NodeIds(np.arange(graph.num_nodes), graph)
    floor = node_probe(
        random_init_embeddings(run.encoder, every, seed=0), graph.y, splits.train.meta["splits"]
    ).mean
    # Measured: random-init GCN 2 x 512 ~0.75-0.77, 30 epochs of CCA-SSG ~0.83-0.85.
    assert trained >= floor + 0.04, (trained, floor)
    assert run.metrics["node_clustering_nmi"] > 0.4
    assert run.metrics["protocol"]["node_probe"]["nodes"] == [
        {"train": 140, "val": 500, "test": 1000}
    ]

    # The run's own data is loaded as the run loaded it (row-normalised), unasked.
    scored = api.evaluate(run.run_dir, data="cora")
    assert scored["protocol"]["data_options"] == {"row_normalise": True}
    assert scored["node_probe_top1"] == pytest.approx(trained, abs=1e-6)
    assert api.report(run.run_dir).is_file()

    short = api.pretrain(config=str(RECIPE), epochs=2, out=str(tmp_path / "b"), seed=1)
    # rank_by must name a metric both runs recorded (else a ConfigError): the node probe's.
    page = api.compare(
        [run.run_dir, short.run_dir], out=tmp_path / "compare.html", rank_by="node_probe_top1"
    )
    assert "comparison of 2 encoders" in page.read_text()
    ranked = api.select([run.run_dir, short.run_dir], data="cora")
    assert [r["rank"] for r in ranked] == [1, 2] and ranked[0]["images"] == 2708
    assert all(r["measure"] == "rankme" and 1 < r["value"] <= 512 for r in ranked)
    assert (
        json.loads((Path(run.run_dir) / "metrics.json").read_text())["node_probe_top1"] == trained
    )
