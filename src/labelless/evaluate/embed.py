"""Frozen-encoder embeddings, with the preprocessing the encoder was pretrained with."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from labelless.data.formats import sample_format
from labelless.errors import ConfigError, DataError
from labelless.progress import task


def _meta_value(encoder: nn.Module, given, field: str):
    if given is not None:
        return given
    meta = getattr(encoder, "meta", None)
    value = getattr(meta, field, None)
    if value is None:
        raise ConfigError(
            f"the encoder has no meta.{field}: pass {field}= to embed() "
            "(or build the encoder with labelless.backbones.create_backbone)"
        )
    return value


def _default_device(encoder: nn.Module) -> torch.device:
    parameter = next(encoder.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def embed(
    encoder: nn.Module,
    images,
    *,
    input_size: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    batch_size: int = 512,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """Embeddings ``float32 [N, D]`` on CPU of ``images`` (``uint8 [N, C, H, W]``, numpy/torch).

    ``images`` may also be a ``labelless.data.Dataset`` (its ``samples`` are used). Each batch is
    resized to ``input_size`` and normalised with ``mean`` / ``std`` by ``EvalTransform``; all
    three default to the encoder's ``meta`` (timm's ``pretrained_cfg`` idea: evaluating at the
    pretraining resolution and normalisation matters, Corley et al. 2023, "Revisiting pre-trained
    remote sensing model benchmarks"). Runs under ``torch.inference_mode()`` with the encoder in
    eval mode, then restores its train/eval mode. ``device`` defaults to the encoder's.
    Encoders of tables and time series (``meta.modality``) take their float samples as they are;
    a modality whose samples are not array rows embeds them its own way (graphs: nodes over their
    whole graph, ``data.formats.SampleFormat.embed``).
    """
    from labelless.augment import EvalTransform

    samples = getattr(images, "samples", images)
    modality = getattr(getattr(encoder, "meta", None), "modality", "image")
    own = sample_format(modality).embed
    if own is not None:  # samples that are not rows of one array (graphs)
        return own(encoder, samples, batch_size, device)
    if isinstance(samples, np.ndarray):
        samples = torch.from_numpy(samples)
    if not sample_format(modality).pixels:
        return _embed_features(encoder, samples, modality, batch_size, device)
    if not isinstance(samples, torch.Tensor) or samples.ndim != 4 or len(samples) == 0:
        shape = tuple(getattr(samples, "shape", ()))
        raise DataError(f"embed() needs images as a non-empty [N, C, H, W] array, got {shape}")
    transform = EvalTransform(
        _meta_value(encoder, input_size, "input_size"),
        _meta_value(encoder, mean, "mean"),
        _meta_value(encoder, std, "std"),
    )
    return _run(encoder, samples, transform, batch_size, device)


def _embed_features(encoder, samples, modality: str, batch_size: int, device) -> torch.Tensor:
    """Tables ``[N, F]`` and series ``[N, C, T]`` are already preprocessed when loaded (the
    fitted transform travels in ``encoder.meta.preprocessing``): batches go in as float32."""
    ndim = sample_format(modality).ndim
    if not isinstance(samples, torch.Tensor) or samples.ndim != ndim or len(samples) == 0:
        shape = tuple(getattr(samples, "shape", ()))
        raise DataError(
            f"embed() needs {modality} samples as a non-empty array with {ndim} dimensions "
            f"(load them with labelless.data), got shape {shape}"
        )
    return _run(encoder, samples, lambda batch: batch.float(), batch_size, device)


def _run(encoder: nn.Module, samples: torch.Tensor, transform, batch_size: int, device):
    device = torch.device(device) if device is not None else _default_device(encoder)
    was_training = encoder.training
    encoder.eval()
    starts = range(0, len(samples), batch_size)
    label, outputs = f"embedding {len(samples):,} samples", []
    try:
        with torch.inference_mode(), task(label, len(starts)) as bar:
            for start in starts:
                batch = transform(samples[start : start + batch_size].to(device))
                outputs.append(encoder(batch).float().cpu())
                bar.advance()
    finally:
        encoder.train(was_training)
    return torch.cat(outputs)
