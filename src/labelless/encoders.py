"""Which encoder to evaluate and how to feed it: the evaluation *protocol* of its inputs.

An encoder comes from a run directory, an exported ``encoder.safetensors`` (``encoder.json``
beside it) or ``timm:NAME`` with a local weights file. By default it sees images resized to its
pretraining resolution and normalised with its pretraining statistics (read from ``encoder.json``,
or from timm's ``pretrained_cfg``): Corley et al. 2024, "Revisiting pre-trained remote sensing
model benchmarks: resizing and normalization matters", measured differences of many points when
either is wrong. ``input_size`` / ``normalize`` override them and the protocol says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from labelless.errors import CheckpointError, ConfigError
from labelless.runfiles import RunFiles, file_sha256

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NORMALIZE_NAMES = ("encoder", "imagenet", "dataset")


@dataclass
class Preprocessing:
    """Resize side and per-channel normalisation of the inputs, and where each came from."""

    input_size: int
    mean: list[float]
    std: list[float]
    size_source: str  # "encoder" or "override"
    normalize: str  # "encoder", "imagenet", "dataset" or "explicit"

    @property
    def native(self) -> bool:
        """True when both the size and the normalisation are the encoder's own."""
        return self.size_source == "encoder" and self.normalize == "encoder"

    def protocol(self) -> dict[str, Any]:
        return {
            "input_size": self.input_size,
            "mean": [round(v, 6) for v in self.mean],
            "std": [round(v, 6) for v in self.std],
            "input_size_source": self.size_source,
            "input_size_overridden": self.size_source != "encoder",
            "normalize": self.normalize,
            "normalize_overridden": self.normalize != "encoder",
        }

    def tag(self) -> str:
        """A short name for the protocol: ``native`` or e.g. ``64px+imagenet``."""
        if self.native:
            return "native"
        parts = [f"{self.input_size}px"] if self.size_source != "encoder" else []
        if self.normalize != "encoder":
            parts.append(f"{self.normalize}-norm")
        return "+".join(parts)


def _channels(values: list[float], channels: int, label: str) -> list[float]:
    if len(values) == 1:
        return values * channels
    if len(values) == channels:
        return values
    if channels == 1:  # e.g. ImageNet's RGB statistics for a grey encoder
        return [sum(values) / len(values)]
    raise ConfigError(
        f"--normalize gives {len(values)} {label} values but the encoder has {channels} input "
        f"channels: give one value per channel or a single value"
    )


def _parse_numbers(text: str, label: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError as error:
        raise ConfigError(
            f"--normalize {label} {text!r} is not a comma-separated list of numbers; write e.g. "
            "--normalize 0.5,0.5,0.5/0.25,0.25,0.25"
        ) from error


def resolve_preprocessing(
    meta,
    *,
    data_mean: list[float] | None = None,
    data_std: list[float] | None = None,
    input_size: int | None = None,
    normalize: str | None = None,
) -> Preprocessing:
    """The inputs' protocol for an encoder with ``meta`` (its ``EncoderMeta``).

    ``normalize``: ``None`` / ``"encoder"`` (its own statistics), ``"imagenet"``, ``"dataset"``
    (``data_mean`` / ``data_std``, the evaluation data's) or explicit ``"MEAN/STD"`` with
    comma-separated per-channel values (a single value is repeated), e.g. ``"0.5/0.25"``.
    Tables and series (``meta.modality``) were preprocessed when loaded: no resize or
    normalisation applies to them, and asking for one is a ConfigError.
    """
    if getattr(meta, "modality", "image") != "image":
        if input_size is not None or normalize not in (None, "encoder"):
            raise ConfigError(
                f"--input-size and --normalize resize and normalise images; this encoder takes "
                f"{meta.modality} data: drop them"
            )
        return Preprocessing(int(meta.input_size), [], [], "encoder", "encoder")
    channels = meta.in_channels
    if input_size is not None and int(input_size) < 1:
        raise ConfigError(f"--input-size must be a positive integer, got {input_size}")
    size = int(input_size) if input_size is not None else int(meta.input_size)
    choice = (normalize or "encoder").strip()
    if choice == "encoder":
        mean, std = list(meta.mean), list(meta.std)
    elif choice == "imagenet":
        mean, std = list(IMAGENET_MEAN), list(IMAGENET_STD)
    elif choice == "dataset":
        if data_mean is None or data_std is None:
            raise ConfigError(
                "--normalize dataset needs the data's per-channel mean/std, which this data does "
                "not record: pass explicit values, e.g. --normalize 0.5/0.25"
            )
        mean, std = list(data_mean), list(data_std)
    elif "/" in choice:
        mean_text, std_text = choice.split("/", 1)
        mean, std = _parse_numbers(mean_text, "mean"), _parse_numbers(std_text, "std")
        choice = "explicit"
    else:
        raise ConfigError(
            f"unknown --normalize {choice!r}; choose one of: {', '.join(NORMALIZE_NAMES)}, or "
            "explicit MEAN/STD values such as 0.5,0.5,0.5/0.25,0.25,0.25"
        )
    mean = _channels([float(v) for v in mean], channels, "mean")
    std = _channels([float(v) for v in std], channels, "std")
    if any(s <= 0 for s in std):
        raise ConfigError(f"--normalize std must be positive per channel, got {std}")
    size_source = "encoder" if input_size is None else "override"
    return Preprocessing(size, mean, std, size_source, choice)


def is_run_dir(path: Path) -> bool:
    """A run directory: a folder with a ``config.yaml`` (``runfiles.RunFiles.has_config``)."""
    return RunFiles(path).has_config()


def load_any_encoder(
    spec: str | Path, *, weights: str | Path | None = None, in_channels: int = 3
) -> tuple[nn.Module, dict[str, Any]]:
    """``(encoder in eval mode, source record)`` for a run directory, an exported encoder file or
    folder, or ``timm:NAME`` built without download from the local ``weights`` file.

    The source record names the kind, the path and the SHA-256 of the weights, so that a metrics
    file says exactly which encoder it describes.
    """
    from labelless.backbones import create_backbone, load_encoder
    from labelless.backbones.io import META_FILE, WEIGHTS_FILE
    from labelless.backbones.registry import TIMM_PREFIX

    text = str(spec)
    if text.startswith(TIMM_PREFIX):
        if weights is None:
            raise ConfigError(
                f"{text} needs --weights FILE (a local .safetensors/.pt state dict): labelless "
                "never downloads weights, and a randomly initialised timm model is not worth "
                "evaluating"
            )
        model = create_backbone(text, in_channels=in_channels, weights=weights)
        path = Path(weights)
        source = {"kind": "timm", "name": text, "weights": str(path.resolve())}
        return model.eval(), {**source, "weights_sha256": file_sha256(path)}
    if weights is not None:
        raise ConfigError(
            "--weights goes with a timm:NAME backbone; a run directory or encoder.safetensors "
            "already holds its weights: drop --weights"
        )
    path = Path(text)
    if not path.exists():
        raise CheckpointError(
            f"{text!r} does not exist; pass a run directory, an {WEIGHTS_FILE} (with "
            f"{META_FILE} beside it) or timm:NAME --weights FILE"
        )
    if path.is_dir() and not (path / WEIGHTS_FILE).is_file():
        raise CheckpointError(
            f"{text!r} holds no {WEIGHTS_FILE}; pass a finished run directory or an exported "
            f"encoder folder (is the run still training, or did it fail?)"
        )
    model = load_encoder(path)
    weights_file = path / WEIGHTS_FILE if path.is_dir() else path.with_suffix(".safetensors")
    kind = "run" if is_run_dir(path) else "encoder"
    source = {"kind": kind, "name": str(path.resolve()), "weights": str(weights_file.resolve())}
    return model, {**source, "weights_sha256": file_sha256(weights_file)}
