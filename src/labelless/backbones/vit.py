"""Vision Transformer: Dosovitskiy et al. "An Image is Worth 16x16 Words: Transformers for Image
Recognition at Scale", ICLR 2021.

A small, self-contained ViT: patch embedding (a convolution with stride = patch size), a CLS
token, learnable position embeddings, pre-norm transformer blocks and a final LayerNorm.
``forward`` returns the CLS token (``pool="cls"``) or the mean of the patch tokens
(``pool="mean"``, the features MAE and I-JEPA evaluate); ``forward_tokens`` returns every token
(for masked methods such as MAE or I-JEPA, optionally only a subset of the patches).

Input sizes other than ``image_size``: the position embeddings of the configured
``image_size / patch_size`` grid are resized bicubically to the input's grid (as DINO does for
its 96 px local crops). An input whose side is not a multiple of ``patch_size`` is zero-padded
on the bottom and right up to the next multiple (a 14 px crop with patch 4 becomes 16 px: a 4x4
grid), so 32 px global and 14 px local crops both work with patch 4.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from labelless.errors import ConfigError


class Attention(nn.Module):
    """Multi-head self-attention with fused QKV and ``scaled_dot_product_attention``."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        n, length, dim = x.shape
        qkv = self.qkv(x).reshape(n, length, 3, self.num_heads, dim // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each [N, heads, L, head_dim]
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(n, length, dim))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm(x))``, then ``x + mlp(norm(x))`` (GELU)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    """ViT encoder: ``[N, C, H, W] -> [N, embed_dim]`` (the final CLS token, or with
    ``pool="mean"`` the mean of the final patch tokens).

    Any ``H, W >= 1`` works (see the module docstring for padding and position-embedding
    interpolation). ``forward_tokens`` gives ``[N, 1 + P, embed_dim]`` with the CLS token first.
    """

    def __init__(
        self,
        *,
        image_size: int = 224,
        patch_size: int = 16,
        in_channels: int = 3,
        embed_dim: int = 192,
        depth: int = 12,
        num_heads: int = 3,
        mlp_ratio: float = 4.0,
        pool: str = "cls",
    ) -> None:
        super().__init__()
        _check_options(image_size, patch_size, embed_dim, depth, num_heads, mlp_ratio)
        if pool not in POOLS:
            raise ConfigError(f"invalid ViT option: pool must be one of {POOLS}, got {pool!r}")
        self.pool = pool
        self.patch_size = patch_size
        self.grid_size = math.ceil(image_size / patch_size)
        self.embed_dim = embed_dim
        self.patch_embed = nn.Conv2d(in_channels, embed_dim, patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid_size**2, embed_dim))
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self._init_weights()

    def _init_weights(self) -> None:
        # As the reference ViT / DeiT / DINO code: truncated normal (std 0.02) for embeddings and
        # linear layers, zero biases, LayerNorm at identity.
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def _position_embedding(self, grid_h: int, grid_w: int) -> Tensor:
        """Position embeddings for a ``grid_h x grid_w`` patch grid: ``[1, 1 + gh * gw, D]``."""
        if (grid_h, grid_w) == (self.grid_size, self.grid_size):
            return self.pos_embed
        cls_pos, patch_pos = self.pos_embed[:, :1], self.pos_embed[:, 1:]
        side = self.grid_size
        patch_pos = patch_pos.reshape(1, side, side, -1).permute(0, 3, 1, 2)
        patch_pos = F.interpolate(patch_pos, size=(grid_h, grid_w), mode="bicubic")
        patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, grid_h * grid_w, -1)
        return torch.cat([cls_pos, patch_pos], dim=1)

    def embed_patches(self, x: Tensor) -> Tensor:
        """Patch embeddings plus their position embeddings, without CLS: ``[N, P, D]``."""
        p = self.patch_size
        pad_h, pad_w = -x.shape[-2] % p, -x.shape[-1] % p
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        x = self.patch_embed(x)  # [N, D, gh, gw]
        grid_h, grid_w = x.shape[-2:]
        pos = self._position_embedding(grid_h, grid_w)
        return x.flatten(2).transpose(1, 2) + pos[:, 1:]

    def forward_tokens(self, x: Tensor, keep_index: Tensor | None = None) -> Tensor:
        """All output tokens after the final LayerNorm: ``[N, 1 + P', D]``, CLS first.

        ``keep_index: [N, P']`` (long) keeps only those patches (indices into the row-major
        patch grid, e.g. the visible patches of MAE), gathered after adding their position
        embeddings, so the kept tokens still know where they came from. None keeps all P.
        """
        tokens = self.embed_patches(x)
        if keep_index is not None:
            if keep_index.ndim != 2 or keep_index.shape[0] != tokens.shape[0]:
                raise ConfigError(
                    f"keep_index must be [N, P'] with N = {tokens.shape[0]}, "
                    f"got {tuple(keep_index.shape)}"
                )
            index = keep_index.to(tokens.device).unsqueeze(-1).expand(-1, -1, tokens.shape[-1])
            tokens = torch.gather(tokens, 1, index)
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(tokens.shape[0], -1, -1)
        tokens = torch.cat([cls, tokens], dim=1)
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens)

    def forward(self, x: Tensor) -> Tensor:
        tokens = self.forward_tokens(x)
        return tokens[:, 0] if self.pool == "cls" else tokens[:, 1:].mean(dim=1)


def _check_options(image_size, patch_size, embed_dim, depth, num_heads, mlp_ratio) -> None:
    problems = []
    for name, value in (
        ("image_size", image_size),
        ("patch_size", patch_size),
        ("depth", depth),
        ("num_heads", num_heads),
    ):
        if not isinstance(value, int) or value < 1:
            problems.append(f"{name} must be a positive int, got {value!r}")
    if isinstance(num_heads, int) and num_heads > 0 and embed_dim % num_heads:
        problems.append(f"embed_dim {embed_dim} must be divisible by num_heads {num_heads}")
    if not mlp_ratio > 0:
        problems.append(f"mlp_ratio must be positive, got {mlp_ratio}")
    if problems:
        raise ConfigError("invalid ViT options: " + "; ".join(problems))


POOLS = ("cls", "mean")


def default_patch_size(image_size: int) -> int:
    """A patch side for ``image_size`` px images when none is given: the largest side up to
    ViT-B/16's 16 px that divides the image and leaves at least 8 patches a side (224 px -> 16,
    a 14 x 14 grid; 32 px -> 4, the usual CIFAR ViT patch), or 2 patches a side for tiny images
    (8 px -> 2, a 4 x 4 grid)."""
    size = max(1, int(image_size))
    grid = min(8, max(1, size // 2))
    fitting = [p for p in range(1, 17) if size % p == 0 and size // p >= grid]
    return max(fitting, default=1)


def sized_to(input_size: int | None) -> dict[str, int]:
    """``image_size`` and ``patch_size`` options of a ViT for ``input_size`` px views (the
    position-embedding grid matches the views); {} when the size is unknown."""
    if input_size is None:
        return {}
    return {"image_size": int(input_size), "patch_size": default_patch_size(input_size)}


VIT_SIZES = {
    "vit_tiny": {"embed_dim": 192, "depth": 12, "num_heads": 3},
    "vit_small": {"embed_dim": 384, "depth": 12, "num_heads": 6},
}
