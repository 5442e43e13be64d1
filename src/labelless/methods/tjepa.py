"""T-JEPA: Thimonier, De Melo Costa, Popineau, Rimmel, Doan. "T-JEPA: Augmentation-Free
Self-Supervised Learning for Tabular Data", ICLR 2025 (arXiv 2410.05016, 2024)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from labelless.errors import ConfigError
from labelless.methods.base import Method, register_method
from labelless.nn import sampling
from labelless.nn.ema import EMA
from labelless.nn.losses_tabular import latent_prediction_loss
from labelless.nn.masking import MaskedTokenPredictor, gather_tokens


def _share(name: str, values: Sequence[float]) -> tuple[float, float]:
    low, high = (float(v) for v in values)
    if not 0.0 < low <= high < 1.0:
        raise ConfigError(f"{name} must be (low, high) with 0 < low <= high < 1, got {values}")
    return low, high


def _count(
    num_features: int,
    share: tuple[float, float],
    upper: int,
    generator: torch.Generator | None = None,
) -> int:
    """A feature count drawn uniformly between the rounded shares of F, clipped to [1, upper]."""
    low, high = round(num_features * share[0]), round(num_features * share[1])
    count = int(sampling.randint(low, max(low, high) + 1, (), generator=generator).item())
    return min(max(count, 1), upper)


def feature_masks(
    batch: int,
    num_features: int,
    num_targets: int,
    context: tuple,
    target: tuple,
    device,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Per row, a context subset of the features and ``num_targets`` target subsets drawn from
    the features outside the context (targets may overlap one another), from ``generator``.
    The subset sizes are drawn once per batch (so the index tensors stack). Returns
    ``context_index [B, K_c]`` and ``target_index [B, M, K_t]``, each row sorted."""
    if num_features < 2:
        raise ConfigError("tjepa needs at least 2 feature columns (a context and a target)")
    n_context = _count(num_features, context, num_features - 1, generator)
    n_target = _count(num_features, target, num_features - n_context, generator)
    noise = sampling.rand((batch, num_features), generator=generator, device=device)
    context_index = noise.argsort(dim=1)[:, :n_context].sort(dim=1).values
    scores = sampling.rand((batch, num_targets, num_features), generator=generator, device=device)
    in_context = torch.zeros(batch, num_features, dtype=torch.bool, device=device)
    in_context.scatter_(1, context_index, True)
    scores = scores.masked_fill(in_context[:, None, :], 2.0)  # never pick a context feature
    target_index = scores.argsort(dim=2)[..., :n_target].sort(dim=2).values
    return context_index, target_index


@register_method("tjepa")
class TJEPA(Method):
    """Predict, in latent space, the target encoder's tokens of some features from the
    context encoder's tokens of other features of the same row; no augmentation.

    Per batch (``feature_masks``): a context subset (``context_share`` of the F features) and
    ``num_targets`` target subsets (``target_share``) among the other features. The target
    encoder (EMA of the backbone, momentum ``momentum[0] -> momentum[1]`` linearly) encodes the
    whole row; its feature tokens, layer-normalised without affine, at the target features are
    the targets. The backbone encodes only the context features, plus its [CLS] and
    regularisation tokens (``reg_tokens`` of ``ft_transformer``: the paper's [REG] tokens,
    which it finds critical against collapse). A narrow transformer predictor takes those
    outputs and a mask token per target feature (with a per-feature position code) and its
    outputs there are compared with ``latent_prediction_loss``. The masks are drawn from the
    step's ``generator``. The [CLS] and [REG] outputs join
    the predictor's input, so the exported encoder's [CLS] embedding is trained too.
    ``embedding``: the backbone's output for the whole row.

    Needs a backbone with ``tokens(x, keep)`` (``ft_transformer``).
    """

    default_views = "tjepa"
    modality = "tabular"
    default_backbone = "ft_transformer"
    # What a run should build that backbone with when the config says nothing (2 [REG] tokens).
    default_backbone_kwargs = {"reg_tokens": 2}  # noqa: RUF012
    summary = "tables: predict target-encoder latents of feature subsets (Thimonier et al. 2024)"

    def __init__(
        self,
        backbone: nn.Module,
        *,
        num_targets: int = 4,
        context_share: Sequence[float] = (0.15, 0.4),
        target_share: Sequence[float] = (0.15, 0.6),
        predictor_width: int = 64,
        predictor_depth: int = 2,
        predictor_heads: int = 4,
        momentum: Sequence[float] = (0.996, 1.0),
    ) -> None:
        if not callable(getattr(backbone, "tokens", None)):
            raise ConfigError(
                "tjepa needs an encoder with per-feature tokens; use backbone 'ft_transformer' "
                "(e.g. --backbone ft_transformer --set backbone.reg_tokens=2), not "
                f"{type(backbone).__name__}"
            )
        super().__init__(backbone)
        if not isinstance(num_targets, int) or num_targets < 1:
            raise ConfigError(f"num_targets must be a positive int, got {num_targets!r}; try 4")
        if getattr(backbone, "num_prefix_tokens", 1) < 2:
            warnings.warn(
                "tjepa: the backbone has no regularisation tokens; T-JEPA reports they are needed "
                "against collapse: build ft_transformer with reg_tokens=2 (or more)",
                stacklevel=2,
            )
        self.num_targets = num_targets
        self.context_share = _share("context_share", context_share)
        self.target_share = _share("target_share", target_share)
        low, high = (float(m) for m in momentum)
        if not 0.0 < low <= high <= 1.0:
            raise ConfigError(
                f"momentum must be (start, end) with 0 < start <= end <= 1, got {momentum}"
            )
        self.predictor = MaskedTokenPredictor(
            self.embed_dim,
            self.embed_dim,
            width=predictor_width,
            depth=predictor_depth,
            num_heads=predictor_heads,
        )
        self.target = EMA(self.backbone, (low, high), schedule="linear")
        self.current_momentum = self.target.current_momentum

    def forward(self, views, batch, *, generator=None):
        x = views[0]
        n, num_features, m = len(x), x.shape[1], self.num_targets
        prefix = int(getattr(self.backbone, "num_prefix_tokens", 1))
        context_index, target_index = feature_masks(
            n, num_features, m, self.context_share, self.target_share, x.device, generator
        )
        target_index = target_index.reshape(n * m, -1)  # row-major: [N * M, K_t]
        with torch.no_grad():
            full = self.target.target.tokens(x)[:, prefix:]  # [N, F, D]
            full = F.layer_norm(full, (full.shape[-1],))
            targets = gather_tokens(full.repeat_interleave(m, dim=0), target_index)
        tokens = self.backbone.tokens(x, context_index).repeat_interleave(m, dim=0)
        prediction = self.predictor(
            tokens[:, prefix:],
            context_index.repeat_interleave(m, dim=0),
            target_index,
            (1, num_features),
            prefix=tokens[:, :prefix],
        )
        loss = latent_prediction_loss(prediction, targets)
        with torch.no_grad():
            embedding = self.backbone(x)
        return {"loss": loss, "embedding": embedding}

    def on_step_end(self, progress: float) -> None:
        self.current_momentum = self.target.step(self.backbone, progress)
