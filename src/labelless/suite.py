"""The evaluation suite's verbs over encoders and run directories, behind ``labelless.api``:
evaluate any encoder, rebuild a run's report, compare runs, prune and fine-tune an encoder.

Every verb checks its inputs (encoder, data, output folder) before computing, and writes its
files atomically (a temporary name, then a rename) only once everything succeeded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from labelless.atomic import check_can_create
from labelless.config import write_text_atomic
from labelless.data import Dataset, DataSplits, load_dataset
from labelless.encoders import Preprocessing, is_run_dir, load_any_encoder, resolve_preprocessing
from labelless.errors import CheckpointError, ConfigError, DataError

RETRIEVAL_QUERIES = 6
RETRIEVAL_NEIGHBOURS = 8
CHEAP_LINEAR_SAMPLES = 20_000  # prune sweeps add a linear probe per level below this many


@dataclass
class Target:
    """Where a verb writes: a run directory (merged into) or a fresh output folder."""

    directory: Path
    is_run: bool


def data_label(data: str | Path) -> str:
    """The dataset's short name: a built-in name, or a folder's last component."""
    return Path(str(data)).name or str(data)


def labelled_splits(data: str | Path, **options: Any) -> DataSplits:
    """Train and test splits with labels (or, for regression tables, targets); ``options`` go to
    the loader of a data file (e.g. ``target="label", test=0.25`` for a CSV)."""
    splits = load_dataset(data, **options)
    targets = splits.test is not None and splits.train.targets is not None
    if targets and splits.test.targets is not None:
        return splits
    if not splits.train.has_labels:
        raise DataError(_no_labels_message(data, splits.train))
    if splits.test is None:
        raise DataError(
            f"{str(data)!r} has no test split to score on: for a data file hold out a share "
            "with --test-fraction 0.2, or evaluate on a dataset with train and test splits "
            "(a built-in one such as digits)"
        )
    if not splits.test.has_labels:
        raise DataError(
            f"the test split of {str(data)!r} has no labels: give labelled test data (a CSV "
            "with the --target column filled in, a labelled image folder) or --test-fraction "
            "0.2 to hold out labelled rows of train"
        )
    return splits


def _no_labels_message(data: str | Path, train: Dataset) -> str:
    """Why ``data`` has no labels and the ways to give some, by its modality."""
    if train.modality == "tabular":
        how = "name its label column with --target COLUMN"
    elif train.modality == "image":
        how = (
            "for an image folder put one sub-folder per class (FOLDER/cat/*.png, FOLDER/dog/*.png)"
        )
    else:
        how = "give a file whose rows carry class labels"
    return (
        f"{str(data)!r} has no labels, and this measures accuracy against labels: {how}; or "
        "measure the encoder without labels (`labelless select RUN --measure rankme`)"
    )


def _table_columns(preprocessing: dict[str, Any]) -> list[str]:
    return [*preprocessing.get("numeric", []), *preprocessing.get("categorical", [])]


def check_channels(model: nn.Module, train: Dataset, data: str | Path) -> None:
    """The data must be of the encoder's modality and shape (channels; a table's columns)."""
    modality = getattr(model.meta, "modality", "image")
    if train.modality != modality:
        raise DataError(
            f"the encoder takes {modality} data but {str(data)!r} is {train.modality}: evaluate "
            "it on data of the kind it was trained on"
        )
    if modality == "tabular":
        columns = _table_columns(model.meta.preprocessing)
        theirs = _table_columns(train.meta.get("preprocessing") or {})
        if columns and theirs and columns != theirs:
            raise DataError(
                f"the encoder was trained on the columns {columns} but {str(data)!r} has "
                f"{theirs}: give it a table with the same feature columns"
            )
    if modality != "image":
        features = int(train.samples.shape[1])
        if features != model.meta.in_channels:
            raise DataError(
                f"the encoder takes {model.meta.in_channels} input channels/columns but "
                f"{str(data)!r} has {features}: evaluate it on data of the kind it was trained on"
            )
        return
    if train.in_channels != model.meta.in_channels:
        raise DataError(
            f"the encoder expects {model.meta.in_channels}-channel images but {str(data)!r} has "
            f"{train.in_channels}: evaluate it on data of the kind it was trained on"
        )


def resolve_target(spec, out: str | Path | None, verb: str) -> Target:
    """The run directory when ``spec`` is one (and no ``out``), else ``out``, which must then be
    given. Checked before any work is done, after the encoder path itself."""
    from labelless.backbones.registry import TIMM_PREFIX

    text = str(spec)
    is_path = not isinstance(spec, nn.Module) and not text.startswith(TIMM_PREFIX)
    if is_path and not Path(text).exists():
        raise CheckpointError(
            f"{text!r} does not exist; pass a run directory, an encoder.safetensors (with "
            "encoder.json beside it) or timm:NAME --weights FILE"
        )
    if is_path:
        _check_encoder_path(Path(text))
    if out is not None:
        out = Path(out)
        if out.exists() and not out.is_dir():
            raise ConfigError(f"--out {str(out)!r} is a file; pass a folder for the results")
        check_can_create(out, "--out")
        return Target(out, is_run_dir(out))
    if not isinstance(spec, nn.Module) and is_run_dir(Path(str(spec))):
        return Target(Path(str(spec)), True)
    raise ConfigError(
        f"{verb} of {str(spec)!r} needs --out DIR to write its results into (only a run "
        "directory is written into in place)"
    )


def _check_encoder_path(path: Path) -> None:
    """``path`` must be a run directory, an encoder folder or an encoder file (.safetensors /
    encoder.json), else a CheckpointError naming what to pass instead."""
    from labelless.backbones.io import META_FILE, WEIGHTS_FILE

    if path.is_dir():
        if is_run_dir(path) or (path / WEIGHTS_FILE).is_file() or (path / META_FILE).is_file():
            return
        what = "folder"
    elif path.suffix in (".safetensors", ".json"):
        return
    else:
        what = "file"
    raise CheckpointError(
        f"{str(path)!r} is not a labelless run directory (no config.yaml, {WEIGHTS_FILE} or "
        f"{META_FILE}) nor an encoder file ({what}): pass the --out folder of a `labelless "
        f"pretrain` or `labelless semi` run, an {WEIGHTS_FILE} with {META_FILE} beside it, or "
        "timm:NAME --weights FILE"
    )


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; {} when absent. A corrupt file is an error, never lost."""
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ConfigError(
            f"cannot read {str(path)!r} ({error}); fix or remove it, then run again"
        ) from error
    if not isinstance(record, dict):
        raise ConfigError(f"{str(path)!r} is not a JSON object; fix or remove it")
    return record


def write_json(path: Path, record: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(record, indent=2, default=float) + "\n")
    return path


def _same_encoder(record: dict[str, Any], source: dict[str, Any]) -> bool:
    theirs = (record.get("encoder") or {}).get("weights_sha256")
    return theirs is None or theirs == source.get("weights_sha256")


def _load(spec, weights, train: Dataset, data) -> tuple[nn.Module, dict[str, Any]]:
    if isinstance(spec, nn.Module):
        if getattr(spec, "meta", None) is None:
            raise ConfigError("the encoder module has no .meta; build it with create_backbone")
        model, source = spec, {"kind": "module", "name": type(spec).__name__}
    else:
        channels = train.in_channels if train.modality == "image" else 3
        model, source = load_any_encoder(spec, weights=weights, in_channels=channels)
    check_channels(model, train, data)
    return model, {**source, **model.meta.to_dict()}


def modality_protocols(model, train: Dataset, test: Dataset, train_z, test_z, seed: int) -> dict:
    """The protocols of each modality beyond kNN / linear: ridge RMSE for regression targets,
    TS2Vec's RBF SVM for series, and for tables the linear and MLP heads at 100% and 1% of the
    labels (``evaluate.tabular.evaluate_table``); their settings under ``modality_protocol``."""
    modality = getattr(model.meta, "modality", "image")
    out: dict[str, Any] = {}
    if train.targets is not None and test.targets is not None:
        from labelless.evaluate.regression import ridge_rmse

        out = ridge_rmse(train_z, train, test_z, test)
        out["modality_protocol"] = out.pop("protocol")
    if modality == "timeseries" and train.has_labels:
        from labelless.evaluate.timeseries import svm_accuracy

        svm = svm_accuracy(train_z, train.labels, test_z, test.labels, seed=seed)
        out["svm_top1"] = svm.accuracy
        out["modality_protocol"] = {"svm": {"C": str(svm.C), "searched": bool(svm.searched)}}
    if modality == "tabular":
        from labelless.evaluate.tabular import evaluate_table

        rows = evaluate_table(model, train, test, protocols=("linear", "mlp"), seeds=(seed,))
        for row in rows:
            out[f"{row['protocol']}_{row['metric']}_{row['fraction']:g}"] = row["value"]
        out["modality_protocol"] = {
            "tables": "linear and MLP heads on frozen embeddings, label fractions 1 and 0.01 "
            "(stratified, seeded; evaluate.tabular.evaluate_table)"
        }
    return out


def embed_with(model: nn.Module, images: np.ndarray, pre: Preprocessing) -> torch.Tensor:
    from labelless.evaluate import embed

    return embed(model, images, input_size=pre.input_size, mean=pre.mean, std=pre.std)


def evaluate_encoder(
    spec,
    data: str | Path = "digits",
    *,
    weights: str | Path | None = None,
    k: int = 200,
    temperature: float = 0.1,
    input_size: int | None = None,
    normalize: str | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    write: bool = True,
    data_options: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], Path | None]:
    """Every frozen-embedding metric of the encoder ``spec`` on ``data`` (train -> test), with
    the preprocessing protocol; returns ``(metrics, metrics.json written or None)``.

    The metrics go under ``evaluations["<data> [<preprocessing>]"]`` of ``metrics.json`` in the
    run directory (merged with what is there) or in ``out``.
    """
    from labelless.evaluate.checks import (
        check_fraction,
        check_int,
        check_knn_options,
        warn_if_collapsed,
    )
    from labelless.evaluate.protocol import evaluate_embeddings

    check_knn_options(k, temperature)
    check_int("--seed", seed, 0, 0)
    if isinstance((data_options or {}).get("test"), (int, float)):
        check_fraction("--test-fraction", data_options["test"], 0.2)
    target = resolve_target(spec, out, "evaluate") if write else None
    splits = labelled_splits(data, **(data_options or {}))
    train, test = splits.train, splits.test
    model, source = _load(spec, weights, train, data)
    metrics_path = target.directory / "metrics.json" if target else None
    existing = read_json(metrics_path) if metrics_path else {}
    if target and not target.is_run and not _same_encoder(existing, source):
        raise ConfigError(
            f"{str(metrics_path)!r} holds another encoder's metrics; choose another --out"
        )
    pre = resolve_preprocessing(
        model.meta,
        data_mean=train.meta.get("mean"),
        data_std=train.meta.get("std"),
        input_size=input_size,
        normalize=normalize,
    )
    train_z, test_z = embed_with(model, train.samples, pre), embed_with(model, test.samples, pre)
    if train.has_labels:
        metrics = evaluate_embeddings(
            train_z, train.labels, test_z, test.labels, k=k, temperature=temperature, seed=seed
        )
    else:
        metrics = {"protocol": {}}
    if "rankme" in metrics:
        warn_if_collapsed(
            metrics["rankme"], metrics["embedding_std"], test_z.shape[1], f"on {data_label(data)}"
        )
    metrics.update(modality_protocols(model, train, test, train_z, test_z, seed))
    metrics["protocol"].update(metrics.pop("modality_protocol", {}))
    metrics["protocol"].update(
        preprocessing=pre.protocol(),
        data=data_label(data),
        train_split=train.name,
        test_split=test.name,
        final_not_best=True,
    )
    metrics["encoder"] = source
    if target is None:
        return metrics, None
    key = f"{data_label(data)} [{pre.tag()}]"
    record = dict(existing)
    if not target.is_run:
        record["encoder"] = source
    record.setdefault("evaluations", {})[key] = metrics
    return metrics, write_json(metrics_path, record)


def retrieval_examples(train: Dataset, test: Dataset, train_z, test_z, seed: int = 0):
    """A few seeded test queries (one per class first) and their nearest training images."""
    import torch.nn.functional as F

    from labelless.evaluate import top_k_similar
    from labelless.report import RetrievalExamples

    rng = np.random.default_rng(seed)
    labels = test.labels if test.labels is not None else np.full(len(test), -1)
    classes = [c for c in np.unique(labels) if c >= 0]
    picks = [int(rng.choice(np.flatnonzero(labels == c))) for c in classes[:RETRIEVAL_QUERIES]]
    rest = np.setdiff1d(np.arange(len(test)), picks)
    extra = RETRIEVAL_QUERIES - len(picks)
    if extra > 0 and len(rest):
        picks += rng.choice(rest, min(extra, len(rest)), replace=False).tolist()
    queries = np.array(picks, dtype=np.int64)
    k = min(RETRIEVAL_NEIGHBOURS, len(train_z))
    references = F.normalize(train_z.float(), dim=1)
    _, index = top_k_similar(F.normalize(test_z[queries].float(), dim=1), references, k)
    index = index.cpu().numpy()
    train_labels = train.labels if train.labels is not None else np.full(len(train), -1)
    return RetrievalExamples(
        test.samples[queries], labels[queries], train.samples[index], train_labels[index]
    )


def report_inputs(config, train: Dataset, eval_data: Dataset | None, train_z, test_z):
    """Keyword arguments of ``write_report`` for a run: test embeddings and labels, the kNN
    predictions (the run's k and temperature) and a retrieval grid for image data."""
    from labelless.evaluate import knn_predict

    if eval_data is None or test_z is None:
        return {}
    inputs: dict[str, Any] = {
        "embeddings": test_z,
        "labels": eval_data.labels,
        "class_names": eval_data.meta.get("class_names"),
    }
    if train_z is None:
        return inputs
    if train.has_labels and eval_data.has_labels:
        inputs["predictions"] = knn_predict(
            train_z,
            torch.as_tensor(train.labels),
            test_z,
            k=config.monitor.knn_k,
            temperature=config.monitor.knn_temperature,
        ).cpu()
    if eval_data.modality == "image" and train.modality == "image":
        inputs["retrieval"] = retrieval_examples(train, eval_data, train_z, test_z, config.seed)
    return inputs


def rebuild_report(run_dir: str | Path, *, map_method: str = "auto") -> Path:
    """Re-embed the run's train and eval data with its exported encoder and rebuild
    ``report.html`` (the data and k / temperature are the ones named in ``config.yaml``)."""
    from labelless import api
    from labelless.backbones import load_encoder
    from labelless.evaluate import embed
    from labelless.report import write_report
    from labelless.report.plots import MAP_METHODS

    run_dir = Path(run_dir)
    if not is_run_dir(run_dir):
        raise ConfigError(
            f"{str(run_dir)!r} is not a run directory (no config.yaml); pass the --out folder "
            "of a `labelless pretrain` run"
        )
    if map_method not in MAP_METHODS:
        raise ConfigError(f"unknown --map {map_method!r}; choose one of {', '.join(MAP_METHODS)}")
    config = api.load_run_config(run_dir)
    encoder = load_encoder(run_dir)
    splits = api._load_splits(config)
    train, eval_data = splits.train, api._eval_split(config, splits)
    test_z = embed(encoder, eval_data.samples) if eval_data is not None else None
    train_z = embed(encoder, train.samples) if eval_data is not None else None
    inputs = report_inputs(config, train, eval_data, train_z, test_z)
    if not inputs:  # no eval split: map a sample of the training embeddings
        inputs = {"embeddings": embed(encoder, train.sample_rows(10_000))}
    return write_report(run_dir, map_method=map_method, **inputs)


def _default_data(spec, data: str | Path | None) -> str | Path:
    """``data`` or, for a run directory, the labelled data its config names."""
    if data is not None:
        return data
    from labelless import api

    if not isinstance(spec, nn.Module) and is_run_dir(Path(str(spec))):
        config = api.load_run_config(spec)
        return config.data.eval or config.data.name
    raise ConfigError("pass --data NAME: a labelled dataset with train and test splits")


def prune_sweep(
    spec,
    sparsities,
    data: str | Path | None = None,
    *,
    k: int = 200,
    temperature: float = 0.1,
    linear: bool | None = None,
    seed: int = 0,
    out: str | Path | None = None,
) -> dict[str, Any]:
    """One-shot global magnitude pruning at each level, kNN (and linear probe, by default when
    the train split has at most ``CHEAP_LINEAR_SAMPLES`` samples) accuracy at each, the knee
    (``prune.essential_sparsity``); writes ``prune.json`` and ``figures/prune.png``."""
    from labelless.evaluate import knn_accuracy, linear_probe
    from labelless.evaluate.checks import check_int, check_knn_options
    from labelless.prune import (
        KNEE_TOLERANCE,
        essential_sparsity,
        global_magnitude_prune,
        parse_sparsities,
        weight_sparsity,
    )
    from labelless.report import plots, write_report

    levels = parse_sparsities(sparsities)
    check_knn_options(k, temperature)
    check_int("--seed", seed, 0, 0)
    target = resolve_target(spec, out, "prune")
    data = _default_data(spec, data)
    splits = labelled_splits(data)
    train, test = splits.train, splits.test
    model, source = _load(spec, None, train, data)
    pre = resolve_preprocessing(model.meta)
    linear = len(train) <= CHEAP_LINEAR_SAMPLES if linear is None else linear
    levels = sorted({0.0, *levels})
    rows = []
    for sparsity in levels:
        pruned = global_magnitude_prune(model, sparsity)
        train_z, test_z = (
            embed_with(pruned, train.samples, pre),
            embed_with(pruned, test.samples, pre),
        )
        row = {"sparsity": sparsity, "measured_sparsity": round(weight_sparsity(pruned), 6)}
        row["knn_top1"] = knn_accuracy(
            train_z, train.labels, test_z, test.labels, k=k, temperature=temperature
        )
        if linear:
            row["linear_top1"] = linear_probe(
                train_z, train.labels, test_z, test.labels, seed=seed
            ).accuracy
        rows.append(row)
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
    plots.plot_sparsity(levels, accuracies, knees, target.directory / "figures" / "prune.png")
    if target.is_run:
        write_report(target.directory)  # reuses the saved figures, adds the pruning section
    return record


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
    data = _default_data(spec, data)
    splits = labelled_splits(data)
    train, test = splits.train, splits.test
    model, source = _load(spec, None, train, data)
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
    recorded = read_json(target.directory / "metrics.json")
    reference = (recorded.get("evaluations") or {}).get(f"{data_label(data)} [native]")
    final_split = str((recorded.get("protocol") or {}).get("test_split", ""))
    if reference is None and final_split == test.name:
        reference = recorded  # the pretraining run's own final metrics, on the same test split
    if reference and "linear_top1" in reference:
        result["frozen_linear_top1"] = reference["linear_top1"]
    result["encoder"] = source
    write_json(target.directory / "finetune.json", result)
    return result
