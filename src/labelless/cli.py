"""The ``labelless`` command: thin, flags -> config -> api. User errors print one line, exit 2."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from labelless import cli_options as opt
from labelless.errors import ConfigError, LabellessError
from labelless.progress import shown as shown_progress

app = typer.Typer(
    name="labelless",
    help="Learn encoders and classifiers from data with few or no labels.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
console = Console()

Opt = typer.Option


@app.callback()
def _options(version: opt.Version = False) -> None:  # the options before the command
    pass


@app.command()
def pretrain(
    data: Annotated[str | None, Opt(help=opt.PRETRAIN_HELP["data"])] = None,
    target: opt.Target = None,
    subset: Annotated[str | None, Opt(help=opt.PRETRAIN_HELP["subset"])] = None,
    method: Annotated[str | None, Opt(help=opt.PRETRAIN_HELP["method"])] = None,
    config: opt.ConfigFile = None,
    set_: opt.Sets = None,
    out: Annotated[str | None, Opt(help=opt.PRETRAIN_HELP["out"])] = None,
    backbone: Annotated[str | None, Opt(help=opt.PRETRAIN_HELP["backbone"])] = None,
    width: opt.Width = None,
    weights: Annotated[str | None, Opt(help="local weights file to start from")] = None,
    init: Annotated[str | None, Opt(help=opt.PRETRAIN_HELP["init"])] = None,
    epochs: Annotated[int | None, Opt(help=opt.PRETRAIN_HELP["epochs"])] = None,
    max_time: opt.MaxTime = None,
    batch_size: Annotated[int | None, Opt(help=opt.PRETRAIN_HELP["batch_size"])] = None,
    lr: Annotated[float | None, Opt(help=opt.PRETRAIN_HELP["lr"])] = None,
    optimizer: Annotated[str | None, Opt(help=opt.PRETRAIN_HELP["optimizer"])] = None,
    view_size: opt.ViewSize = None,
    devices: opt.Devices = None,
    strategy: opt.Strategy = None,
    num_nodes: opt.NumNodes = None,
    accelerator: opt.Accelerator = None,
    precision: opt.Precision = None,
    logger: opt.Loggers = None,
    sync_batchnorm: opt.SyncBatchNorm = None,
    seed: Annotated[int | None, Opt(help=opt.PRETRAIN_HELP["seed"])] = None,
    resume: opt.Resume = False,
    overwrite: opt.Overwrite = False,
) -> None:
    """Pretrain an encoder with a self-supervised method; writes a run directory."""
    from labelless import api

    result = api.pretrain(
        data,
        method,
        config=config,
        overrides=set_,
        resume=resume,
        overwrite=overwrite,
        out=out,
        target=target,
        subset=subset,
        backbone=backbone,
        width=width,
        weights=weights,
        init=init,
        epochs=epochs,
        max_time=max_time,
        batch_size=batch_size,
        lr=lr,
        optimizer=optimizer,
        view_size=view_size,
        devices=opt.device_count(devices),
        strategy=strategy,
        num_nodes=num_nodes,
        accelerator=accelerator,
        precision=precision,
        logger=logger,
        sync_batchnorm=sync_batchnorm,
        seed=seed,
    )
    if not result.metrics:  # a process of a multi-process run other than rank 0
        return
    _print_metrics(result.metrics, "final metrics (last epoch, not best)")
    console.print(f"run directory: {result.run_dir}")
    console.print(f"report: {result.run_dir / 'report.html'}")


def _print_metrics(metrics: dict, title: str) -> None:
    """The numeric metrics as a table titled ``title`` (what they are of, and when)."""
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        if isinstance(value, (int, float)):
            table.add_row(key, f"{value:.4f}")
    console.print(table)


@app.command()
def evaluate(
    encoder: Annotated[
        str,
        typer.Argument(help="run directory, encoder.safetensors, or timm:NAME (with --weights)"),
    ],
    data: Annotated[str, Opt(help="labelled dataset with train and test splits")] = "digits",
    target: Annotated[str | None, Opt(help="tables: the label column of a CSV / parquet")] = None,
    test_fraction: Annotated[
        float | None, Opt(help="data files without a test split: the share held out (seeded)")
    ] = None,
    weights: Annotated[str | None, Opt(help="local weights file for a timm:NAME encoder")] = None,
    k: Annotated[int | None, Opt(help=opt.K_HELP)] = None,
    temperature: Annotated[float, Opt(help="kNN temperature")] = 0.1,
    input_size: Annotated[
        int | None, Opt(help="override the encoder's pretraining input size (recorded)")
    ] = None,
    normalize: Annotated[
        str | None,
        Opt(help="override the normalisation: imagenet, dataset, or MEAN/STD e.g. 0.5/0.25"),
    ] = None,
    seed: Annotated[int, Opt(help="seed of the validation split and few-shot draws")] = 0,
    out: Annotated[
        str | None, Opt(help="folder for metrics.json (required unless ENCODER is a run directory)")
    ] = None,
    knn_backend: opt.KnnBackend = "auto",
) -> None:
    """Evaluate any encoder with kNN, linear probe, few-shot, clustering, retrieval and label-free
    measures, at its pretraining resolution and normalisation; writes metrics.json."""
    from labelless import api
    from labelless.runfiles import RunFiles

    options = {"target": target, "test": test_fraction}
    metrics = api.evaluate(
        encoder,
        data,
        weights=weights,
        k=k,
        temperature=temperature,
        input_size=input_size,
        normalize=normalize,
        seed=seed,
        out=out,
        data_options={key: value for key, value in options.items() if value is not None},
        knn_backend=knn_backend,
    )
    _print_metrics(metrics, f"evaluation on {data}: frozen embeddings, train -> test")
    preprocessing = metrics["protocol"]["preprocessing"]
    if preprocessing["input_size_overridden"] or preprocessing["normalize_overridden"]:
        console.print(
            f"[yellow]note:[/yellow] preprocessing overridden (input size "
            f"{preprocessing['input_size']}, normalisation {preprocessing['normalize']}): these "
            "numbers are not the encoder's native-protocol numbers"
        )
    console.print(f"written: {RunFiles(out or encoder).metrics_json}")


@app.command()
def report(
    run_dir: Annotated[str, typer.Argument(help="run directory")],
    map_method: Annotated[
        str, Opt("--map", help="2-D map: auto (UMAP if installed, else t-SNE/PCA), pca, tsne, umap")
    ] = "auto",
) -> None:
    """Rebuild a run's report.html from its encoder and the data named in its config."""
    from labelless import api

    console.print(f"report: {api.report(run_dir, map_method=map_method)}")


@app.command()
def compare(
    run_dirs: Annotated[list[str], typer.Argument(help="run directories / evaluate --out folders")],
    out: Annotated[str, Opt(help="HTML file to write")] = "compare.html",
    rank_by: Annotated[str, Opt(help="metric that orders each table")] = "knn_top1",
) -> None:
    """One self-contained HTML page ranking runs and encoders side by side, per protocol."""
    from labelless import api

    path = api.compare(run_dirs, out, rank_by=rank_by)
    console.print(f"compared {len(run_dirs)} encoders: {path}")


@app.command()
def prune(
    run_dir: Annotated[str, typer.Argument(help="run directory or encoder.safetensors")],
    sparsity: Annotated[
        str, Opt(help="comma-separated fractions of conv/linear weights to zero")
    ] = "0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9",
    data: Annotated[str | None, Opt(help="labelled dataset (default: the run's)")] = None,
    k: Annotated[int | None, Opt(help=opt.K_HELP)] = None,
    temperature: Annotated[float, Opt(help="kNN temperature")] = 0.1,
    linear: Annotated[
        bool | None, Opt("--linear/--no-linear", help="linear probe per level (default: if cheap)")
    ] = None,
    out: Annotated[str | None, Opt(help="folder for prune.json (default: the run)")] = None,
) -> None:
    """One-shot global magnitude pruning at each sparsity: kNN/linear accuracy and the knee."""
    from labelless import api

    record = api.prune(
        run_dir, sparsity, data, k=k, temperature=temperature, linear=linear, out=out
    )
    table = Table(title="accuracy after one-shot global magnitude pruning")
    names = [n for n in ("knn_top1", "linear_top1") if n in record["levels"][0]]
    for column in ("sparsity", "zeros", *names):
        table.add_column(column, justify="right")
    for row in record["levels"]:
        cells = [f"{row[name]:.4f}" for name in names]
        table.add_row(f"{row['sparsity']:.2f}", f"{row['measured_sparsity']:.4f}", *cells)
    console.print(table)
    console.print(f"knee (essential sparsity): {record['knee']}")


@app.command()
def finetune(
    run_dir: Annotated[str, typer.Argument(help="run directory or encoder.safetensors")],
    data: Annotated[str | None, Opt(help="labelled dataset (default: the run's)")] = None,
    epochs: Annotated[int, Opt(help="epochs")] = 5,
    batch_size: Annotated[int, Opt(help="batch size")] = 128,
    lr: Annotated[float, Opt(help="head learning rate (AdamW)")] = 1e-3,
    encoder_lr_scale: Annotated[float, Opt(help="encoder LR = lr x this")] = 0.1,
    weight_decay: Annotated[float, Opt(help="AdamW weight decay")] = 0.05,
    val_fraction: Annotated[float, Opt(help="validation split carved from train")] = 0.1,
    seed: Annotated[int, Opt(help="seed")] = 0,
    out: Annotated[str | None, Opt(help="folder for finetune.json (default: the run)")] = None,
) -> None:
    """Fine-tune the whole encoder with a linear head; the epoch is chosen on a validation split
    of train and the test split is scored once; writes finetune.json."""
    from labelless import api

    result = api.finetune(
        run_dir,
        data,
        out=out,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        encoder_lr_scale=encoder_lr_scale,
        weight_decay=weight_decay,
        val_fraction=val_fraction,
        seed=seed,
    )
    console.print(
        f"fine-tuned test top-1 {result['finetune_top1']:.4f} (epoch {result['best_epoch']}, "
        f"validation {result['best_val_top1']:.4f})"
    )
    if "frozen_linear_top1" in result:
        console.print(f"frozen linear probe top-1 {result['frozen_linear_top1']:.4f}")


@app.command()
def select(
    run_dirs: Annotated[
        list[str], typer.Argument(help="run directories of one method and one encoder architecture")
    ],
    data: Annotated[
        str | None, Opt(help="images to measure on (default: the runs' training data)")
    ] = None,
    measure: Annotated[str, Opt(help="rankme, lidar or alpha_req")] = "rankme",
    split: Annotated[str, Opt(help="train or test split of --data")] = "train",
    max_samples: Annotated[int | None, Opt(help="images measured (seeded subset)")] = None,
    allow_mixed: Annotated[
        bool, Opt(help="rank runs of different methods or encoders together (with a warning)")
    ] = False,
    seed: Annotated[int, Opt(help="seed of the image subset")] = 0,
) -> None:
    """Rank runs of one method and one architecture best first by a label-free measure."""
    from labelless import api

    rows = api.select(
        run_dirs,
        data,
        measure=measure,
        split=split,
        max_samples=max_samples,
        allow_mixed=allow_mixed,
        seed=seed,
    )
    table = Table(title=f"label-free ranking by {measure} on {rows[0]['images']} images")
    for column in ("rank", "run", "method", measure):
        table.add_column(column, justify="right" if column in ("rank", measure) else "left")
    for row in rows:
        table.add_row(str(row["rank"]), row["run"], row["method"], f"{row['value']:.4f}")
    console.print(table)
    console.print(f"note: {rows[0]['scope']}", highlight=False, soft_wrap=True)


@app.command()
def semi(
    method: Annotated[str | None, Opt(help=opt.SEMI_HELP["method"])] = None,
    data: Annotated[str | None, Opt(help=opt.SEMI_HELP["data"])] = None,
    target: opt.Target = None,
    labels_per_class: Annotated[int | None, Opt(help=opt.SEMI_HELP["labels_per_class"])] = None,
    label_fraction: Annotated[float | None, Opt(help="fraction of each class labelled")] = None,
    known_classes: Annotated[
        int | None, Opt(help="open-set: label classes 0..K-1 only; the rest stay unlabelled")
    ] = None,
    mu: Annotated[int | None, Opt(help=opt.SEMI_HELP["mu"])] = None,
    saa: Annotated[
        bool | None, Opt("--saa/--no-saa", help="sample adaptive augmentation (FixMatch family)")
    ] = None,
    config: opt.ConfigFile = None,
    set_: opt.Sets = None,
    out: Annotated[str | None, Opt(help=opt.SEMI_HELP["out"])] = None,
    backbone: Annotated[str | None, Opt(help=opt.SEMI_HELP["backbone"])] = None,
    width: opt.Width = None,
    init: Annotated[str | None, Opt(help=opt.SEMI_HELP["init"])] = None,
    epochs: Annotated[int | None, Opt(help=opt.SEMI_HELP["epochs"])] = None,
    max_time: opt.MaxTime = None,
    batch_size: Annotated[int | None, Opt(help=opt.SEMI_HELP["batch_size"])] = None,
    lr: Annotated[float | None, Opt(help=opt.SEMI_HELP["lr"])] = None,
    view_size: opt.ViewSize = None,
    devices: opt.Devices = None,
    strategy: opt.Strategy = None,
    num_nodes: opt.NumNodes = None,
    accelerator: opt.Accelerator = None,
    precision: opt.Precision = None,
    logger: opt.Loggers = None,
    sync_batchnorm: opt.SyncBatchNorm = None,
    seed: Annotated[int | None, Opt(help=opt.SEMI_HELP["seed"])] = None,
    resume: opt.Resume = False,
    overwrite: opt.Overwrite = False,
) -> None:
    """Train a classifier from few labels and many unlabelled samples; writes a run directory."""
    from labelless.semi.api import semi as run_semi

    result = run_semi(
        data,
        method,
        config=config,
        overrides=set_,
        resume=resume,
        overwrite=overwrite,
        labels_per_class=labels_per_class,
        label_fraction=label_fraction,
        known_classes=known_classes,
        mu=mu,
        saa=saa,
        out=out,
        target=target,
        backbone=backbone,
        width=width,
        init=init,
        epochs=epochs,
        max_time=max_time,
        batch_size=batch_size,
        lr=lr,
        view_size=view_size,
        devices=opt.device_count(devices),
        strategy=strategy,
        num_nodes=num_nodes,
        accelerator=accelerator,
        precision=precision,
        logger=logger,
        sync_batchnorm=sync_batchnorm,
        seed=seed,
    )
    if not result.metrics:  # a process of a multi-process run other than rank 0
        return
    _print_metrics(result.metrics, "final metrics of the EMA model (last epoch, not best)")
    console.print(f"run directory: {result.run_dir}")


@app.command()
def datasets() -> None:
    """List the built-in datasets and whether each is available on this machine."""
    from labelless.data import BUILTINS, data_root

    table = Table(title=f"built-in datasets (data root: {data_root()})")
    for column in ("name", "modality", "available", "description"):
        table.add_column(column)
    for builtin in BUILTINS.values():
        if builtin.available():
            state = "yes"
        else:
            state = "download" if builtin.downloads else "no: set LABELLESS_DATA"
        table.add_row(builtin.name, builtin.modality, state, builtin.description)
    console.print(table)


@app.command()
def methods(
    modality: Annotated[
        str | None, Opt(help="only the methods for image, tabular, timeseries or graph data")
    ] = None,
) -> None:
    """List the self-supervised methods, by the kind of data they train on."""
    from labelless.methods import METHODS, list_methods

    summaries = list_methods()
    kinds = sorted({cls.modality for cls in METHODS.values()})
    if modality is not None and modality not in kinds:
        raise ConfigError(f"unknown modality {modality!r}; choose one of {', '.join(kinds)}")
    for kind in [modality] if modality else kinds:
        console.print(f"[bold]{kind}[/bold]")
        for name, summary in summaries.items():
            if METHODS[name].modality == kind:
                console.print(f"  [bold]{name:<19}[/bold] {summary}", soft_wrap=True)


@app.command()
def demo(
    out: Annotated[str, Opt(help="run directory")] = "runs/demo",
    epochs: Annotated[int | None, Opt(help="override the demo's epochs")] = None,
) -> None:
    """Pretrain SimCLR on digits and compare it with random init and raw pixels."""
    from labelless.demo import run_demo

    run_demo(out=out, epochs=epochs, console=console)


from labelless.cli_audit import audit  # noqa: E402
from labelless.cli_convert import convert  # noqa: E402
from labelless.cli_curate import curate  # noqa: E402
from labelless.cli_distill import distill  # noqa: E402

for _command in (audit, convert, curate, distill):
    app.command()(_command)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """labelless's own warnings as one ``warning:`` line (no source path and line)."""
    if not str(filename).startswith(_PACKAGE_DIR):
        _default_showwarning(message, category, filename, lineno, file, line)
        return
    Console(stderr=True).print(
        f"[yellow]warning:[/yellow] {message}", highlight=False, soft_wrap=True
    )


_PACKAGE_DIR = str(Path(__file__).resolve().parent)
_default_showwarning = warnings.showwarning


def main(argv: list[str] | None = None) -> int:
    """Entry point: LabellessError -> one line on stderr and exit code 2; labelless's warnings
    as ``warning:`` lines; progress bars on stderr (``labelless.progress``)."""
    warnings.showwarning = _show_warning
    try:
        with shown_progress():
            app(args=argv, standalone_mode=False, prog_name="labelless")
    except LabellessError as error:
        prefix = getattr(error, "prefix", "error")
        Console(stderr=True).print(f"[red]{prefix}:[/red] {error}", highlight=False, soft_wrap=True)
        return error.exit_code
    except typer.Exit as stop:
        return stop.exit_code
    except (typer.Abort, KeyboardInterrupt):
        Console(stderr=True).print("aborted")
        return 130
    except Exception as error:  # click usage errors carry their own exit code
        if isinstance(error, _click_errors()):
            Console(stderr=True).print(
                f"[red]error:[/red] {_usage_message(error)}", highlight=False, soft_wrap=True
            )
            return error.exit_code
        raise
    return 0


def _usage_message(error) -> str:
    """Click's usage error on one line, with the help command of the verb it concerns."""
    message = " ".join(error.format_message().split())
    context = getattr(error, "ctx", None)
    command = context.command_path if context is not None else "labelless"
    return f"{message} (see `{command} --help`)"


def _click_errors() -> tuple[type[Exception], ...]:
    """Click's usage-error base class: click's own, and the copy that typer >= 0.2x vendors as
    ``typer._click`` (whose errors are not ``click.ClickException``)."""
    import importlib

    found = []
    for module in ("click.exceptions", "typer._click.exceptions"):
        try:
            found.append(importlib.import_module(module).ClickException)
        except (ImportError, AttributeError):
            continue
    return tuple(found)


if __name__ == "__main__":
    sys.exit(main())
