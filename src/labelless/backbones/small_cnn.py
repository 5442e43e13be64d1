"""``small_cnn``: a five-convolution VGG-style encoder for small grayscale or colour images.

Two 3x3 convolutions at ``width`` channels, 2x2 max-pool, two at ``2 width``, max-pool, one at
``4 width``, then global average pooling: the kind of "small CNN" that semi-supervised MNIST
results are usually reported with (e.g. the 13-layer and smaller ConvNets of Laine & Aila 2017,
"Temporal Ensembling for Semi-Supervised Learning"). At the default ``width=32`` it has about
0.15 M parameters and runs a 28 px batch an order of magnitude faster than ResNet-18-CIFAR x0.25
on a CPU. Inputs are normalised float ``[N, C, H, W]``; output ``[N, 4 width]``.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from labelless.backbones.meta import EncoderMeta, fit_channels
from labelless.backbones.registry import register_backbone
from labelless.errors import ConfigError


def _conv(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]


class SmallCNN(nn.Module):
    def __init__(self, in_channels: int = 1, width: int = 32) -> None:
        super().__init__()
        w = int(width)
        self.features = nn.Sequential(
            *_conv(in_channels, w),
            *_conv(w, w),
            nn.MaxPool2d(2),
            *_conv(w, 2 * w),
            *_conv(2 * w, 2 * w),
            nn.MaxPool2d(2),
            *_conv(2 * w, 4 * w),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.embed_dim = 4 * w
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)


@register_backbone("small_cnn", "image")
def build_small_cnn(in_channels: int, **kwargs: Any) -> nn.Module:
    """``small_cnn`` (kwargs: ``width``, channels of the first block, default 32); metadata
    defaults to MNIST-like 28 px inputs with mean 0.5 / std 0.25 (the run sets the data's)."""
    unknown = sorted(set(kwargs) - {"width"})
    if unknown:
        raise ConfigError(f"small_cnn takes only 'width', got {unknown}; remove them")
    width = kwargs.get("width", 32)
    if int(width) != width or width < 1:
        raise ConfigError(f"small_cnn width is a channel count (an integer >= 1), got {width}")
    model = SmallCNN(in_channels, int(width))
    model.meta = EncoderMeta(
        architecture="small_cnn",
        kwargs=dict(kwargs),
        embed_dim=model.embed_dim,
        in_channels=in_channels,
        input_size=28,
        mean=fit_channels([0.5], in_channels),
        std=fit_channels([0.25], in_channels),
    )
    return model
