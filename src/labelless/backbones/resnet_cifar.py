"""ResNet-18 for small images (He et al. 2016, "Deep Residual Learning", CIFAR variant).

The ImageNet stem (7x7 stride-2 conv + max-pool) shrinks a 32x32 image to 8x8 before the first
block; the CIFAR variant uses a 3x3 stride-1 conv and no max-pool, so layer1 sees the full
resolution. Module names follow torchvision (conv1, bn1, layer1..4, downsample).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from labelless.backbones.meta import EncoderMeta, fit_channels
from labelless.errors import ConfigError

CIFAR10_MEAN = [0.4914, 0.4822, 0.4465]
CIFAR10_STD = [0.2470, 0.2435, 0.2616]


class StridedPointwiseConv(nn.Conv2d):
    """A 1x1 convolution with stride s, computed as subsampling then a stride-1 1x1 convolution.

    Identical result and parameters to ``nn.Conv2d(cin, cout, 1, stride=s)``; it exists because
    torch 2.14's CPU kernel for the strided 1x1 convolution in ``channels_last`` corrupts the heap
    in backward when there are fewer than 16 input channels and the batch size is odd
    (reproduced with Conv2d(8, 16, 1, stride=2), batch 15, 2 threads).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__(in_channels, out_channels, 1, stride=stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        step = self.stride
        return F.conv2d(x[..., :: step[0], :: step[1]], self.weight)


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual connection; a 1x1 conv shortcut when the shape changes."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                StridedPointwiseConv(in_planes, planes, stride), nn.BatchNorm2d(planes)
            )

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNetCifar(nn.Module):
    """ResNet with a 3x3 stride-1 stem, no max-pool and no classifier.

    Forward: ``x: [N, in_channels, H, W]`` (any H, W >= 1; 8x8 works) -> ``[N, embed_dim]``,
    the global average of the last stage.
    """

    def __init__(
        self, blocks: tuple[int, ...] = (2, 2, 2, 2), width: float = 1.0, in_channels: int = 3
    ) -> None:
        super().__init__()
        widths = [max(1, round(64 * width * 2**stage)) for stage in range(len(blocks))]
        self.embed_dim = widths[-1]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        in_planes = widths[0]
        for stage, (num_blocks, planes) in enumerate(zip(blocks, widths, strict=True)):
            stride = 1 if stage == 0 else 2
            layer = [BasicBlock(in_planes, planes, stride)]
            layer += [BasicBlock(planes, planes) for _ in range(num_blocks - 1)]
            self.add_module(f"layer{stage + 1}", nn.Sequential(*layer))
            in_planes = planes
        self.num_stages = len(blocks)
        self._init_weights()

    def _init_weights(self) -> None:
        # As torchvision: He-normal convs (fan_out), BatchNorm scale 1 and shift 0.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        for stage in range(self.num_stages):
            x = getattr(self, f"layer{stage + 1}")(x)
        return x.mean(dim=(2, 3))


def resnet18_cifar(width: float = 1.0, in_channels: int = 3) -> ResNetCifar:
    """ResNet-18 (BasicBlocks [2, 2, 2, 2]) for small images.

    Stage k has ``round(64 * 2**k * width)`` channels (at least 1). Returns a module with
    ``embed_dim = round(512 * width)`` and a ``meta`` for 32x32 CIFAR-10 inputs; ``width=1``
    has 11,168,832 parameters.
    """
    if not width > 0:
        raise ConfigError(f"width must be positive, got {width}; 1.0 is the standard ResNet-18")
    model = ResNetCifar((2, 2, 2, 2), width=width, in_channels=in_channels)
    model.meta = EncoderMeta(
        architecture="resnet18_cifar",
        kwargs={"width": width},
        embed_dim=model.embed_dim,
        in_channels=in_channels,
        input_size=32,
        mean=fit_channels(CIFAR10_MEAN, in_channels),
        std=fit_channels(CIFAR10_STD, in_channels),
    )
    return model
