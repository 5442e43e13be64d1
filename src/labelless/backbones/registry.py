"""``create_backbone(name)``: every encoder labelless can train, with its metadata attached."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from labelless.backbones.meta import EncoderMeta, fit_channels
from labelless.backbones.resnet_cifar import resnet18_cifar
from labelless.backbones.vit import VIT_SIZES, VisionTransformer
from labelless.backbones.weights import load_state_dict_checked, read_state_dict
from labelless.errors import ConfigError, unknown_name

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
TIMM_PREFIX = "timm:"
TIMM_MODALITY = "image"  # every timm: model is an image encoder
_TORCHVISION_RESNETS = ("resnet18", "resnet34", "resnet50")


def _build_resnet18_cifar(in_channels: int, **kwargs: Any) -> nn.Module:
    unknown = sorted(set(kwargs) - {"width"})
    if unknown:
        raise ConfigError(f"resnet18_cifar takes only 'width', got {unknown}; remove them")
    return resnet18_cifar(width=float(kwargs.get("width", 1.0)), in_channels=in_channels)


_VIT_OPTIONS = ("image_size", "patch_size", "embed_dim", "depth", "num_heads", "mlp_ratio", "pool")


def _vit_builder(name: str) -> Callable[..., nn.Module]:
    def build(in_channels: int, **kwargs: Any) -> nn.Module:
        unknown = sorted(set(kwargs) - set(_VIT_OPTIONS))
        if unknown:
            raise ConfigError(f"{name} takes only {', '.join(_VIT_OPTIONS)}, got {unknown}")
        options = {"image_size": 224, "patch_size": 16, **VIT_SIZES[name], **kwargs}
        model = VisionTransformer(in_channels=in_channels, **options)
        model.meta = _meta(name, kwargs, model.embed_dim, in_channels, options["image_size"])
        return model

    return build


def _torchvision_builder(name: str) -> Callable[..., nn.Module]:
    def build(in_channels: int, **kwargs: Any) -> nn.Module:
        import torchvision

        try:
            model = getattr(torchvision.models, name)(weights=None, **kwargs)
        except TypeError as error:
            raise ConfigError(f"invalid option for backbone {name!r}: {error}") from error
        if in_channels != 3:
            model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
            nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
        model.embed_dim = model.fc.in_features
        model.fc = nn.Identity()
        model.meta = _meta(name, kwargs, model.embed_dim, in_channels, 224)
        return model

    return build


def _build_timm(name: str, in_channels: int, **kwargs: Any) -> nn.Module:
    model_name = name[len(TIMM_PREFIX) :]
    try:
        import timm
    except ImportError as error:
        raise ConfigError(f"backbone {name!r} needs timm; install it: pip install timm") from error
    if not model_name or not timm.is_model(model_name):
        raise ConfigError(
            f"unknown timm model {model_name!r} in backbone {name!r}; "
            "see timm.list_models() for valid names"
        )
    try:
        model = timm.create_model(
            model_name, pretrained=False, num_classes=0, in_chans=in_channels, **kwargs
        )
    except TypeError as error:
        raise ConfigError(f"invalid option for backbone {name!r}: {error}") from error
    cfg = model.pretrained_cfg or {}
    # head_hidden_size is what forward returns when a model has a pre-logits layer (MobileNetV3);
    # otherwise it equals num_features.
    model.embed_dim = int(getattr(model, "head_hidden_size", None) or model.num_features)
    size = cfg.get("input_size", (in_channels, 224, 224))[-1]
    model.meta = _meta(
        name,
        kwargs,
        model.embed_dim,
        in_channels,
        size,
        cfg.get("mean", IMAGENET_MEAN),
        cfg.get("std", IMAGENET_STD),
    )
    return model


def _meta(
    name: str,
    kwargs: dict[str, Any],
    embed_dim: int,
    in_channels: int,
    input_size: int,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> EncoderMeta:
    return EncoderMeta(
        architecture=name,
        kwargs=dict(kwargs),
        embed_dim=int(embed_dim),
        in_channels=in_channels,
        input_size=int(input_size),
        mean=fit_channels(mean, in_channels),
        std=fit_channels(std, in_channels),
    )


_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "resnet18_cifar": _build_resnet18_cifar,
    **{name: _torchvision_builder(name) for name in _TORCHVISION_RESNETS},
    **{name: _vit_builder(name) for name in VIT_SIZES},
}


_MODALITY: dict[str, str] = dict.fromkeys(_BUILDERS, "image")
DEFAULT_BACKBONE = {"image": "resnet18_cifar"}


def register_backbone(
    name: str, modality: str, *, default: bool = False
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Add a builder ``build(in_channels, **kwargs) -> nn.Module`` for ``modality``.

    The module it returns must carry ``.embed_dim`` and ``.meta`` (an ``EncoderMeta`` whose
    ``kwargs`` rebuild it: ``load_encoder`` calls ``create_backbone(meta.architecture,
    in_channels=meta.in_channels, **meta.kwargs)``). ``default`` makes it the backbone a run on
    that modality gets when the config names none.
    """

    def add(build: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _BUILDERS:
            raise ValueError(f"backbone {name!r} is registered twice")
        _BUILDERS[name] = build
        _MODALITY[name] = modality
        if default:
            DEFAULT_BACKBONE[modality] = name
        return build

    return add


def backbone_modality(name: str) -> str:
    """The modality a backbone name encodes (``timm:`` models are image encoders)."""
    if name.startswith(TIMM_PREFIX):
        return TIMM_MODALITY
    if name not in _MODALITY:
        raise unknown_name("backbone", name, list_backbones())
    return _MODALITY[name]


def list_backbones(modality: str | None = None) -> list[str]:
    """The backbone names ``create_backbone`` accepts (for one ``modality`` when given);
    ``timm:<name>`` stands for any timm image model."""
    names = [n for n in _BUILDERS if modality is None or _MODALITY[n] == modality]
    if modality in (None, TIMM_MODALITY):
        names.append(f"{TIMM_PREFIX}<name>")
    return names


def _override_meta(
    meta: EncoderMeta,
    input_size: int | None,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
) -> None:
    if input_size is not None:
        if int(input_size) < 1:
            raise ConfigError(f"input_size must be a positive integer, got {input_size}")
        meta.input_size = int(input_size)
    for label, values in (("mean", mean), ("std", std)):
        if values is None:
            continue
        values = [float(v) for v in values]
        if len(values) != meta.in_channels:
            raise ConfigError(
                f"{label} has {len(values)} values but the backbone has {meta.in_channels} "
                f"input channels; give one {label} per channel"
            )
        setattr(meta, label, values)
    if any(s <= 0 for s in meta.std):
        raise ConfigError(f"std must be positive per channel, got {meta.std}")


def create_backbone(
    name: str,
    *,
    in_channels: int = 3,
    weights: str | Path | None = None,
    input_size: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    **kwargs: Any,
) -> nn.Module:
    """An encoder mapping normalised float ``[N, C, H, W]`` to ``[N, embed_dim]``.

    Args:
        name: one of ``list_backbones()``: ``"resnet18_cifar"`` (kwargs: ``width``), torchvision
            ``"resnet18" | "resnet34" | "resnet50"``, ``"vit_tiny" | "vit_small"`` (kwargs:
            ``image_size`` (224; sets the position-embedding grid, match it to the view size),
            ``patch_size`` (16), ``embed_dim``, ``depth``, ``num_heads``, ``mlp_ratio``, ``pool``
            (``"cls"``; ``"mean"`` averages the patch tokens)) or
            ``"timm:<model_name>"`` (never downloads).
        in_channels: input channels C.
        weights: a local ``.safetensors`` / ``.pt`` / ``.pth`` / ``.bin`` state dict; classifier
            head keys (``fc.*``, ``head.*``) are ignored, any other mismatch raises.
        input_size, mean, std: override the metadata defaults (CIFAR-10 at 32 px for
            resnet18_cifar, ImageNet at 224 px for torchvision, ImageNet at ``image_size`` for
            the ViTs, ``pretrained_cfg`` for timm).
        kwargs: architecture options, recorded in ``meta.kwargs``.

    Returns:
        an ``nn.Module`` with ``.embed_dim: int`` and ``.meta: EncoderMeta``.
    """
    if not isinstance(in_channels, int) or in_channels < 1:
        raise ConfigError(f"in_channels must be a positive integer, got {in_channels!r}")
    if name.startswith(TIMM_PREFIX):
        model = _build_timm(name, in_channels, **kwargs)
    elif name in _BUILDERS:
        model = _BUILDERS[name](in_channels, **kwargs)
    else:
        raise unknown_name("backbone", name, list_backbones())
    _override_meta(model.meta, input_size, mean, std)
    if weights is not None:
        load_state_dict_checked(model, read_state_dict(weights), source=str(weights))
    return model
