"""How each modality's samples are stored: the data layer's half of the modality registry.

``Dataset``, ``from_arrays`` and ``evaluate.embed`` read a modality's storage from here instead of
branching on its name. The rest of a modality (views, backbone inputs, checks, protocols, report)
is its descriptor in ``labelless.modalities``; a new modality registers its format here from its
own data module (``register_format``) and its descriptor there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from labelless.errors import unknown_name


@dataclass(frozen=True)
class SampleFormat:
    """Storage of one modality's samples.

    ``pixels``: ``uint8 [N, C, H, W]`` images with per-channel statistics in ``meta``, resized
    and normalised when embedded. Otherwise samples are float rows with ``ndim`` dimensions
    (``[N, F]`` tables, ``[N, C, T]`` series) preprocessed when loaded and embedded as they are.

    Samples that are not rows of one array (graphs: nodes of one graph, or a set of graphs) bring
    their own ``embed(encoder, samples, batch_size, device) -> float32 [N, D]`` (used by
    ``evaluate.embed``) and ``batches(dataset, batch_size, seed) -> BatchSource`` (the training
    loader's source of batches, ``train.loader.BatchSource``).
    """

    modality: str
    ndim: int
    pixels: bool = False
    description: str = ""
    embed: Callable[..., Any] | None = None
    batches: Callable[..., Any] | None = None


FORMATS: dict[str, SampleFormat] = {}


def register_format(sample_format: SampleFormat) -> SampleFormat:
    if sample_format.modality in FORMATS:
        raise ValueError(f"modality {sample_format.modality!r} has two sample formats")
    FORMATS[sample_format.modality] = sample_format
    return sample_format


def sample_format(modality: str) -> SampleFormat:
    """The format of ``modality``; an unknown name is a DataError listing the known ones."""
    if modality not in FORMATS:
        raise unknown_name("modality", modality, sorted(FORMATS))
    return FORMATS[modality]


register_format(SampleFormat("image", 4, pixels=True, description="uint8 [N, C, H, W] images"))
register_format(SampleFormat("tabular", 2, description="float32 [N, F] preprocessed rows"))
register_format(SampleFormat("timeseries", 3, description="float32 [N, C, T] series"))
