"""``labelless curate``: which unlabelled samples to pretrain on (kept out of ``cli.py`` to keep
it under 500 lines)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

Opt = typer.Option


def curate(
    data: Annotated[
        str, typer.Argument(help="built-in name, image folder or data file (the pool)")
    ],
    encoder: Annotated[
        str, Opt(help="run directory or encoder.safetensors whose embeddings decide")
    ],
    keep: Annotated[float, Opt(help="fraction of the pool to keep, in (0, 1]")],
    out: Annotated[str, Opt(help="new folder for subset.txt, curate.json and curate.html")],
    strategy: Annotated[
        str, Opt(help="dedup, kcenter, balanced, typical, sas (images) or simcore (--target)")
    ] = "balanced",
    target: Annotated[
        str | None, Opt(help="simcore: the (small) dataset to sample the pool towards")
    ] = None,
    dedup: Annotated[bool, Opt("--dedup", help="remove near-duplicates before selecting")] = False,
    dedup_threshold: Annotated[
        float, Opt(help="cosine similarity from which two samples are duplicates")
    ] = 0.95,
    clusters: Annotated[
        int | None, Opt(help="k-means clusters (default: about sqrt(pool size), 2..1000)")
    ] = None,
    seed: Annotated[int, Opt(help="seed of k-means, draws and augmentations")] = 0,
) -> None:
    """Select a subset of unlabelled data from an encoder's embeddings (dedup, coverage, balance,
    typicality, SAS, SimCore) for `pretrain --subset`; records diversity before and after."""
    from labelless import api

    record = api.curate(
        data,
        encoder,
        keep=keep,
        strategy=strategy,
        out=out,
        target=target,
        dedup=dedup,
        dedup_threshold=dedup_threshold,
        clusters=clusters,
        seed=seed,
    )
    diversity = record["diversity"]
    duplicates = record["duplicates"]
    groups = "" if duplicates is None else f", {duplicates['groups']} duplicate groups"
    Console().print(
        f"kept {record['kept_size']} of {record['pool_size']} samples ({record['strategy']}"
        f"{groups}); Vendi score {diversity['vendi_before']} -> {diversity['vendi_after']}, "
        f"cluster entropy {diversity['clusters_before']['entropy']} -> "
        f"{diversity['clusters_after']['entropy']}\nwritten: {out}/subset.txt, curate.json, "
        "curate.html",
        highlight=False,
        soft_wrap=True,
    )
