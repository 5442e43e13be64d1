"""The metadata that travels with every encoder: how it was built and how to feed it."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from labelless.errors import CheckpointError


@dataclass
class EncoderMeta:
    """What is needed to rebuild an encoder and to prepare its inputs.

    ``architecture`` and ``kwargs`` are the arguments of ``create_backbone``; ``input_size``,
    ``mean`` and ``std`` (per channel, 0..1 pixel scale) are the resolution and normalisation the
    encoder expects, like timm's ``pretrained_cfg``. ``modality`` is ``"image"``, ``"tabular"`` or
    ``"timeseries"``; for tables ``in_channels`` is the number of feature columns and
    ``preprocessing`` the transform fitted on the training split (JSON-ready), so an exported
    encoder prepares new rows exactly as it was trained. Images leave it empty.
    """

    architecture: str
    kwargs: dict[str, Any]
    embed_dim: int
    in_channels: int
    input_size: int
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    modality: str = "image"
    preprocessing: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with one entry per field."""
        return {
            "architecture": self.architecture,
            "kwargs": dict(self.kwargs),
            "embed_dim": self.embed_dim,
            "in_channels": self.in_channels,
            "input_size": self.input_size,
            "mean": list(self.mean),
            "std": list(self.std),
            "modality": self.modality,
            "preprocessing": dict(self.preprocessing),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EncoderMeta:
        """Inverse of ``to_dict``; extra keys (e.g. ``format``) are ignored."""
        if not isinstance(data, dict):
            raise CheckpointError(
                f"encoder metadata must be a JSON object, got {type(data).__name__}; "
                "re-export the encoder with labelless.backbones.save_encoder"
            )
        optional = {"modality", "preprocessing"}  # absent from encoders exported before tables
        names = [f.name for f in fields(cls) if f.name not in optional]
        missing = [name for name in names if name not in data]
        if missing:
            raise CheckpointError(
                f"encoder metadata lacks the keys {missing}; "
                "re-export the encoder with labelless.backbones.save_encoder"
            )
        try:
            return cls(
                architecture=str(data["architecture"]),
                kwargs=dict(data["kwargs"]),
                embed_dim=int(data["embed_dim"]),
                in_channels=int(data["in_channels"]),
                input_size=int(data["input_size"]),
                mean=[float(v) for v in data["mean"]],
                std=[float(v) for v in data["std"]],
                modality=str(data.get("modality", "image")),
                preprocessing=dict(data.get("preprocessing") or {}),
            )
        except (TypeError, ValueError) as error:
            raise CheckpointError(
                f"encoder metadata has a value of the wrong type ({error}); "
                "re-export the encoder with labelless.backbones.save_encoder"
            ) from error


def fit_channels(values: list[float] | tuple[float, ...], in_channels: int) -> list[float]:
    """Per-channel statistics for ``in_channels``: as given when the count matches, else their
    average repeated (e.g. ImageNet's RGB mean for a 1-channel model)."""
    values = [float(v) for v in values]
    if len(values) == in_channels:
        return values
    return [sum(values) / len(values)] * in_channels
