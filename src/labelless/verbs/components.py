"""What a run builds for its data: the backbone (inputs set by the data's modality), the method
and the batched view pipeline; and starting a backbone from an earlier run's encoder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from labelless.config import BackboneConfig, RunConfig, ViewsConfig
from labelless.data import Dataset
from labelless.errors import ConfigError, DataError
from labelless.modalities import MODALITIES, get_modality


def build_backbone(
    config: BackboneConfig,
    train: Dataset,
    *,
    view_size: int | None = None,
    initialise: bool = True,
    default: str | None = None,
    default_kwargs: dict[str, Any] | None = None,
) -> nn.Module:
    """The backbone ``config`` names (else ``default``, e.g. the method's own, else the
    modality's, ``DEFAULT_BACKBONE``) for data like ``train``: the modality sets its inputs
    (images: channels, resolution and normalisation; tables: column layout and fitted
    preprocessing, which travel in ``encoder.json``). ``default_kwargs`` are options for the
    ``default`` backbone, used when the config names no backbone (config options win): a
    config that names one, even ``default``, gets exactly the options it lists. With
    ``config.init`` (and ``initialise``) it starts from that encoder.
    """
    from labelless.backbones import (
        DEFAULT_BACKBONE,
        backbone_modality,
        create_backbone,
        list_backbones,
    )

    name = train.modality
    if name not in DEFAULT_BACKBONE or name not in MODALITIES:
        raise DataError(
            f"no backbone is registered for {name!r} data; "
            f"labelless trains on {sorted(set(DEFAULT_BACKBONE) & set(MODALITIES))}"
        )
    modality = get_modality(name)
    chosen = config.name or default or DEFAULT_BACKBONE[name]
    if backbone_modality(chosen) != name:
        raise ConfigError(
            f"backbone {chosen!r} encodes {backbone_modality(chosen)} data but {train.name!r} is "
            f"{name}; drop --backbone for the default ({DEFAULT_BACKBONE[name]!r}) or pick "
            f"one of {list_backbones(name)}"
        )
    kwargs = dict(config.kwargs)
    if chosen == default and not config.name:
        kwargs = {**(default_kwargs or {}), **kwargs}
    if config.width is not None:
        kwargs["width"] = config.width
    kwargs.update(modality.backbone_inputs(train, view_size))
    backbone = create_backbone(chosen, weights=config.weights, **kwargs)
    modality.finish_backbone(backbone, train)
    if config.init and initialise:
        start_from_encoder(backbone, config.init)
    return backbone


def build_views(recipe: str, train: Dataset, backbone: nn.Module, views: ViewsConfig | None = None):
    """The batched view pipeline ``recipe`` for ``train``'s modality (``Modality.views``);
    ``views`` adds config overrides."""
    return get_modality(train.modality).views(recipe, train, backbone, views or ViewsConfig())


def build_components(config: RunConfig, train: Dataset, *, initialise: bool = True):
    """Backbone, method and view pipeline for ``config`` on the training split ``train``.

    With ``backbone.init`` set (and ``initialise``), the backbone starts from that run's encoder;
    a resumed run passes ``initialise=False`` since its checkpoint holds the weights.
    """
    from labelless.methods import METHODS, create_method, list_methods

    name = config.method.name
    if name in METHODS and METHODS[name].modality != train.modality:
        fitting = [m for m in list_methods() if METHODS[m].modality == train.modality]
        raise ConfigError(
            f"method {name!r} trains on {METHODS[name].modality} data but {train.name!r} is "
            f"{train.modality}; pick one of {fitting}"
        )
    default, default_kwargs = None, None
    if name in METHODS:
        default, default_kwargs = get_modality(train.modality).method_backbone(
            METHODS[name], train, config.views.size
        )
    backbone = build_backbone(
        config.backbone,
        train,
        view_size=config.views.size,
        initialise=initialise,
        default=default,
        default_kwargs=default_kwargs,
    )
    method = create_method(name, backbone, **config.method.kwargs)
    views = build_views(view_recipe_of(config), train, backbone, config.views)
    if any(isinstance(m, nn.Conv2d) for m in backbone.modules()):
        method = method.to(memory_format=torch.channels_last)
    return backbone, method, views


def view_recipe_of(config: RunConfig) -> str:
    """The view recipe of a pretraining run: ``views.recipe``, else the method's own."""
    from labelless.methods import METHODS

    return config.views.recipe or METHODS[config.method.name].default_views


def record_resolved(config: Any, backbone: nn.Module, train: Dataset) -> None:
    """Write into ``config`` (a run config, which ``config.yaml`` records) the values that the
    build resolved from unset keys, so that ``--config RUN/config.yaml`` builds the same run:
    the backbone's name, width and options (the method's or the builder's defaults included; not
    the inputs the data sets, e.g. a table's columns), the view side of images and, for
    pretraining, the view recipe and the kNN k (``Modality.knn_k`` unless given)."""
    inputs = get_modality(train.modality).backbone_inputs(train, config.views.size)
    options = {key: value for key, value in backbone.meta.kwargs.items() if key not in inputs}
    section = config.backbone
    section.name = backbone.meta.architecture
    if "width" in options:
        section.width = options.pop("width")
    section.kwargs = options
    if config.views.size is None and inputs.get("input_size") is not None:
        config.views.size = int(inputs["input_size"])
    if isinstance(config, RunConfig):
        config.views.recipe = view_recipe_of(config)
        config.monitor.knn_k = config.monitor.knn_k or get_modality(train.modality).knn_k


def _describe(meta) -> str:
    options = ", ".join(f"{key}={value}" for key, value in sorted(meta.kwargs.items()))
    options = f" ({options})" if options else ""
    return f"{meta.architecture}{options}, {meta.in_channels} input channel(s)"


def start_from_encoder(backbone: nn.Module, source: str | Path) -> Path:
    """Copy the weights of an exported encoder (a run directory or its ``encoder.safetensors``)
    into ``backbone``, which keeps its own metadata (view size and normalisation of the new
    data). Returns the resolved source. A different architecture is a ConfigError naming both."""
    from labelless.backbones import load_encoder
    from labelless.backbones.io import META_FILE, WEIGHTS_FILE

    path = Path(source)
    weights = path / WEIGHTS_FILE if path.is_dir() else path
    if not weights.is_file() or weights.suffix != ".safetensors":
        raise ConfigError(
            f"--init {str(source)!r}: no {WEIGHTS_FILE} there; point --init at a finished run "
            f"directory (with {WEIGHTS_FILE} and {META_FILE}) or at its {WEIGHTS_FILE}"
        )
    encoder = load_encoder(weights)
    theirs, ours = encoder.meta, backbone.meta
    state, expected = encoder.state_dict(), backbone.state_dict()
    same_shapes = state.keys() == expected.keys() and all(
        state[key].shape == value.shape for key, value in expected.items()
    )
    if (
        theirs.architecture != ours.architecture
        or theirs.in_channels != ours.in_channels
        or (not same_shapes)
    ):
        raise ConfigError(
            f"--init {str(source)!r} holds a {_describe(theirs)} encoder but this run builds a "
            f"{_describe(ours)} backbone: set --backbone / --width (or backbone.kwargs) to match "
            "the source run, or drop --init"
        )
    backbone.load_state_dict(state)
    return weights.resolve()
