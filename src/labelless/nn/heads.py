"""Projection and prediction heads described as data: a list of layer widths."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from torch import nn

from labelless.errors import ConfigError

NORMS = {"bn": nn.BatchNorm1d, "ln": nn.LayerNorm, "none": None}


def mlp(
    dims: Sequence[int],
    *,
    norm: str = "bn",
    activation: type[nn.Module] = nn.ReLU,
    last_norm: bool = False,
    bias: bool | None = None,
) -> nn.Sequential:
    """An MLP with widths ``dims`` (input first): Linear -> norm -> activation between layers.

    ``mlp([512, 2048, 128], norm="bn")`` is SimCLR's projector; ``last_norm=True`` adds an affine-
    free BatchNorm after the last Linear (as in SimSiam's projector). ``bias`` defaults to False
    when a BatchNorm follows the Linear.
    """
    if len(dims) < 2:
        raise ConfigError(f"a head needs at least an input and an output width, got {list(dims)}")
    if norm not in NORMS:
        raise ConfigError(f"unknown head norm {norm!r}; choose one of {', '.join(NORMS)}")
    norm_cls = NORMS[norm]
    layers: list[nn.Module] = []
    pairs = list(itertools.pairwise(dims))
    for index, (width_in, width_out) in enumerate(pairs):
        last = index == len(pairs) - 1
        normed = norm_cls is not None and (not last or last_norm)
        use_bias = (not normed) if bias is None else bias
        layers.append(nn.Linear(width_in, width_out, bias=use_bias))
        if normed and last:
            layers.append(
                nn.BatchNorm1d(width_out, affine=False) if norm == "bn" else norm_cls(width_out)
            )
        elif normed:
            layers.append(norm_cls(width_out))
        if not last:
            layers.append(activation())
    return nn.Sequential(*layers)
