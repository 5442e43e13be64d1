"""Table encoders: an MLP and the FT-Transformer, over rows ``float32 [B, F]`` whose first
``num_numeric`` columns are numbers and the rest categorical codes (0 = missing / unseen).

Both embed each categorical code inside the encoder (one shared table with per-column offsets,
a single batched lookup). Their ``meta.kwargs`` hold every resolved option, so
``create_backbone(meta.architecture, in_channels=meta.in_channels, **meta.kwargs)`` rebuilds them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from labelless.backbones.meta import EncoderMeta
from labelless.backbones.registry import register_backbone
from labelless.errors import ConfigError


def _meta(name: str, options: dict[str, Any], embed_dim: int, in_channels: int) -> EncoderMeta:
    return EncoderMeta(
        architecture=name,
        kwargs=dict(options),
        embed_dim=int(embed_dim),
        in_channels=in_channels,
        input_size=in_channels,
        mean=[],
        std=[],
        modality="tabular",
    )


def _layout(in_channels: int, num_numeric: int | None, cardinalities: Sequence[int] | None):
    cardinalities = [int(c) for c in (cardinalities or ())]
    num_numeric = in_channels - len(cardinalities) if num_numeric is None else int(num_numeric)
    if num_numeric < 0 or num_numeric + len(cardinalities) != in_channels:
        raise ConfigError(
            f"a table encoder over {in_channels} columns needs num_numeric + "
            f"len(cardinalities) == {in_channels}, got {num_numeric} + {len(cardinalities)}; "
            "pass the dataset's len(meta['numeric']) and meta['cardinalities']"
        )
    if any(c < 1 for c in cardinalities):
        raise ConfigError(f"cardinalities must be positive, got {cardinalities}")
    return num_numeric, cardinalities


class CategoryEmbedding(nn.Module):
    """Codes ``[B, C]`` (floats, as stored in the rows) -> embeddings ``[B, C, dim]``; codes
    outside ``0..cardinality-1`` count as unseen (0)."""

    def __init__(self, cardinalities: Sequence[int], dim: int) -> None:
        super().__init__()
        cards = torch.tensor(list(cardinalities), dtype=torch.long)
        offsets = torch.cat([torch.zeros(1, dtype=torch.long), cards.cumsum(0)[:-1]])
        self.register_buffer("cardinalities", cards, persistent=False)
        self.register_buffer("offsets", offsets, persistent=False)
        self.table = nn.Embedding(int(cards.sum()), dim)
        nn.init.normal_(self.table.weight, std=dim**-0.5)

    def forward(self, codes: Tensor) -> Tensor:
        codes = codes.round().long()
        codes = torch.where((codes < 0) | (codes >= self.cardinalities), 0, codes)
        return self.table(codes + self.offsets)


class TabularMLP(nn.Module):
    """Numbers and category embeddings concatenated, then ``depth`` blocks of Linear -> norm ->
    ReLU (-> dropout) of width ``hidden_dim`` (SCARF's encoder: 4 x 256, Bahri et al. 2022).
    The output of the last block is the embedding."""

    def __init__(
        self,
        in_channels,
        *,
        num_numeric,
        cardinalities,
        hidden_dim,
        depth,
        cat_embed_dim,
        dropout,
        norm,
    ) -> None:
        super().__init__()
        if depth < 1 or hidden_dim < 1:
            raise ConfigError(f"depth and hidden_dim must be positive, got {depth}, {hidden_dim}")
        norms = {"bn": nn.BatchNorm1d, "ln": nn.LayerNorm, "none": None}
        if norm not in norms:
            raise ConfigError(f"norm must be one of {', '.join(norms)}, got {norm!r}")
        self.num_numeric = num_numeric
        self.categories = CategoryEmbedding(cardinalities, cat_embed_dim) if cardinalities else None
        width = num_numeric + len(cardinalities) * cat_embed_dim
        layers: list[nn.Module] = []
        for _ in range(depth):
            layers.append(nn.Linear(width, hidden_dim))
            if norms[norm] is not None:
                layers.append(norms[norm](hidden_dim))
            layers.append(nn.ReLU())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = hidden_dim
        self.layers = nn.Sequential(*layers)
        self.embed_dim = hidden_dim

    def forward(self, x: Tensor) -> Tensor:
        parts = [x[:, : self.num_numeric]]
        if self.categories is not None:
            parts.append(self.categories(x[:, self.num_numeric :]).flatten(1))
        return self.layers(torch.cat(parts, dim=1))


@register_backbone("mlp", "tabular", default=True)
def build_mlp(
    in_channels: int,
    *,
    num_numeric: int | None = None,
    cardinalities: Sequence[int] | None = None,
    hidden_dim: int = 256,
    depth: int = 4,
    cat_embed_dim: int = 8,
    dropout: float = 0.0,
    norm: str = "bn",
) -> TabularMLP:
    """The default table encoder. ``in_channels`` = F columns; ``num_numeric`` (default: all
    columns that are not categorical) and ``cardinalities`` (codes per categorical column,
    ``Dataset.meta["cardinalities"]``) describe the row layout."""
    num_numeric, cardinalities = _layout(in_channels, num_numeric, cardinalities)
    options = {
        "num_numeric": num_numeric,
        "cardinalities": cardinalities,
        "hidden_dim": int(hidden_dim),
        "depth": int(depth),
        "cat_embed_dim": int(cat_embed_dim),
        "dropout": float(dropout),
        "norm": norm,
    }
    model = TabularMLP(in_channels, **options)
    model.meta = _meta("mlp", options, model.embed_dim, in_channels)
    return model


class ReGLU(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        a, b = x.chunk(2, dim=-1)
        return a * torch.relu(b)


class TransformerBlock(nn.Module):
    """Pre-norm attention + ReGLU feed-forward block (FT-Transformer, Gorishniy et al. 2021);
    ``first`` skips the first LayerNorm, as in the paper."""

    def __init__(self, dim: int, heads: int, ffn_dim: int, dropout: float, first: bool) -> None:
        super().__init__()
        self.norm1 = nn.Identity() if first else nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(
            nn.Linear(dim, 2 * ffn_dim), ReGLU(), nn.Dropout(dropout), nn.Linear(ffn_dim, dim)
        )

    def forward(self, x: Tensor) -> Tensor:
        h = self.norm1(x)
        x = x + self.attention(h, h, h, need_weights=False)[0]
        return x + self.ffn(self.norm2(x))


class FTTransformer(nn.Module):
    """FT-Transformer (Gorishniy, Rubachev, Khrulkov, Babenko. "Revisiting Deep Learning Models
    for Tabular Data", NeurIPS 2021): a feature tokenizer (numeric j -> ``x_j * W_j + b_j``,
    categorical j -> ``E_j[code] + b_j``), a [CLS] token, ``depth`` pre-norm transformer blocks
    with ReGLU feed-forward, a final LayerNorm; the embedding is the [CLS] output
    (``pool="mean"``: the mean of the feature tokens).

    ``reg_tokens`` learned tokens follow [CLS] (T-JEPA's regularisation tokens, Thimonier et al.
    2024); ``tokens(x, keep)`` returns all token outputs ``[B, 1 + reg_tokens + K, dim]`` for the
    ``K`` kept feature columns ``keep [B, K]`` (all F when None), which T-JEPA masks with.
    """

    def __init__(
        self,
        in_channels,
        *,
        num_numeric,
        cardinalities,
        dim,
        depth,
        heads,
        ffn_factor,
        dropout,
        reg_tokens,
        pool,
    ) -> None:
        super().__init__()
        if dim % heads or depth < 1 or reg_tokens < 0 or pool not in ("cls", "mean"):
            raise ConfigError(
                f"ft_transformer needs dim divisible by heads, depth >= 1, reg_tokens >= 0 and "
                f"pool 'cls' or 'mean'; got dim {dim}, heads {heads}, depth {depth}, "
                f"reg_tokens {reg_tokens}, pool {pool!r}"
            )
        self.num_numeric, self.num_features, self.pool = num_numeric, in_channels, pool
        self.num_prefix_tokens = 1 + reg_tokens
        self.numeric_weight = nn.Parameter(torch.randn(num_numeric, dim) * dim**-0.5)
        self.categories = CategoryEmbedding(cardinalities, dim) if cardinalities else None
        self.feature_bias = nn.Parameter(torch.randn(in_channels, dim) * dim**-0.5)
        self.prefix = nn.Parameter(torch.randn(1, self.num_prefix_tokens, dim) * dim**-0.5)
        ffn_dim = max(1, int(dim * ffn_factor))
        self.blocks = nn.ModuleList(
            TransformerBlock(dim, heads, ffn_dim, dropout, first=i == 0) for i in range(depth)
        )
        self.norm = nn.LayerNorm(dim)
        self.embed_dim = dim

    def tokenize(self, x: Tensor) -> Tensor:
        """Feature tokens ``[B, F, dim]``."""
        parts = [x[:, : self.num_numeric, None] * self.numeric_weight]
        if self.categories is not None:
            parts.append(self.categories(x[:, self.num_numeric :]))
        return torch.cat(parts, dim=1) + self.feature_bias

    def tokens(self, x: Tensor, keep: Tensor | None = None) -> Tensor:
        """Outputs of [CLS], the regularisation tokens and the kept feature tokens."""
        features = self.tokenize(x)
        if keep is not None:
            features = torch.gather(features, 1, keep[..., None].expand(-1, -1, features.shape[-1]))
        h = torch.cat([self.prefix.expand(len(x), -1, -1), features], dim=1)
        for block in self.blocks:
            h = block(h)
        return self.norm(h)

    def forward(self, x: Tensor) -> Tensor:
        h = self.tokens(x)
        return h[:, 0] if self.pool == "cls" else h[:, self.num_prefix_tokens :].mean(1)


@register_backbone("ft_transformer", "tabular")
def build_ft_transformer(
    in_channels: int,
    *,
    num_numeric: int | None = None,
    cardinalities: Sequence[int] | None = None,
    dim: int = 64,
    depth: int = 3,
    heads: int = 8,
    ffn_factor: float = 4 / 3,
    dropout: float = 0.1,
    reg_tokens: int = 0,
    pool: str = "cls",
) -> FTTransformer:
    """FT-Transformer over F = ``in_channels`` columns (see ``build_mlp`` for the layout).
    ``ffn_factor``: ReGLU hidden width / dim (4/3 in the paper); ``dropout`` on attention and
    feed-forward; ``reg_tokens``: extra always-visible tokens (T-JEPA uses them)."""
    num_numeric, cardinalities = _layout(in_channels, num_numeric, cardinalities)
    options = {
        "num_numeric": num_numeric,
        "cardinalities": cardinalities,
        "dim": int(dim),
        "depth": int(depth),
        "heads": int(heads),
        "ffn_factor": float(ffn_factor),
        "dropout": float(dropout),
        "reg_tokens": int(reg_tokens),
        "pool": pool,
    }
    model = FTTransformer(in_channels, **options)
    model.meta = _meta("ft_transformer", options, model.embed_dim, in_channels)
    return model
