"""Masked prediction on Vision Transformers: batched patch masks, block masks, patchify, and the
narrow transformer that predicts tokens at masked positions (MAE's decoder, I-JEPA's predictor).

Every sampler draws for the whole batch with tensor ops (no loop over samples), from
``generator`` (the training step's, so that a resumed run draws the same masks; see
``nn.sampling``), and returns ``long`` indices into the row-major patch grid, the form
``VisionTransformer.forward_tokens`` takes as ``keep_index``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from labelless.backbones.vit import Block
from labelless.errors import ConfigError
from labelless.nn import sampling


def require_vit(backbone: nn.Module, method: str) -> None:
    """ConfigError unless ``backbone`` is a ViT with ``forward_tokens`` and ``patch_size``."""
    if not (hasattr(backbone, "forward_tokens") and hasattr(backbone, "patch_size")):
        name = getattr(getattr(backbone, "meta", None), "architecture", type(backbone).__name__)
        raise ConfigError(
            f"{method} predicts masked patches and needs a Vision Transformer backbone with "
            f"forward_tokens, got {name!r}; use --backbone vit_tiny (or vit_small) and set "
            "image_size / patch_size in backbone.kwargs to match the view size"
        )


def patch_grid(image: Tensor, patch_size: int) -> tuple[int, int]:
    """The ``(rows, cols)`` patch grid the ViT uses for ``image [N, C, H, W]`` (sides padded up)."""
    return math.ceil(image.shape[-2] / patch_size), math.ceil(image.shape[-1] / patch_size)


def patchify(images: Tensor, patch_size: int) -> Tensor:
    """``[N, C, H, W] -> [N, P, p * p * C]`` in row-major patch order, each patch's pixels in
    ``(row, col, channel)`` order; sides that are not multiples of ``p`` are zero-padded at the
    bottom / right as the ViT does."""
    p = patch_size
    pad_h, pad_w = -images.shape[-2] % p, -images.shape[-1] % p
    if pad_h or pad_w:
        images = F.pad(images, (0, pad_w, 0, pad_h))
    n, c, h, w = images.shape
    x = images.reshape(n, c, h // p, p, w // p, p)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(n, (h // p) * (w // p), p * p * c)


def unpatchify(patches: Tensor, patch_size: int, grid: tuple[int, int], channels: int) -> Tensor:
    """Inverse of ``patchify``: ``[N, P, p * p * C] -> [N, C, rows * p, cols * p]``."""
    p, (rows, cols) = patch_size, grid
    n = patches.shape[0]
    x = patches.reshape(n, rows, cols, p, p, channels)
    return x.permute(0, 5, 1, 3, 2, 4).reshape(n, channels, rows * p, cols * p)


def random_masking(
    batch_size: int,
    num_patches: int,
    mask_ratio: float,
    *,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """MAE's per-sample random masking (He et al. 2022, sec. 3): argsort of uniform noise.

    Returns ``(keep_index [N, K], masked_index [N, P - K])``, together a permutation of
    ``0..P-1`` per sample, with ``K = int(P * (1 - mask_ratio))`` clamped to ``[1, P - 1]`` so at
    least one patch is seen and one is predicted.
    """
    if not 0 < mask_ratio < 1:
        raise ConfigError(f"mask_ratio must be in (0, 1), got {mask_ratio}; MAE uses 0.75")
    if num_patches < 2:
        raise ConfigError(
            f"masking needs at least 2 patches, got {num_patches}; use a smaller patch_size"
        )
    num_keep = min(max(int(num_patches * (1 - mask_ratio)), 1), num_patches - 1)
    noise = sampling.rand((batch_size, num_patches), generator=generator, device=device)
    order = noise.argsort(dim=1)
    return order[:, :num_keep], order[:, num_keep:]


def block_size(
    grid: tuple[int, int],
    scale: Sequence[float],
    aspect: Sequence[float],
    *,
    generator: torch.Generator | None = None,
) -> tuple[int, int]:
    """One block's ``(height, width)`` in patches: area ``scale`` of the grid (uniform), aspect
    ``height / width`` uniform in ``aspect``, rounded and clamped to the grid (at least 1x1)."""
    rows, cols = grid
    u = sampling.rand((2,), generator=generator).tolist()
    area = rows * cols * (scale[0] + u[0] * (scale[1] - scale[0]))
    ratio = aspect[0] + u[1] * (aspect[1] - aspect[0])
    height = min(max(round(math.sqrt(area * ratio)), 1), rows)
    width = min(max(round(math.sqrt(area / ratio)), 1), cols)
    return height, width


def block_index(
    tops: Tensor, lefts: Tensor, size: tuple[int, int], grid: tuple[int, int]
) -> Tensor:
    """Patch indices of ``size = (h, w)`` blocks at ``tops / lefts [...]``: ``[..., h * w]``."""
    height, width = size
    rows = tops.unsqueeze(-1) + torch.arange(height, device=tops.device)  # [..., h]
    cols = lefts.unsqueeze(-1) + torch.arange(width, device=lefts.device)  # [..., w]
    index = rows.unsqueeze(-1) * grid[1] + cols.unsqueeze(-2)  # [..., h, w]
    return index.flatten(-2)


@dataclass
class BlockMasks:
    """I-JEPA's masks for a batch: ``context_index [N, K_c]`` (sorted, disjoint from every
    target) and ``target_index [N, M, K_t]`` (M blocks of one size per batch)."""

    context_index: Tensor
    target_index: Tensor
    target_size: tuple[int, int]
    context_size: tuple[int, int]


def sample_block_masks(
    batch_size: int,
    grid: tuple[int, int],
    *,
    num_targets: int = 4,
    target_scale: Sequence[float] = (0.15, 0.2),
    target_aspect: Sequence[float] = (0.75, 1.5),
    context_scale: Sequence[float] = (0.85, 1.0),
    min_context: int | None = None,
    max_tries: int = 20,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> BlockMasks:
    """I-JEPA's multi-block masks (Assran et al. 2023, sec. 3 and appendix C), batched.

    As the paper's collator: one target block size and one context block size per batch (scale
    and aspect drawn by ``block_size``; the context block has unit aspect), block positions per
    sample. The context is its block minus the union of the sample's ``num_targets`` targets;
    samples whose context keeps fewer than ``min_context`` patches (default: 5% of the grid, the
    paper's 10 of 196) redraw their positions, up to ``max_tries`` times, then any non-empty
    context is accepted. Tokens must be equally many per sample to batch them, so every sample
    keeps ``min`` over the batch of its context count: a uniformly random subset of its context
    patches (the paper keeps the first ones in raster order; a random subset has no spatial bias).
    """
    rows, cols = grid
    t_h, t_w = block_size(grid, target_scale, target_aspect, generator=generator)
    c_h, c_w = block_size(grid, context_scale, (1.0, 1.0), generator=generator)
    if min_context is None:
        min_context = max(1, round(0.05 * rows * cols))

    def draw(n: int) -> tuple[Tensor, Tensor]:
        shape = (n, num_targets)
        t_top = sampling.randint(0, rows - t_h + 1, shape, generator=generator).to(device)
        t_left = sampling.randint(0, cols - t_w + 1, shape, generator=generator).to(device)
        c_top = sampling.randint(0, rows - c_h + 1, (n,), generator=generator).to(device)
        c_left = sampling.randint(0, cols - c_w + 1, (n,), generator=generator).to(device)
        targets = block_index(t_top, t_left, (t_h, t_w), grid)  # [n, M, K_t]
        context = torch.zeros(n, rows * cols, dtype=torch.bool, device=device)
        context.scatter_(1, block_index(c_top, c_left, (c_h, c_w), grid), True)
        context.scatter_(1, targets.flatten(1), False)
        return targets, context

    targets, context = draw(batch_size)
    for _ in range(max_tries):
        short = context.sum(1) < min_context
        if not short.any():
            break
        redrawn_targets, redrawn_context = draw(int(short.sum()))
        targets[short], context[short] = redrawn_targets, redrawn_context
    keep = int(context.sum(1).min())
    if keep == 0:
        raise ConfigError(
            f"the target blocks cover the whole context on a {rows}x{cols} patch grid; "
            "lower num_targets or target_scale, or use a smaller patch_size"
        )
    noise = sampling.rand(tuple(context.shape), generator=generator).to(device)
    score = torch.where(context, noise, torch.full_like(noise, 2.0))
    context_index = score.argsort(dim=1)[:, :keep].sort(dim=1).values
    return BlockMasks(context_index, targets, (t_h, t_w), (c_h, c_w))


def sincos_position_embedding(grid: tuple[int, int], dim: int) -> Tensor:
    """Fixed 2D sine-cosine position embeddings ``[rows * cols, dim]`` (MAE's decoder, I-JEPA's
    predictor): half the channels encode the row, half the column, each as sin / cos of the
    position at ``dim / 4`` frequencies ``10000^(-k / (dim / 4))``."""
    if dim % 4:
        raise ConfigError(f"the predictor width must be a multiple of 4, got {dim}")
    rows, cols = grid
    freqs = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float32) / (dim // 4))
    r, c = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
    parts = []
    for position in (r.flatten().float(), c.flatten().float()):
        angles = position[:, None] * freqs[None, :]
        parts += [angles.sin(), angles.cos()]
    return torch.cat(parts, dim=1)


def gather_tokens(tokens: Tensor, index: Tensor) -> Tensor:
    """``tokens [N, P, D]`` at ``index [N, K]``: ``[N, K, D]``."""
    return torch.gather(tokens, 1, index.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))


class MaskedTokenPredictor(nn.Module):
    """A narrow transformer that predicts tokens at query positions from context tokens.

    ``context [N, K, in_dim]`` at grid positions ``context_index [N, K]`` (plus optional
    position-free ``prefix [N, L, in_dim]`` tokens such as CLS) is projected to ``width``; each
    query position in ``query_index [N, Q]`` becomes a learned mask token; all tokens get fixed
    2D sine-cosine position embeddings of the grid, pass ``depth`` pre-norm blocks and a
    LayerNorm, and the query tokens are projected to ``out_dim``: ``[N, Q, out_dim]``. Attention
    has no order, so concatenating instead of unshuffling into grid order (as MAE's decoder
    does) computes the same function.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        *,
        width: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
    ) -> None:
        super().__init__()
        if width < 1 or depth < 1 or num_heads < 1 or width % num_heads or width % 4:
            raise ConfigError(
                f"predictor width {width}, depth {depth}, heads {num_heads}: width must be a "
                "positive multiple of 4 and of num_heads, depth and num_heads positive"
            )
        self.embed = nn.Linear(in_dim, width)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, width))
        self.blocks = nn.ModuleList(Block(width, num_heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.head = nn.Linear(width, out_dim)
        self.width = width
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    def forward(
        self,
        context: Tensor,
        context_index: Tensor,
        query_index: Tensor,
        grid: tuple[int, int],
        prefix: Tensor | None = None,
    ) -> Tensor:
        pos = sincos_position_embedding(grid, self.width).to(context.device, context.dtype)
        x = self.embed(context) + pos[context_index]
        queries = self.mask_token + pos[query_index]
        parts = [x, queries] if prefix is None else [self.embed(prefix), x, queries]
        tokens = torch.cat(parts, dim=1)
        for block in self.blocks:
            tokens = block(tokens)
        return self.head(self.norm(tokens[:, -query_index.shape[1] :]))
