"""I-JEPA: Assran, Duval, Misra, Bojanowski, Vincent, Rabbat, LeCun, Ballas. "Self-Supervised
Learning from Images with a Joint-Embedding Predictive Architecture", CVPR 2023."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from labelless.backbones.vit import sized_to
from labelless.errors import ConfigError
from labelless.methods.base import Method, register_method
from labelless.nn.ema import EMA
from labelless.nn.masking import (
    MaskedTokenPredictor,
    gather_tokens,
    patch_grid,
    require_vit,
    sample_block_masks,
)

LOSSES = ("mse", "smooth_l1")


def prediction_loss(prediction: Tensor, target: Tensor, loss: str = "mse") -> Tensor:
    """Distance between predicted and target patch representations ``[N * M, K_t, D]``, averaged
    over tokens and target blocks. ``"mse"``: the paper's squared L2 distance (eq. 1), divided by
    ``D``; ``"smooth_l1"``: what the authors' released code uses."""
    if loss == "smooth_l1":
        return F.smooth_l1_loss(prediction, target)
    return F.mse_loss(prediction, target)


def _check_range(name: str, values: Sequence[float], upper: float | None) -> tuple[float, float]:
    low, high = (float(v) for v in values)
    if not (0 < low <= high and (upper is None or high <= upper)):
        bound = f" <= {upper}" if upper is not None else ""
        raise ConfigError(f"{name} must be (low, high) with 0 < low <= high{bound}, got {values}")
    return low, high


@register_method("ijepa")
class IJEPA(Method):
    """Joint-embedding predictive architecture: from one context block, a narrow predictor
    predicts a target encoder's representations of ``num_targets`` other blocks of the image.

    Per batch (``nn.masking.sample_block_masks``): ``num_targets`` target blocks (area
    ``target_scale``, aspect ``target_aspect``) and one context block (area ``context_scale``,
    unit aspect) with the targets removed. The target encoder (EMA of the backbone, momentum
    ``momentum[0] -> momentum[1]`` linearly over training) encodes the full view; its patch
    tokens, layer-normalised without affine, at each block's positions are the targets. The
    backbone encodes the context patches; the predictor (``predictor_depth`` x
    ``predictor_width``) takes them, with mask tokens at one target block's positions, and its
    outputs there are compared with ``prediction_loss``. Our ViT has a CLS token, which I-JEPA's
    has not: it joins the predictor's input, so the CLS output (the exported encoder's features)
    is trained too. The masks are drawn from the step's ``generator``. ``embedding``, the
    backbone's output for the whole view, costs a full forward: it is computed only when
    ``wants_embedding`` is set.
    """

    default_views = "ijepa"
    summary = "joint-embedding predictive: predict EMA-target block features (Assran et al. 2023)"
    # Out of the box a ViT-Tiny sized to the views (image_size = view side, patch side by
    # backbones.vit.default_patch_size), features = mean of the patch tokens, as the paper's.
    default_backbone = "vit_tiny"
    default_backbone_kwargs = {"pool": "mean"}  # noqa: RUF012

    @classmethod
    def backbone_options(cls, input_size: int | None) -> dict[str, Any]:
        return {**super().backbone_options(input_size), **sized_to(input_size)}

    def __init__(
        self,
        backbone: nn.Module,
        *,
        num_targets: int = 4,
        target_scale: Sequence[float] = (0.15, 0.2),
        target_aspect: Sequence[float] = (0.75, 1.5),
        context_scale: Sequence[float] = (0.85, 1.0),
        predictor_width: int = 384,
        predictor_depth: int = 12,
        predictor_heads: int = 12,
        momentum: Sequence[float] = (0.996, 1.0),
        loss: str = "mse",
    ) -> None:
        require_vit(backbone, "ijepa")
        super().__init__(backbone)
        if not isinstance(num_targets, int) or num_targets < 1:
            raise ConfigError(f"num_targets must be a positive int, got {num_targets!r}; try 4")
        if loss not in LOSSES:
            raise ConfigError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
        self.num_targets = num_targets
        self.target_scale = _check_range("target_scale", target_scale, 1.0)
        self.target_aspect = _check_range("target_aspect", target_aspect, None)
        self.context_scale = _check_range("context_scale", context_scale, 1.0)
        momentum = _check_range("momentum", momentum, 1.0)
        self.loss = loss
        self.patch_size = int(backbone.patch_size)
        self.predictor = MaskedTokenPredictor(
            self.embed_dim,
            self.embed_dim,
            width=predictor_width,
            depth=predictor_depth,
            num_heads=predictor_heads,
        )
        self.target = EMA(self.backbone, momentum, schedule="linear")
        self.current_momentum = self.target.current_momentum

    def forward(self, views, batch, *, generator=None):
        images = views[0]
        n, grid = len(images), patch_grid(images, self.patch_size)
        masks = sample_block_masks(
            n,
            grid,
            num_targets=self.num_targets,
            target_scale=self.target_scale,
            target_aspect=self.target_aspect,
            context_scale=self.context_scale,
            device=images.device,
            generator=generator,
        )
        m, block = self.num_targets, masks.target_index.shape[-1]
        target_index = masks.target_index.reshape(n * m, block)  # sample-major: [N * M, K_t]
        with torch.no_grad():
            full = self.target.target.forward_tokens(images)  # [N, 1 + P, D]
            full = F.layer_norm(full[:, 1:], (full.shape[-1],))
            targets = gather_tokens(full.repeat_interleave(m, dim=0), target_index)
        tokens = self.backbone.forward_tokens(images, masks.context_index)  # [N, 1 + K_c, D]
        tokens = tokens.repeat_interleave(m, dim=0)
        context_index = masks.context_index.repeat_interleave(m, dim=0)
        prediction = self.predictor(
            tokens[:, 1:], context_index, target_index, grid, prefix=tokens[:, :1]
        )
        out = {"loss": prediction_loss(prediction, targets, self.loss)}
        if self.wants_embedding:
            with torch.no_grad():
                out["embedding"] = self.backbone(images)
        return out

    def on_step_end(self, progress: float) -> None:
        self.current_momentum = self.target.step(self.backbone, progress)
