"""``labelless convert``: data to a shard set that ``--data stream:DIR`` trains from."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

Opt = typer.Option


def convert(
    source: Annotated[
        list[str],
        typer.Argument(
            help="built-in name, image folder, table or series file (with --merge: parts)"
        ),
    ],
    out: Annotated[str, typer.Argument(help="new folder for the shard set")],
    load_size: Annotated[int, Opt(help="side images are stored at (the run's load_size)")] = 64,
    encoding: Annotated[str, Opt(help="images: uint8 (exact) or jpeg (smaller)")] = "uint8",
    chunk_size: Annotated[int, Opt(help="samples per chunk file")] = 1024,
    seed: Annotated[int, Opt(help="seed of the global shuffle")] = 0,
    part: Annotated[
        str | None, Opt(help="I/N: write part I of N (one per machine), merged with --merge")
    ] = None,
    split: Annotated[str, Opt(help="train or test split of a built-in or series set")] = "train",
    merge: Annotated[bool, Opt("--merge", help="join the parts given as SOURCE into OUT")] = False,
) -> None:
    """Write data as streaming shards (litdata) in a seeded global order, atomically."""
    from labelless import api
    from labelless.errors import ConfigError

    if merge:
        header = api.merge_shards(source, out)
    else:
        if len(source) != 1:
            raise ConfigError(
                f"convert takes one SOURCE, got {len(source)}; to join parts use --merge"
            )
        header = api.convert(
            source[0],
            out,
            load_size=load_size,
            encoding=encoding,
            chunk_size=chunk_size,
            seed=seed,
            part=part,
            split=split,
        )
    shape = "x".join(str(s) for s in header["shape"])
    Console().print(
        f"wrote {header['count']} {header['modality']} samples of {shape} to {out} "
        f"({header['encoding']}, {header['chunk_size']} per chunk, {header['skipped']} skipped)"
    )
