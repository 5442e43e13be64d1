"""``labelless demo``: SimCLR on digits without their labels, then classifiers trained on 1 to 10
labelled images per class, compared with the same network at random init and with raw pixels.

What it shows is the case self-supervision exists for: few labels. With every label, 8x8 digits
are nearly separable pixel by pixel (kNN on raw pixels: 0.972), so the full-label rows are
close; with 1-10 labels per class the pretrained encoder's linear probe is far ahead of both
baselines. Bounded by epochs, not wall time, so the numbers do not depend on the machine's load.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

# The demo's recipe: a width-0.5 CIFAR ResNet-18 on 8 px views of the 8x8 digits. No flips
# (a mirrored digit is another glyph) and crops that keep at least 40% of the digit. 100 epochs
# (500 steps) take about 80 s on 2 quiet CPU cores.
DEMO_CONFIG: dict[str, Any] = {
    "data": {"name": "digits"},
    "backbone": {"name": "resnet18_cifar", "width": 0.5},
    "method": {
        "name": "simclr",
        "kwargs": {"proj_hidden_dim": 512, "proj_dim": 128, "temperature": 0.2},
    },
    "views": {"size": 8, "overrides": {"scale": [0.4, 1.0], "hflip_p": 0.0}},
    "optim": {
        "name": "lars",
        "lr": 1.0,
        "weight_decay": 1e-5,
        "batch_size": 256,
        "warmup_epochs": 3,
    },
    "trainer": {"max_epochs": 100},
    "monitor": {"every_n_epochs": 10, "knn_k": 20},
}

SHOTS = (1, 2, 5, 10)  # labelled training images per class of the few-label probes
HEADLINE_SHOTS = 2  # the column the closing line reads
DRAWS = 10  # seeded draws of the labelled images per shot count, averaged
PRETRAINED, RANDOM_INIT, RAW_PIXELS = "SimCLR pretrained", "same net, random init", "raw pixels"


def compare_encoders(
    pretrained, random_init, train, test, *, k: int, temperature: float, seed: int
) -> dict[str, dict[str, float]]:
    """Per encoder: ``<n>_shot`` (linear probe on ``n`` labels per class, mean over ``DRAWS``),
    ``linear_top1`` and ``knn_top1`` (every training label); the same protocol for all three."""
    from labelless.api import raw_pixels
    from labelless.evaluate import embed, few_shot, knn_accuracy, linear_probe

    features = {
        PRETRAINED: (embed(pretrained, train.samples), embed(pretrained, test.samples)),
        RANDOM_INIT: (embed(random_init, train.samples), embed(random_init, test.samples)),
        RAW_PIXELS: (raw_pixels(train.samples), raw_pixels(test.samples)),
    }
    train_y, test_y = torch.as_tensor(train.labels), torch.as_tensor(test.labels)
    rows: dict[str, dict[str, float]] = {}
    for name, (train_z, test_z) in features.items():
        scores = few_shot(
            train_z,
            train_y,
            test_z,
            test_y,
            shots=SHOTS,
            draws=DRAWS,
            classifier="logistic",
            seed=seed,
        )
        row = {f"{shot}_shot": scores[f"{shot}_shot"]["mean"] for shot in SHOTS}
        row["linear_top1"] = linear_probe(train_z, train_y, test_z, test_y, seed=seed).accuracy
        row["knn_top1"] = knn_accuracy(
            train_z, train_y, test_z, test_y, k=k, temperature=temperature
        )
        rows[name] = row
    return rows


# The table's rows: what each classifier was given; its columns are the three encoders.
MEASURES = {
    **{f"{shot}_shot": f"{shot} label{'s' if shot > 1 else ''} per class" for shot in SHOTS},
    "linear_top1": "all labels (linear)",
    "knn_top1": "all labels (kNN)",
}
HEADERS = {PRETRAINED: "SimCLR", RANDOM_INIT: "random init", RAW_PIXELS: "raw pixels"}


def _cell(value: float, best: float) -> str:
    return f"[bold]{value:.3f}[/bold]" if value == best else f"{value:.3f}"


def comparison_table(rows: dict[str, dict[str, float]], test_size: int, k: int) -> Table:
    """One row per measure, one column per encoder; the best of each row in bold."""
    table = Table(
        title=f"digits: test accuracy on {test_size} images",
        caption=(
            f"N labels per class: linear probe, mean of {DRAWS} random draws; all labels: linear "
            f"probe, kNN k={k}. Random init: the same network, not pretrained."
        ),
    )
    table.add_column("classifier trained on")
    for name in rows:
        table.add_column(HEADERS[name], justify="right")
    for key, label in MEASURES.items():
        best = max(row[key] for row in rows.values())
        table.add_row(label, *(_cell(row[key], best) for row in rows.values()))
    return table


def closing_lines(rows: dict[str, dict[str, float]], train_size: int, epochs: int) -> list[str]:
    """The one line that says what was measured and why it matters, plus one line on any row
    that raw pixels win (and why)."""
    key = f"{HEADLINE_SHOTS}_shot"
    ours, pixels, random = (rows[name][key] for name in (PRETRAINED, RAW_PIXELS, RANDOM_INIT))
    measured = (
        f"With {HEADLINE_SHOTS} labels per class, a linear probe on the pretrained encoder "
        f"scores {ours:.3f} vs {pixels:.3f} on raw pixels and {random:.3f} at random init"
    )
    if ours > max(pixels, random):
        lines = [
            f"{measured}: pretraining on {train_size:,} unlabelled images is what makes a few "
            "labels enough."
        ]
    else:
        lines = [f"{measured}: {epochs} epochs of pretraining were not enough here."]
    pixel_wins = [
        label for key, label in MEASURES.items() if rows[RAW_PIXELS][key] >= rows[PRETRAINED][key]
    ]
    if pixel_wins:
        lines.append(
            f"Raw pixels win with {' and '.join(pixel_wins)}: 8x8 digits are nearly separable "
            "pixel by pixel, so with every label a pixel classifier is hard to beat; pretraining "
            "pays where labels are scarce."
        )
    return lines


def next_commands(out: str) -> list[tuple[str, str]]:
    """Three (what, command) to try next, each run as written from the repository root."""
    width = DEMO_CONFIG["backbone"]["width"]
    return [
        (
            "a classifier from 2 labels per class plus the unlabelled rest (FixMatch), starting "
            "from this encoder",
            f"labelless semi --config configs/semi/digits_fixmatch.yaml --init {out} "
            f"--width {width} --out runs/demo-fixmatch",
        ),
        (
            "another method on the same images",
            "labelless pretrain --config configs/digits/byol.yaml --out runs/byol-digits",
        ),
        (
            "both encoders side by side, every metric with its protocol",
            f"labelless compare {out} runs/byol-digits --out compare.html",
        ),
    ]


def run_demo(out: str = "runs/demo", epochs: int | None = None, console: Console | None = None):
    """Pretrain, compare the three encoders, print the table, the closing line and the next
    commands; returns the rows of the table (``compare_encoders``)."""
    from labelless import api
    from labelless.backbones import create_backbone
    from labelless.data import load_dataset
    from labelless.verbs.rundata import load_run_config

    console = console or Console()
    splits = load_dataset("digits")
    train, test = splits.train, splits.test
    console.print(
        f"[bold]labelless demo[/bold]: SimCLR on scikit-learn digits ({len(train):,} train "
        f"images, labels unused), then classifiers trained on {SHOTS[0]}-{SHOTS[-1]} labels "
        "per class"
    )
    flags = {"epochs": epochs} if epochs else {}
    result = api.pretrain(config=copy.deepcopy(DEMO_CONFIG), out=out, overwrite=True, **flags)

    run_config = load_run_config(result.run_dir)
    k, temperature = run_config.monitor.knn_k, run_config.monitor.knn_temperature
    meta = result.encoder.meta
    torch.manual_seed(run_config.seed)
    random_init = create_backbone(
        meta.architecture,
        in_channels=meta.in_channels,
        input_size=meta.input_size,
        mean=meta.mean,
        std=meta.std,
        **meta.kwargs,
    )
    rows = compare_encoders(
        result.encoder, random_init, train, test, k=k, temperature=temperature, seed=run_config.seed
    )
    training = result.metrics["training"]
    epochs_done = training["epochs_done"]
    console.print(comparison_table(rows, len(test), k))
    console.print(
        f"pretraining: {epochs_done} epochs in {training['wall_seconds']:.0f} s; "
        f"report: {result.run_dir / 'report.html'}"
    )
    for line in closing_lines(rows, len(train), epochs_done):
        console.print(line)
    console.print("Next:")
    for what, command in next_commands(out):
        console.print(f"  {what}:")
        console.print(f"    {command}", soft_wrap=True, highlight=False)
    return rows
