"""Batched views of table rows ``float32 [B, F]`` (numerics first, then categorical codes).

``tabular_views(recipe, reference=train_rows, meta=dataset.meta)`` returns a module whose
``forward(x, generator=None)`` gives the list of views a method or a semi-supervised algorithm
consumes. Every op is a whole-batch tensor op; the reference rows (the training rows, subsampled)
are a non-persistent buffer, so ``.to(device)`` moves them and checkpoints do not store them.

Recipes and their view lists:

- ``"scarf"``: ``[x, corrupt(x)]``, the anchor and a copy with each feature replaced, with
  probability ``rate`` (0.6), by the same feature of a random reference row (Bahri et al. 2022).
  ``corrupt_anchor=True`` corrupts both.
- ``"vime"``: ``[x, corrupt(x), mask]``: the original rows, the corrupted rows (``rate`` 0.3,
  Yoon et al. 2020) and the float mask ``[B, F]`` (1 where a feature was resampled).
- ``"tjepa"``: ``[x]``; T-JEPA masks features inside the method.
- ``"weak"``: ``[x + N(0, noise^2)]`` on the numeric columns only (``noise`` 0.05; 0 = identity).
- ``"strong"``: ``[corrupt(x)]`` with ``rate`` 0.4, the strong view for FixMatch-style training.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from labelless.errors import ConfigError, unknown_name

MAX_REFERENCE_ROWS = 10_000
RECIPE_DEFAULTS: dict[str, dict[str, Any]] = {
    "scarf": {"rate": 0.6, "corrupt_anchor": False},
    "vime": {"rate": 0.3},
    "tjepa": {},
    "weak": {"noise": 0.05},
    "strong": {"rate": 0.4},
}


def _draw(shape: tuple[int, ...], generator: torch.Generator | None, device, kind: str, high=0):
    """Random numbers drawn on the generator's device, then moved to ``device``."""
    where = generator.device if generator is not None else device
    if kind == "rand":
        out = torch.rand(shape, generator=generator, device=where)
    elif kind == "randn":
        out = torch.randn(shape, generator=generator, device=where)
    else:
        out = torch.randint(0, high, shape, generator=generator, device=where)
    return out.to(device)


def marginal_corruption(
    x: Tensor,
    reference: Tensor,
    rate: float,
    generator: torch.Generator | None = None,
    *,
    return_mask: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Replace each entry of ``x [B, F]`` with probability ``rate`` by the same feature of a
    uniformly drawn row of ``reference [R, F]``: a draw from that feature's empirical marginal
    (SCARF, Bahri et al. ICLR 2022, sec. 2; VIME's mask generator, Yoon et al. NeurIPS 2020).

    Rows of ``x`` drawn from the same distribution as ``reference`` keep every column's marginal
    distribution. Returns the corrupted rows, and the boolean mask ``[B, F]`` (True = replaced)
    when ``return_mask``.
    """
    if x.ndim != 2 or reference.ndim != 2 or x.shape[1] != reference.shape[1]:
        raise ConfigError(
            f"marginal_corruption needs x [B, F] and reference [R, F] with the same F, got "
            f"{tuple(x.shape)} and {tuple(reference.shape)}"
        )
    if not 0.0 <= rate <= 1.0:
        raise ConfigError(f"the corruption rate must be in [0, 1], got {rate}")
    rows = _draw(tuple(x.shape), generator, x.device, "randint", len(reference))
    replacement = reference.to(x.dtype).gather(0, rows)  # [B, F]: reference[rows[b, f], f]
    mask = _draw(tuple(x.shape), generator, x.device, "rand") < rate
    corrupted = torch.where(mask, replacement, x)
    return (corrupted, mask) if return_mask else corrupted


class TabularViews(nn.Module):
    """The views of one recipe (see the module docstring); ``forward(x, generator=None)``."""

    def __init__(
        self,
        recipe: str,
        reference: Tensor,
        num_numeric: int,
        *,
        rate: float = 0.0,
        noise: float = 0.0,
        corrupt_anchor: bool = False,
    ) -> None:
        super().__init__()
        self.recipe, self.num_numeric = recipe, num_numeric
        self.rate, self.noise, self.corrupt_anchor = float(rate), float(noise), corrupt_anchor
        if not 0.0 <= self.rate <= 1.0 or self.noise < 0:
            raise ConfigError(f"rate must be in [0, 1] and noise >= 0, got {rate}, {noise}")
        self.register_buffer("reference", reference, persistent=False)

    @property
    def num_views(self) -> int:
        return {"scarf": 2, "vime": 3}.get(self.recipe, 1)

    def corrupt(self, x: Tensor, generator: torch.Generator | None = None, **kw) -> Tensor:
        return marginal_corruption(x, self.reference, self.rate, generator, **kw)

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> list[Tensor]:
        if x.ndim != 2 or x.shape[1] != self.reference.shape[1]:
            raise ConfigError(
                f"tabular views expect rows [B, {self.reference.shape[1]}], got {tuple(x.shape)}"
            )
        x = x.float()
        if self.recipe == "scarf":
            anchor = self.corrupt(x, generator) if self.corrupt_anchor else x
            return [anchor, self.corrupt(x, generator)]
        if self.recipe == "vime":
            corrupted, mask = self.corrupt(x, generator, return_mask=True)
            return [x, corrupted, mask.float()]
        if self.recipe == "strong":
            return [self.corrupt(x, generator)]
        if self.recipe == "weak" and self.noise > 0 and self.num_numeric > 0:
            noise = _draw((len(x), self.num_numeric), generator, x.device, "randn") * self.noise
            return [torch.cat([x[:, : self.num_numeric] + noise, x[:, self.num_numeric :]], 1)]
        return [x]


def tabular_views(
    recipe: str,
    *,
    reference: Tensor | np.ndarray,
    meta: Mapping[str, Any],
    max_reference: int = MAX_REFERENCE_ROWS,
    seed: int = 0,
    **overrides: Any,
) -> TabularViews:
    """The view module of ``recipe`` (``"scarf"``, ``"vime"``, ``"tjepa"``, ``"weak"``,
    ``"strong"``) for a table with ``meta`` (``Dataset.meta``: ``numeric``, ``categorical``).

    ``reference``: the training rows ``[N, F]`` whose per-feature marginals corruption samples
    from; more than ``max_reference`` rows are subsampled (seeded). ``overrides``: ``rate``
    (corruption probability per feature), ``noise`` (``weak``'s gaussian std on numerics),
    ``corrupt_anchor`` (``scarf``).
    """
    if recipe not in RECIPE_DEFAULTS:
        raise unknown_name("tabular view recipe", recipe, list(RECIPE_DEFAULTS))
    unknown = sorted(set(overrides) - set(RECIPE_DEFAULTS[recipe]))
    if unknown:
        allowed = ", ".join(RECIPE_DEFAULTS[recipe]) or "none"
        raise ConfigError(f"recipe {recipe!r} takes the options {allowed}; got {unknown}")
    reference = torch.as_tensor(np.asarray(reference), dtype=torch.float32)
    num_features = len(meta.get("numeric", ())) + len(meta.get("categorical", ()))
    if reference.ndim != 2 or len(reference) == 0 or reference.shape[1] != num_features:
        raise ConfigError(
            f"reference rows must be [N, {num_features}] (the table's feature columns), got "
            f"{tuple(reference.shape)}"
        )
    if len(reference) > max_reference:
        index = np.sort(np.random.default_rng(seed).choice(len(reference), max_reference, False))
        reference = reference[torch.from_numpy(index)]
    options = {**RECIPE_DEFAULTS[recipe], **overrides}
    return TabularViews(recipe, reference.contiguous(), len(meta.get("numeric", ())), **options)
