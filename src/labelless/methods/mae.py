"""MAE: He, Chen, Xie, Li, Dollár, Girshick. "Masked Autoencoders Are Scalable Vision Learners",
CVPR 2022."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from labelless.backbones.vit import sized_to
from labelless.methods.base import Method, register_method
from labelless.nn.masking import (
    MaskedTokenPredictor,
    gather_tokens,
    patch_grid,
    patchify,
    random_masking,
    require_vit,
)


def reconstruction_loss(prediction: Tensor, target: Tensor, norm_pix_loss: bool = True) -> Tensor:
    """MAE's loss: mean squared error over the masked patches only (He et al. 2022, sec. 3).

    ``prediction, target: [N, Q, p * p * C]``, the masked patches' pixels. With ``norm_pix_loss``
    each target patch is normalised by its own pixels' mean and variance (``+ 1e-6``) first, which
    the paper finds gives better representations (Table 1c).
    """
    if norm_pix_loss:
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        target = (target - mean) / (var + 1e-6).sqrt()
    return (prediction - target).pow(2).mean()


@register_method("mae")
class MAE(Method):
    """Masked autoencoder: the ViT encodes a random 25% of the patches; a light decoder sees those
    tokens plus mask tokens at the other positions and reconstructs the hidden patches' pixels.

    Per sample, ``mask_ratio`` of the patches are hidden (argsort of uniform noise, batched). The
    encoder runs on the visible patches only (``forward_tokens(x, keep_index)``); its CLS and
    patch tokens go to a ``decoder_depth`` x ``decoder_width`` transformer with its own mask
    token and fixed 2D sine-cosine position embeddings, whose outputs at the masked positions are
    linearly projected to ``patch_size^2 * C`` pixels. The loss is ``reconstruction_loss`` on the
    masked patches. The masks are drawn from the step's ``generator``. ``embedding``, the
    encoder's output for the whole, unmasked view, costs a full forward: it is computed only when
    ``wants_embedding`` is set.
    """

    default_views = "mae"
    summary = "masked autoencoder: reconstruct 75% hidden ViT patches' pixels (He et al. 2022)"
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
        mask_ratio: float = 0.75,
        decoder_width: int = 512,
        decoder_depth: int = 8,
        decoder_heads: int = 16,
        norm_pix_loss: bool = True,
    ) -> None:
        require_vit(backbone, "mae")
        super().__init__(backbone)
        random_masking(1, 4, mask_ratio)  # validates mask_ratio now rather than at the first step
        self.mask_ratio = float(mask_ratio)
        self.norm_pix_loss = bool(norm_pix_loss)
        self.patch_size = int(backbone.patch_size)
        channels = backbone.patch_embed.in_channels
        self.decoder = MaskedTokenPredictor(
            self.embed_dim,
            self.patch_size**2 * channels,
            width=decoder_width,
            depth=decoder_depth,
            num_heads=decoder_heads,
        )

    def forward(self, views, batch, *, generator=None):
        images = views[0]
        grid = patch_grid(images, self.patch_size)
        keep, masked = random_masking(
            len(images),
            grid[0] * grid[1],
            self.mask_ratio,
            device=images.device,
            generator=generator,
        )
        tokens = self.backbone.forward_tokens(images, keep)  # [N, 1 + K, D], CLS first
        prediction = self.decoder(tokens[:, 1:], keep, masked, grid, prefix=tokens[:, :1])
        target = gather_tokens(patchify(images, self.patch_size), masked)
        out = {"loss": reconstruction_loss(prediction, target, self.norm_pix_loss)}
        if self.wants_embedding:
            with torch.no_grad():
                out["embedding"] = self.backbone(images)
        return out
