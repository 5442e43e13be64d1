"""Graphs: node classification on one graph (samples are its nodes) and graph classification on
a set of graphs (samples are graphs); ``data.graph_dataset`` stores both and says which
(``meta["level"]``).

The descriptor picks each method's backbone for the level (``Method.graph_backbones``: GraphMAE
uses a GAT on nodes and a GIN with a readout on graph sets), checks that an encoder gives node
embeddings for node data and graph embeddings for graph data, and adds the papers' protocols to
the final metrics: for nodes, logistic regression with its regularisation chosen on the
validation nodes (``node_probe``), node clustering NMI; for graph sets, the SVM with C chosen by
inner cross-validation over the shipped 10 folds (``graph_svm``).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from labelless.config import ViewsConfig
from labelless.data import Dataset
from labelless.errors import ConfigError, DataError
from labelless.modalities.base import Modality, register_modality

# Seeds of the node protocol's logistic regression in the final metrics (the papers' 20 are
# for the benchmark; `labelless evaluate` and the end of a run keep this quick).
NODE_PROBE_SEEDS = 5
GRAPH_SVM_SEEDS = 1


def _level(train: Dataset) -> str:
    from labelless.data.graph_dataset import level_of

    return level_of(train)


def _pools(backbone_or_meta) -> bool:
    """True when the encoder pools node embeddings into one embedding per graph."""
    meta = getattr(backbone_or_meta, "meta", backbone_or_meta)
    return bool((getattr(meta, "kwargs", None) or {}).get("readout"))


class Graphs(Modality):
    name = "graph"
    labels_hint = (
        "give node labels (a labels CSV next to the edge list, -1 = unlabelled) or a graph set "
        "with one label per graph"
    )

    @property
    def semi_methods(self) -> dict[str, str]:
        from labelless.semi.graph_run import GRAPH_SEMI_METHODS

        return GRAPH_SEMI_METHODS

    def run_semi(self, config, splits, run_dir):
        from labelless.semi.graph_run import run_graph_semi

        return run_graph_semi(config, splits, run_dir)

    def backbone_inputs(self, train: Dataset, view_size: int | None) -> dict[str, Any]:
        from labelless.data.graph_dataset import NodeIds

        samples = train.samples
        graph = samples.graph if isinstance(samples, NodeIds) else samples[0]
        return {"in_channels": int(graph.num_features)}

    def method_backbone(self, method: type, train: Dataset, view_size: int | None):
        level = _level(train)
        choices = getattr(method, "graph_backbones", None) or {}
        if level not in choices:
            supported = ", ".join(choices) or "none"
            raise ConfigError(
                f"method {method.name!r} does not train on {level}-level graph data (it supports: "
                f"{supported}); pick a method for {level} data (labelless methods --modality graph)"
            )
        name, options = choices[level]
        return name, dict(options)

    def finish_backbone(self, backbone: nn.Module, train: Dataset) -> None:
        level = _level(train)
        backbone.meta.preprocessing = {
            "level": level,
            "features": str(train.meta.get("features", "as given")),
        }
        self._check_level(backbone.meta, level, train.name)
        if level == "node" and "subgraph_nodes" not in train.meta:
            from labelless.data.graph_sampling import memory_check

            dims = getattr(backbone, "layer_dims", None) or [int(backbone.embed_dim)]
            memory_check(train.samples.graph, list(dims))

    @staticmethod
    def _check_level(meta, level: str, data: str) -> None:
        if level == "graph" and not _pools(meta):
            raise ConfigError(
                f"{data!r} is a set of graphs, so the encoder needs a readout that pools nodes "
                "into one embedding per graph: set --set backbone.kwargs.readout=sum (or mean, "
                "max)"
            )
        if level == "node" and _pools(meta):
            raise ConfigError(
                f"{data!r} is node-level data, but the encoder pools whole graphs (readout="
                f"{meta.kwargs.get('readout')!r}): drop backbone.kwargs.readout"
            )

    def views(self, recipe: str, train: Dataset, backbone: nn.Module, views: ViewsConfig):
        from labelless.augment.graph import graph_views

        return graph_views(recipe, **views.overrides)

    def encoder_channels(self, train: Dataset) -> int:
        return int(self.backbone_inputs(train, None)["in_channels"])

    def check_data(self, meta, train: Dataset, data: str) -> None:
        features = self.encoder_channels(train)
        if features != meta.in_channels:
            raise DataError(
                f"the encoder takes {meta.in_channels} node features but {data!r} has "
                f"{features}: evaluate it on graphs with the node features it was trained on"
            )
        self._check_level(meta, _level(train), data)

    def preprocessing(self, meta) -> dict[str, Any]:
        return {"modality": self.name, "as_loaded": True, **(meta.preprocessing or {})}

    def protocols(self, encoder, train, test, train_z, test_z, *, seed, trained_heads):
        from labelless.evaluate.graphs import graph_svm, node_clustering, node_probe

        if _level(train) == "node":
            return self._node_protocols(encoder, train, seed, node_probe, node_clustering)
        labels = train.meta.get("all_labels")
        folds = train.meta.get("folds") or []
        if labels is None or not folds or len(train_z) != len(labels):
            return {}, {}
        svm = graph_svm(train_z, labels, folds, seeds=GRAPH_SVM_SEEDS)
        return {"svm_10fold_top1": svm.mean, "svm_10fold_std": svm.std}, {"graph_svm": svm.protocol}

    @staticmethod
    def _node_protocols(encoder, train, seed, node_probe, node_clustering):
        import numpy as np
        import torch

        from labelless.data.graph_dataset import NodeIds
        from labelless.evaluate import embed

        graph = train.samples.graph
        splits = train.meta.get("splits") or []
        if graph is None or graph.y is None or not splits:
            return {}, {}
        z = embed(encoder, NodeIds(np.arange(graph.num_nodes), graph))
        tensors = [{k: torch.as_tensor(v) for k, v in s.items()} for s in splits]
        probe = node_probe(z, graph.y, tensors, seeds=NODE_PROBE_SEEDS)
        labelled = graph.y >= 0
        clusters = node_clustering(z[labelled], graph.y[labelled], seeds=[seed])
        metrics = {
            "node_probe_top1": probe.mean,
            "node_probe_std": probe.std,
            "node_clustering_nmi": clusters.nmi,
        }
        return metrics, {"node_probe": probe.protocol, "node_clustering": clusters.protocol}


GRAPHS = register_modality(Graphs())
