"""The command line's options: the ones ``pretrain`` and ``semi`` share, and every help text whose
default is not a plain value. Each text says the effective default, read from the config schemas
(``RunConfig``, ``SemiRunConfig``) and ``config.KNN_K``, so that ``--help`` and the code cannot
disagree. Typed flags override ``--set``, which overrides ``--config`` (and ``--init``'s recipe).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from labelless.config import KNN_K, RunConfig
from labelless.runfiles import default_run_dir
from labelless.semi.config import SemiRunConfig

Opt = typer.Option
PRETRAIN = RunConfig()
SEMI = SemiRunConfig()


def package_version() -> str:
    """The installed package's version (``importlib.metadata``), else the source tree's."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("labelless")
    except PackageNotFoundError:
        from labelless import __version__

        return __version__


def print_version(value: bool) -> None:
    """``--version``: the version, then exit."""
    if value:
        typer.echo(f"labelless {package_version()}")
        raise typer.Exit()


def device_count(value: str | None) -> int | str | None:
    """``--devices``: a count as an int; ``auto`` and names as they are."""
    if value is None or value == "auto":
        return value
    return int(value) if value.isdigit() else value


def _default(text: str, default: object) -> str:
    return f"{text} (default: {default})"


_RECIPE = "or the --config file's"
PRETRAIN_HELP = {
    "data": _default(
        "built-in dataset, image folder, or a CSV / parquet / .ts file", PRETRAIN.data.name
    ),
    "method": _default(
        "self-supervised method (see `labelless methods`)",
        f"{PRETRAIN.method.name}, or the --init run's",
    ),
    "out": _default(
        "run directory",
        f"runs/<method>-<data name>, e.g. {default_run_dir('simclr', data='digits')}, "
        f"{default_run_dir('ts2vec', data='ucr:GunPoint')}; only letters, digits, - _ .",
    ),
    "backbone": _default(
        "encoder: resnet18_cifar, resnet18, vit_tiny, timm:NAME, ...",
        "the method's own (mae, ijepa: vit_tiny sized to the views), else the data's "
        "(images: resnet18_cifar, tables: mlp, series: ts_cnn), or the --init run's",
    ),
    "init": "start from an earlier run's encoder (run directory or encoder.safetensors); a run "
    "directory also gives its method, method options, backbone, views and optimiser, below "
    "--config, --set and flags (not its data, --out, epochs or seed)",
    "epochs": _default("maximum epochs", f"{PRETRAIN.trainer.max_epochs}, {_RECIPE}"),
    "batch_size": _default("batch size per process", f"{PRETRAIN.optim.batch_size}, {_RECIPE}"),
    "lr": _default("peak learning rate", f"{PRETRAIN.optim.lr}, {_RECIPE}"),
    "optimizer": _default("sgd, lars or adamw", f"{PRETRAIN.optim.name}, {_RECIPE}"),
    "seed": _default("random seed", PRETRAIN.seed),
    "subset": _default(
        "subset file (`labelless curate`'s subset.txt): train on the listed samples only",
        "every sample",
    ),
}
SEMI_HELP = {
    "method": _default(
        "fixmatch, flexmatch, freematch, softmatch, mixmatch, ...", SEMI.semi.method
    ),
    "data": _default(
        "built-in dataset, labelled image folder, or a CSV / parquet file", SEMI.data.name
    ),
    "labels_per_class": _default(
        "labelled samples kept per class", "the labels in the data, -1 = unlabelled"
    ),
    "mu": _default("unlabelled samples per labelled one in a batch", SEMI.semi.mu),
    "out": _default(
        "run directory",
        "semi-<method>-<data name> in runs/, e.g. "
        + default_run_dir("semi", SEMI.semi.method, data=SEMI.data.name).split("/", 1)[1],
    ),
    "backbone": _default(
        "resnet18_cifar, resnet18, timm:NAME, ...", "the data's (images: resnet18_cifar)"
    ),
    "init": "start from a pretrained encoder (run directory or .safetensors); its backbone "
    "(name, width, options) comes with it",
    "epochs": _default(
        "maximum epochs (passes over the unlabelled pool)",
        f"{SEMI.trainer.max_epochs}, {_RECIPE}",
    ),
    "batch_size": _default("labelled batch size per process", f"{SEMI.optim.batch_size}"),
    "lr": _default("peak learning rate", f"{SEMI.optim.lr} (SGD), {_RECIPE}"),
    "seed": _default("random seed (also of the label split)", SEMI.seed),
}
K_HELP = _default("neighbours for kNN", f"the k the encoder's run used, else {KNN_K}")
KnnBackend = Annotated[
    str,
    Opt(
        "--knn-backend",
        help="kNN neighbour search: auto (faiss when installed, else torch), torch or faiss "
        "(the faiss extra: faiss-cpu); faiss searches an IVF index from 1,000,000 train rows, "
        "its recall@k recorded (Python API: knn_nprobe, knn_ivf_rows)",
    ),
]

Version = Annotated[
    bool, Opt("--version", callback=print_version, is_eager=True, help="print the version")
]
# Options of the same meaning in pretrain and semi.
Target = Annotated[
    str | None, Opt(help="tables: the label column (pretrain: leave out for unlabelled rows)")
]
ConfigFile = Annotated[
    Path | None, Opt(help="YAML run config (see configs/); --set and flags override it")
]
Sets = Annotated[list[str] | None, Opt("--set", help="override a config key: a.b=value")]
Width = Annotated[float | None, Opt(help=_default("channel width multiplier", "1.0"))]
ViewSize = Annotated[
    int | None, Opt(help=_default("side of the augmented views", "the data's own size"))
]
MaxTime = Annotated[
    float | None,
    Opt(
        help=_default(
            "wall-clock budget in seconds; schedules are fitted to it, the run ends annealed",
            "none",
        )
    ),
]
Devices = Annotated[
    str | None,
    Opt(help=_default("devices per node (auto, 1, 2, ...)", PRETRAIN.trainer.devices)),
]
Strategy = Annotated[
    str | None, Opt(help=_default("auto, ddp, fsdp2, fsdp", PRETRAIN.trainer.strategy))
]
NumNodes = Annotated[int | None, Opt(help=_default("number of nodes", PRETRAIN.trainer.num_nodes))]
Accelerator = Annotated[
    str | None,
    Opt(help=_default("auto, cpu, gpu, cuda, mps, tpu", PRETRAIN.trainer.accelerator)),
]
Precision = Annotated[
    str | None, Opt(help=_default("32-true, bf16-mixed, ...", PRETRAIN.trainer.precision))
]
Loggers = Annotated[
    str | None,
    Opt(
        "--logger",
        help=_default(
            "experiment loggers, comma-separated: csv, tensorboard, mlflow, wandb (offline into "
            "the run directory; csv is always kept)",
            "csv",
        ),
    ),
]
SyncBatchNorm = Annotated[
    bool | None,
    Opt(
        "--sync-batchnorm",
        rich_help_panel="Several processes",
        help=_default(
            "GPUs, --strategy ddp: BatchNorm statistics over the global batch (SyncBatchNorm); "
            "refused on CPUs, which torch's SyncBatchNorm cannot run on",
            "off, or the --config file's",
        ),
    ),
]
Resume = Annotated[bool, Opt(help="continue the run in --out from its last checkpoint")]
Overwrite = Annotated[bool, Opt(help="replace an existing run in --out")]
