"""``labelless prune``: one-shot global magnitude pruning of an encoder at several sparsities,
kNN (and linear probe) accuracy at each and the knee; ``prune.json`` and ``figures/prune.png``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from labelless.config import KNN_K
from labelless.encoders import resolve_preprocessing
from labelless.progress import task
from labelless.verbs.targets import (
    data_label,
    default_data,
    embed_with,
    knn_k_for,
    labelled_splits,
    load_for,
    resolve_target,
    write_json,
)

CHEAP_LINEAR_SAMPLES = 20_000  # prune sweeps add a linear probe per level below this many


def prune_sweep(
    spec,
    sparsities,
    data: str | Path | None = None,
    *,
    k: int | None = None,
    temperature: float = 0.1,
    linear: bool | None = None,
    seed: int = 0,
    out: str | Path | None = None,
) -> dict[str, Any]:
    """One-shot global magnitude pruning at each level, kNN (and linear probe, by default when
    the train split has at most ``CHEAP_LINEAR_SAMPLES`` samples) accuracy at each, the knee
    (``prune.essential_sparsity``); writes ``prune.json`` and ``figures/prune.png``."""
    from labelless.evaluate.checks import check_int, check_knn_options
    from labelless.prune import KNEE_TOLERANCE, essential_sparsity, parse_sparsities
    from labelless.report import plots, write_report

    levels = parse_sparsities(sparsities)
    check_knn_options(KNN_K if k is None else k, temperature)
    check_int("--seed", seed, 0, 0)
    target = resolve_target(spec, out, "prune")
    data = default_data(spec, data)
    splits = labelled_splits(data)
    train, test = splits.train, splits.test
    model, source = load_for(spec, None, train, data)
    k = knn_k_for(spec, model, k)  # the run's k unless given
    pre = resolve_preprocessing(model.meta)
    linear = len(train) <= CHEAP_LINEAR_SAMPLES if linear is None else linear
    levels = sorted({0.0, *levels})
    rows = []
    with task(f"pruning {len(levels)} sparsity levels", len(levels)) as bar:
        for sparsity in levels:
            rows.append(_level(model, sparsity, (train, test), pre, (k, temperature, linear, seed)))
            bar.advance()
    names = ["knn_top1", *(["linear_top1"] if linear else [])]
    accuracies = {name: [row[name] for row in rows] for name in names}
    knees = {name: essential_sparsity(levels, accuracies[name], rows[0][name]) for name in names}
    record = {
        "levels": rows,
        "knee": knees,
        "knee_definition": (
            f"largest sparsity whose accuracy, and that of every smaller level, is within "
            f"{KNEE_TOLERANCE} (absolute) of the dense (0.0) accuracy"
        ),
        "protocol": {
            "pruning": "one-shot global magnitude, no retraining",
            "pruned": "weights of every Conv and Linear layer (no biases, no norm layers)",
            "knn": {"k": k, "temperature": temperature, "similarity": "cosine"},
            "linear": "labelless.evaluate.linear_probe defaults" if linear else None,
            "preprocessing": pre.protocol(),
            "data": data_label(data),
            "train_samples": len(train),
            "test_samples": len(test),
            "seed": seed,
        },
        "encoder": source,
    }
    write_json(target.directory / "prune.json", record)
    plots.plot_sparsity(levels, accuracies, knees, target.files.figures / "prune.png")
    if target.is_run:
        write_report(target.directory)  # reuses the saved figures, adds the pruning section
    return record


def _level(model, sparsity: float, splits, pre, settings) -> dict[str, Any]:
    """One pruning level: the pruned copy's measured sparsity and accuracies. ``settings`` is
    ``(k, temperature, linear, seed)``."""
    from labelless.evaluate import knn_accuracy, linear_probe
    from labelless.prune import global_magnitude_prune, weight_sparsity

    (train, test), (k, temperature, linear, seed) = splits, settings
    pruned = global_magnitude_prune(model, sparsity)
    train_z, test_z = embed_with(pruned, train.samples, pre), embed_with(pruned, test.samples, pre)
    row = {"sparsity": sparsity, "measured_sparsity": round(weight_sparsity(pruned), 6)}
    row["knn_top1"] = knn_accuracy(
        train_z, train.labels, test_z, test.labels, k=k, temperature=temperature
    )
    if linear:
        row["linear_top1"] = linear_probe(
            train_z, train.labels, test_z, test.labels, seed=seed
        ).accuracy
    return row
