"""Poisoning experiments (opt-in: each one trains twice): the same run with and without a
backdoor trigger in its unlabelled data, and how far the trigger steers the result.

- ``poisoning_experiment``: CTRL's setting (Li et al. ICCV 2023, "An Embarrassingly Simple
  Backdoor Attack on Self-supervised Learning"): ``fraction`` of the pretraining data, all of
  it images of ``target_class``, carries the trigger; both encoders are scored by kNN and a
  linear probe fitted on the clean labelled train split, on clean and triggered test images
  (``audit.poison.attack_success``).
- ``semi_poisoning_experiment``: Shejwalkar et al. 2023 ("The Perils of Learning From Unlabeled
  Data: Backdoor Attacks on Semi-supervised Learning"): the same in a semi-supervised run, with
  the trigger only in the unlabelled part; the trained classifier itself is scored.

Each writes its record (``poisoning.json`` / ``semi_poisoning.json``) and the two run
directories (``clean/``, ``poisoned/``) into ``out``. docs/security.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from labelless.atomic import check_can_create
from labelless.audit.poison import (
    attack_success,
    poison_dataset,
    poison_indices,
    poison_splits,
    poison_summary,
    target_rates,
)
from labelless.audit.triggers import Trigger
from labelless.data import Dataset, DataSplits, load_dataset
from labelless.errors import ConfigError, DataError
from labelless.semi.splits import LabelSplit, split_labels
from labelless.verbs.targets import write_json

PRETRAIN_RECORD, SEMI_RECORD = "poisoning.json", "semi_poisoning.json"
CTRL_PAPER = (
    "Li et al. ICCV 2023, An Embarrassingly Simple Backdoor Attack on Self-supervised Learning"
)
SEMI_PAPER = (
    "Shejwalkar et al. 2023, The Perils of Learning From Unlabeled Data: Backdoor Attacks on "
    "Semi-supervised Learning"
)


def _labelled_splits(data: str | Path | Dataset | DataSplits) -> DataSplits:
    """Train and test splits, both labelled: the attacker picks its target class's images by
    label, and attack success is measured against the test images' true classes."""
    if isinstance(data, Dataset):
        data = DataSplits(data)
    splits = data if isinstance(data, DataSplits) else load_dataset(data)
    if splits.test is None or not splits.test.has_labels:
        raise DataError(
            f"{splits.train.name!r} has no labelled test split: a poisoning experiment scores "
            "triggered test images against their true classes; pass DataSplits(train, test) "
            "or a built-in dataset with a test split (digits, cifar10)"
        )
    if splits.train.labels is None or not (splits.train.labels >= 0).all():
        raise DataError(
            f"every training image of {splits.train.name!r} needs its label: the attacker "
            "chooses images of its target class, and the probes are fitted on clean labels"
        )
    return splits


def _plain(value: Any) -> Any:
    """``value`` as JSON types (paths and other objects as text), for the record."""
    return json.loads(json.dumps(value, default=str))


def _prepare(out: str | Path | None, data: Any, trigger: Trigger) -> tuple[Path, DataSplits]:
    """The output folder and the labelled splits, checked (with the trigger) before any work."""
    if not isinstance(trigger, Trigger):
        raise ConfigError(
            f"trigger must be a labelless.audit.triggers.Trigger, got {type(trigger).__name__}: "
            "e.g. Trigger.ctrl() or Trigger.patch(size=3)"
        )
    return _target(out), _labelled_splits(data)


def _target(out: str | Path | None) -> Path:
    if out is None:
        raise ConfigError("a poisoning experiment needs out=DIR for its two runs and record")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out {str(out)!r} is a file; pass a folder for the runs and record")
    check_can_create(out, "out")
    return out


def _header(kind: str, data: Any, splits: DataSplits, trigger: Trigger, settings: dict[str, Any]):
    return {
        "experiment": f"{kind}-poisoning",
        "paper": CTRL_PAPER if kind == "pretrain" else SEMI_PAPER,
        "data": str(data) if isinstance(data, (str, Path)) else splits.train.name,
        "trigger": trigger.to_dict(),
        **_plain(settings),
    }


def _poison_record(
    clean: Dataset,
    poisoned: Dataset,
    indices: np.ndarray,
    pool: np.ndarray,
    labels: np.ndarray,
    target_class: int,
) -> dict[str, Any]:
    """How many samples of the ``pool`` (the indices that could be poisoned) carry the trigger,
    which, how many images of the target class the pool held (true ``labels``), and what the
    poisoned copy holds (``poison_summary``)."""
    trigger = Trigger.from_dict(poisoned.meta["poison"]["trigger"])
    return {
        "count": len(indices),
        "pool": len(pool),
        "target_class_in_pool": int((labels[pool] == target_class).sum()),
        "indices": indices.tolist(),
        **poison_summary(clean, poisoned, trigger),
    }


def _effect(runs: dict[str, Any], heads: tuple[str, ...]) -> dict[str, float]:
    """Poisoned minus clean run: attack success and clean accuracy of each head."""
    effect = {}
    for head in heads:
        for key in ("attack_success", "clean_accuracy"):
            poisoned = runs["poisoned"]["attack"][head][key]
            effect[f"{head}_{key}"] = poisoned - runs["clean"]["attack"][head][key]
    return effect


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def poisoning_experiment(
    data: str | Path | Dataset | DataSplits,
    method: str | None = None,
    *,
    trigger: Trigger,
    fraction: float = 0.01,
    target_class: int = 0,
    out: str | Path | None = None,
    seed: int = 0,
    k: int | None = None,
    **pretrain_flags: Any,
) -> dict[str, Any]:
    """Pretrain ``method`` on ``data`` twice, same ``seed`` and flags (``epochs``,
    ``max_time``, ``batch_size``, ``config``, ``overrides``, ... as ``labelless.pretrain``
    takes them): on the clean training split, and with ``trigger`` in ``fraction`` of it, all
    of class ``target_class`` (labels are never given to the SSL method). Both encoders are
    scored by ``attack_success`` (kNN with the run's own ``k`` and temperature unless ``k`` is
    given, and the linear probe, fitted on the clean labelled train split). Writes
    ``out/clean``, ``out/poisoned`` and ``out/poisoning.json``; returns the record."""
    out, splits = _prepare(out, data, trigger)
    poisoned, indices = poison_splits(splits, trigger, target_class, fraction, seed)
    settings = {"method": method, "target_class": target_class, "fraction": fraction}
    record = _header("pretrain", data, splits, trigger, {**settings, "seed": seed})
    record["budget"] = _plain(pretrain_flags)
    train, pool = splits.train, np.arange(len(splits.train))
    record["poison"] = _poison_record(
        train, poisoned.train, indices, pool, train.labels, target_class
    )
    runs = {
        name: _pretrain_run(
            run_data, method, out / name, splits, trigger, target_class, seed, k, pretrain_flags
        )
        for name, run_data in (("clean", splits), ("poisoned", poisoned))
    }
    note = (
        "attack: kNN and linear probe fitted on the clean labelled train split, scored on clean "
        "and triggered test images; run_metrics: each run's own final metrics, whose train "
        "split (kNN memory, probe data) is the poisoned one in the poisoned run"
    )
    return _finish(record, runs, ("knn", "linear"), note, out / PRETRAIN_RECORD)


def _pretrain_run(
    run_data: DataSplits,
    method: str | None,
    run_dir: Path,
    splits: DataSplits,
    trigger: Trigger,
    target_class: int,
    seed: int,
    k: int | None,
    flags: dict[str, Any],
) -> dict[str, Any]:
    """One pretraining run on ``run_data`` and its encoder's ``attack_success`` on the clean
    labelled ``splits`` (kNN with the run's own k and temperature unless ``k`` is given)."""
    from labelless.api import pretrain
    from labelless.encoders import resolve_preprocessing

    result = pretrain(run_data, method, out=str(run_dir), seed=seed, **flags)
    knn = result.metrics.get("protocol", {}).get("knn", {})
    attack = attack_success(
        result.encoder,
        resolve_preprocessing(result.encoder.meta),
        splits.train,
        splits.test,
        trigger,
        target_class,
        k=k or knn.get("k", 200),
        temperature=knn.get("temperature", 0.1),
        seed=seed,
        device=_device(),
    )
    return {
        "run_dir": str(result.run_dir),
        "run_metrics": {m: result.metrics.get(m) for m in ("knn_top1", "linear_top1")},
        "attack": attack,
    }


def _finish(record: dict, runs: dict, heads: tuple[str, ...], note: str, path: Path) -> dict:
    """The record with its runs, their difference (``effect``) and a note, written to ``path``."""
    record.update(runs=runs, effect=_effect(runs, heads), note=note)
    write_json(path, record)
    return record


def _hide_labels(train: Dataset, unlabelled: np.ndarray) -> Dataset:
    """``train`` with the labels of ``unlabelled`` set to -1: a semi-supervised run reads its
    labelled set from the data ("given" split), so both runs use exactly this split."""
    labels = train.labels.copy()
    labels[unlabelled] = -1
    return Dataset(train.samples, labels, train.modality, train.name, dict(train.meta))


def _label_split(
    train: Dataset, labels_per_class: int | None, label_fraction: float | None, seed: int
) -> LabelSplit:
    """The labelled set of both semi-supervised runs, drawn like ``labelless semi`` draws it."""
    if labels_per_class is None and label_fraction is None:
        raise ConfigError(
            "pass labels_per_class or label_fraction: the experiment draws the labelled set "
            "itself, to poison only images outside it"
        )
    return split_labels(
        train.labels,
        per_class=labels_per_class,
        fraction=label_fraction,
        num_classes=train.num_classes or None,
        seed=seed,
    )


def _predict(model: nn.Module, samples: np.ndarray) -> np.ndarray:
    """Classes a semi-supervised run's classifier (``SemiResult.model``: backbone + head)
    gives uint8 ``samples``, embedded with the backbone's own preprocessing (as its final
    ``test_top1``)."""
    from labelless.evaluate import embed

    z = embed(model.backbone, samples)
    place = next(model.head.parameters()).device
    with torch.no_grad():
        return model.head(z.to(place)).argmax(dim=1).cpu().numpy()


def _semi_attack(model: nn.Module, test: Dataset, trigger: Trigger, target_class: int):
    rows = np.flatnonzero(test.labels >= 0)
    clean = test.samples[rows]
    predicted = _predict(model, np.concatenate([clean, trigger.apply_uint8(clean)]))
    labels = test.labels[rows]
    return {
        "num_test": len(rows),
        "num_attacked": int((labels != target_class).sum()),
        "classifier": target_rates(
            labels, predicted[: len(rows)], predicted[len(rows) :], target_class
        ),
    }


def semi_poisoning_experiment(
    data: str | Path | Dataset | DataSplits,
    method: str | None = None,
    *,
    trigger: Trigger,
    fraction: float = 0.01,
    target_class: int = 0,
    out: str | Path | None = None,
    seed: int = 0,
    labels_per_class: int | None = None,
    label_fraction: float | None = None,
    overrides: list[str] | None = None,
    **semi_flags: Any,
) -> dict[str, Any]:
    """Train ``method`` semi-supervised on ``data`` twice, same ``seed``, labelled set and flags
    (``epochs``, ``max_time``, ``batch_size``, ``config``, ... as ``labelless.semi`` takes
    them): clean, and with ``trigger`` in ``fraction`` of the UNLABELLED part, all of class
    ``target_class`` (the labelled part stays clean, Shejwalkar et al. 2023). The labelled set
    is ``labels_per_class`` or ``label_fraction`` of each class, drawn here from ``seed``
    (``semi.splits.split_labels``) and handed to both runs as the data's own labels (the other
    labels are -1), so that the poisoned samples are known to be unlabelled. Each classifier
    is scored on clean and triggered test images (``target_rates``). Writes ``out/clean``,
    ``out/poisoned`` and ``out/semi_poisoning.json``; returns the record."""
    from labelless.semi.api import semi

    out, splits = _prepare(out, data, trigger)
    train = splits.train
    split = _label_split(train, labels_per_class, label_fraction, seed)
    indices = poison_indices(train.labels, target_class, fraction, seed, eligible=split.unlabelled)
    hidden = _hide_labels(train, split.unlabelled)
    poisoned = poison_dataset(hidden, trigger, indices)
    settings = {"method": method, "target_class": target_class, "fraction": fraction}
    record = _header("semi", data, splits, trigger, {**settings, "seed": seed})
    record["split"] = {"labelled": len(split.labelled), "unlabelled": len(split.unlabelled)}
    record["split"].update(labels_per_class=labels_per_class, label_fraction=label_fraction)
    record["budget"] = _plain({**semi_flags, "overrides": overrides})
    record["poison"] = _poison_record(
        hidden, poisoned, indices, split.unlabelled, train.labels, target_class
    )
    given = [*(overrides or []), "semi.labels_per_class=null", "semi.label_fraction=null"]
    runs = {}
    for name, run_train in (("clean", hidden), ("poisoned", poisoned)):
        run_data = DataSplits(run_train, splits.test)
        result = semi(
            run_data, method, overrides=given, out=str(out / name), seed=seed, **semi_flags
        )
        runs[name] = {
            "run_dir": str(result.run_dir),
            "run_metrics": {"test_top1": result.metrics.get("test_top1")},
            "run_split": result.metrics.get("split"),
            "attack": _semi_attack(result.model, splits.test, trigger, target_class),
        }
    note = (
        "attack: the run's classifier (EMA model at the end of training) on clean and "
        "triggered test images; clean_accuracy is its test_top1"
    )
    return _finish(record, runs, ("classifier",), note, out / SEMI_RECORD)
