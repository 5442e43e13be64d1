"""``labelless audit``: security checks of an encoder (kept out of ``cli.py`` to keep it under
500 lines). docs/security.md says what each check can and cannot find."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

Opt = typer.Option


def audit(
    encoder: Annotated[
        str,
        typer.Argument(help="run directory, encoder.safetensors, or timm:NAME (with --weights)"),
    ],
    data: Annotated[str, Opt(help="images of the kind the encoder was trained on (shadow set)")],
    out: Annotated[str, Opt(help="new folder for audit.json and audit.html")],
    checks: Annotated[
        str, Opt(help="comma-separated: backdoor-scan, adversarial, detector, data-scan")
    ] = "backdoor-scan,adversarial,detector,data-scan",
    epsilon: Annotated[
        float, Opt(help="L-inf radius of the attacks on [0, 1] pixels (8/255 = 0.0314)")
    ] = 8 / 255,
    steps: Annotated[int, Opt(help="PGD steps")] = 10,
    shadow: Annotated[int, Opt(help="clean training images the scans optimise on")] = 512,
    samples: Annotated[int, Opt(help="evaluation images attacked (test split, else train)")] = 1000,
    reference: Annotated[
        list[str] | None,
        Opt(help="an encoder you trust, to calibrate the backdoor scan (repeatable)"),
    ] = None,
    inversion_steps: Annotated[int, Opt(help="steps of trigger inversion per encoder")] = 400,
    universal_epochs: Annotated[int, Opt(help="passes over the shadow set (universal)")] = 5,
    dta_layers: Annotated[int, Opt(help="layers the Downstream Transfer Attack targets")] = 2,
    finetune_epochs: Annotated[int, Opt(help="epochs of the fine-tuned copy DTA is scored on")] = 2,
    neighbours: Annotated[int, Opt(help="augmented neighbours per input (detector)")] = 20,
    neighbour_view: Annotated[
        str, Opt(help="detector neighbours: light (90-100% crops) or beyond (the paper's views)")
    ] = "light",
    weights: Annotated[str | None, Opt(help="local weights file for a timm:NAME encoder")] = None,
    input_size: Annotated[
        int | None, Opt(help="override the encoder's input size (needed if it records none)")
    ] = None,
    normalize: Annotated[
        str | None, Opt(help="override the normalisation: imagenet, dataset, or MEAN/STD")
    ] = None,
    seed: Annotated[int, Opt(help="seed of the samples, attacks and inversions")] = 0,
) -> None:
    """Audit an encoder: backdoor trigger inversion, adversarial inputs (PGD, universal, DTA),
    adversarial-input detection (BEYOND) and training-data outliers; writes audit.json and
    audit.html."""
    from labelless import api

    record = api.audit(
        encoder,
        data,
        out=out,
        checks=[name.strip() for name in checks.split(",") if name.strip()],
        references=reference or [],
        epsilon=epsilon,
        steps=steps,
        shadow=shadow,
        samples=samples,
        inversion_steps=inversion_steps,
        universal_epochs=universal_epochs,
        dta_layers=dta_layers,
        finetune_epochs=finetune_epochs,
        neighbours=neighbours,
        neighbour_view=neighbour_view,
        weights=weights,
        input_size=input_size,
        normalize=normalize,
        seed=seed,
    )
    from labelless.report.audit import headline

    lines = [f"{name}: {headline(name, result)}" for name, result in record["checks"].items()]
    Console().print(
        "\n".join(lines) + f"\nwritten: {out}/audit.json, audit.html",
        highlight=False,
        soft_wrap=True,
    )
