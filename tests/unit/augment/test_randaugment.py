"""RandAugment: torchvision's table, batched == per sample, op parity with TF, uniform op choice."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision.transforms.v2.functional as TF
from torchvision.transforms.v2 import RandAugment

from labelless.augment.randaugment import (
    RANDAUGMENT_OPS,
    apply_op,
    apply_rand_augment,
    blend_ops,
    magnitude_ranges,
    rand_augment,
    sample_rand_augment,
)
from labelless.errors import ConfigError

from ...helpers import gen

torch.set_num_threads(1)

# torchvision's tensor grayscale uses 0.2989 for red, ITU-R 601-2 (ours) 0.299: up to 1e-4 apart.
GRAY_ATOL = 1.5e-4


def uint8_levels(n: int = 8, c: int = 3, h: int = 20, w: int = 24, seed: int = 0) -> torch.Tensor:
    """Float images on the 256 uint8 levels, where posterize and equalize are defined exactly."""
    return torch.randint(0, 256, (n, c, h, w), generator=gen(seed)).float() / 255


def per_sample(images, draws, **kw) -> torch.Tensor:
    """Reference: each sample alone, its drawn ops in order, through ``apply_op``."""
    outs = []
    for i in range(images.shape[0]):
        x = images[i : i + 1]
        for ops, magnitudes in zip(draws.ops, draws.magnitudes, strict=True):
            x = apply_op(x, RANDAUGMENT_OPS[int(ops[i])], magnitudes[i : i + 1], **kw)
        outs.append(x)
    return torch.cat(outs)


def test_table_and_magnitudes_match_torchvision():
    space = RandAugment._AUGMENTATION_SPACE
    assert tuple(space) == RANDAUGMENT_OPS
    at_zero, at_last, signed = magnitude_ranges(20, 24)
    for k, name in enumerate(RANDAUGMENT_OPS):
        table, tv_signed = space[name]
        assert bool(signed[k]) == tv_signed
        values = table(31, 20, 24)
        if values is None:
            assert at_zero[k] == at_last[k] == 0
            continue
        ours = at_zero[k] + (at_last[k] - at_zero[k]) * torch.arange(31) / 30
        ours = ours.round() if name == "Posterize" else ours
        torch.testing.assert_close(ours.float(), values.float(), atol=1e-5, rtol=0)
    # fixed magnitude: every draw is the table's value at bin 9, with a sign for signed ops
    draws = sample_rand_augment(2000, 20, 24, magnitude=9, generator=gen())
    expected = (at_zero + (at_last - at_zero) * 9 / 30).float()
    expected[RANDAUGMENT_OPS.index("Posterize")] = 7.0
    torch.testing.assert_close(draws.magnitudes.abs(), expected[draws.ops].abs())
    negative = (draws.magnitudes < 0)[signed[draws.ops]]
    assert abs(negative.float().mean().item() - 0.5) < 0.03


@pytest.mark.parametrize(("random_magnitude", "channels"), [(False, 3), (True, 3), (True, 1)])
def test_batched_equals_each_sample_alone(random_magnitude, channels):
    images = uint8_levels(n=48, c=channels, h=16, w=16)
    draws = sample_rand_augment(
        48, 16, 16, num_ops=3, magnitude=20, random_magnitude=random_magnitude, generator=gen()
    )
    assert (draws.ops[0] == RANDAUGMENT_OPS.index("Color")).any()
    out = apply_rand_augment(images, draws, fill=0.5)
    expected = per_sample(images, draws, fill=0.5)
    torch.testing.assert_close(out, expected, atol=0, rtol=0)  # exact, any channel count
    assert not torch.equal(out, images) and (out >= 0).all() and (out <= 1).all()
    # rand_augment itself: the same draws from the same seed
    same = rand_augment(
        images, num_ops=3, magnitude=20, generator=gen(), random_magnitude=random_magnitude
    )
    assert torch.equal(same, out)


def test_blend_ops_equal_each_op_alone():
    images = uint8_levels(n=9)
    names = ["Brightness", "Color", "Contrast"] * 3
    ops = torch.tensor([RANDAUGMENT_OPS.index(name) for name in names])
    magnitudes = torch.tensor([-0.9, -0.5, 0.0, 0.3, 0.9, -0.2, 0.7, 0.1, -0.8])
    out = blend_ops(images, ops, magnitudes)
    for i, name in enumerate(names):
        alone = apply_op(images[i : i + 1], name, magnitudes[i : i + 1])
        assert torch.equal(out[i : i + 1], alone), name


def torchvision_op(image: torch.Tensor, name: str, magnitude: float) -> torch.Tensor:
    """torchvision's RandAugment op on one float image, its own magnitude conventions."""
    fill = 0.5
    if name in ("ShearX", "ShearY"):
        degrees = math.degrees(math.atan(magnitude))
        shear = [degrees, 0.0] if name == "ShearX" else [0.0, degrees]
        return TF.affine(image, 0.0, [0, 0], 1.0, shear, fill=fill, center=[0, 0])
    if name in ("TranslateX", "TranslateY"):
        shift = [int(magnitude), 0] if name == "TranslateX" else [0, int(magnitude)]
        return TF.affine(image, 0.0, shift, 1.0, [0.0, 0.0], fill=fill)
    if name == "Posterize":  # uint8 semantics: keep the highest bits of each level
        return TF.posterize((image * 255).round().to(torch.uint8), int(magnitude)).float() / 255
    calls = {
        "Rotate": lambda: TF.rotate(image, magnitude, fill=fill),
        "Brightness": lambda: TF.adjust_brightness(image, 1.0 + magnitude),
        "Color": lambda: TF.adjust_saturation(image, 1.0 + magnitude),
        "Contrast": lambda: TF.adjust_contrast(image, 1.0 + magnitude),
        "Sharpness": lambda: TF.adjust_sharpness(image, 1.0 + magnitude),
        "Solarize": lambda: TF.solarize(image, magnitude),
        "AutoContrast": lambda: TF.autocontrast(image),
        "Equalize": lambda: TF.equalize(image),
    }
    return calls[name]()


@pytest.mark.parametrize("name", RANDAUGMENT_OPS[1:])
def test_each_op_matches_torchvision(name):
    images = uint8_levels(n=400, h=12, w=14, seed=1)
    draws = sample_rand_augment(
        400, 12, 14, num_ops=1, magnitude=30, random_magnitude=True, generator=gen(2)
    )
    chosen = (draws.ops[0] == RANDAUGMENT_OPS.index(name)).nonzero().squeeze(1)[:6]
    assert len(chosen) == 6
    x, magnitudes = images[chosen], draws.magnitudes[0, chosen]
    out = apply_op(x, name, magnitudes, fill=0.5)
    expected = torch.cat(
        [torchvision_op(x[i : i + 1], name, magnitudes[i].item()) for i in range(6)]
    )
    atol = GRAY_ATOL if name in ("Color", "Contrast") else 1e-5
    torch.testing.assert_close(out, expected, atol=atol, rtol=0)


def test_op_choice_is_uniform():
    draws = sample_rand_augment(3000, 32, 32, num_ops=2, generator=gen())
    counts = torch.bincount(draws.ops.flatten(), minlength=14).double()
    expected = 6000 / 14
    chi_square = ((counts - expected) ** 2 / expected).sum().item()
    assert chi_square < 36.1  # 99.9th percentile of chi-square with 13 degrees of freedom
    # the two steps draw independently: same-op pairs occur at rate 1/14
    assert abs((draws.ops[0] == draws.ops[1]).double().mean().item() - 1 / 14) < 0.015
    # random magnitude: |m| / |m at bin 30| is uniform on [0, 9 / 30], mean 0.15
    draws = sample_rand_augment(4000, 32, 32, random_magnitude=True, generator=gen(1))
    rotations = draws.magnitudes[draws.ops == RANDAUGMENT_OPS.index("Rotate")].abs() / 30
    assert rotations.max() <= 0.3 + 1e-6 and abs(rotations.mean().item() - 0.15) < 0.01


def test_excluded_ops_are_never_drawn_and_the_rest_stay_uniform():
    exclude = ("Solarize", "Equalize", "Posterize")
    draws = sample_rand_augment(3000, 8, 8, num_ops=2, exclude=exclude, generator=gen(2))
    counts = torch.bincount(draws.ops.flatten(), minlength=14).double()
    banned = [RANDAUGMENT_OPS.index(name) for name in exclude]
    assert counts[banned].sum() == 0
    kept = counts[[i for i in range(14) if i not in banned]]
    expected = 6000 / 11
    chi_square = ((kept - expected) ** 2 / expected).sum().item()
    assert chi_square < 29.6  # 99.9th percentile of chi-square with 10 degrees of freedom
    with pytest.raises(ConfigError, match="Solarise"):
        sample_rand_augment(4, 8, 8, exclude=("Solarise",))
    with pytest.raises(ConfigError, match="no op"):
        sample_rand_augment(4, 8, 8, exclude=RANDAUGMENT_OPS)


def test_one_channel_colour_is_identity_and_seeds():
    gray = uint8_levels(n=6, c=1)
    assert torch.equal(apply_op(gray, "Color", torch.full((6,), -0.9)), gray)
    out = rand_augment(gray, generator=gen(3))
    assert out.shape == gray.shape and torch.isfinite(out).all()
    images = uint8_levels(n=16)
    assert torch.equal(
        rand_augment(images, generator=gen(5)), rand_augment(images, generator=gen(5))
    )
    assert not torch.equal(
        rand_augment(images, generator=gen(5)), rand_augment(images, generator=gen(6))
    )
    assert torch.equal(rand_augment(images, num_ops=0, generator=gen()), images)


def test_invalid_arguments_are_config_errors():
    images = uint8_levels(n=2)
    with pytest.raises(ConfigError, match="magnitude"):
        rand_augment(images, magnitude=31)
    with pytest.raises(ConfigError, match="num_ops"):
        rand_augment(images, num_ops=-1)
    with pytest.raises(ConfigError, match="Rotate"):
        apply_op(images, "Rotation", torch.zeros(2))
