"""End-to-end contrastive forecasting: Yan, Zhang, Meng, Sylvain. "What Constitutes Good Contrastive
Learning in Time-Series Forecasting?", IJCAI 2023 AI4TS workshop (arXiv 2306.12086): training the
encoder jointly on the forecasting MSE and a self-supervised contrastive objective (TS2Vec's
hierarchical contrast) beats two-stage pretrain-then-regress."""

from __future__ import annotations

import torch
from torch import nn

from labelless.augment.timeseries import series_lengths
from labelless.backbones.timeseries import instance_pool, valid_steps
from labelless.errors import ConfigError, DataError
from labelless.methods.base import Method, register_method
from labelless.nn.losses_timeseries import forecast_mse, hierarchical_contrastive_loss


@register_method("ts_forecast")
class TSForecast(Method):
    """Each sample is a window ``[C, L + horizon]``: the first L steps are the lookback, the last
    ``horizon`` steps the target. A linear head maps the representation of the last lookback
    timestamp to the next ``horizon`` steps of every channel. Loss = MSE(forecast, target) +
    ``contrastive_weight`` x hierarchical contrast of two aligned augmented lookbacks (views 1
    and 2 of the ``forecast`` recipe; view 0 is the clean window)."""

    default_views = "forecast"
    summary = "time series: forecasting MSE + hierarchical contrast, trained end to end (Yan 2023)"
    modality = "timeseries"

    def __init__(
        self,
        backbone: nn.Module,
        *,
        horizon: int = 24,
        out_channels: int | None = None,
        contrastive_weight: float = 1.0,
        alpha: float = 0.5,
        temporal_unit: int = 0,
    ) -> None:
        super().__init__(backbone)
        if out_channels is None:
            meta = getattr(backbone, "meta", None)
            out_channels = getattr(meta, "in_channels", None)
        if not out_channels or horizon < 1:
            raise ConfigError(
                "ts_forecast needs horizon >= 1 and out_channels (the series' channel count; "
                "taken from backbone.meta.in_channels when the backbone has one)"
            )
        self.horizon = horizon
        self.out_channels = int(out_channels)
        self.contrastive_weight = contrastive_weight
        self.alpha = alpha
        self.temporal_unit = temporal_unit
        self.head = nn.Linear(self.embed_dim, horizon * self.out_channels)

    def _split(self, window: torch.Tensor) -> int:
        lookback = window.shape[-1] - self.horizon
        if lookback < 2:
            raise DataError(
                f"ts_forecast with horizon {self.horizon} needs windows longer than "
                f"{self.horizon + 1} steps, got {window.shape[-1]}; use longer windows"
            )
        return lookback

    def _forecast(self, lookback: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.backbone.forward_sequence(lookback)
        last = (series_lengths(lookback) - 1).clamp(min=0)
        features = z[torch.arange(len(z), device=z.device), last]
        return self.head(features).view(len(z), self.out_channels, self.horizon), z

    def predict(self, lookback: torch.Tensor) -> torch.Tensor:
        """Forecast ``[B, C, horizon]`` from ``lookback [B, C, L]`` (read at its last valid
        timestamp); call ``eval()`` first for the deterministic forecast."""
        return self._forecast(lookback)[0]

    def forward(self, views, batch, *, generator=None):
        clean, view_a, view_b = views[:3]
        lookback = self._split(clean)
        forecast, z = self._forecast(clean[..., :lookback])
        mse = forecast_mse(forecast, clean[..., lookback:])
        z_a = self.backbone.forward_sequence(view_a[..., :lookback])
        z_b = self.backbone.forward_sequence(view_b[..., :lookback])
        contrastive = hierarchical_contrastive_loss(z_a, z_b, self.alpha, self.temporal_unit)
        return {
            "loss": mse + self.contrastive_weight * contrastive,
            "embedding": instance_pool(z.detach(), valid_steps(clean[..., :lookback])),
            "mse": mse.detach(),
            "contrastive_loss": contrastive.detach(),
        }
