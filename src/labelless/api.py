"""The verbs as Python functions: ``pretrain``, ``evaluate``, ``report``, ``compare``, ``prune``,
``finetune``, ``select`` and ``curate`` (``labelless.semi`` is the semi-supervised one). Each is
a thin entry point; its implementation lives in ``labelless.verbs`` under the verb's name.

import labelless
result = labelless.pretrain("digits", method="simclr", epochs=20, out="runs/simclr-digits")
print(result.metrics["knn_top1"], result.run_dir)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from labelless.config import RunConfig
from labelless.data import Dataset, DataSplits
from labelless.errors import ConfigError
from labelless.evaluate.neighbours import DEFAULT_NPROBE, IVF_MIN_ROWS
from labelless.verbs.pretrain import PretrainResult, run_pretrain

__all__ = [
    "PretrainResult",
    "audit",
    "compare",
    "convert",
    "curate",
    "distill",
    "evaluate",
    "finetune",
    "merge_shards",
    "pretrain",
    "prune",
    "raw_pixels",
    "report",
    "select",
]


def pretrain(
    data: str | Dataset | DataSplits | None = None,
    method: str | None = None,
    *,
    config: str | Path | RunConfig | dict | None = None,
    overrides: list[str] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    **flags: Any,
) -> PretrainResult:
    """Pretrain an encoder with a self-supervised method and write a run directory.

    ``data`` is a built-in name, an image folder, or an in-memory ``Dataset`` / ``DataSplits``
    (from ``labelless.data.from_arrays``); ``method`` a registered method name. Other
    keywords are the CLI flags (``epochs``, ``batch_size``, ``lr``, ``backbone``, ``width``,
    ``max_time``, ``init``, ``out``, ``seed``, ...). ``max_time`` (seconds) fits the schedules to
    that budget and ends the run annealed when it is spent; ``init`` (a run directory or its
    ``encoder.safetensors``) starts the backbone from an earlier run's encoder, e.g. to continue
    pretraining on new data, and a run directory's method, method kwargs, backbone, views and
    optimiser come with it (not its data, ``out``, epochs or seed). Precedence: defaults < the
    ``init`` run's config < ``config`` < ``overrides`` (``"optim.lr=0.1"``) < keywords. With
    ``resume=True`` the run's own ``config.yaml`` is the base.
    """
    return run_pretrain(
        data,
        method,
        config=config,
        overrides=overrides,
        resume=resume,
        overwrite=overwrite,
        flags=flags,
    )


def distill(
    teacher: str | Path | None = None,
    data: str | None = None,
    *,
    config: str | Path | RunConfig | dict | None = None,
    overrides: list[str] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    **flags: Any,
) -> PretrainResult:
    """Distil a frozen ``teacher`` encoder (a run directory, an ``encoder.safetensors``, or
    ``"timm:NAME"`` with ``teacher_weights=FILE``, local only) into a student backbone on
    unlabelled ``data``, and write a run directory like ``pretrain``'s (the student's encoder;
    ``metrics.json`` with the teacher's SHA-256 and its own metrics on the same protocol).

    Keywords: ``objective`` (``"seed"``, default, or ``"cosine"``), ``student`` (backbone name)
    and ``width``, ``ssl`` / ``ssl_weight`` (add the student's own SSL loss, e.g. ``"simclr"``),
    ``student_from_teacher`` (start the student as a copy of the teacher: fine-tuning without
    labels on the target data), ``teacher_cache`` (the teacher embeds each training sample once,
    un-augmented; no teacher forward per step), ``pseudo_labels`` (K: a head on the student
    learns the k-means clusters of the teacher's embeddings, UNFUSED), and the ``pretrain``
    flags (``epochs``, ``max_time``, ``out``, ``seed``, ...). A teacher whose inputs do not fit
    the data is a DataError before anything is written. See docs/methods/seed.md,
    cosine_distill.md and unfused.md.
    """
    from labelless.verbs.distill import run_distill

    spec = str(teacher) if teacher is not None else None
    return run_distill(
        spec,
        data,
        config=config,
        overrides=overrides,
        resume=resume,
        overwrite=overwrite,
        flags=flags,
    )


def evaluate(
    encoder: str | Path | nn.Module,
    data: str = "digits",
    *,
    weights: str | Path | None = None,
    k: int | None = None,
    temperature: float = 0.1,
    input_size: int | None = None,
    normalize: str | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    data_options: dict[str, Any] | None = None,
    knn_backend: str = "auto",
    knn_nprobe: int = DEFAULT_NPROBE,
    knn_ivf_rows: int = IVF_MIN_ROWS,
) -> dict[str, Any]:
    """Every frozen-embedding metric (kNN, linear probe, few-shot, k-means, retrieval, RankMe and
    other label-free measures) of ``encoder`` on a labelled dataset's train -> test splits.

    ``encoder`` is a run directory, an ``encoder.safetensors`` (``encoder.json`` beside it),
    ``"timm:NAME"`` with a local ``weights`` file, or a module with ``.meta``. Inputs are resized
    and normalised as the encoder was pretrained unless ``input_size`` / ``normalize``
    (``"imagenet"``, ``"dataset"``, ``"MEAN/STD"``) override it; the protocol records which.
    The metrics are added to the run directory's ``metrics.json`` (under ``evaluations``), or
    written to ``out/metrics.json``; a module without ``out`` is only evaluated.
    ``data_options`` go to the loader of a data file (``{"target": "y", "test": 0.25}``).
    Tables and series add their own protocols (``Modality.protocols``). ``k`` (kNN) defaults to
    the k the encoder's run used (its ``config.yaml``), else the modality's (``Modality.knn_k``).
    ``knn_backend``: the kNN's neighbour search, ``auto`` (faiss when installed, else torch),
    ``torch`` or ``faiss`` (``pip install 'labelless[faiss]'``); exact, but faiss searches an
    IVF index (``knn_nprobe`` cells a query) once the train split has ``knn_ivf_rows`` rows, and
    the protocol records its recall@k against the exact search (``protocol.knn.search``).
    """
    from labelless.verbs.evaluate import evaluate_encoder

    write = out is not None or not isinstance(encoder, nn.Module)
    metrics, _ = evaluate_encoder(
        encoder,
        data,
        weights=weights,
        k=k,
        temperature=temperature,
        input_size=input_size,
        normalize=normalize,
        seed=seed,
        out=out,
        write=write,
        data_options=data_options,
        knn_search={"backend": knn_backend, "nprobe": knn_nprobe, "ivf_min_rows": knn_ivf_rows},
    )
    return metrics


def report(run_dir: str | Path, *, map_method: str = "auto") -> Path:
    """Rebuild ``run_dir/report.html`` from the run directory: its encoder re-embeds the data
    named in ``config.yaml``. Returns the report's path."""
    from labelless.verbs.report import rebuild_report

    return rebuild_report(run_dir, map_method=map_method)


def compare(
    run_dirs: list[str | Path], out: str | Path = "compare.html", *, rank_by: str = "knn_top1"
) -> Path:
    """One self-contained HTML page ranking runs / evaluated encoders side by side, protocol by
    protocol; numbers made under another protocol than the rest of their column are flagged."""
    from labelless.report.compare import write_comparison

    path, _ = write_comparison(list(run_dirs), out, rank_by=rank_by)
    return path


def prune(
    encoder: str | Path | nn.Module,
    sparsities: str | list[float] = "0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9",
    data: str | None = None,
    *,
    k: int | None = None,
    temperature: float = 0.1,
    linear: bool | None = None,
    seed: int = 0,
    out: str | Path | None = None,
) -> dict[str, Any]:
    """One-shot global magnitude pruning of the encoder's conv/linear weights at each sparsity,
    kNN (and linear probe) accuracy at each and the knee; writes ``prune.json`` and
    ``figures/prune.png`` into the run directory (or ``out``). ``data`` defaults to the run's,
    ``k`` to the run's kNN k (else the modality's)."""
    from labelless.verbs.prune import prune_sweep

    return prune_sweep(
        encoder, sparsities, data, k=k, temperature=temperature, linear=linear, seed=seed, out=out
    )


def convert(
    source: str,
    out: str | Path,
    *,
    load_size: int = 64,
    encoding: str = "uint8",
    chunk_size: int = 1024,
    seed: int = 0,
    part: str | None = None,
    split: str = "train",
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``source`` (a built-in, an image folder, a table or series file) as a shard set
    that ``--data stream:OUT`` trains from, in a seeded global order; returns its header
    (``labelless.data.shards``). ``part="I/N"`` writes one of N disjoint parts (one per
    machine) for ``merge_shards``."""
    from labelless.data.shards import Part
    from labelless.data.shards import convert as write_shards

    return write_shards(
        source,
        out,
        load_size=load_size,
        encoding=encoding,
        chunk_size=chunk_size,
        seed=seed,
        part=Part.parse(part),
        split=split,
        options=options,
    )


def merge_shards(parts: list[str | Path], out: str | Path) -> dict[str, Any]:
    """Join the parts of one conversion (``convert(..., part="I/N")``) into one shard set."""
    from labelless.data.shards import merge_parts

    return merge_parts(parts, out)


def finetune(
    encoder: str | Path | nn.Module,
    data: str | None = None,
    *,
    out: str | Path | None = None,
    **settings: Any,
) -> dict[str, Any]:
    """Fine-tune the whole encoder with a linear head (AdamW, encoder LR = ``lr`` x
    ``encoder_lr_scale``), the epoch chosen on a validation split carved from train; writes
    ``finetune.json`` (test accuracy + protocol). ``settings``: ``epochs``, ``batch_size``,
    ``lr``, ``encoder_lr_scale``, ``weight_decay``, ``val_fraction``, ``seed``."""
    from labelless.finetune import FinetuneSettings
    from labelless.verbs.finetune import finetune_encoder

    try:
        chosen = FinetuneSettings(**settings)
    except TypeError as error:
        raise ConfigError(f"unknown fine-tuning setting ({error}); see api.finetune") from error
    return finetune_encoder(encoder, data, settings=chosen, out=out)


def select(
    run_dirs: list[str | Path],
    data: str | None = None,
    *,
    measure: str = "rankme",
    split: str = "train",
    max_samples: int | None = None,
    allow_mixed: bool = False,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Rank pretraining runs, best first, by a label-free measure (``rankme``, ``lidar``,
    ``alpha_req``) on the same images; runs of different methods or encoder architectures /
    embedding sizes are a ConfigError unless ``allow_mixed`` (then a warning), and each row's
    ``scope`` says what the measure can compare. See ``labelless.evaluate.select.rank_runs``."""
    from labelless.evaluate.select import rank_runs

    return rank_runs(
        run_dirs,
        measure=measure,
        data=data,
        split=split,
        max_samples=max_samples,
        allow_mixed=allow_mixed,
        seed=seed,
    )


def curate(
    data: str | Path,
    encoder: str | Path | nn.Module,
    *,
    keep: float,
    strategy: str = "balanced",
    out: str | Path,
    target: str | Path | None = None,
    dedup: bool = False,
    dedup_threshold: float = 0.95,
    clusters: int | None = None,
    seed: int = 0,
    weights: str | Path | None = None,
) -> dict[str, Any]:
    """Choose ``keep`` (a fraction in (0, 1]) of the training split of ``data`` to pretrain on,
    from ``encoder``'s embeddings: ``strategy`` ``dedup``, ``kcenter``, ``balanced``,
    ``typical``, ``sas`` (images) or ``simcore`` (towards ``target``); ``dedup=True`` removes
    near-duplicates (cosine >= ``dedup_threshold``) first. Writes ``subset.txt`` (for
    ``pretrain(..., subset=...)``), ``curate.json`` and ``curate.html`` into ``out``; returns
    the record. See docs/curation.md."""
    from labelless.verbs.curate import CurateSettings, curate_data

    settings = CurateSettings(keep, strategy, dedup, dedup_threshold, clusters, seed)
    return curate_data(data, encoder, settings, out=out, target=target, weights=weights)


def audit(
    encoder: str | Path | nn.Module,
    data: str | Path,
    *,
    out: str | Path,
    references: list[str | Path] | tuple = (),
    weights: str | Path | None = None,
    input_size: int | None = None,
    normalize: str | None = None,
    **settings: Any,
) -> dict[str, Any]:
    """Security checks of ``encoder`` on ``data`` (docs/security.md); ``settings`` are
    ``verbs.audit.AuditSettings`` fields (``checks``: backdoor-scan, adversarial, detector,
    data-scan; ``epsilon``, ``shadow``, ...). Writes ``audit.json`` and ``audit.html`` into
    ``out``; returns the record."""
    from labelless.verbs.audit import AuditSettings, audit_encoder

    options = AuditSettings(**settings)
    return audit_encoder(
        encoder, data, options, out=out, references=list(references), weights=weights,
        input_size=input_size, normalize=normalize,
    )  # fmt: skip


def raw_pixels(images: np.ndarray) -> torch.Tensor:
    """Flattened pixels as float embeddings (the no-learning floor)."""
    return torch.from_numpy(images.reshape(len(images), -1).astype(np.float32) / 255.0)
