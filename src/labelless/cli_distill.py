"""``labelless distill``: a frozen teacher encoder distilled into a student without labels (kept
out of ``cli.py`` to keep it under 500 lines)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from labelless import cli_options as opt
from labelless.config import RunConfig

Opt = typer.Option
_DEFAULTS = RunConfig()
_RECIPE = "or the --config file's"


def distill(
    teacher: Annotated[
        str | None,
        typer.Argument(
            help="the frozen teacher: a run directory, an encoder.safetensors, or timm:NAME with "
            "--teacher-weights FILE (left out with --resume)"
        ),
    ] = None,
    data: Annotated[
        str | None, Opt(help=f"unlabelled data to distil on (default: {_DEFAULTS.data.name})")
    ] = None,
    student: Annotated[
        str | None,
        Opt(help="student backbone (default: the data's, images: resnet18_cifar)"),
    ] = None,
    width: opt.Width = None,
    objective: Annotated[
        str | None,
        Opt(help="seed (similarity distributions over a queue) or cosine (default: seed)"),
    ] = None,
    ssl: Annotated[
        str | None,
        Opt(help="add the student's own self-supervised loss, e.g. simclr (default: none)"),
    ] = None,
    ssl_weight: Annotated[float | None, Opt(help="weight of the --ssl loss (default: 1.0)")] = None,
    teacher_weights: Annotated[
        str | None, Opt(help="local weights file of a timm:NAME teacher (nothing downloads)")
    ] = None,
    student_from_teacher: Annotated[
        bool | None,
        Opt(
            "--student-from-teacher",
            help="start the student as a copy of the teacher (fine-tuning without labels on "
            "the target data, UNFUSED-style; default: a fresh student)",
        ),
    ] = None,
    teacher_cache: Annotated[
        bool | None,
        Opt(
            "--teacher-cache",
            help="the teacher embeds each training sample once, un-augmented, and the student's "
            "views learn those embeddings: no teacher forward per step (default: the teacher "
            "embeds each view)",
        ),
    ] = None,
    pseudo_labels: Annotated[
        int | None,
        Opt(
            "--pseudo-labels",
            help="K: k-means of the teacher's embeddings into K clusters, which a head on the "
            "student learns to predict (UNFUSED's pseudo-labels; default: none)",
        ),
    ] = None,
    config: opt.ConfigFile = None,
    set_: opt.Sets = None,
    out: Annotated[
        str | None, Opt(help="run directory (default: runs/distill-<objective>-<data name>)")
    ] = None,
    epochs: Annotated[
        int | None, Opt(help=f"maximum epochs (default: {_DEFAULTS.trainer.max_epochs}, {_RECIPE})")
    ] = None,
    max_time: opt.MaxTime = None,
    batch_size: Annotated[
        int | None,
        Opt(help=f"batch size per process (default: {_DEFAULTS.optim.batch_size}, {_RECIPE})"),
    ] = None,
    lr: Annotated[
        float | None, Opt(help=f"peak learning rate (default: {_DEFAULTS.optim.lr}, {_RECIPE})")
    ] = None,
    view_size: opt.ViewSize = None,
    devices: opt.Devices = None,
    strategy: opt.Strategy = None,
    accelerator: opt.Accelerator = None,
    seed: Annotated[int | None, Opt(help=f"random seed (default: {_DEFAULTS.seed})")] = None,
    resume: opt.Resume = False,
    overwrite: opt.Overwrite = False,
) -> None:
    """Distil a frozen teacher encoder into a (smaller) student on unlabelled data (SEED or
    cosine feature regression, optionally with the student's own SSL loss); writes a run
    directory whose metrics record the teacher's SHA-256 and its own scores."""
    from labelless import api

    result = api.distill(
        teacher,
        data,
        config=config,
        overrides=set_,
        resume=resume,
        overwrite=overwrite,
        out=out,
        student=student,
        width=width,
        objective=objective,
        ssl=ssl,
        ssl_weight=ssl_weight,
        teacher_weights=teacher_weights,
        student_from_teacher=student_from_teacher,
        teacher_cache=teacher_cache,
        pseudo_labels=pseudo_labels,
        epochs=epochs,
        max_time=max_time,
        batch_size=batch_size,
        lr=lr,
        view_size=view_size,
        devices=opt.device_count(devices),
        strategy=strategy,
        accelerator=accelerator,
        seed=seed,
    )
    if not result.metrics:  # a process of a multi-process run other than rank 0
        return
    console = Console()
    teacher_scores = result.metrics["teacher"]["metrics"]
    for key in ("knn_top1", "linear_top1", "rankme"):
        if key in result.metrics:
            theirs = teacher_scores.get(key)
            versus = f" (teacher {theirs:.4f})" if isinstance(theirs, float) else ""
            console.print(f"student {key}: {result.metrics[key]:.4f}{versus}", highlight=False)
    console.print(f"run directory: {result.run_dir}")
