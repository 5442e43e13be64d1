"""The Vision Transformer backbone: shapes, variable input sizes, token subsets, export."""

from __future__ import annotations

import pytest
import torch

from labelless.backbones import create_backbone, list_backbones, load_encoder, save_encoder
from labelless.backbones.registry import IMAGENET_MEAN
from labelless.errors import ConfigError

TINY = {"depth": 2, "embed_dim": 48, "num_heads": 3}


def _vit(**kwargs):
    return create_backbone("vit_tiny", **{**TINY, **kwargs}).eval()


def test_registered_sizes_and_metadata():
    assert {"vit_tiny", "vit_small"} <= set(list_backbones())
    small = create_backbone("vit_small", depth=1)
    assert small.embed_dim == small.meta.embed_dim == 384 and len(small.blocks) == 1
    assert small.blocks[0].attn.num_heads == 6
    tiny = create_backbone("vit_tiny", in_channels=1, image_size=32, patch_size=4)
    assert tiny.embed_dim == 192 and len(tiny.blocks) == 12 and tiny.blocks[0].attn.num_heads == 3
    assert tiny.meta.input_size == 32 and tiny.meta.kwargs == {"image_size": 32, "patch_size": 4}
    assert tiny.meta.mean == pytest.approx([sum(IMAGENET_MEAN) / 3])
    assert tiny.pos_embed.shape == (1, 1 + 8 * 8, 192)


@pytest.mark.parametrize(("size", "patch"), [(32, 4), (224, 16)])
def test_output_is_the_cls_token(size, patch):
    vit = _vit(image_size=size, patch_size=patch)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        tokens = vit.forward_tokens(x)
        out = vit(x)
    assert tokens.shape == (2, 1 + (size // patch) ** 2, 48)
    assert out.shape == (2, 48)
    assert torch.equal(out, tokens[:, 0])
    # the final LayerNorm (identity affine at init): every token has mean 0 and variance 1
    assert tokens.mean(dim=-1).abs().max() < 1e-4
    assert tokens.var(dim=-1, unbiased=False).mean() == pytest.approx(1.0, abs=1e-3)


def test_other_input_sizes_interpolate_the_position_embeddings():
    vit = _vit(image_size=32, patch_size=4)
    with torch.no_grad():
        for size, grid in ((32, 8), (16, 4), (14, 4), (48, 12)):  # 14 px is padded to 16
            tokens = vit.forward_tokens(torch.randn(3, 3, size, size))
            assert tokens.shape == (3, 1 + grid * grid, 48), size
            assert torch.isfinite(tokens).all()
        # the configured grid uses the stored embeddings; a resized grid interpolates them
        # bicubically, so a constant embedding stays constant
        assert vit._position_embedding(8, 8) is vit.pos_embed
        vit.pos_embed.fill_(0.5)
        assert torch.allclose(vit._position_embedding(4, 4), torch.full((1, 17, 48), 0.5))


def test_padding_a_crop_is_the_same_as_zero_padding_it_by_hand():
    vit = _vit(image_size=32, patch_size=4)
    crop = torch.randn(2, 3, 14, 14)
    padded = torch.nn.functional.pad(crop, (0, 2, 0, 2))
    with torch.no_grad():
        assert torch.allclose(vit(crop), vit(padded), atol=1e-6)


def test_gradient_reaches_the_patch_embedding_from_a_local_crop():
    vit = _vit(image_size=32, patch_size=4).train()
    vit(torch.randn(2, 3, 14, 14)).pow(2).sum().backward()
    assert vit.patch_embed.weight.grad.abs().sum() > 0
    assert vit.pos_embed.grad.abs().sum() > 0


def test_forward_tokens_keeps_a_subset_of_patches():
    vit = _vit(image_size=32, patch_size=4)
    x = torch.randn(2, 3, 32, 32)
    keep = torch.tensor([[0, 5, 63], [10, 11, 12]])
    with torch.no_grad():
        tokens = vit.forward_tokens(x, keep_index=keep)
        assert tokens.shape == (2, 1 + 3, 48)
        # with depth 0 the kept tokens are exactly the selected embedded patches
        shallow = _vit(image_size=32, patch_size=4, depth=1)
        shallow.blocks = torch.nn.ModuleList()
        embedded = shallow.norm(shallow.embed_patches(x))
        kept = shallow.forward_tokens(x, keep_index=keep)[:, 1:]
        assert torch.allclose(kept[0], embedded[0, [0, 5, 63]], atol=1e-6)
        assert torch.allclose(kept[1], embedded[1, [10, 11, 12]], atol=1e-6)
    with pytest.raises(ConfigError, match="keep_index"):
        vit.forward_tokens(x, keep_index=torch.tensor([1, 2]))


def test_save_and_load_round_trip(tmp_path):
    vit = _vit(in_channels=1, image_size=16, patch_size=4)
    x = torch.randn(2, 1, 16, 16)
    save_encoder(vit, tmp_path / "enc")
    loaded = load_encoder(tmp_path / "enc")
    assert loaded.meta == vit.meta and loaded.meta.kwargs["patch_size"] == 4
    with torch.no_grad():
        assert torch.equal(loaded(x), vit(x))


def test_invalid_options_are_config_errors():
    with pytest.raises(ConfigError, match="divisible"):
        create_backbone("vit_tiny", embed_dim=50, num_heads=3)
    with pytest.raises(ConfigError, match="width"):
        create_backbone("vit_small", width=0.5)


def test_mean_pool_averages_the_patch_tokens_and_travels_in_the_metadata(tmp_path):
    vit = _vit(image_size=16, patch_size=4, pool="mean")
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(vit(x), vit.forward_tokens(x)[:, 1:].mean(1), atol=1e-6)
    assert vit.meta.kwargs["pool"] == "mean"
    save_encoder(vit, tmp_path)
    assert load_encoder(tmp_path).pool == "mean"
    with pytest.raises(ConfigError, match="pool must be one of"):
        _vit(pool="max")
