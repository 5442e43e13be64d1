"""The verbs as Python functions: ``pretrain``, ``evaluate``, ``report``, ``compare``, ``prune``,
``finetune`` and ``select``.

import labelless
result = labelless.pretrain("digits", method="simclr", epochs=20, out="runs/digits-simclr")
print(result.metrics["knn_top1"], result.run_dir)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from labelless.config import (
    BackboneConfig,
    DataConfig,
    RunConfig,
    ViewsConfig,
    build_config,
    dump_yaml,
    flags_to_keys,
    load_yaml,
    resolve_config,
    write_text_atomic,
)
from labelless.data import Dataset, DataSplits, load_dataset
from labelless.errors import CheckpointError, ConfigError, DataError
from labelless.lifecycle import begin, finish, fit, plan_run, run_callbacks


@dataclass
class PretrainResult:
    run_dir: Path
    metrics: dict[str, Any]
    encoder: nn.Module


def _default_out(config: RunConfig) -> str:
    data = Path(config.data.name.strip("<>").split()[-1]).name or "data"
    return str(Path("runs") / f"{config.method.name}-{data}")


def _eval_split(config: RunConfig, splits: DataSplits) -> Dataset | None:
    if config.data.eval:
        eval_splits = load_dataset(config.data.eval, **data_options(config.data))
        return eval_splits.test or eval_splits.train
    return splits.test


def build_backbone(
    config: BackboneConfig,
    train: Dataset,
    *,
    view_size: int | None = None,
    initialise: bool = True,
    default: str | None = None,
    default_kwargs: dict[str, Any] | None = None,
) -> nn.Module:
    """The backbone ``config`` names (else ``default``, e.g. the method's own, else the
    modality's, ``DEFAULT_BACKBONE``) for data like ``train``: images set its channels,
    resolution and normalisation; tables their column layout (numeric count, category
    cardinalities) and fitted preprocessing, which travel in ``encoder.json``. ``default_kwargs``
    are options for the ``default`` backbone, used when it is the one built (config options
    win). With ``config.init`` (and ``initialise``) it starts from that encoder.
    """
    from labelless.backbones import (
        DEFAULT_BACKBONE,
        backbone_modality,
        create_backbone,
        list_backbones,
    )

    modality = train.modality
    if modality not in DEFAULT_BACKBONE:
        raise DataError(
            f"no backbone is registered for {modality!r} data; "
            f"labelless trains on {sorted(DEFAULT_BACKBONE)}"
        )
    name = config.name or default or DEFAULT_BACKBONE[modality]
    if backbone_modality(name) != modality:
        raise ConfigError(
            f"backbone {name!r} encodes {backbone_modality(name)} data but {train.name!r} is "
            f"{modality}; drop --backbone for the default ({DEFAULT_BACKBONE[modality]!r}) or pick "
            f"one of {list_backbones(modality)}"
        )
    kwargs = dict(config.kwargs)
    if name == default and not config.name:
        kwargs = {**(default_kwargs or {}), **kwargs}
    if config.width is not None:
        kwargs["width"] = config.width
    if modality == "image":
        inputs = {
            "in_channels": train.in_channels,
            "input_size": view_size or int(train.meta["image_size"]),
            "mean": train.meta["mean"],
            "std": train.meta["std"],
        }
    else:
        inputs = {"in_channels": int(train.samples.shape[1])}
        if modality == "tabular":
            kwargs["num_numeric"] = len(train.meta["numeric"])
            kwargs["cardinalities"] = [int(c) for c in train.meta["cardinalities"]]
    backbone = create_backbone(name, weights=config.weights, **inputs, **kwargs)
    if modality != "image":
        backbone.meta.preprocessing = dict(train.meta.get("preprocessing") or {})
    if config.init and initialise:
        start_from_encoder(backbone, config.init)
    return backbone


def build_views(recipe: str, train: Dataset, backbone: nn.Module, views: ViewsConfig | None = None):
    """The batched view pipeline ``recipe`` for ``train``'s modality: images at the backbone's
    input size and normalisation; tables with the training rows as the empirical marginals that
    corruption samples from; series with the recipe's defaults. ``views`` adds config overrides."""
    views = views or ViewsConfig()
    if train.modality == "tabular":
        from labelless.augment.tabular import tabular_views

        reference = train.sample_rows(_TABLE_REFERENCE_ROWS, seed=0)
        return tabular_views(recipe, reference=reference, meta=train.meta, **views.overrides)
    if train.modality == "timeseries":
        from labelless.augment.timeseries import timeseries_views

        return timeseries_views(recipe, **views.overrides)
    from labelless.augment import view_recipe

    meta = backbone.meta
    return view_recipe(
        recipe,
        size=meta.input_size,
        mean=meta.mean,
        std=meta.std,
        num_local_crops=views.num_local_crops,
        per_view=views.per_view,
        **views.overrides,
    )


# Rows of the training table kept on the device as the empirical marginals of corruption views.
_TABLE_REFERENCE_ROWS = 65_536


def build_components(config: RunConfig, train: Dataset, *, initialise: bool = True):
    """Backbone, method and view pipeline for ``config`` on the training split ``train``.

    With ``backbone.init`` set (and ``initialise``), the backbone starts from that run's encoder;
    a resumed run passes ``initialise=False`` since its checkpoint holds the weights.
    """
    from labelless.methods import METHODS, create_method, list_methods

    name = config.method.name
    if name in METHODS and METHODS[name].modality != train.modality:
        fitting = [m for m in list_methods() if METHODS[m].modality == train.modality]
        raise ConfigError(
            f"method {name!r} trains on {METHODS[name].modality} data but {train.name!r} is "
            f"{train.modality}; pick one of {fitting}"
        )
    backbone = build_backbone(
        config.backbone,
        train,
        view_size=config.views.size,
        initialise=initialise,
        default=getattr(METHODS.get(name), "default_backbone", None),
        default_kwargs=getattr(METHODS.get(name), "default_backbone_kwargs", None),
    )
    method = create_method(name, backbone, **config.method.kwargs)
    views = build_views(
        config.views.recipe or METHODS[name].default_views, train, backbone, config.views
    )
    if any(isinstance(m, nn.Conv2d) for m in backbone.modules()):
        method = method.to(memory_format=torch.channels_last)
    return backbone, method, views


def _describe(meta) -> str:
    options = ", ".join(f"{key}={value}" for key, value in sorted(meta.kwargs.items()))
    options = f" ({options})" if options else ""
    return f"{meta.architecture}{options}, {meta.in_channels} input channel(s)"


def start_from_encoder(backbone: nn.Module, source: str | Path) -> Path:
    """Copy the weights of an exported encoder (a run directory or its ``encoder.safetensors``)
    into ``backbone``, which keeps its own metadata (view size and normalisation of the new
    data). Returns the resolved source. A different architecture is a ConfigError naming both."""
    from labelless.backbones import load_encoder
    from labelless.backbones.io import META_FILE, WEIGHTS_FILE

    path = Path(source)
    weights = path / WEIGHTS_FILE if path.is_dir() else path
    if not weights.is_file() or weights.suffix != ".safetensors":
        raise ConfigError(
            f"--init {str(source)!r}: no {WEIGHTS_FILE} there; point --init at a finished run "
            f"directory (with {WEIGHTS_FILE} and {META_FILE}) or at its {WEIGHTS_FILE}"
        )
    encoder = load_encoder(weights)
    theirs, ours = encoder.meta, backbone.meta
    state, expected = encoder.state_dict(), backbone.state_dict()
    same_shapes = state.keys() == expected.keys() and all(
        state[key].shape == value.shape for key, value in expected.items()
    )
    if (
        theirs.architecture != ours.architecture
        or theirs.in_channels != ours.in_channels
        or (not same_shapes)
    ):
        raise ConfigError(
            f"--init {str(source)!r} holds a {_describe(theirs)} encoder but this run builds a "
            f"{_describe(ours)} backbone: set --backbone / --width (or backbone.kwargs) to match "
            "the source run, or drop --init"
        )
    backbone.load_state_dict(state)
    return weights.resolve()


def _callbacks(config: RunConfig, backbone: nn.Module, eval_data: Dataset | None, train: Dataset):
    from labelless.train.callbacks import KNNMonitor, RankMeMonitor

    callbacks = []
    if config.monitor.rankme:
        callbacks.append(RankMeMonitor())
    if config.monitor.rankme_plateau_patience is not None:
        from labelless.train.early_stop import RankMePlateau

        meta = backbone.meta
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
    reference = train if train.has_labels else None
    if eval_data is not None and eval_data.has_labels and reference is not None:
        meta = backbone.meta
        callbacks.append(
            KNNMonitor(
                reference.samples,
                reference.labels,
                eval_data.samples,
                eval_data.labels,
                input_size=meta.input_size,
                mean=meta.mean,
                std=meta.std,
                every_n_epochs=config.monitor.every_n_epochs,
                k=config.monitor.knn_k,
                temperature=config.monitor.knn_temperature,
            )
        )
    return callbacks


def final_metrics(
    config: RunConfig,
    encoder: nn.Module,
    train: Dataset,
    eval_data: Dataset | None,
    keep: dict[str, torch.Tensor] | None = None,
) -> tuple[dict[str, Any], torch.Tensor | None]:
    """Evaluate the final encoder on the eval split; returns metrics and the eval embeddings.
    ``keep``, when given, receives the train embeddings under ``"train"`` (for the report).
    Warns when the embeddings look collapsed (``evaluate.checks.warn_if_collapsed``)."""
    from labelless.evaluate import embed, embedding_std, rankme
    from labelless.evaluate.checks import warn_if_collapsed
    from labelless.evaluate.protocol import evaluate_embeddings

    meta = encoder.meta
    preprocessing = {"input_size": meta.input_size, "mean": meta.mean, "std": meta.std}
    if meta.modality != "image":
        preprocessing = {"modality": meta.modality, "as_loaded": True}

    def label_free(z: torch.Tensor, split: str) -> dict[str, Any]:
        protocol = {"preprocessing": preprocessing, "split": split}
        return {"rankme": rankme(z), "embedding_std": embedding_std(z), "protocol": protocol}

    def checked(metrics: dict[str, Any], z: torch.Tensor, split: str) -> dict[str, Any]:
        warn_if_collapsed(metrics["rankme"], metrics["embedding_std"], z.shape[1], f"on {split}")
        return metrics

    if eval_data is None:
        train_z = embed(encoder, train.sample_rows(25_600))
        return checked(label_free(train_z, train.name), train_z, train.name), None
    test_z = embed(encoder, eval_data.samples)
    regression = train.targets is not None and eval_data.targets is not None
    if not (train.has_labels and eval_data.has_labels) and not regression:
        return checked(label_free(test_z, eval_data.name), test_z, eval_data.name), test_z
    train_z = embed(encoder, train.samples)
    if keep is not None:
        keep["train"] = train_z
    if regression:
        metrics = label_free(test_z, eval_data.name)
        from labelless.evaluate.regression import ridge_rmse

        ridge = ridge_rmse(train_z, train, test_z, eval_data)
        metrics["protocol"].update(ridge.pop("protocol"), train_split=train.name)
        return checked({**metrics, **ridge}, test_z, eval_data.name), test_z
    metrics = evaluate_embeddings(
        train_z,
        train.labels,
        test_z,
        eval_data.labels,
        k=config.monitor.knn_k,
        temperature=config.monitor.knn_temperature,
        seed=config.seed,
    )
    metrics["protocol"]["preprocessing"] = preprocessing
    metrics["protocol"]["train_split"] = train.name
    metrics["protocol"]["test_split"] = eval_data.name
    if meta.modality == "timeseries":  # the UCR protocol of TS2Vec: an RBF SVM on embeddings
        from labelless.evaluate.timeseries import svm_accuracy

        svm = svm_accuracy(train_z, train.labels, test_z, eval_data.labels, seed=config.seed)
        metrics["svm_top1"] = svm.accuracy
        protocol = {**svm.protocol, "C": svm.C, "searched": bool(svm.searched)}
        protocol["C_grid"] = [c if np.isfinite(c) else "inf" for c in protocol.get("C_grid", [])]
        protocol["C"] = svm.C if np.isfinite(svm.C) else "inf"  # strict JSON has no Infinity
        metrics["protocol"]["svm"] = protocol
    return checked(metrics, test_z, eval_data.name), test_z


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
    pretraining on new data. Precedence: defaults < ``config`` < ``overrides``
    (``"optim.lr=0.1"``) < keywords. With ``resume=True`` the run's own ``config.yaml`` is the base.
    """
    from labelless.rundir import check_start_flags

    check_start_flags(resume, overwrite)
    in_memory = data if isinstance(data, (Dataset, DataSplits)) else None
    if isinstance(in_memory, Dataset):
        in_memory = DataSplits(in_memory)
    name = f"<in-memory {in_memory.train.name}>" if in_memory is not None else data
    # Everything that can fail on user input happens before the run directory is touched, and
    # the config and the data are checked before Lightning is imported (5 s on a small CPU), so
    # that a typo fails at once. Data loading draws from explicit seeds, not the global RNG.
    run_config = _resolve_run_config(
        config, overrides, resume, {**flags, "data": name, "method": method}
    )
    session = plan_run(
        run_config,
        command="pretrain",
        resume=resume,
        overwrite=overwrite,
        in_memory=in_memory is not None,
    )
    run_dir = session.path
    if in_memory is not None:  # loaded data was checked by load_dataset
        from labelless.data.checks import check_splits

        check_splits(in_memory, in_memory.train.name)
    splits = in_memory or _load_splits(run_config)
    train = splits.train
    eval_data = _eval_split(run_config, splits)

    import lightning as L

    from labelless.train.callbacks import Throughput
    from labelless.train.module import SSLModule
    from labelless.train.trainer import build_trainer

    L.seed_everything(run_config.seed, workers=True, verbose=False)
    if run_config.backbone.init and not resume:  # recorded absolute in config.yaml
        run_config.backbone.init = str(Path(run_config.backbone.init).resolve())
    backbone, ssl_method, views = build_components(run_config, train, initialise=not resume)
    run_config.backbone.name = backbone.meta.architecture  # the modality's default, when unset

    module = SSLModule(
        ssl_method,
        views,
        optim=run_config.optim.model_dump(),
        seed=run_config.seed,
        budget_seconds=run_config.trainer.max_time,
    )
    throughput = Throughput()
    callbacks = [
        throughput,
        *run_callbacks(session, run_config.trainer),
        *_callbacks(run_config, backbone, eval_data, train),
    ]
    trainer = build_trainer(run_config.trainer, run_dir, callbacks)
    loader = _train_loader(run_config, train, in_memory is not None)
    try:
        ckpt = begin(session, module, dump_yaml(run_config))
        fit(session, trainer, module, loader, ckpt)
        backbone = ssl_method.backbone.to(memory_format=torch.contiguous_format)
        metrics: dict[str, Any] = {}
        if trainer.is_global_zero:
            metrics = _write_outputs(
                run_config, session, trainer, module, (train, eval_data, throughput), callbacks
            )
    finally:
        finish(session)
    return PretrainResult(run_dir, metrics, backbone)


def _write_outputs(config: RunConfig, session, trainer, module, data, callbacks) -> dict:
    """Rank 0, after training: the encoder, the final metrics (with the ``training`` record),
    the report. ``data`` is ``(train, eval_data, throughput)``."""
    from labelless.backbones import save_encoder
    from labelless.lifecycle import announce_stop, ranks_agree, stop_reason
    from labelless.report import write_report
    from labelless.suite import report_inputs

    train, eval_data, throughput = data
    run_dir = session.path
    backbone = module.method.backbone
    save_encoder(backbone, run_dir)
    kept: dict[str, torch.Tensor] = {}
    metrics, test_z = final_metrics(config, backbone, train, eval_data, keep=kept)
    reason = stop_reason(module, trainer, config.trainer.max_epochs)
    metrics["training"] = {
        "epochs_done": int(trainer.current_epoch),
        "steps": int(trainer.global_step),
        "steps_this_session": throughput.steps,
        "wall_seconds": round(throughput.seconds, 2),
        "samples_per_second": round(throughput.samples_per_second, 1),
        "skipped_samples": max(int(train.meta.get("skipped", 0)), throughput.skipped),
        "final_not_best": True,
        "stopped_by": reason,
        "world_size": int(trainer.world_size),
        "ranks_agree": ranks_agree(session),
        "resumed_from_step": session.checkpoint_step,
        "schedule": {
            "name": config.optim.schedule,
            **(module.clock.summary() if module.clock is not None else {}),
        },
        "init": config.backbone.init,
    }
    plateau = [c for c in callbacks if type(c).__name__ == "RankMePlateau"]
    if plateau:
        metrics["training"]["rankme_plateau"] = {
            "stopped_epoch": plateau[0].stopped_epoch,
            "best": plateau[0].best,
            "history": plateau[0].history,
        }
    write_text_atomic(run_dir / "metrics.json", json.dumps(metrics, indent=2, default=float))
    inputs = report_inputs(config, train, eval_data, kept.get("train"), test_z)
    write_report(run_dir, **(inputs or {"embeddings": test_z}))
    announce_stop(reason, config.trainer.max_time, int(trainer.global_step))
    return metrics


def _is_lazy_folder(config: RunConfig) -> bool:
    from labelless.data import BUILTINS

    return config.data.lazy and config.data.name not in BUILTINS


def _load_splits(config: RunConfig) -> DataSplits:
    """The data; a lazy folder decodes only ``data.sample_size`` images here (statistics, monitors,
    final metrics) and streams the rest through ``_train_loader``."""
    from labelless.data import image_folder

    if _is_lazy_folder(config):
        sample = image_folder(
            config.data.name,
            load_size=config.data.load_size,
            max_samples=config.data.sample_size,
            seed=config.seed,
        )
        return DataSplits(sample)
    return load_dataset(config.data.name, **data_options(config.data))


def data_options(data: DataConfig) -> dict[str, Any]:
    """Keyword arguments of ``load_dataset`` from the data section: the image folder load size,
    and for data files the target column and the loader's own options."""
    options: dict[str, Any] = {"load_size": data.load_size, **data.options}
    if data.target is not None:
        options["target"] = data.target
    return options


def _train_loader(config: RunConfig, train: Dataset, in_memory: bool):
    from labelless.data.files import file_loader, scan_folder
    from labelless.train.loader import train_loader

    if in_memory or not _is_lazy_folder(config):
        from labelless.data.checks import warn_if_batch_exceeds_data

        warn_if_batch_exceeds_data(config.optim.batch_size, len(train))
        return train_loader(train, config.optim.batch_size, seed=config.seed)
    files, labels, _ = scan_folder(config.data.name)
    return file_loader(
        files,
        labels,
        load_size=config.data.load_size,
        batch_size=config.optim.batch_size,
        workers=config.data.workers,
        seed=config.seed,
        grayscale=train.in_channels == 1,
    )


def _resolve_run_config(config, overrides, resume: bool, flags: dict[str, Any]) -> RunConfig:
    keys = flags_to_keys(flags)
    if isinstance(config, RunConfig):
        config = config.model_dump(mode="json")
    if resume:
        if config is not None:
            raise ConfigError("--resume continues a run with its own config.yaml: drop --config")
        config = _resume_config(keys.get("out"))
    if isinstance(config, dict):
        run_config = build_config(_merge(config, overrides, keys), "config")
    else:
        run_config = resolve_config(config, overrides, keys)
    if resume:
        from labelless.rundir import check_resume_config

        base = build_config(config, "config.yaml").model_dump(mode="json")
        check_resume_config(Path(keys["out"]), base, run_config.model_dump(mode="json"))
    if run_config.out is None:
        run_config.out = _default_out(run_config)
    return run_config


def _resume_config(out: str | None) -> dict[str, Any]:
    if not out:
        raise ConfigError("--resume needs --out RUN_DIR naming the run to continue")
    from labelless.rundir import check_run_kind

    check_run_kind(out, "pretrain")
    path = Path(out) / "config.yaml"
    if not path.is_file():
        raise CheckpointError(
            f"cannot resume: {str(path)!r} is missing; is {out!r} a run directory?"
        )
    return load_yaml(path)


def _merge(base: dict, overrides: list[str] | None, keys: dict[str, Any]) -> dict:
    from labelless.config import apply_override, apply_override_value

    data = json.loads(json.dumps(base))
    for assignment in overrides or []:
        apply_override(data, assignment)
    for key, value in keys.items():
        apply_override_value(data, key, value)
    return data


def load_run_config(run_dir: str | Path) -> RunConfig:
    path = Path(run_dir) / "config.yaml"
    return build_config(load_yaml(path), str(path))


def evaluate(
    encoder: str | Path | nn.Module,
    data: str = "digits",
    *,
    weights: str | Path | None = None,
    k: int = 200,
    temperature: float = 0.1,
    input_size: int | None = None,
    normalize: str | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    data_options: dict[str, Any] | None = None,
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
    Tables and series add their own protocols (``suite.modality_protocols``).
    """
    from labelless.suite import evaluate_encoder

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
    )
    return metrics


def report(run_dir: str | Path, *, map_method: str = "auto") -> Path:
    """Rebuild ``run_dir/report.html`` from the run directory: its encoder re-embeds the data
    named in ``config.yaml``. Returns the report's path."""
    from labelless.suite import rebuild_report

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
    k: int = 200,
    temperature: float = 0.1,
    linear: bool | None = None,
    seed: int = 0,
    out: str | Path | None = None,
) -> dict[str, Any]:
    """One-shot global magnitude pruning of the encoder's conv/linear weights at each sparsity,
    kNN (and linear probe) accuracy at each and the knee; writes ``prune.json`` and
    ``figures/prune.png`` into the run directory (or ``out``). ``data`` defaults to the run's."""
    from labelless.suite import prune_sweep

    return prune_sweep(
        encoder, sparsities, data, k=k, temperature=temperature, linear=linear, seed=seed, out=out
    )


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
    from labelless.suite import finetune_encoder

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
    ``alpha_req``) on the same images; see ``labelless.evaluate.select.rank_runs``."""
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


def raw_pixels(images: np.ndarray) -> torch.Tensor:
    """Flattened pixels as float embeddings (the no-learning floor)."""
    return torch.from_numpy(images.reshape(len(images), -1).astype(np.float32) / 255.0)
