"""``labelless finetune``: the whole encoder fine-tuned with a linear head
(``labelless.finetune``), with the encoder's own resize and normalisation; ``finetune.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from labelless.encoders import resolve_preprocessing
from labelless.verbs.targets import (
    data_label,
    default_data,
    labelled_splits,
    load_for,
    read_json,
    resolve_target,
    write_json,
)


def finetune_encoder(
    spec,
    data: str | Path | None = None,
    *,
    settings=None,
    out: str | Path | None = None,
) -> dict[str, Any]:
    """Fine-tune the whole encoder with a linear head (``labelless.finetune``) and write
    ``finetune.json`` with the test accuracy and its protocol. The frozen linear probe of the
    same data, when the run recorded one, is copied next to it for reference."""
    from labelless.augment import EvalTransform
    from labelless.finetune import FinetuneSettings, finetune

    settings = settings or FinetuneSettings()
    settings.check()
    target = resolve_target(spec, out, "finetune")
    data = default_data(spec, data)
    splits = labelled_splits(data)
    train, test = splits.train, splits.test
    model, source = load_for(spec, None, train, data)
    pre = resolve_preprocessing(model.meta)
    transform = EvalTransform(pre.input_size, pre.mean, pre.std)
    keep = test.labels >= 0
    result = finetune(
        model,
        train.samples,
        train.labels,
        test.samples[keep],
        test.labels[keep],
        settings,
        transform=transform,
    )
    result["protocol"].update(preprocessing=pre.protocol(), data=data_label(data))
    result["protocol"].update(train_split=train.name, test_split=test.name)
    recorded = read_json(target.files.metrics_json)
    reference = (recorded.get("evaluations") or {}).get(f"{data_label(data)} [native]")
    final_split = str((recorded.get("protocol") or {}).get("test_split", ""))
    if reference is None and final_split == test.name:
        reference = recorded  # the pretraining run's own final metrics, on the same test split
    if reference and "linear_top1" in reference:
        result["frozen_linear_top1"] = reference["linear_top1"]
    result["encoder"] = source
    write_json(target.directory / "finetune.json", result)
    return result
