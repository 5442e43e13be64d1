"""``labelless distill``: label-free distillation of a frozen teacher encoder into a student.

The run is a pretraining run whose method is a distillation objective (``methods/distill.py``:
``seed``, ``cosine_distill``) holding the teacher; it takes the pretraining lifecycle (plan,
begin, fit, finish: checkpoints, ``--resume``, the time budget, monitors, several processes)
and writes the same run directory. Its ``config.yaml`` is a plain pretraining config: the
teacher is recorded in ``method.kwargs`` (``teacher``, ``teacher_weights``, ``teacher_sha256``),
so every verb that reads a run (evaluate, report, compare, ``--init``) reads a distilled one.
``encoder.safetensors`` holds the student only; ``metrics.json`` adds ``teacher`` (its source,
SHA-256 and its own final metrics on the same protocol) and ``distill``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from pydantic import Field
from torch import nn

from labelless.config import FLAG_KEYS, MethodConfig, RunConfig, dump_yaml
from labelless.data import Dataset
from labelless.errors import ConfigError, DataError
from labelless.lifecycle import (
    RunKind,
    begin,
    finish,
    fit,
    plan_run,
    resolve_run_config,
    run_callbacks,
)
from labelless.modalities import get_modality, modality_of
from labelless.progress import task
from labelless.rundir import check_start_flags
from labelless.runfiles import default_run_dir
from labelless.verbs.components import build_backbone, build_views, record_resolved
from labelless.verbs.pretrain import (
    PretrainResult,
    curation_callbacks,
    final_metrics,
    monitor_callbacks,
    write_outputs,
)
from labelless.verbs.rundata import eval_split, load_splits, train_loader

#: ``--objective`` names and the registered methods they train.
OBJECTIVES = {"seed": "seed", "cosine": "cosine_distill", "cosine_distill": "cosine_distill"}
#: ``method.kwargs`` keys that describe the teacher: read here, not passed to the method.
TEACHER_KEYS = (
    "teacher",
    "teacher_weights",
    "teacher_sha256",
    "student_from_teacher",
    "teacher_cache",
)


class DistillRunConfig(RunConfig):
    """A pretraining config whose method defaults to SEED."""

    method: MethodConfig = Field(default_factory=lambda: MethodConfig(name="seed"))


DISTILL_FLAG_KEYS = {
    **{k: v for k, v in FLAG_KEYS.items() if k not in ("method", "backbone", "weights")},
    "objective": "method.name",
    "student": "backbone.name",
    "teacher": "method.kwargs.teacher",
    "teacher_weights": "method.kwargs.teacher_weights",
    "student_from_teacher": "method.kwargs.student_from_teacher",
    "teacher_cache": "method.kwargs.teacher_cache",
    "pseudo_labels": "method.kwargs.pseudo_label_clusters",
    "ssl": "method.kwargs.ssl_method",
    "ssl_weight": "method.kwargs.ssl_weight",
}


def default_out(config: RunConfig) -> str:
    """``runs/distill-<objective>-<data stem>``."""
    return default_run_dir("distill", config.method.name, data=config.data.name)


DISTILL = RunKind("distill", DistillRunConfig, DISTILL_FLAG_KEYS, default_out)


def _absolute(path: str | None) -> str | None:
    """A teacher or weights path made absolute (``config.yaml`` records it so; a resume that
    names it relatively is the same run); ``timm:NAME`` and None as they are."""
    if path is None or str(path).startswith("timm:") or not Path(path).exists():
        return path
    return str(Path(path).resolve())


def run_distill(
    teacher: str | None,
    data: str | None,
    *,
    config: Any = None,
    overrides: list[str] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    flags: dict[str, Any],
) -> PretrainResult:
    """``labelless.api.distill`` (see there)."""
    check_start_flags(resume, overwrite)
    flags = dict(flags, data=data, teacher=_absolute(teacher))
    flags["teacher_weights"] = _absolute(flags.get("teacher_weights"))
    if flags.get("objective") is not None:
        flags["objective"] = objective_method(flags["objective"])
    run_config = resolve_run_config(DISTILL, config, overrides, resume, flags)
    objective_method(run_config.method.name)
    session = plan_run(
        run_config, command="distill", resume=resume, overwrite=overwrite, in_memory=False
    )
    splits = load_splits(run_config)
    train = splits.train
    eval_data = eval_split(run_config.data, splits)
    options = run_config.method.kwargs
    teacher_model, source = load_teacher(options, train, run_config.data.name, resume)
    if options.get("student_from_teacher") and not resume:
        start_student_from(run_config, teacher_model, source, train)

    import lightning as L

    from labelless.train.callbacks import Throughput
    from labelless.train.module import SSLModule
    from labelless.train.trainer import build_trainer

    L.seed_everything(run_config.seed, workers=True, verbose=False)
    backbone, method, views = build_student(run_config, train, teacher_model, resume)
    if options.get("teacher_cache"):
        cache_teacher_targets(run_config, method, teacher_model, train)
    if options.get("pseudo_label_clusters"):
        pseudo_labels_from_teacher(run_config, method, teacher_model, train)
    record_resolved(run_config, backbone, train)
    module = SSLModule(
        method,
        views,
        optim=run_config.optim.model_dump(),
        seed=run_config.seed,
        budget_seconds=run_config.trainer.max_time,
    )
    throughput = Throughput()
    loader = train_loader(run_config, train, False)
    monitors = monitor_callbacks(run_config, backbone, eval_data, train)
    monitors += curation_callbacks(run_config, backbone, loader)  # curation.every_n_epochs
    batch = run_config.optim.batch_size
    callbacks = [throughput, *run_callbacks(session, run_config.trainer, batch), *monitors]
    trainer = build_trainer(run_config.trainer, session.path, callbacks)
    try:
        ckpt = begin(session, module, dump_yaml(run_config), trainer=trainer, batch_size=batch)
        with warnings.catch_warnings():  # the frozen teacher is in eval mode on purpose
            warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
            fit(session, trainer, module, loader, ckpt)
        student = module.trained_backbone().to(memory_format=torch.contiguous_format)
        metrics: dict[str, Any] = {}
        if trainer.is_global_zero:
            with task("final evaluation of the student and the teacher, and report"):
                teacher_metrics, _ = final_metrics(run_config, teacher_model, train, eval_data)
                extra = {
                    "teacher": {**source, "metrics": teacher_metrics},
                    "distill": distill_record(method, student, teacher_model),
                }
                data = (train, eval_data, throughput)
                metrics = write_outputs(
                    run_config, session, trainer, module, data, monitors, extra=extra
                )
    finally:
        finish(session)
    return PretrainResult(session.path, metrics, student)


def objective_method(name: str) -> str:
    """The registered method of a distillation objective (``cosine`` -> ``cosine_distill``)."""
    if name not in OBJECTIVES:
        raise ConfigError(
            f"unknown distillation objective {name!r}: choose seed (similarity distributions "
            "over a queue, Fang et al. 2021) or cosine (projected features regress the "
            "teacher's); add the student's own loss with --ssl METHOD"
        )
    return OBJECTIVES[name]


def load_teacher(
    options: dict[str, Any], train: Dataset, data: str, resume: bool
) -> tuple[nn.Module, dict[str, Any]]:
    """The frozen teacher ``options["teacher"]`` names (a run directory, an encoder file, or
    ``timm:NAME`` with ``teacher_weights``), checked against the data (modality, channels) and,
    on resume, against the SHA-256 recorded when the run started. Records the SHA-256 in
    ``options`` (``teacher_sha256``). Returns the teacher and its source record."""
    from labelless.backbones.registry import TIMM_PREFIX
    from labelless.encoders import load_any_encoder
    from labelless.verbs.targets import check_data_fits

    spec, weights = options.get("teacher"), options.get("teacher_weights")
    if not spec:
        raise ConfigError(
            "labelless distill needs a TEACHER: a run directory, an encoder.safetensors or "
            "timm:NAME --teacher-weights FILE"
        )
    timm = str(spec).startswith(TIMM_PREFIX)
    if timm and weights is None:
        raise ConfigError(
            f"teacher {spec} needs --teacher-weights FILE (a local .safetensors/.pt state dict): "
            "labelless never downloads weights, and a random teacher teaches nothing"
        )
    if weights is not None and not timm:
        raise ConfigError(
            "--teacher-weights goes with a timm:NAME teacher; a run directory or "
            "encoder.safetensors holds its weights: drop --teacher-weights"
        )
    channels = modality_of(train).encoder_channels(train)
    teacher, source = load_any_encoder(spec, weights=weights, in_channels=channels)
    try:
        check_data_fits(teacher, train, data)
    except DataError as error:
        raise DataError(
            f"the teacher {str(spec)!r} cannot read {data!r}: {error}; distil on the kind of "
            "data the teacher was trained on, or choose a teacher for this data"
        ) from error
    recorded, sha = options.get("teacher_sha256"), source["weights_sha256"]
    if resume and recorded and recorded != sha:
        raise ConfigError(
            f"cannot resume: the teacher's weights changed since the run started (SHA-256 "
            f"{recorded[:12]}... in config.yaml, {sha[:12]}... now in {source['weights']!r}); "
            "restore them, or start a new run"
        )
    options["teacher_sha256"] = sha
    return teacher, source


def start_student_from(config: RunConfig, teacher: nn.Module, source: dict, train: Dataset):
    """``student_from_teacher`` (UNFUSED-style fine-tuning without labels): the student starts
    as a copy of the teacher, its architecture the teacher's unless ``--student`` names one."""
    if source["kind"] == "timm":
        raise ConfigError(
            "student_from_teacher copies a labelless encoder (run directory or "
            "encoder.safetensors) into the student; a timm:NAME teacher is not one: drop it"
        )
    meta, section = teacher.meta, config.backbone
    if section.name is None:
        inputs = get_modality(train.modality).backbone_inputs(train, config.views.size)
        kwargs = {key: value for key, value in meta.kwargs.items() if key not in inputs}
        section.name = meta.architecture
        section.width = kwargs.pop("width", section.width)
        section.kwargs = {**kwargs, **section.kwargs}
    section.init = source["weights"]


def build_student(config: RunConfig, train: Dataset, teacher: nn.Module, resume: bool):
    """The student backbone, the distillation method holding the teacher (with the resize and
    normalisation its recorded preprocessing needs: ``Modality.teacher_inputs``) and the view
    pipeline (``views.recipe``, else the student's own SSL method's, else the objective's)."""
    from labelless.methods import METHODS, create_method

    backbone = build_backbone(
        config.backbone, train, view_size=config.views.size, initialise=not resume
    )
    warn_if_student_is_larger(backbone, teacher)
    options = {k: v for k, v in config.method.kwargs.items() if k not in TEACHER_KEYS}
    inputs = modality_of(train).teacher_inputs(backbone.meta, teacher.meta)
    name = config.method.name
    method = create_method(name, backbone, teacher=teacher, teacher_inputs=inputs, **options)
    own = options.get("ssl_method")
    config.views.recipe = config.views.recipe or METHODS[own or name].default_views
    views = build_views(config.views.recipe, train, backbone, config.views)
    if any(isinstance(m, nn.Conv2d) for m in backbone.modules()):
        method = method.to(memory_format=torch.channels_last)
    return backbone, method, views


def cache_teacher_targets(
    config: RunConfig, method: nn.Module, teacher: nn.Module, train: Dataset
) -> None:
    """``teacher_cache``: the teacher embeds every training sample once, un-augmented, with its
    own preprocessing (``evaluate.embed``: large batches, inference mode), and the method
    distils towards those rows (``DistillationMethod.set_target_cache``). Recomputed by every
    process and on resume (same teacher, same data: the same rows), never written to disk."""
    method.set_target_cache(teacher_embeddings(config, teacher, train, "--teacher-cache"))


def teacher_embeddings(
    config: RunConfig, teacher: nn.Module, train: Dataset, flag: str
) -> torch.Tensor:
    """The teacher's embeddings of every training sample, un-augmented, with its own
    preprocessing; a ConfigError naming ``flag`` for data that is not in memory."""
    from labelless.data.stream import is_stream
    from labelless.evaluate import embed
    from labelless.verbs.rundata import is_lazy_folder

    if is_stream(config.data.name) or is_lazy_folder(config):
        raise ConfigError(
            f"{flag} embeds every training sample once with the teacher and needs the data in "
            f"memory; it does not work with stream: shard sets or data.lazy folders: drop {flag}"
        )
    with task(f"the teacher embeds the {len(train):,} training samples once"):
        return embed(teacher, train)


def pseudo_labels_from_teacher(
    config: RunConfig, method: nn.Module, teacher: nn.Module, train: Dataset
) -> None:
    """UNFUSED's pseudo-labels (Seth et al. 2023): k-means (seeded by the run's seed, so a
    resume finds the same clusters) of the teacher's L2-normalised embeddings of every training
    sample (the cached rows with ``teacher_cache``) into ``pseudo_label_clusters`` groups; the
    method's cluster head learns them (``DistillationMethod.set_pseudo_labels``)."""
    from labelless.curate.kmeans import kmeans

    clusters = int(config.method.kwargs["pseudo_label_clusters"])
    z = method.target_cache
    if z is None:
        z = teacher_embeddings(config, teacher, train, "pseudo_label_clusters")
    if clusters > len(z):
        raise ConfigError(
            f"pseudo_label_clusters={clusters} for {len(z)} training samples: use fewer clusters"
        )
    with task(f"k-means of the teacher's embeddings into {clusters} pseudo-labels"):
        found = kmeans(torch.nn.functional.normalize(z.float(), dim=1), clusters, seed=config.seed)
    method.set_pseudo_labels(found.assignment)


def _parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def warn_if_student_is_larger(student: nn.Module, teacher: nn.Module) -> None:
    ours, theirs = _parameters(student), _parameters(teacher)
    if ours > theirs:
        warnings.warn(
            f"the student has more parameters ({ours:,}) than the teacher ({theirs:,}): "
            "distillation usually compresses a large teacher into a small student; training "
            "anyway",
            stacklevel=2,
        )


def distill_record(method: nn.Module, student: nn.Module, teacher: nn.Module) -> dict[str, Any]:
    """``metrics.json`` ``distill``: the objective, the student's own SSL loss, sizes and how the
    teacher's inputs were made."""
    inputs = method.teacher.inputs
    return {
        "objective": method.name,
        "ssl_method": method.ssl.name if method.ssl is not None else None,
        "ssl_weight": method.ssl_weight if method.ssl is not None else None,
        "student_parameters": _parameters(student),
        "teacher_parameters": _parameters(teacher),
        "teacher_embed_dim": int(teacher.embed_dim),
        "teacher_inputs": "as the student's views" if inputs is None else repr(inputs),
        "pseudo_labels": None
        if method.pseudo_labels is None
        else {
            "clusters": method.cluster_head.out_features,
            "weight": method.pseudo_label_weight,
            "cluster_sizes": torch.bincount(
                method.pseudo_labels, minlength=method.cluster_head.out_features
            ).tolist(),
        },
        "teacher_online": method.target_cache is None,
        "teacher_targets": "the teacher's embedding of each view"
        if method.target_cache is None
        else f"cached: its embedding of each un-augmented sample ({len(method.target_cache)} rows)",
    }
