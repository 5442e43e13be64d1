"""Time-series encoders: TS2Vec's dilated CNN (``ts_cnn``) and a transformer (``ts_transformer``).

Both map ``float32 [B, C, T]`` (NaN marks padding or a missing value; those timestamps are fed as
zeros and left out of the pooling) to

- ``forward_sequence(x) -> [B, T, D]``: one representation per timestamp;
- ``forward(x) -> [B, D]``: the instance embedding, the max over the valid (non-NaN) timestamps
  (TS2Vec's instance-level representation).

In training mode both apply TS2Vec's timestamp masking (Yue et al., AAAI 2022, sec. 3.2): each
timestamp's latent vector after the input projection is zeroed with probability ``mask_rate``.
Pass ``mask=False`` to ``forward_sequence`` to switch it off for one call.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from labelless.backbones.meta import EncoderMeta
from labelless.backbones.registry import register_backbone
from labelless.errors import ConfigError


def valid_steps(x: torch.Tensor) -> torch.Tensor:
    """``bool [B, T]``: timestamps where no channel of ``x [B, C, T]`` is NaN."""
    return ~torch.isnan(x).any(dim=1)


def instance_pool(z: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Max over the valid timestamps: ``z [B, T, D]``, ``valid bool [B, T]`` -> ``[B, D]``
    (zeros for a series with no valid timestamp)."""
    masked = z.masked_fill(~valid.unsqueeze(-1), float("-inf"))
    pooled = masked.max(dim=1).values
    return torch.where(valid.any(dim=1, keepdim=True), pooled, torch.zeros_like(pooled))


class _SequenceEncoder(nn.Module):
    """Shared input handling: NaN -> 0, projection, timestamp masking, pooling."""

    embed_dim: int
    meta: EncoderMeta

    def __init__(self, in_channels: int, hidden_dim: int, mask_rate: float) -> None:
        super().__init__()
        if not 0.0 <= mask_rate < 1.0:
            raise ConfigError(f"mask_rate must be in [0, 1), got {mask_rate}")
        self.in_channels = in_channels
        self.mask_rate = mask_rate
        self.input_projection = nn.Linear(in_channels, hidden_dim)

    def _project(self, x: torch.Tensor, mask: bool | None) -> tuple[torch.Tensor, torch.Tensor]:
        if x.ndim != 3 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected a float [B, {self.in_channels}, T] batch of series, got {tuple(x.shape)}"
            )
        valid = valid_steps(x)
        h = self.input_projection(torch.nan_to_num(x, nan=0.0).transpose(1, 2))  # [B, T, H]
        keep = valid
        if (self.training if mask is None else mask) and self.mask_rate > 0:
            drop = torch.rand(valid.shape, device=x.device) < self.mask_rate
            keep = keep & ~drop
        return h * keep.unsqueeze(-1), valid

    def forward_sequence(self, x: torch.Tensor, mask: bool | None = None) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return instance_pool(self.forward_sequence(x), valid_steps(x))


class _SamePadConv(nn.Module):
    """A dilated 1-D convolution whose output has the input's length."""

    def __init__(self, width_in: int, width_out: int, kernel_size: int, dilation: int) -> None:
        super().__init__()
        field = (kernel_size - 1) * dilation + 1
        self.conv = nn.Conv1d(
            width_in, width_out, kernel_size, padding=field // 2, dilation=dilation
        )
        self.trim = 1 if field % 2 == 0 else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return out[..., : out.shape[-1] - self.trim] if self.trim else out


class _DilatedBlock(nn.Module):
    """GELU -> dilated conv -> GELU -> dilated conv, plus a (projected) residual."""

    def __init__(self, width_in: int, width_out: int, dilation: int, project: bool) -> None:
        super().__init__()
        self.conv1 = _SamePadConv(width_in, width_out, 3, dilation)
        self.conv2 = _SamePadConv(width_out, width_out, 3, dilation)
        self.residual = nn.Conv1d(width_in, width_out, 1) if project else nn.Identity()

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """``x [B, W, T]``; ``keep [B, 1, T]`` zeroes the padding between the convolutions."""
        out = self.conv2(F.gelu(self.conv1(F.gelu(x))) * keep)
        return (out + self.residual(x)) * keep


class DilatedConvEncoder(_SequenceEncoder):
    """TS2Vec's encoder (Yue et al., AAAI 2022, sec. 3.2): a per-timestamp linear input projection,
    timestamp masking while training, ``depth`` residual blocks of two kernel-3 convolutions with
    dilation 2^i, a last block to ``embed_dim`` with dilation 2^depth, and dropout 0.1 on the
    representation. Unlike the original, NaN (padding / missing) timestamps are re-zeroed after
    every block, so a series' representation does not depend on how much padding follows it."""

    def __init__(
        self,
        in_channels: int,
        hidden_dim: int = 64,
        embed_dim: int = 320,
        depth: int = 10,
        mask_rate: float = 0.5,
        dropout: float = 0.1,
    ) -> None:
        super().__init__(in_channels, hidden_dim, mask_rate)
        widths = [hidden_dim] * depth + [embed_dim]
        blocks, width_in = [], hidden_dim
        for index, width_out in enumerate(widths):
            last = index == len(widths) - 1
            blocks.append(_DilatedBlock(width_in, width_out, 2**index, project=last))
            width_in = width_out
        self.blocks = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(dropout)
        self.embed_dim = embed_dim

    def forward_sequence(self, x: torch.Tensor, mask: bool | None = None) -> torch.Tensor:
        h, valid = self._project(x, mask)
        h, keep = h.transpose(1, 2), valid.unsqueeze(1).to(h.dtype)
        for block in self.blocks:
            h = block(h, keep)  # padding stays zero, so the result does not depend on it
        return self.dropout(h).transpose(1, 2)


def _sinusoid(length: int, width: int, device: torch.device) -> torch.Tensor:
    position = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)
    rate = torch.exp(
        torch.arange(0, width, 2, device=device, dtype=torch.float32) * (-math.log(1e4) / width)
    )
    table = torch.zeros(length, width, device=device)
    table[:, 0::2] = torch.sin(position * rate)
    table[:, 1::2] = torch.cos(position * rate[: width // 2])
    return table


class TimeSeriesTransformer(_SequenceEncoder):
    """A pre-norm transformer encoder over timestamps: linear input projection, timestamp masking
    while training, sinusoidal positions (any length), ``depth`` self-attention layers with the
    NaN timestamps masked out of the keys, and a linear map to ``embed_dim``. Attention is
    quadratic in T: crop long series (e.g. ``max_length`` of the views) before training."""

    def __init__(
        self,
        in_channels: int,
        hidden_dim: int = 64,
        embed_dim: int = 128,
        depth: int = 2,
        num_heads: int = 4,
        mlp_ratio: float = 2.0,
        mask_rate: float = 0.5,
        dropout: float = 0.1,
    ) -> None:
        super().__init__(in_channels, hidden_dim, mask_rate)
        if hidden_dim % num_heads or hidden_dim % 2:
            raise ConfigError(
                f"hidden_dim {hidden_dim} must be even and divisible by num_heads {num_heads}"
            )
        layer = nn.TransformerEncoderLayer(
            hidden_dim,
            num_heads,
            int(hidden_dim * mlp_ratio),
            dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.layers = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(hidden_dim)
        self.output = nn.Linear(hidden_dim, embed_dim)
        self.embed_dim = embed_dim

    def forward_sequence(self, x: torch.Tensor, mask: bool | None = None) -> torch.Tensor:
        h, valid = self._project(x, mask)
        h = h + _sinusoid(h.shape[1], h.shape[2], h.device)
        padding = ~valid & valid.any(dim=1, keepdim=True)  # never mask a whole row
        h = self.layers(h, src_key_padding_mask=padding)
        return self.output(self.norm(h))


_OPTIONS = {
    "ts_cnn": ("hidden_dim", "embed_dim", "depth", "mask_rate", "dropout"),
    "ts_transformer": (
        "hidden_dim",
        "embed_dim",
        "depth",
        "num_heads",
        "mlp_ratio",
        "mask_rate",
        "dropout",
    ),
}


def _attach_meta(model: nn.Module, name: str, in_channels: int, kwargs: dict[str, Any]) -> None:
    model.meta = EncoderMeta(
        architecture=name,
        kwargs=dict(kwargs),
        embed_dim=int(model.embed_dim),
        in_channels=in_channels,
        input_size=0,  # any length; 0 = no nominal length
        mean=[],
        std=[],
        modality="timeseries",
    )


def _check_options(name: str, kwargs: dict[str, Any]) -> None:
    unknown = sorted(set(kwargs) - set(_OPTIONS[name]))
    if unknown:
        raise ConfigError(f"{name} takes only {', '.join(_OPTIONS[name])}, got {unknown}")


@register_backbone("ts_cnn", "timeseries", default=True)
def build_ts_cnn(in_channels: int, **kwargs: Any) -> nn.Module:
    """TS2Vec's dilated CNN; kwargs: hidden_dim (64), embed_dim (320), depth (10),
    mask_rate (0.5), dropout (0.1)."""
    _check_options("ts_cnn", kwargs)
    model = DilatedConvEncoder(in_channels, **kwargs)
    _attach_meta(model, "ts_cnn", in_channels, kwargs)
    return model


@register_backbone("ts_transformer", "timeseries")
def build_ts_transformer(in_channels: int, **kwargs: Any) -> nn.Module:
    """A transformer over timestamps; kwargs: hidden_dim (64), embed_dim (128), depth (2),
    num_heads (4), mlp_ratio (2.0), mask_rate (0.5), dropout (0.1)."""
    _check_options("ts_transformer", kwargs)
    model = TimeSeriesTransformer(in_channels, **kwargs)
    _attach_meta(model, "ts_transformer", in_channels, kwargs)
    return model
