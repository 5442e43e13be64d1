"""``semi(...)``: train a classifier from few labels and many unlabelled samples; write a run.

import labelless
result = labelless.semi("digits", method="fixmatch", labels_per_class=2)
print(result.metrics["test_top1"], result.run_dir)  # runs/semi-fixmatch-digits
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from labelless.config import dump_yaml
from labelless.data import Dataset, DataSplits, load_dataset
from labelless.errors import ConfigError, DataError
from labelless.lifecycle import RunKind, resolve_run_config
from labelless.modalities import get_modality
from labelless.progress import task
from labelless.semi.config import SEMI_FLAG_KEYS, SemiRunConfig, default_semi_out
from labelless.semi.splits import LabelSplit, split_labels

# --init carries the source run's backbone (name, width, options) unless --backbone names another.
SEMI = RunKind(
    "semi", SemiRunConfig, SEMI_FLAG_KEYS, default_semi_out, {"backbone": "backbone.name"}
)


@dataclass
class SemiResult:
    run_dir: Path
    metrics: dict[str, Any]
    model: nn.Module  # the EMA classifier (backbone + head), evaluated at the end of training


def _backbone(config: SemiRunConfig, train: Dataset, initialise: bool) -> nn.Module:
    from labelless.verbs.components import build_backbone

    return build_backbone(
        config.backbone, train, view_size=config.views.size, initialise=initialise
    )


def _pipelines(config: SemiRunConfig, train: Dataset, backbone: nn.Module) -> dict:
    """Weak and strong views (and SAA's naive view) for ``train``'s modality; tables corrupt
    features from their empirical marginals as the strong view."""
    from labelless.config import ViewsConfig
    from labelless.verbs.components import build_views

    def views(recipe: str, overrides: dict) -> object:
        return build_views(recipe, train, backbone, ViewsConfig(overrides=overrides))

    pipelines = {
        "weak": views("weak", config.views.weak),
        "strong": views("strong", config.views.strong),
    }
    if config.semi.saa:
        pipelines["naive"] = views("strong", {**config.views.strong, **config.views.naive})
    return pipelines


def _split(config: SemiRunConfig, train: Dataset) -> LabelSplit:
    if train.labels is None:
        raise DataError(
            f"{train.name!r} has no labels: semi-supervised learning needs a few; give labels "
            "(-1 for unlabelled samples) or use `labelless pretrain`"
        )
    semi = config.semi
    return split_labels(
        train.labels,
        per_class=semi.labels_per_class,
        fraction=semi.label_fraction,
        known_classes=semi.known_classes,
        num_classes=train.num_classes or None,
        seed=config.seed,
    )


def semi(
    data: str | Dataset | DataSplits | None = None,
    method: str | None = None,
    *,
    config: str | Path | SemiRunConfig | dict | None = None,
    overrides: list[str] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    **flags: Any,
) -> SemiResult:
    """Semi-supervised training of a classifier; writes a run directory and returns its result.

    ``data``: a built-in name, an image folder or an in-memory ``Dataset`` / ``DataSplits``;
    ``method``: a registered algorithm (``labelless.semi.list_algorithms()``). The labelled set
    is ``labels_per_class`` per class, a ``label_fraction`` of each class, or (neither) the labels
    already in the data (-1 = unlabelled); ``known_classes=K`` makes an open-set split. Other
    keywords are the CLI flags (``mu``, ``saa``, ``epochs``, ``max_time``, ``batch_size``, ``lr``,
    ``backbone``, ``width``, ``init``, ``view_size``, ``out``, ``seed``, ...). The reported
    ``test_top1`` is the EMA model's accuracy on the test split at the end of training.
    """
    from labelless.rundir import check_start_flags

    check_start_flags(resume, overwrite)
    in_memory = DataSplits(data) if isinstance(data, Dataset) else data
    in_memory = in_memory if isinstance(in_memory, DataSplits) else None
    name = f"<in-memory {in_memory.train.name}>" if in_memory is not None else data
    run_config = resolve_run_config(
        SEMI, config, overrides, resume, {**flags, "data": name, "method": method}
    )
    from labelless.modalities import MODALITIES
    from labelless.semi.algorithms import ALGORITHMS

    own = [name for modality in MODALITIES.values() for name in modality.semi_methods]
    if run_config.semi.method not in ALGORITHMS and run_config.semi.method not in own:
        from labelless.errors import unknown_name  # before any data is loaded

        raise unknown_name(
            "semi-supervised method", run_config.semi.method, [*ALGORITHMS, *sorted(set(own))]
        )
    if run_config.semi.saa and not ALGORITHMS[run_config.semi.method].fixmatch_family:
        raise ConfigError(
            "--saa extends the FixMatch family (fixmatch, flexmatch, freematch, softmatch, "
            f"iomatch, dac); {run_config.semi.method!r} is not one of them: drop --saa or change "
            "--method"
        )
    from labelless.lifecycle import begin, finish, fit, plan_run, run_callbacks
    from labelless.verbs.rundata import data_options

    session = plan_run(
        run_config,
        command="semi",
        resume=resume,
        overwrite=overwrite,
        in_memory=in_memory is not None,
    )
    run_dir = session.path
    # the config, the data and the label split are checked before Lightning is imported (5 s on
    # a small CPU), so that a mistake fails at once; they draw from explicit seeds
    splits = in_memory or load_dataset(run_config.data.name, **data_options(run_config.data))
    train = splits.train
    modality = get_modality(train.modality)
    if modality.semi_methods:  # data with its own methods (graph nodes)
        return _modality_semi(modality, run_config, session, splits)
    if run_config.semi.method not in ALGORITHMS:
        raise ConfigError(
            f"{run_config.semi.method!r} trains on other data than {train.name!r} "
            f"({train.modality}); pick one of {sorted(ALGORITHMS)}"
        )
    test = _test_split(run_config, splits)
    split = _split(run_config, train)
    ALGORITHMS[run_config.semi.method].check_run(
        run_config.semi.kwargs, pretrained=bool(run_config.backbone.init)
    )
    if run_config.backbone.init and not resume:
        run_config.backbone.init = str(Path(run_config.backbone.init).resolve())

    import lightning as L

    from labelless.semi.algorithms import create_algorithm
    from labelless.semi.loader import SemiBatches, semi_loader
    from labelless.semi.module import SemiModule
    from labelless.semi.saa import SampleAdaptiveAugmentation
    from labelless.semi.state import SampleState
    from labelless.train.callbacks import Throughput
    from labelless.train.trainer import build_trainer
    from labelless.verbs.components import record_resolved

    L.seed_everything(run_config.seed, workers=True, verbose=False)
    backbone = _backbone(run_config, train, initialise=not resume)
    state = SampleState(len(train), torch.from_numpy(split.unlabelled))
    semi_cfg = run_config.semi
    algorithm = create_algorithm(
        semi_cfg.method,
        backbone,
        split.num_classes,
        state,
        ema_momentum=semi_cfg.ema_momentum,
        **semi_cfg.kwargs,
    )
    saa = None
    if semi_cfg.saa:  # one selection per pass over the labelled set, as the authors' loop
        every = math.ceil(len(split.labelled) / run_config.optim.batch_size)
        saa = SampleAdaptiveAugmentation(
            state, semi_cfg.saa_momentum, start=semi_cfg.saa_start, every=every
        )
    pipelines = _pipelines(run_config, train, backbone)
    record_resolved(run_config, backbone, train)  # config.yaml: the values that were unset
    shift = None
    if semi_cfg.shift_check and not resume and session.primary:
        shift = _shift(run_config, backbone, train, split)
    if any(isinstance(m, nn.Conv2d) for m in backbone.modules()):
        algorithm = algorithm.to(memory_format=torch.channels_last)

    batches = SemiBatches(train, split, run_config.optim.batch_size, semi_cfg.mu, run_config.seed)
    module = SemiModule(
        algorithm,
        pipelines,
        optim=run_config.optim.model_dump(),
        seed=run_config.seed,
        budget_seconds=run_config.trainer.max_time,
        saa=saa,
    )
    throughput = Throughput()
    batch = run_config.optim.batch_size
    callbacks = [throughput, *run_callbacks(session, run_config.trainer, batch)]
    if run_config.monitor.every_n_epochs and test is not None and test.has_labels:
        from labelless.semi.evaluation import TestAccuracyMonitor

        callbacks.append(TestAccuracyMonitor(test, run_config.monitor.every_n_epochs))
    trainer = build_trainer(run_config.trainer, run_dir, callbacks)
    metrics: dict[str, Any] = {}
    try:
        ckpt = begin(session, module, dump_yaml(run_config), trainer=trainer, batch_size=batch)
        fit(session, trainer, module, semi_loader(batches), ckpt)
        model = algorithm.ema_model
        if trainer.is_global_zero:
            parts = (test, split, shift, throughput, int(train.meta.get("skipped", 0)))
            with task("final evaluation and report"):
                metrics = _write_outputs(run_config, session, trainer, module, parts)
    finally:
        finish(session)
    return SemiResult(run_dir, metrics, model)


def _modality_semi(modality, config: SemiRunConfig, session, splits: DataSplits) -> SemiResult:
    """A modality's own semi-supervised method (``Modality.run_semi``), in the run lifecycle:
    plan (done) -> begin -> train and write -> finish. Such runs take seconds: no checkpoint."""
    from labelless.lifecycle import begin, finish, write_metrics

    if config.semi.method not in modality.semi_methods:
        raise ConfigError(
            f"semi-supervised method {config.semi.method!r} does not train on "
            f"{modality.name} data; pick one of {sorted(modality.semi_methods)}"
        )
    if session.resume:
        raise ConfigError(
            f"{modality.name} semi-supervised runs take seconds and keep no checkpoint: start "
            "it again with --overwrite instead of --resume"
        )
    begin(session, None, dump_yaml(config))
    try:
        with task(f"semi-supervised {config.semi.method} on {splits.train.name}"):
            metrics, model = modality.run_semi(config, splits, session.path)
        write_metrics(session, metrics)
    finally:
        finish(session)
    return SemiResult(session.path, metrics, model)


def _write_outputs(config: SemiRunConfig, session, trainer, module, parts) -> dict[str, Any]:
    """Rank 0, after training: the EMA encoder and classifier, the final metrics with the split,
    the shift check and the ``training`` record, the report."""
    from labelless.backbones import save_encoder
    from labelless.lifecycle import previous_metrics, training_record, write_metrics
    from labelless.modalities import modality_of
    from labelless.semi.evaluation import final_metrics, save_classifier, write_semi_report
    from labelless.verbs.targets import data_label

    test, split, shift, throughput, skipped = parts
    run_dir, semi_cfg = session.path, config.semi
    algorithm = module.algorithm.to(memory_format=torch.contiguous_format)
    save_encoder(algorithm.ema_model.backbone, run_dir)
    save_classifier(algorithm, run_dir)
    backbone = algorithm.ema_model.backbone
    preprocessing = modality_of(backbone).preprocessing(backbone.meta)
    data = data_label(config.data.eval or config.data.name)
    metrics = final_metrics(algorithm, test, split, config, preprocessing, data)
    metrics["split"] = {
        "mode": split.mode,
        "labelled": len(split.labelled),
        "unlabelled": len(split.unlabelled),
        "num_classes": split.num_classes,
        "open_set": split.open_set,
        "seed": config.seed,
    }
    if shift is not None:
        metrics["shift"] = shift
    elif session.resume:
        metrics["shift"] = previous_metrics(session).get("shift")
    metrics["training"] = {
        "method": semi_cfg.method,
        "saa": semi_cfg.saa,
        "mu": semi_cfg.mu,
        **training_record(session, trainer, module, throughput, config, skipped),
    }
    write_metrics(session, metrics)
    if config.report:
        write_semi_report(run_dir, algorithm, test, split)
    return metrics


def _test_split(config: SemiRunConfig, splits: DataSplits) -> Dataset | None:
    """The labelled data scored at the end: ``data.eval`` or the data's test split. Checked
    here, before training: a regression target instead of classes is a DataError, and a
    warning says when no test accuracy will be reported and how to get one."""
    from labelless.semi.splits import require_class_labels, warn_no_test_split

    require_class_labels(splits.train, config.data.name, config.data.target)
    from labelless.verbs.rundata import eval_split

    test = eval_split(config.data, splits)
    warn_no_test_split(test, config.data.eval or config.data.name)
    return test


def _shift(config: SemiRunConfig, backbone: nn.Module, train: Dataset, split: LabelSplit):
    from labelless.evaluate import embed
    from labelless.semi.shift import shift_check

    rng = np.random.default_rng(config.seed)
    unlabelled = split.unlabelled
    if len(unlabelled) > 5000:
        unlabelled = np.sort(rng.choice(unlabelled, 5000, replace=False))
    with torch.no_grad():
        z_l = embed(backbone, train.samples[split.labelled])
        z_u = embed(backbone, train.samples[unlabelled])
    result = shift_check(z_l, z_u, ratio=config.semi.shift_ratio, seed=config.seed)
    print(
        f"dataset-shift check: Frechet distance labelled vs unlabelled "
        f"{result['frechet_distance']:.3g} ({result['ratio']:.2f}x random splits; warning above "
        f"{result['threshold_ratio']}x)"
    )
    return result
