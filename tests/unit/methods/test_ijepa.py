"""I-JEPA: block masks, disjoint context, target encoder EMA, loss, shapes at 32 and 224 px."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from labelless.backbones import create_backbone
from labelless.errors import ConfigError
from labelless.methods import create_method
from labelless.methods.ijepa import prediction_loss
from labelless.nn.ema import linear_momentum
from labelless.nn.masking import block_index, block_size, sample_block_masks

TINY = {"depth": 1, "embed_dim": 24, "num_heads": 2}
PREDICTOR = {"predictor_width": 16, "predictor_depth": 1, "predictor_heads": 2}


def _ijepa(size=32, patch=4, channels=3, **kwargs):
    vit = create_backbone(
        "vit_tiny", in_channels=channels, image_size=size, patch_size=patch, **TINY
    )
    return create_method("ijepa", vit, **{**PREDICTOR, **kwargs})


def test_block_index_is_the_rectangle_in_row_major_order():
    index = block_index(torch.tensor([1]), torch.tensor([2]), (2, 3), (4, 6))
    assert index.tolist() == [[8, 9, 10, 14, 15, 16]]


def test_block_sizes_follow_the_scale_and_aspect_ranges():
    grid = (14, 14)
    sizes = torch.tensor([block_size(grid, (0.15, 0.2), (0.75, 1.5)) for _ in range(2000)])
    area = sizes.prod(1).float() / 196
    aspect = sizes[:, 0].float() / sizes[:, 1].float()
    # rounding to whole patches moves the area / aspect a little; the bulk stays in range
    assert area.min() >= 0.12 and area.max() <= 0.25  # e.g. 0.15 * 196 = 29.4 -> 5 x 5 = 25
    assert 0.15 <= area.median() <= 0.2 and 0.15 < area.mean() < 0.2
    assert aspect.min() >= 0.6 and aspect.max() <= 1.8
    assert aspect.log().mean().exp() == pytest.approx(math.sqrt(0.75 * 1.5), rel=0.12)
    assert len({tuple(s) for s in sizes.tolist()}) >= 3  # sizes vary from draw to draw
    context = torch.tensor([block_size(grid, (0.85, 1.0), (1.0, 1.0)) for _ in range(500)])
    assert torch.equal(context[:, 0], context[:, 1])  # unit aspect
    assert context.prod(1).float().div(196).min() >= 0.8 and context.max() <= 14


@pytest.mark.parametrize("grid", [(14, 14), (8, 8), (4, 4)])
def test_context_excludes_every_target_patch_and_counts_are_equal(grid):
    masks = sample_block_masks(64, grid, num_targets=4)
    n, m, k = masks.target_index.shape
    assert (n, m) == (64, 4) and k == masks.target_size[0] * masks.target_size[1]
    num_patches = grid[0] * grid[1]
    assert masks.context_index.shape[0] == 64 and masks.context_index.shape[1] >= 1
    targets = torch.zeros(64, num_patches, dtype=torch.bool)
    targets.scatter_(1, masks.target_index.flatten(1), True)
    assert not torch.gather(targets, 1, masks.context_index).any()
    # indices are sorted, distinct and inside the grid
    assert (masks.context_index.diff(dim=1) > 0).all() and masks.context_index.max() < num_patches
    # each target block is a rectangle of the drawn size, placed per sample
    rows, cols = masks.target_index // grid[1], masks.target_index % grid[1]
    height, width = masks.target_size
    assert ((rows.amax(-1) - rows.amin(-1)) == height - 1).all()
    assert ((cols.amax(-1) - cols.amin(-1)) == width - 1).all()
    if grid[0] > 4:
        assert len({tuple(t.tolist()) for t in masks.target_index[:, 0]}) > 5


def test_context_keeps_the_minimum_count_as_a_random_subset_of_the_context_block():
    masks = sample_block_masks(256, (14, 14), num_targets=4)
    area = masks.context_size[0] * masks.context_size[1]
    assert area >= 0.8 * 196 and masks.context_index.shape[1] <= area - masks.target_index.shape[-1]
    # a uniformly random subset: kept patches are not biased to the top rows of the grid
    rows = (masks.context_index // 14).float()
    assert rows.mean() > 4.5


def test_prediction_loss_is_mse_or_smooth_l1():
    prediction, target = torch.randn(8, 5, 24), torch.randn(8, 5, 24)
    by_hand = ((prediction - target) ** 2).sum(-1).mean() / 24  # squared L2 per token / D
    assert prediction_loss(prediction, target) == pytest.approx(by_hand.item(), rel=1e-5)
    smooth = F.smooth_l1_loss(prediction, target)
    assert prediction_loss(prediction, target, "smooth_l1") == pytest.approx(smooth.item())


def test_forward_loss_matches_a_hand_computation(monkeypatch):
    method = _ijepa(size=16, patch=2, channels=1)
    images = torch.randn(2, 1, 16, 16)
    torch.manual_seed(3)
    masks = sample_block_masks(2, (8, 8))
    monkeypatch.setattr("labelless.methods.ijepa.sample_block_masks", lambda *a, **k: masks)
    loss = method([images], {})["loss"]
    with torch.no_grad():
        full = method.target.target.forward_tokens(images)[:, 1:]
        full = F.layer_norm(full, (24,))
    losses = []
    for i in range(2):
        context = method.backbone.forward_tokens(images[i : i + 1], masks.context_index[i : i + 1])
        for j in range(4):
            block = masks.target_index[i, j][None]
            prediction = method.predictor(
                context[:, 1:], masks.context_index[i : i + 1], block, (8, 8), prefix=context[:, :1]
            )
            losses.append(((prediction - full[i, block[0]][None]) ** 2).mean())
    assert loss.item() == pytest.approx(torch.stack(losses).mean().item(), rel=1e-4)


@pytest.mark.parametrize(("size", "patch"), [(32, 4), (224, 16)])
def test_contract_shapes_and_target_encoder_without_gradient(size, patch, check_contract):
    method = _ijepa(size=size, patch=patch)
    assert method.default_views == "ijepa"
    images = torch.randn(2, 3, size, size)
    out = check_contract(method, [images])
    assert method.predictor.mask_token.grad.abs().sum() > 0
    target = list(method.target.parameters())
    assert target and all(not p.requires_grad and p.grad is None for p in target)
    grid = size // patch
    masks = sample_block_masks(2, (grid, grid))
    tokens = method.backbone.forward_tokens(images, masks.context_index)
    block = masks.target_index[:, 0]
    prediction = method.predictor(
        tokens[:, 1:], masks.context_index, block, (grid, grid), prefix=tokens[:, :1]
    )
    assert prediction.shape == (2, block.shape[1], 24)
    assert out["embedding"].shape == (2, 24)


def test_target_follows_the_linear_ema_schedule():
    method = _ijepa()
    online, target = method.backbone.patch_embed.weight, method.target.target.patch_embed.weight
    assert torch.equal(online, target)
    with torch.no_grad():
        online.add_(1.0)
    before = target.detach().clone()
    method.on_step_end(0.0)
    assert method.current_momentum == pytest.approx(0.996)
    assert torch.allclose(target, 0.996 * before + 0.004 * online.detach(), atol=1e-6)
    method.on_step_end(0.5)
    assert method.current_momentum == pytest.approx(0.998)
    assert linear_momentum(1.0, 0.996, 1.0) == pytest.approx(1.0)
    keys = method.state_dict().keys()
    assert any(k.startswith("target.target.blocks.") for k in keys)


def test_a_resnet_backbone_is_a_config_error_naming_the_fix(backbone):
    with pytest.raises(ConfigError, match="--backbone vit_tiny"):
        create_method("ijepa", backbone)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("num_targets", 0, "num_targets"),
        ("target_scale", (0.3, 0.2), "target_scale"),
        ("context_scale", (0.5, 1.5), "context_scale"),
        ("loss", "l1", "loss must be one of"),
        ("predictor_width", 18, "width must be a positive multiple"),
    ],
)
def test_invalid_options_are_config_errors(option, value, message):
    with pytest.raises(ConfigError, match=message):
        _ijepa(**{option: value})
