"""Embedding a large dataset with several processes: each process embeds its shard and writes
it, and the parts merge into the single-process result.

Process ``r`` of ``W`` takes the samples that ``torch.utils.data.DistributedSampler`` (no
shuffling) gives it: the sample indices ``0 .. N - 1`` are padded to a multiple of ``W`` by
repeating their start, and process ``r`` takes positions ``r, r + W, ...``. It embeds them
(``evaluate.embed``: the encoder's preprocessing, ``torch.inference_mode()``, large batches) a
chunk of rows at a time, and writes its embeddings with their sample indices to
``embeddings.rank<r>-of-<W>.safetensors`` through ``labelless.atomic`` (a reader never sees half
a part). :func:`merge_embeddings` reads every part, checks that they are one extraction, drops
the padding duplicates by sample index and returns ``[N, D]`` in sample order: the rows a
single-process ``embed`` gives. Under a process group (torchrun, Lightning's launcher) rank and
world size come from ``torch.distributed``; :func:`embed_distributed` adds the barrier and the
merge.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from labelless.atomic import write_bytes_atomic
from labelless.errors import ConfigError, DataError
from labelless.evaluate.embed import embed
from labelless.progress import task

PART = re.compile(r"embeddings\.rank(\d+)-of-(\d+)\.safetensors")
FORMAT = "labelless-embeddings-part/1"
CHUNK_BATCHES = 32  # batches embedded per call of ``embed``: bounds the rows held at once


def shard_indices(num_samples: int, rank: int, world_size: int) -> np.ndarray:
    """The sample indices of process ``rank`` of ``world_size``, as ``DistributedSampler(
    shuffle=False)`` gives them: ``ceil(N / W)`` indices, the last ones of some processes
    repeating the first samples (the padding)."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ConfigError(f"rank {rank} is not a process of a world of size {world_size}")
    if num_samples < 1:
        raise DataError("there are no samples to embed: pass a non-empty dataset")
    total = -(-num_samples // world_size) * world_size
    return np.resize(np.arange(num_samples), total)[rank::world_size]


def part_path(directory: str | Path, rank: int, world_size: int) -> Path:
    """Where process ``rank`` of ``world_size`` writes its part."""
    return Path(directory) / f"embeddings.rank{rank:05d}-of-{world_size:05d}.safetensors"


def _rank_and_world(rank: int | None, world_size: int | None) -> tuple[int, int]:
    if rank is not None and world_size is not None:
        return rank, world_size
    if rank is not None or world_size is not None:
        raise ConfigError("pass both rank and world_size, or neither (read from torch.distributed)")
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def embed_shard(
    encoder: nn.Module,
    samples,
    directory: str | Path,
    *,
    rank: int | None = None,
    world_size: int | None = None,
    batch_size: int = 1024,
    **embed_options: Any,
) -> Path:
    """Embed this process's shard of ``samples`` and write it to ``directory``; returns the
    part's path.

    Args:
        encoder: the frozen encoder (on this process's device).
        samples: what ``evaluate.embed`` takes (an array of samples or a ``Dataset``), indexed
            by sample: row ``i`` is sample ``i``.
        directory: the folder every process writes its part to (shared by all of them).
        rank, world_size: this process and the number of processes; default: the initialised
            ``torch.distributed`` process group's, else a single process.
        batch_size: samples per forward pass.
        embed_options: ``input_size``, ``mean``, ``std``, ``device`` for ``evaluate.embed``.
    """
    rank, world_size = _rank_and_world(rank, world_size)
    samples = getattr(samples, "samples", samples)
    indices = shard_indices(len(samples), rank, world_size)
    chunk = batch_size * CHUNK_BATCHES
    starts = range(0, len(indices), chunk)
    parts = []
    with task(f"embedding part {rank + 1}/{world_size}", len(starts)) as bar:
        for start in starts:
            rows = indices[start : start + chunk]
            parts.append(embed(encoder, samples[rows], batch_size=batch_size, **embed_options))
            bar.advance()
    from safetensors.torch import save

    metadata = {"format": FORMAT, "rank": str(rank), "world_size": str(world_size)}
    metadata["num_samples"] = str(len(samples))
    index = torch.from_numpy(np.ascontiguousarray(indices)).long()
    tensors = {"index": index, "embeddings": torch.cat(parts).contiguous()}
    return write_bytes_atomic(part_path(directory, rank, world_size), save(tensors, metadata))


def _read_part(path: Path) -> tuple[dict[str, str], torch.Tensor, torch.Tensor]:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as part:
        metadata = part.metadata() or {}
        if metadata.get("format") != FORMAT:
            raise DataError(f"{str(path)!r} is not an embeddings part written by embed_shard")
        return metadata, part.get_tensor("index"), part.get_tensor("embeddings")


def merge_embeddings(directory: str | Path, world_size: int | None = None) -> torch.Tensor:
    """The ``[N, D]`` embeddings of every sample, in sample order, from the parts in
    ``directory`` (those of ``world_size`` processes; default: the one world size there).

    Each sample index appears once in the result: the padding's repeats are dropped. A missing
    part, parts of different extractions (sample counts) or a sample no part holds is a
    DataError that says which.
    """
    found: dict[int, dict[int, Path]] = {}
    for path in sorted(Path(directory).glob("embeddings.rank*-of-*.safetensors")):
        match = PART.fullmatch(path.name)
        if match:
            found.setdefault(int(match[2]), {})[int(match[1])] = path
    if world_size is None:
        if len(found) != 1:
            sizes = sorted(found) or "none"
            raise DataError(
                f"{str(directory)!r} holds embedding parts of world sizes {sizes}: pass "
                "world_size, or extract into an empty folder"
            )
        world_size = next(iter(found))
    parts = found.get(world_size, {})
    missing = sorted(set(range(world_size)) - set(parts))
    if missing:
        raise DataError(
            f"{str(directory)!r} lacks the embedding parts of ranks {missing} of {world_size}: "
            "did every process finish embed_shard?"
        )
    read = [_read_part(parts[rank]) for rank in range(world_size)]
    counts = {int(metadata["num_samples"]) for metadata, _, _ in read}
    if len(counts) != 1:
        raise DataError(
            f"the embedding parts in {str(directory)!r} come from datasets of different sizes "
            f"({sorted(counts)}): extract into an empty folder"
        )
    num_samples = counts.pop()
    index = torch.cat([part_index for _, part_index, _ in read])
    embeddings = torch.cat([part_embeddings for _, _, part_embeddings in read])
    order = torch.argsort(index, stable=True)
    index, embeddings = index[order], embeddings[order]
    first = torch.ones(len(index), dtype=torch.bool)
    first[1:] = index[1:] != index[:-1]  # one row per sample: padding repeats are dropped
    index, embeddings = index[first], embeddings[first]
    if not torch.equal(index, torch.arange(num_samples)):
        raise DataError(
            f"the embedding parts in {str(directory)!r} do not cover samples 0..{num_samples - 1} "
            f"once each ({len(index)} distinct indices): extract into an empty folder"
        )
    return embeddings


def embed_distributed(
    encoder: nn.Module,
    samples,
    directory: str | Path,
    *,
    batch_size: int = 1024,
    **embed_options: Any,
) -> torch.Tensor:
    """Every process of the initialised process group embeds its shard (:func:`embed_shard`),
    waits for the others, and returns the merged ``[N, D]`` embeddings in sample order
    (:func:`merge_embeddings`); without a process group, one process embeds everything."""
    rank, world_size = _rank_and_world(None, None)
    embed_shard(
        encoder,
        samples,
        directory,
        rank=rank,
        world_size=world_size,
        batch_size=batch_size,
        **embed_options,
    )
    if world_size > 1:
        dist.barrier()
    return merge_embeddings(directory, world_size)
