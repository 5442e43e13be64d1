"""``labelless pretrain``: self-supervised pretraining of an encoder, written as a run directory.

plan (config, data and output folder checked, nothing written) -> build (backbone, method,
views, loader, trainer) -> the run lifecycle (``labelless.lifecycle``) -> outputs on rank 0:
``encoder.*``, ``metrics.json`` (final metrics + the ``training`` record), ``report.html``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from labelless.config import FLAG_KEYS, RunConfig, dump_yaml
from labelless.data import Dataset, DataSplits
from labelless.lifecycle import (
    RunKind,
    begin,
    finish,
    fit,
    plan_run,
    resolve_run_config,
    run_callbacks,
    training_record,
    write_metrics,
)
from labelless.modalities import modality_of
from labelless.progress import task
from labelless.rundir import check_start_flags
from labelless.runfiles import default_run_dir
from labelless.verbs.components import build_components, record_resolved
from labelless.verbs.rundata import eval_split, load_splits, train_loader
from labelless.verbs.scoring import label_free, score, warn_if_collapsed
from labelless.verbs.targets import data_label

# Rows of an unlabelled training split embedded for the label-free final measures.
LABEL_FREE_ROWS = 25_600


@dataclass
class PretrainResult:
    run_dir: Path
    metrics: dict[str, Any]
    encoder: nn.Module


def default_out(config: RunConfig) -> str:
    """``runs/<method>-<data stem>`` (``runfiles.default_run_dir``)."""
    return default_run_dir(config.method.name, data=config.data.name)


# --init RUN_DIR carries that run's recipe: the method (unless --method names another) with its
# views and optimiser, and the backbone (unless --backbone names another).
INIT_CARRIES = {
    "method": "method.name",
    "views": "method.name",
    "optim": "method.name",
    "backbone": "backbone.name",
}
PRETRAIN = RunKind("pretrain", RunConfig, FLAG_KEYS, default_out, INIT_CARRIES)


def run_pretrain(
    data: str | Dataset | DataSplits | None,
    method: str | None,
    *,
    config: Any = None,
    overrides: list[str] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    flags: dict[str, Any],
) -> PretrainResult:
    """``labelless.api.pretrain`` (see there)."""
    check_start_flags(resume, overwrite)
    in_memory = data if isinstance(data, (Dataset, DataSplits)) else None
    if isinstance(in_memory, Dataset):
        in_memory = DataSplits(in_memory)
    name = f"<in-memory {in_memory.train.name}>" if in_memory is not None else data
    # Everything that can fail on user input happens before the run directory is touched, and
    # the config and the data are checked before Lightning is imported (5 s on a small CPU), so
    # that a typo fails at once. Data loading draws from explicit seeds, not the global RNG.
    run_config = resolve_run_config(
        PRETRAIN, config, overrides, resume, {**flags, "data": name, "method": method}
    )
    session = plan_run(
        run_config,
        command="pretrain",
        resume=resume,
        overwrite=overwrite,
        in_memory=in_memory is not None,
    )
    if in_memory is not None:  # loaded data was checked by load_dataset
        from labelless.data.checks import check_splits

        check_splits(in_memory, in_memory.train.name)
    splits = in_memory or load_splits(run_config)
    train = splits.train
    eval_data = eval_split(run_config.data, splits)

    import lightning as L

    from labelless.train.callbacks import Throughput
    from labelless.train.module import SSLModule
    from labelless.train.trainer import build_trainer

    L.seed_everything(run_config.seed, workers=True, verbose=False)
    if run_config.backbone.init and not resume:  # recorded absolute in config.yaml
        run_config.backbone.init = str(Path(run_config.backbone.init).resolve())
    backbone, ssl_method, views = build_components(run_config, train, initialise=not resume)
    record_resolved(run_config, backbone, train)  # config.yaml: the values that were unset

    module = SSLModule(
        ssl_method,
        views,
        optim=run_config.optim.model_dump(),
        seed=run_config.seed,
        budget_seconds=run_config.trainer.max_time,
    )
    throughput = Throughput()
    loader = train_loader(run_config, train, in_memory is not None)
    monitors = monitor_callbacks(run_config, backbone, eval_data, train)
    monitors += curation_callbacks(run_config, backbone, loader)
    batch = run_config.optim.batch_size
    callbacks = [throughput, *run_callbacks(session, run_config.trainer, batch), *monitors]
    trainer = build_trainer(run_config.trainer, session.path, callbacks)
    try:
        ckpt = begin(session, module, dump_yaml(run_config), trainer=trainer, batch_size=batch)
        fit(session, trainer, module, loader, ckpt)
        backbone = module.trained_backbone()  # fsdp2: gathered from the shards
        backbone = backbone.to(memory_format=torch.contiguous_format)
        metrics: dict[str, Any] = {}
        if trainer.is_global_zero:
            with task("final evaluation and report"):
                metrics = write_outputs(
                    run_config, session, trainer, module, (train, eval_data, throughput), monitors
                )
    finally:
        finish(session)
    return PretrainResult(session.path, metrics, backbone)


def write_outputs(
    config: RunConfig, session, trainer, module, data, monitors, extra: dict | None = None
) -> dict:
    """Rank 0, after training: the encoder, the final metrics (with the ``training`` record and
    the run kind's ``extra`` records, e.g. distillation's teacher), the report. ``data`` is
    ``(train, eval_data, throughput)``."""
    from labelless.backbones import save_encoder
    from labelless.report import write_report
    from labelless.verbs.report import report_inputs

    train, eval_data, throughput = data
    backbone = module.trained_backbone()
    save_encoder(backbone, session.path)
    kept: dict[str, torch.Tensor] = {}
    metrics, test_z = final_metrics(config, backbone, train, eval_data, keep=kept)
    skipped = int(train.meta.get("skipped", 0))
    metrics["training"] = training_record(session, trainer, module, throughput, config, skipped)
    for monitor in monitors:
        if hasattr(monitor, "training_record"):
            metrics["training"].update(monitor.training_record())
    metrics.update(extra or {})
    write_metrics(session, metrics)
    inputs = report_inputs(config, train, eval_data, kept.get("train"), test_z)
    write_report(session.path, **(inputs or {"embeddings": test_z}))
    return metrics


def final_metrics(
    config: RunConfig,
    encoder: nn.Module,
    train: Dataset,
    eval_data: Dataset | None,
    keep: dict[str, torch.Tensor] | None = None,
) -> tuple[dict[str, Any], torch.Tensor | None]:
    """Evaluate the final encoder on the eval split (``verbs.scoring.score``); returns metrics
    and the eval embeddings. Without an eval split, or without labels and targets, only the
    label-free measures. ``keep``, when given, receives the train embeddings under ``"train"``
    (for the report). Warns when the embeddings look collapsed."""
    from labelless.evaluate import embed

    preprocessing = modality_of(encoder).preprocessing(encoder.meta)
    data = data_label(config.data.eval or config.data.name)
    regression = eval_data is not None and train.targets is not None
    regression = regression and eval_data.targets is not None
    labelled = eval_data is not None and train.has_labels and eval_data.has_labels
    if not (labelled or regression):
        split = eval_data if eval_data is not None else train
        rows = split.samples if eval_data is not None else train.sample_rows(LABEL_FREE_ROWS)
        z = embed(encoder, rows)
        metrics = label_free(z)
        metrics["protocol"].update(preprocessing=preprocessing, data=data, split=split.name)
        warn_if_collapsed(metrics, z, split.name)
        return metrics, (z if eval_data is not None else None)
    test_z = embed(encoder, eval_data.samples)
    train_z = embed(encoder, train.samples)
    if keep is not None:
        keep["train"] = train_z
    monitor = config.monitor
    metrics = score(
        encoder,
        train,
        eval_data,
        train_z,
        test_z,
        k=monitor.knn_k or modality_of(encoder).knn_k,
        temperature=monitor.knn_temperature,
        seed=config.seed,
    )
    metrics["protocol"].update(preprocessing=preprocessing, data=data)
    return metrics, test_z


def monitor_callbacks(config: RunConfig, backbone: nn.Module, eval_data, train: Dataset) -> list:
    """The monitors the config asks for: RankMe, the RankMe plateau stop, kNN on the eval split."""
    from labelless.train.callbacks import KNNMonitor, RankMeMonitor

    meta = backbone.meta
    callbacks: list = []
    if config.monitor.rankme:
        callbacks.append(RankMeMonitor())
    if config.monitor.rankme_plateau_patience is not None:
        from labelless.train.early_stop import RankMePlateau

        callbacks.append(
            RankMePlateau(
                train.samples,
                input_size=meta.input_size,
                mean=meta.mean,
                std=meta.std,
                every_n_epochs=config.monitor.every_n_epochs,
                patience=config.monitor.rankme_plateau_patience,
                min_delta=config.monitor.rankme_plateau_min_delta,
                seed=config.seed,
            )
        )
    if eval_data is not None and eval_data.has_labels and train.has_labels:
        callbacks.append(
            KNNMonitor(
                train.samples,
                train.labels,
                eval_data.samples,
                eval_data.labels,
                input_size=meta.input_size,
                mean=meta.mean,
                std=meta.std,
                every_n_epochs=config.monitor.every_n_epochs,
                k=config.monitor.knn_k or modality_of(train).knn_k,
                temperature=config.monitor.knn_temperature,
            )
        )
    return callbacks


def curation_callbacks(config: RunConfig, backbone: nn.Module, loader) -> list:
    """Dynamic curation (``train/curation.py``) when ``curation.every_n_epochs`` is set: it
    re-weights the in-memory loader's batches (others are a ConfigError, raised before the run
    directory is touched)."""
    curation = config.curation
    if curation.every_n_epochs is None:
        return []
    from labelless.train.curation import DynamicCuration

    meta = backbone.meta
    return [
        DynamicCuration(
            getattr(loader, "source", None),
            input_size=meta.input_size,
            mean=meta.mean,
            std=meta.std,
            every_n_epochs=curation.every_n_epochs,
            clusters=curation.clusters,
            sample=curation.sample,
            strength=curation.strength,
            seed=config.seed,
        )
    ]
