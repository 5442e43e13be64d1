"""Geometric ops: torchvision parity per sample, flips, cutout boxes, pad-and-crop offsets."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF

from labelless.augment.geometry import (
    affine,
    cutout,
    pad_crop,
    random_affine,
    rotate,
    sample_crop_offsets,
    sample_cutout_boxes,
    shear_x,
    shear_y,
    translate_x,
    translate_y,
    vertical_flip,
)
from labelless.errors import ConfigError

from ...helpers import gen, rand_images

torch.set_num_threads(1)

# For the same parameters: nearest matches TF.affine on every pixel in these tests (we allow
# 0.5% of pixels to differ, for source points that fall within float error of a pixel boundary);
# bilinear within 1e-5 (observed max ~5e-6, float32 rounding of the sampling grid).
NEAREST_MAX_DIFFERING = 0.005
BILINEAR_ATOL = 1e-5


def assert_matches(out: torch.Tensor, expected: torch.Tensor, interpolation: str) -> None:
    diff = (out - expected).abs()
    if interpolation == "nearest":
        assert (diff > 1e-6).float().mean().item() <= NEAREST_MAX_DIFFERING
    else:
        assert diff.max().item() <= BILINEAR_ATOL


def each(fn, n: int) -> torch.Tensor:
    return torch.cat([fn(i) for i in range(n)])


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
@pytest.mark.parametrize(("h", "w"), [(20, 24), (17, 31)])
def test_affine_matches_torchvision_per_sample(interpolation, h, w):
    n = 16
    images = rand_images(n=n, h=h, w=w)
    g = gen(1)
    angle = (torch.rand(n, generator=g) - 0.5) * 90
    translate = (torch.rand(n, 2, generator=g) - 0.5) * 10
    scale = 0.6 + 0.8 * torch.rand(n, generator=g)
    shear = (torch.rand(n, 2, generator=g) - 0.5) * 50
    out = affine(
        images,
        angle=angle,
        translate=translate,
        scale=scale,
        shear=shear,
        fill=0.3,
        interpolation=interpolation,
    )
    mode = TF.InterpolationMode(interpolation)
    expected = each(
        lambda i: TF.affine(
            images[i : i + 1],
            angle=angle[i].item(),
            translate=translate[i].tolist(),
            scale=scale[i].item(),
            shear=shear[i].tolist(),
            interpolation=mode,
            fill=0.3,
        ),
        n,
    )
    assert_matches(out, expected, interpolation)
    assert (out - images).abs().mean() > 0.1  # the warps are far from the identity


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_convenience_ops_match_torchvision(interpolation):
    n = 12
    images = rand_images(n=n, h=16, w=16)
    mode = TF.InterpolationMode(interpolation)
    factors = torch.linspace(-0.3, 0.3, n)
    angles = torch.tensor([0.0, 90.0, 180.0, 270.0, -90.0, 30.0, -17.0, 45.0, 5, 120, -150, 1])
    shifts = torch.arange(-6, 6).float()

    def tf_affine(i, **kw):
        base = dict(angle=0.0, translate=[0, 0], scale=1.0, shear=[0.0, 0.0])
        return TF.affine(images[i : i + 1], **(base | kw), interpolation=mode, fill=0.5)

    def shear_deg(i):
        return math.degrees(math.atan(factors[i].item()))

    cases = [
        (
            shear_x(images, factors, 0.5, interpolation),
            lambda i: tf_affine(i, shear=[shear_deg(i), 0.0], center=[0, 0]),
        ),
        (
            shear_y(images, factors, 0.5, interpolation),
            lambda i: tf_affine(i, shear=[0.0, shear_deg(i)], center=[0, 0]),
        ),
        (
            translate_x(images, shifts, 0.5, interpolation),
            lambda i: tf_affine(i, translate=[int(shifts[i]), 0]),
        ),
        (
            translate_y(images, shifts, 0.5, interpolation),
            lambda i: tf_affine(i, translate=[0, int(shifts[i])]),
        ),
        (
            rotate(images, angles, 0.5, interpolation),
            lambda i: TF.rotate(images[i : i + 1], angles[i].item(), interpolation=mode, fill=0.5),
        ),
    ]
    for out, reference in cases:
        assert_matches(out, each(reference, n), interpolation)


def test_affine_identity_integer_moves_and_shape_checks():
    images = rand_images()
    assert torch.equal(affine(images), images)
    out = translate_x(images, 3.0, fill=0.0)
    assert torch.equal(out[..., 3:], images[..., :-3]) and (out[..., :3] == 0).all()
    out = translate_y(images, -2.0, fill=0.0)
    assert torch.equal(out[..., :-2, :], images[..., 2:, :]) and (out[..., -2:, :] == 0).all()
    square = rand_images(h=16, w=16)
    assert torch.equal(rotate(square, 90.0), square.rot90(1, dims=(-2, -1)))
    with pytest.raises(ConfigError, match="shape"):
        affine(images, angle=torch.zeros(3))
    with pytest.raises(ConfigError, match="interpolation"):
        affine(images, interpolation="bicubic")


def test_random_affine_rate_and_parameter_ranges():
    images = torch.zeros(600, 1, 9, 9)
    images[:, :, 4, 4] = 1.0  # a single bright centre pixel: its new place gives the shift
    out = random_affine(images, p=0.5, translate=(0.3, 0.3), generator=gen())
    same = (out == images).flatten(1).all(1)
    assert 0.44 < same.float().mean().item() < 0.56
    moved = out[~same].squeeze(1).flatten(1).argmax(1)
    dy, dx = moved // 9 - 4, moved % 9 - 4  # round(U(-2.7, 2.7)): whole pixels in -3..3
    assert dx.abs().max() == 3 and dy.abs().max() == 3
    assert abs(dx.float().mean().item()) < 0.3 and abs(dy.float().mean().item()) < 0.3
    # rotation only: the image mean is kept up to the corners filled with 0
    flat = torch.full((200, 1, 16, 16), 0.5)
    out = random_affine(flat, degrees=30, generator=gen(1))
    filled = (out == 0).flatten(1).float().mean(1)
    assert filled.max() < 0.2 and (filled > 0).float().mean() > 0.8


def test_vertical_flip_rate_and_content():
    images = rand_images(n=2000, h=4, w=5)
    out = vertical_flip(images, p=0.3, generator=gen())
    flipped = (out == images.flip(-2)).flatten(1).all(1)
    unchanged = (out == images).flatten(1).all(1)
    assert (flipped ^ unchanged).all()
    assert abs(flipped.float().mean().item() - 0.3) < 0.04


def test_cutout_boxes_and_content():
    images = rand_images(n=500, h=12, w=16)
    out = cutout(images, 6, fill=0.5, generator=gen())
    boxes = sample_cutout_boxes(500, 12, 16, 6, gen())
    top, left, bottom, right = boxes.unbind(1)
    assert (top >= 0).all() and (bottom <= 12).all() and (left >= 0).all() and (right <= 16).all()
    assert ((bottom - top) <= 6).all() and ((bottom - top) == 6).float().mean() > 0.4
    for i, (t, lft, b, r) in enumerate(boxes[:50].tolist()):
        expected = images[i].clone()
        expected[:, t:b, lft:r] = 0.5
        assert torch.equal(out[i], expected)
    # the centre pixel is uniform: row r is covered for centres r - 2 .. r + 3 (of 0 .. 11)
    boxes = sample_cutout_boxes(4000, 12, 16, 6, gen(2))
    rows = torch.arange(12)
    covered = (rows >= boxes[:, :1]) & (rows < boxes[:, 2:3])
    expected = torch.tensor([len(set(range(r - 2, r + 4)) & set(range(12))) / 12 for r in rows])
    torch.testing.assert_close(covered.float().mean(0), expected, atol=0.03, rtol=0)
    # p: selected samples get a box, others none; a float size is a fraction of the shorter side
    out = cutout(images, 0.5, p=0.3, fill=2.0, generator=gen(1))
    hit = (out == 2.0).flatten(1).any(1)
    assert abs(hit.float().mean().item() - 0.3) < 0.07
    assert (out == 2.0).flatten(2).sum(2).max().item() == 36


@pytest.mark.parametrize("mode", ["reflect", "constant", "replicate"])
def test_pad_crop_equals_pad_and_slice(mode):
    images = rand_images(n=40, h=10, w=12)
    out = pad_crop(images, 4, generator=gen(), mode=mode)
    offsets = sample_crop_offsets(40, 4, gen())
    padded = F.pad(images, [4, 4, 4, 4], mode=mode)
    for i, (top, left) in enumerate(offsets.tolist()):
        assert torch.equal(out[i], padded[i, :, top : top + 10, left : left + 12])
    assert offsets.min() == 0 and offsets.max() == 8  # 0..2 * padding, both ends reached
    assert torch.equal(pad_crop(images, 0, generator=gen()), images)
    with pytest.raises(ConfigError, match="mode"):
        pad_crop(images, 2, mode="wrap")


def test_seeded_reproducibility():
    images = rand_images()
    for fn in (
        lambda g: random_affine(images, degrees=20, scale=(0.8, 1.2), shear=10, generator=g),
        lambda g: cutout(images, 5, generator=g),
        lambda g: pad_crop(images, 3, generator=g),
    ):
        assert torch.equal(fn(gen(3)), fn(gen(3)))
        assert not torch.equal(fn(gen(3)), fn(gen(4)))
