"""Tables: ``float32 [N, F]`` rows (numeric columns standardised, categories as codes),
corruption views from the training rows' empirical marginals, linear and MLP heads at 100% and
1% of the labels as extra protocols."""

from __future__ import annotations

from typing import Any

from torch import nn

from labelless.config import ViewsConfig
from labelless.data import Dataset
from labelless.errors import DataError
from labelless.modalities.base import Modality, register_modality

# Rows of the training table kept on the device as the empirical marginals of corruption views.
REFERENCE_ROWS = 65_536


def _columns(preprocessing: dict[str, Any]) -> list[str]:
    return [*preprocessing.get("numeric", []), *preprocessing.get("categorical", [])]


class Tables(Modality):
    name = "tabular"
    labels_hint = "name its label column with --target COLUMN"

    def backbone_inputs(self, train: Dataset, view_size: int | None) -> dict[str, Any]:
        return {
            "in_channels": int(train.samples.shape[1]),
            "num_numeric": len(train.meta["numeric"]),
            "cardinalities": [int(c) for c in train.meta["cardinalities"]],
        }

    def views(self, recipe: str, train: Dataset, backbone: nn.Module, views: ViewsConfig):
        from labelless.augment.tabular import tabular_views

        reference = train.sample_rows(REFERENCE_ROWS, seed=0)
        return tabular_views(recipe, reference=reference, meta=train.meta, **views.overrides)

    def check_data(self, meta, train: Dataset, data: str) -> None:
        columns = _columns(meta.preprocessing)
        theirs = _columns(train.meta.get("preprocessing") or {})
        if columns and theirs and columns != theirs:
            raise DataError(
                f"the encoder was trained on the columns {columns} but {data!r} has "
                f"{theirs}: give it a table with the same feature columns"
            )
        super().check_data(meta, train, data)

    def protocols(self, encoder, train, test, train_z, test_z, *, seed, trained_heads):
        if not trained_heads:
            return {}, {}
        from labelless.evaluate.tabular import evaluate_table, row_metric_name

        rows = evaluate_table(encoder, train, test, protocols=("linear", "mlp"), seeds=(seed,))
        metrics = {row_metric_name(row): row["value"] for row in rows}
        record = {
            "tables": "linear and MLP heads on frozen embeddings, label fractions 1 and 0.01 "
            "(stratified, seeded; evaluate.tabular.evaluate_table)"
        }
        return metrics, record


TABLES = register_modality(Tables())
