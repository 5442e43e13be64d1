"""The ``labelless`` command: thin, flags -> config -> api. User errors print one line, exit 2."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from labelless.errors import LabellessError

app = typer.Typer(
    name="labelless",
    help="Learn encoders and classifiers from data with few or no labels.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()

Opt = typer.Option


@app.command()
def pretrain(
    data: Annotated[str | None, Opt(help="built-in dataset name or image folder")] = None,
    method: Annotated[
        str | None, Opt(help="self-supervised method (see `labelless methods`)")
    ] = None,
    config: Annotated[Path | None, Opt(help="YAML run config; flags override it")] = None,
    set_: Annotated[list[str] | None, Opt("--set", help="override a config key: a.b=value")] = None,
    out: Annotated[str | None, Opt(help="run directory")] = None,
    backbone: Annotated[str | None, Opt(help="resnet18_cifar, resnet18, timm:NAME, ...")] = None,
    width: Annotated[float | None, Opt(help="channel width multiplier")] = None,
    weights: Annotated[str | None, Opt(help="local weights file to start from")] = None,
    init: Annotated[
        str | None,
        Opt(help="start from an earlier run's encoder (run directory or encoder.safetensors)"),
    ] = None,
    epochs: Annotated[int | None, Opt(help="maximum epochs")] = None,
    max_time: Annotated[
        float | None,
        Opt(help="wall-clock budget in seconds; schedules are fitted to it, the run ends annealed"),
    ] = None,
    batch_size: Annotated[int | None, Opt(help="batch size per process")] = None,
    lr: Annotated[float | None, Opt(help="peak learning rate")] = None,
    optimizer: Annotated[str | None, Opt(help="sgd, lars or adamw")] = None,
    view_size: Annotated[int | None, Opt(help="side of the augmented views")] = None,
    devices: Annotated[str | None, Opt(help="devices per node (auto, 1, 2, ...)")] = None,
    strategy: Annotated[str | None, Opt(help="auto, ddp, fsdp")] = None,
    num_nodes: Annotated[int | None, Opt(help="number of nodes")] = None,
    precision: Annotated[str | None, Opt(help="32-true, bf16-mixed, ...")] = None,
    seed: Annotated[int | None, Opt(help="random seed")] = None,
    resume: Annotated[bool, Opt(help="continue the run in --out from its last checkpoint")] = False,
    overwrite: Annotated[bool, Opt(help="replace an existing run in --out")] = False,
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
        devices=_devices(devices),
        strategy=strategy,
        num_nodes=num_nodes,
        precision=precision,
        seed=seed,
    )
    _print_metrics(result.metrics)
    console.print(f"run directory: {result.run_dir}")
    console.print(f"report: {result.run_dir / 'report.html'}")


def _devices(value: str | None) -> int | str | None:
    if value is None or value == "auto":
        return value
    return int(value) if value.isdigit() else value


def _print_metrics(metrics: dict) -> None:
    table = Table(title="final metrics (last epoch, not best)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        if isinstance(value, (int, float)):
            table.add_row(key, f"{value:.4f}")
    console.print(table)


@app.command()
def evaluate(
    encoder: Annotated[str, typer.Argument(help="run directory or encoder.safetensors")],
    data: Annotated[str, Opt(help="labelled dataset with train and test splits")] = "digits",
    k: Annotated[int, Opt(help="neighbours for kNN")] = 200,
    temperature: Annotated[float, Opt(help="kNN temperature")] = 0.1,
    input_size: Annotated[int | None, Opt(help="override the encoder's input size")] = None,
    seed: Annotated[int, Opt(help="seed of the validation split")] = 0,
) -> None:
    """Evaluate an encoder with kNN, a linear probe and RankMe; writes metrics.json in a run."""
    import json

    from labelless import api
    from labelless.config import write_text_atomic

    metrics = api.evaluate(
        encoder, data, k=k, temperature=temperature, input_size=input_size, seed=seed
    )
    _print_metrics(metrics)
    target = Path(encoder)
    if target.is_dir():
        out = target / f"eval-{Path(data).name}.json"
        write_text_atomic(out, json.dumps(metrics, indent=2))
        console.print(f"written: {out}")


@app.command()
def datasets() -> None:
    """List the built-in datasets and whether each is available on this machine."""
    from labelless.data import BUILTINS, data_root

    table = Table(title=f"built-in datasets (data root: {data_root()})")
    for column in ("name", "available", "description"):
        table.add_column(column)
    for builtin in BUILTINS.values():
        state = "yes" if builtin.available() else "download"
        table.add_row(builtin.name, state, builtin.description)
    console.print(table)


@app.command()
def methods() -> None:
    """List the self-supervised methods."""
    from labelless.methods import list_methods

    for name, summary in list_methods().items():
        console.print(f"[bold]{name:<14}[/bold] {summary}", soft_wrap=True)


@app.command()
def demo(
    out: Annotated[str, Opt(help="run directory")] = "runs/demo",
    epochs: Annotated[int | None, Opt(help="override the demo's epochs")] = None,
) -> None:
    """Pretrain SimCLR on digits and compare it with random init and raw pixels."""
    from labelless.demo import run_demo

    run_demo(out=out, epochs=epochs, console=console)


def main(argv: list[str] | None = None) -> int:
    """Entry point: LabellessError -> one line on stderr and exit code 2."""
    try:
        app(args=argv, standalone_mode=False)
    except LabellessError as error:
        Console(stderr=True).print(f"[red]error:[/red] {error}", highlight=False, soft_wrap=True)
        return error.exit_code
    except typer.Exit as stop:
        return stop.exit_code
    except (typer.Abort, KeyboardInterrupt):
        Console(stderr=True).print("aborted")
        return 130
    except Exception as error:  # click usage errors carry their own exit code
        import click

        if isinstance(error, click.ClickException):
            error.show()
            return error.exit_code
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
