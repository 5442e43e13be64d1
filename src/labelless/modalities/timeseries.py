"""Time series: ``float32 [N, C, T]`` (per-channel standardised when loaded), the series view
recipes, and TS2Vec's RBF SVM on embeddings as the extra protocol of UCR classification."""

from __future__ import annotations

import math
from typing import Any

from torch import nn

from labelless.config import ViewsConfig
from labelless.data import Dataset
from labelless.modalities.base import Modality, register_modality


def _json_number(value: float) -> float | str:
    """Strict JSON has no Infinity: an infinite SVM C is written "inf"."""
    return value if math.isfinite(value) else "inf"


class Series(Modality):
    name = "timeseries"

    def views(self, recipe: str, train: Dataset, backbone: nn.Module, views: ViewsConfig):
        from labelless.augment.timeseries import timeseries_views

        return timeseries_views(recipe, **views.overrides)

    def protocols(self, encoder, train, test, train_z, test_z, *, seed, trained_heads):
        if not (train.has_labels and test.has_labels):
            return {}, {}
        from labelless.evaluate.timeseries import svm_accuracy

        svm = svm_accuracy(train_z, train.labels, test_z, test.labels, seed=seed)
        record: dict[str, Any] = {**svm.protocol, "searched": bool(svm.searched)}
        record["C_grid"] = [_json_number(c) for c in record.get("C_grid", [])]
        record["C"] = _json_number(svm.C)
        return {"svm_top1": svm.accuracy}, {"svm": record}


SERIES = register_modality(Series())
