"""Batched pixel ops: torchvision parity per sample, probabilities, batch style standardisation."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision.transforms.v2.functional as TF

from labelless.augment.image import to_float
from labelless.augment.pixel import (
    adjust_sharpness,
    autocontrast,
    batch_style_standardization,
    equalize,
    invert,
    low_frequency_mask,
    posterize,
    random_autocontrast,
    random_equalize,
    random_invert,
    random_posterize,
    random_sharpness,
)
from labelless.errors import ConfigError

from ...helpers import gen


def rand_uint8(n: int = 8, c: int = 3, h: int = 12, w: int = 14, seed: int = 0) -> torch.Tensor:
    """Random uint8 images, with a few hard cases: constant, two levels, a narrow value range."""
    images = torch.randint(0, 256, (n, c, h, w), dtype=torch.uint8, generator=gen(seed))
    images[0] = 77  # constant: equalize and autocontrast leave it alone
    images[1] = torch.where(images[1] > 127, 200, 30).to(torch.uint8)  # two levels
    images[2] = 100 + images[2] % 20  # low contrast
    return images


def per_sample(fn, images, params) -> torch.Tensor:
    """``fn`` applied to each sample with its own parameter (a Python number)."""
    return torch.cat([fn(x[None], p.item()) for x, p in zip(images, params, strict=True)])


# ---- torchvision parity -----------------------------------------------------------------------


@pytest.mark.parametrize("c", [1, 3])
def test_invert_matches_torchvision(c):
    images = rand_uint8(c=c)
    expected = to_float(TF.invert(images))
    torch.testing.assert_close(invert(to_float(images)), expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("c", [1, 3])
def test_posterize_per_sample_bits_matches_torchvision_exactly(c):
    images = rand_uint8(c=c)
    bits = torch.tensor([1, 2, 3, 4, 5, 6, 7, 8])
    expected = to_float(per_sample(TF.posterize, images, bits))
    assert torch.equal(posterize(to_float(images), bits), expected)
    assert torch.equal(posterize(to_float(images), 3), to_float(TF.posterize(images, 3)))


@pytest.mark.parametrize("c", [1, 3])
def test_equalize_matches_torchvision_exactly(c):
    images = rand_uint8(c=c)
    images[3, :, :6] = 255  # saturated: the brightest level does not count towards the step
    assert torch.equal(equalize(to_float(images)), to_float(TF.equalize(images)))
    assert torch.equal(equalize(to_float(images[:1])), to_float(images[:1]))  # constant: kept


@pytest.mark.parametrize("c", [1, 3])
def test_autocontrast_matches_torchvision(c):
    x = to_float(rand_uint8(c=c))
    torch.testing.assert_close(autocontrast(x), TF.autocontrast(x), atol=1e-5, rtol=0)
    stretched = autocontrast(x[1:])
    assert torch.equal(stretched.amin(dim=(2, 3)), torch.zeros(7, c))
    assert torch.equal(stretched.amax(dim=(2, 3)), torch.ones(7, c))


@pytest.mark.parametrize("c", [1, 3])
def test_sharpness_per_sample_factor_matches_torchvision(c):
    x = to_float(rand_uint8(c=c))
    factors = torch.tensor([0.0, 0.3, 0.9, 1.0, 1.4, 2.0, 3.5, 0.6])
    expected = per_sample(TF.adjust_sharpness, x, factors)
    torch.testing.assert_close(adjust_sharpness(x, factors), expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(
        adjust_sharpness(x, 1.7), TF.adjust_sharpness(x, 1.7), atol=1e-5, rtol=0
    )
    out = adjust_sharpness(x, factors)
    assert torch.equal(out[..., 0, :], x[..., 0, :]) and torch.equal(out[..., -1], x[..., -1])
    tiny = x[:, :, :2]
    assert torch.equal(adjust_sharpness(tiny, 0.0), tiny)  # no interior to smooth


@pytest.mark.parametrize(
    "op",
    [equalize, autocontrast, lambda x: adjust_sharpness(x, 1.8), lambda x: posterize(x, 2)],
)
def test_ops_work_per_channel_for_any_channel_count(op):
    x = to_float(rand_uint8(c=4))
    channels = torch.cat([op(x[:, i : i + 1]) for i in range(4)], dim=1)
    torch.testing.assert_close(op(x), channels, atol=1e-6, rtol=0)


def test_invalid_parameters_are_config_errors():
    x = to_float(rand_uint8(n=3))
    with pytest.raises(ConfigError, match="bits"):
        posterize(x, 0)
    with pytest.raises(ConfigError, match="bits"):
        posterize(x, torch.tensor([3, 9, 4]))
    with pytest.raises(ConfigError, match="sharpness"):
        adjust_sharpness(x, -0.5)
    with pytest.raises(ConfigError, match="probability"):
        random_invert(x, p=1.5)
    with pytest.raises(ConfigError, match="factor_range"):
        random_sharpness(x, factor_range=(1.5, 0.5))


# ---- probability wrappers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wrapper", "op"),
    [
        (random_invert, invert),
        (lambda x, p, g: random_posterize(x, p, 2, g), lambda x: posterize(x, 2)),
        (random_equalize, equalize),
        (random_autocontrast, autocontrast),
        (lambda x, p, g: random_sharpness(x, p, 2.5, g), lambda x: adjust_sharpness(x, 2.5)),
    ],
)
def test_random_wrappers_apply_to_about_p_of_the_samples(wrapper, op):
    x = to_float(rand_uint8(n=1000, c=1, h=16, w=16, seed=1))
    out = wrapper(x, 0.3, gen())
    transformed, differs = op(x), (op(x) != x).flatten(1).any(1)
    applied = (out == transformed).flatten(1).all(1) & differs
    kept = (out == x).flatten(1).all(1)
    assert (applied | kept).all()  # every sample is either transformed or untouched
    rate = applied.sum().item() / differs.sum().item()
    assert abs(rate - 0.3) < 3 * math.sqrt(0.3 * 0.7 / differs.sum().item()) + 0.01
    assert torch.equal(wrapper(x, 0.3, gen(5)), wrapper(x, 0.3, gen(5)))  # seeded
    assert not torch.equal(wrapper(x, 0.3, gen(5)), wrapper(x, 0.3, gen(6)))
    assert torch.equal(wrapper(x, 0.0, gen()), x)


def test_random_sharpness_factors_uniform_in_range():
    # values in 0.25..0.75 so factors up to 1.5 never clamp; recover each factor by least squares
    x = 0.25 + 0.5 * torch.rand(1000, 1, 6, 6, generator=gen())
    out = random_sharpness(x, p=1.0, factor_range=(0.5, 1.5), generator=gen(1))
    smooth = adjust_sharpness(x, 0.0)[..., 1:-1, 1:-1]
    detail = (x[..., 1:-1, 1:-1] - smooth).flatten(1)
    change = (out[..., 1:-1, 1:-1] - smooth).flatten(1)
    factor = (change * detail).sum(1) / (detail * detail).sum(1)
    assert factor.min() >= 0.5 - 1e-4 and factor.max() <= 1.5 + 1e-4
    assert abs(factor.mean().item() - 1.0) < 0.03
    assert abs(factor.std().item() - 1 / math.sqrt(12)) < 0.02


# ---- batch style standardisation --------------------------------------------------------------


def _style_index(out: torch.Tensor, images: torch.Tensor, mask: torch.Tensor | None = None) -> int:
    """The image whose amplitude spectrum (inside ``mask``) the first output carries."""
    difference = torch.fft.fft2(out[:1]).abs() - torch.fft.fft2(images).abs()
    if mask is not None:
        difference = difference * mask
    distance = difference.flatten(1).abs().amax(1)
    return int(distance.argmin())


@pytest.mark.parametrize("c", [1, 3])
def test_bss_shares_one_amplitude_and_keeps_each_phase(c):
    images = to_float(rand_uint8(n=6, c=c, h=16, w=16, seed=2))[3:].double()
    images = torch.cat([images, torch.rand(3, c, 16, 16, generator=gen(3), dtype=torch.float64)])
    out = batch_style_standardization(images, gen(4), clamp=False)
    assert out.shape == images.shape and out.dtype == torch.float64
    style = _style_index(out, images)
    spectrum_in, spectrum_out = torch.fft.fft2(images), torch.fft.fft2(out)
    style_amplitude = spectrum_in[style].abs().expand_as(spectrum_in)
    torch.testing.assert_close(spectrum_out.abs(), style_amplitude, atol=1e-8, rtol=1e-8)
    defined = (spectrum_in.abs() > 1e-6) & (style_amplitude > 1e-6)
    phase_in = spectrum_in / spectrum_in.abs().clamp_min(1e-12)
    phase_out = spectrum_out / spectrum_out.abs().clamp_min(1e-12)
    assert defined.float().mean() > 0.99
    torch.testing.assert_close(phase_out[defined], phase_in[defined], atol=1e-6, rtol=0)
    torch.testing.assert_close(out[style], images[style], atol=1e-10, rtol=0)  # its own style


def test_bss_low_frequency_swap_only_inside_the_square():
    mask = low_frequency_mask(16, 16, 0.5)
    assert mask.sum() == 81 and mask[0, 0] and not mask[8, 8]  # |k| <= 4 on each axis
    assert low_frequency_mask(16, 12, 1.0).all()
    images = torch.rand(5, 3, 16, 16, generator=gen(), dtype=torch.float64)
    out = batch_style_standardization(images, gen(1), beta=0.5, clamp=False)
    style = _style_index(out, images, mask)
    assert style != 0  # so the first output does change
    amplitude_in, amplitude_out = torch.fft.fft2(images).abs(), torch.fft.fft2(out).abs()
    expected = torch.where(mask, amplitude_in[style], amplitude_in)
    torch.testing.assert_close(amplitude_out, expected, atol=1e-8, rtol=1e-8)


def test_bss_reproducible_clamped_and_style_drawn_uniformly():
    images = to_float(rand_uint8(n=4, c=3, h=8, w=8, seed=5))
    out = batch_style_standardization(images, gen(7))
    assert out.shape == images.shape and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1
    assert torch.equal(out, batch_style_standardization(images, gen(7)))
    draws = [batch_style_standardization(images, gen(s), clamp=False) for s in range(200)]
    styles = [_style_index(draw, images) for draw in draws]
    counts = torch.bincount(torch.tensor(styles), minlength=4)
    assert (counts > 30).all()  # 50 expected each
    with pytest.raises(ConfigError, match="beta"):
        batch_style_standardization(images, beta=0.0)
