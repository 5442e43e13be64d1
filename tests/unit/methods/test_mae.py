"""MAE: masking, patchify, the masked-only reconstruction loss, shapes at 32 and 224 px."""

from __future__ import annotations

import pytest
import torch

from labelless.backbones import create_backbone
from labelless.errors import ConfigError
from labelless.methods import create_method
from labelless.methods.mae import reconstruction_loss
from labelless.nn.masking import gather_tokens, patchify, random_masking, unpatchify

TINY = {"depth": 1, "embed_dim": 24, "num_heads": 2}
DECODER = {"decoder_width": 16, "decoder_depth": 1, "decoder_heads": 2}


def _mae(size=32, patch=4, channels=3, **kwargs):
    vit = create_backbone(
        "vit_tiny", in_channels=channels, image_size=size, patch_size=patch, **TINY
    )
    return create_method("mae", vit, **{**DECODER, **kwargs})


def test_masking_keeps_exactly_k_patches_per_sample_and_is_a_permutation():
    keep, masked = random_masking(64, 49, 0.75)
    assert keep.shape == (64, 12) and masked.shape == (64, 37)  # int(49 * 0.25) = 12
    order = torch.cat([keep, masked], dim=1).sort(dim=1).values
    assert torch.equal(order, torch.arange(49).expand(64, -1))
    # per-sample masks: rows differ, and every patch is kept about 25% of the time
    assert len({tuple(row.tolist()) for row in keep.sort(dim=1).values}) == 64
    kept = torch.zeros(64, 49).scatter_(1, keep, 1.0)
    counts = random_masking(4000, 16, 0.75)[0].flatten().bincount(minlength=16).float()
    assert kept.sum(1).eq(12).all()
    assert counts.div(4000).sub(0.25).abs().max() < 0.03


@pytest.mark.parametrize("ratio", [0.0, 1.0, -0.1])
def test_mask_ratio_out_of_range_is_a_config_error(ratio):
    with pytest.raises(ConfigError, match="mask_ratio must be in"):
        _mae(mask_ratio=ratio)


@pytest.mark.parametrize(("size", "patch"), [(32, 4), (224, 16), (30, 4)])
def test_patchify_unpatchify_round_trip(size, patch):
    images = torch.randn(2, 3, size, size)
    patches = patchify(images, patch)
    grid = -(-size // patch)
    assert patches.shape == (2, grid * grid, patch * patch * 3)
    restored = unpatchify(patches, patch, (grid, grid), 3)
    assert torch.equal(restored[..., :size, :size], images)
    assert restored[..., size:, :].abs().sum() == 0  # padding is zeros, as in the ViT
    # patch i is the pixels of grid cell (row, col) = divmod(i, grid)
    row, col = divmod(5, grid)
    cell = images[0, :, row * patch : (row + 1) * patch, col * patch : (col + 1) * patch]
    assert torch.equal(patches[0, 5], cell.permute(1, 2, 0).flatten())


def test_loss_is_mse_over_masked_patches_with_per_patch_normalised_targets():
    torch.manual_seed(1)
    prediction, target = torch.randn(2, 3, 12), torch.randn(2, 3, 12)
    mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
    by_hand = ((prediction - (target - mean) / (var + 1e-6).sqrt()) ** 2).mean()
    assert reconstruction_loss(prediction, target) == pytest.approx(by_hand.item(), rel=1e-6)
    raw = ((prediction - target) ** 2).mean()
    assert reconstruction_loss(prediction, target, False) == pytest.approx(raw.item(), rel=1e-6)


def test_forward_loss_equals_hand_computation_and_ignores_visible_patches(monkeypatch):
    method = _mae(size=16, patch=4, channels=1)
    images = torch.randn(3, 1, 16, 16)
    keep, masked = random_masking(3, 16, 0.75)
    monkeypatch.setattr("labelless.methods.mae.random_masking", lambda *a, **k: (keep, masked))
    loss = method([images], {})["loss"]
    tokens = method.backbone.forward_tokens(images, keep)
    prediction = method.decoder(tokens[:, 1:], keep, masked, (4, 4), prefix=tokens[:, :1])
    target = gather_tokens(patchify(images, 4), masked)
    target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6).sqrt()
    assert loss.item() == pytest.approx(((prediction - target) ** 2).mean().item(), rel=1e-5)


def test_loss_ignores_the_pixels_of_visible_patches(monkeypatch):
    """With the encoder's output held fixed, only the masked patches' pixels move the loss."""
    method = _mae(size=16, patch=4, channels=1, norm_pix_loss=False).eval()
    keep, masked = random_masking(3, 16, 0.75)
    monkeypatch.setattr("labelless.methods.mae.random_masking", lambda *a, **k: (keep, masked))
    fixed = method.backbone.forward_tokens(torch.randn(3, 1, 16, 16), keep).detach()
    monkeypatch.setattr(method.backbone, "forward_tokens", lambda x, index=None: fixed)
    images = torch.randn(3, 1, 16, 16)
    visible = torch.zeros(3, 16).scatter_(1, keep, 1.0).bool()[..., None]
    patches = patchify(images, 4)
    noise = torch.randn_like(patches)

    def loss_of(new_patches):
        with torch.no_grad():
            return method([unpatchify(new_patches, 4, (4, 4), 1)], {})["loss"].item()

    base = loss_of(patches)
    assert loss_of(torch.where(visible, noise, patches)) == pytest.approx(base, rel=1e-6)
    assert loss_of(torch.where(visible, patches, noise)) != pytest.approx(base, rel=1e-3)


@pytest.mark.parametrize(("size", "patch"), [(32, 4), (224, 16)])
def test_contract_and_decoder_shapes(size, patch, check_contract):
    method = _mae(size=size, patch=patch)
    assert method.default_views == "mae"
    images = torch.randn(2, 3, size, size)
    out = check_contract(method, [images])
    with torch.no_grad():
        assert torch.allclose(out["embedding"], method.backbone(images), atol=1e-6)
    grid = size // patch
    keep, masked = random_masking(2, grid * grid, 0.75)
    tokens = method.backbone.forward_tokens(images, keep)
    assert tokens.shape == (2, 1 + grid * grid // 4, 24)
    prediction = method.decoder(tokens[:, 1:], keep, masked, (grid, grid), prefix=tokens[:, :1])
    assert prediction.shape == (2, grid * grid - grid * grid // 4, patch * patch * 3)
    assert method.decoder.mask_token.grad.abs().sum() > 0


def test_a_resnet_backbone_is_a_config_error_naming_the_fix(backbone):
    with pytest.raises(ConfigError, match="--backbone vit_tiny"):
        create_method("mae", backbone)


def test_learns_to_reconstruct_a_fixed_batch():
    torch.manual_seed(0)
    method = _mae(size=8, patch=2, channels=1, norm_pix_loss=False)
    # each image is one random grey level: its hidden patches follow from any visible one
    images = torch.randn(16, 1, 1, 1).expand(16, 1, 8, 8)
    optimizer = torch.optim.AdamW(method.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = method([images], {})["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-3:]) / 3 < 0.4 * sum(losses[:3]) / 3
