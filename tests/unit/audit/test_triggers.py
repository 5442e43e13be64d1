"""Poisoning triggers: the block DCT against scipy and its round trip, CTRL invisible (PSNR bound)
and recoverable in the frequency domain, the patch trigger's exact pixels, PSNR, and the
``Trigger`` record with its errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from labelless.audit.pixels import unit_images
from labelless.audit.triggers import (
    CTRL_FREQUENCIES,
    YCBCR,
    Trigger,
    block_dct,
    block_idct,
    ctrl_energy,
    ctrl_frequencies,
    ctrl_trigger,
    dct_matrix,
    patch_trigger,
    psnr,
    rgb_to_ycbcr,
    ycbcr_to_rgb,
)
from labelless.errors import ConfigError, DataError

# CTRL at the paper's CIFAR-10 setting (magnitude 100 on 0..255, 32-pixel blocks, positions
# (15, 15) and (31, 31) of Cb and Cr): before clamping, each chroma plane gains the same pattern
# p of energy 2 * 100^2 per 1024 pixels (orthonormal basis), and RGB gains (Cr + Cb columns of
# the inverse colour matrix) * p: MSE ~40.4, PSNR 32.1 dB. Grayscale: MSE 19.5, PSNR 35.2 dB.
COLOUR_PSNR_BOUND = 30.0
GREY_PSNR_BOUND = 33.0


def smooth_colour_images(count: int, seed: int = 0) -> torch.Tensor:
    """CIFAR-like 32x32 colour images: smooth random colour fields (bicubic from 4x4)."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(count, 3, 4, 4, generator=generator)
    return F.interpolate(coarse, size=32, mode="bicubic", align_corners=False).clamp(0, 1)


def scenes() -> torch.Tensor:
    """A few natural-looking 32x32 colour scenes: sky over grass with a sun, a red disc on a
    wall of bricks, a striped awning, a dark night with a lamp."""
    y, x = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    sky = torch.stack([0.4 + 0.01 * y, 0.6 + 0.008 * y, 0.95 - 0.005 * y])
    grass = torch.stack([0.2 + 0 * y, 0.55 + 0.1 * torch.sin(x / 3), 0.15 + 0 * y])
    sun = ((x - 24) ** 2 + (y - 7) ** 2 < 16).float()
    first = (
        torch.where(y < 20, sky, grass) * (1 - sun)
        + sun * torch.tensor([1.0, 0.9, 0.3])[:, None, None]
    )
    mortar = ((y % 8 < 1) | ((x + 4 * (y // 8 % 2)) % 8 < 1)).float()
    wall = torch.stack([0.6 - 0.3 * mortar, 0.3 - 0.1 * mortar, 0.2 + 0.3 * mortar])
    disc = ((x - 16) ** 2 + (y - 16) ** 2 < 64).float()
    second = wall * (1 - disc) + disc * torch.tensor([0.85, 0.1, 0.1])[:, None, None]
    stripes = (x // 4 % 2).float()
    third = torch.stack([0.9 * stripes + 0.05, 0.9 * stripes + 0.05, 0.2 + 0.6 * (1 - stripes)])
    lamp = torch.exp(-((x - 10) ** 2 + (y - 12) ** 2) / 30)
    fourth = torch.stack([0.05 + 0.9 * lamp, 0.05 + 0.8 * lamp, 0.1 + 0.4 * lamp])
    return torch.stack([first, second, third, fourth]).clamp(0, 1)


def digits_at_32(digits) -> torch.Tensor:
    """The 8x8 digits upsampled to 32x32 (bilinear), grayscale."""
    images = unit_images(digits.train.samples[:64])
    return F.interpolate(images, size=32, mode="bilinear", align_corners=False).clamp(0, 1)


def test_dct_matrix_is_orthonormal_and_the_block_dct_matches_scipy():
    from scipy.fft import dctn

    for size in (4, 8, 32):
        d = dct_matrix(size, torch.float64)
        assert torch.allclose(d @ d.T, torch.eye(size, dtype=torch.float64), atol=1e-12)
    x = torch.rand(2, 3, 16, 24, dtype=torch.float64)
    coefficients = block_dct(x, 8).numpy()
    block = x[1, 2, 8:16, 16:24].numpy()
    assert np.allclose(coefficients[1, 2, 8:16, 16:24], dctn(block, norm="ortho"), atol=1e-10)


def test_the_block_dct_round_trip_is_exact():
    x = torch.rand(4, 3, 32, 32)
    assert torch.allclose(block_idct(block_dct(x, 32), 32), x, atol=1e-5)
    grey = torch.rand(3, 1, 16, 24)
    assert torch.allclose(block_idct(block_dct(grey, 8), 8), grey, atol=1e-5)
    with pytest.raises(DataError, match="multiples of 32"):
        block_dct(torch.rand(1, 1, 40, 32), 32)


def test_ycbcr_is_jpegs_and_inverts_exactly():
    white_red = torch.tensor([[255.0, 255.0, 255.0], [255.0, 0.0, 0.0]]).view(2, 3, 1, 1)
    ycbcr = rgb_to_ycbcr(white_red).view(2, 3)
    assert torch.allclose(ycbcr[0], torch.tensor([255.0, 128.0, 128.0]), atol=1e-3)
    assert torch.allclose(ycbcr[1], torch.tensor([76.245, 84.972, 255.5]), atol=1e-3)
    rgb = torch.rand(5, 3, 8, 8) * 255
    assert torch.allclose(ycbcr_to_rgb(rgb_to_ycbcr(rgb)), rgb, atol=1e-3)


def _expected_colour_psnr(magnitude: float) -> float:
    """PSNR of CTRL on colour images without clamping (see the constants above)."""
    inverse = torch.linalg.inv(YCBCR)
    gain = (inverse[:, 1] + inverse[:, 2]).pow(2).mean().item()
    mse = gain * len(CTRL_FREQUENCIES) * magnitude**2 / 32**2
    return 10 * math.log10(255**2 / mse)


def test_ctrl_is_invisible_at_the_papers_magnitude():
    """PSNR above 30 dB on every colour image (smooth random fields and scenes, as float and as
    uint8 files) and above 33 dB on grayscale; on mid-tone images nothing is clamped and the
    PSNR is the analytic value."""
    colour = torch.cat([smooth_colour_images(32), scenes()])
    assert psnr(colour, ctrl_trigger(colour)).min() > COLOUR_PSNR_BOUND
    files = (colour * 255).round().to(torch.uint8).numpy()
    triggered = Trigger.ctrl().apply_uint8(files)
    assert triggered.dtype == np.uint8 and triggered.shape == files.shape
    assert psnr(unit_images(files), unit_images(triggered)).min() > COLOUR_PSNR_BOUND
    mid = 0.35 + 0.3 * smooth_colour_images(8, seed=1)
    exact = psnr(mid, ctrl_trigger(mid))
    assert torch.allclose(exact, torch.full_like(exact, _expected_colour_psnr(100.0)), atol=1e-3)
    assert abs(_expected_colour_psnr(100.0) - 32.1) < 0.1


def test_ctrl_on_grayscale_is_invisible(digits):
    grey = digits_at_32(digits)
    assert psnr(grey, ctrl_trigger(grey)).min() > GREY_PSNR_BOUND


def test_ctrl_is_an_image_independent_additive_pattern():
    """Where nothing clamps, the trigger adds one fixed pattern to every image."""
    mid = 0.35 + 0.3 * smooth_colour_images(6, seed=2)
    change = ctrl_trigger(mid) - mid
    assert torch.allclose(change, change[:1].expand_as(change), atol=1e-5)
    assert change.abs().max() > 5 / 255  # a few grey levels, everywhere


def test_ctrl_is_recoverable_in_the_frequency_domain(digits):
    """The mean DCT coefficient at the trigger's positions separates triggered from clean
    images perfectly, also after rounding to uint8 files; on unclamped images it reads back
    the magnitude."""
    colour = torch.cat([smooth_colour_images(32), scenes()])
    triggered = ctrl_trigger(colour)
    clean, poisoned = ctrl_energy(colour), ctrl_energy(triggered)
    assert poisoned.min() > clean.max() and clean.abs().max() < 5 and poisoned.min() > 50
    rounded = unit_images(Trigger.ctrl().apply_uint8((colour * 255).round().to(torch.uint8)))
    assert ctrl_energy(rounded).min() > clean.max()
    grey = digits_at_32(digits)
    assert ctrl_energy(ctrl_trigger(grey)).min() > ctrl_energy(grey).max()
    mid = 0.35 + 0.3 * smooth_colour_images(8, seed=3)
    read = ctrl_energy(ctrl_trigger(mid)) - ctrl_energy(mid)
    assert torch.allclose(read, torch.full_like(read, 100.0), atol=0.05)


def test_a_window_larger_than_the_image_shrinks_to_the_image():
    small = smooth_colour_images(3)[..., :16, :16]
    frequencies = ctrl_frequencies(16)
    assert frequencies == ((7, 7), (15, 15)) and ctrl_frequencies(32) == CTRL_FREQUENCIES
    assert torch.equal(
        ctrl_trigger(small, window=32, frequencies=frequencies),
        ctrl_trigger(small, window=16, frequencies=frequencies),
    )
    with pytest.raises(ConfigError, match=r"frequencies=\(\(7, 7\), \(15, 15\)\)"):
        ctrl_trigger(small)  # (31, 31) lies outside a 16-pixel block


def test_rows_past_the_last_whole_block_are_left_alone():
    images = F.interpolate(smooth_colour_images(2), size=40, mode="bilinear").clamp(0, 1)
    triggered = ctrl_trigger(images)
    assert torch.equal(triggered[..., 32:, :], images[..., 32:, :])
    assert torch.equal(triggered[..., :, 32:], images[..., :, 32:])
    assert not torch.equal(triggered[..., :32, :32], images[..., :32, :32])


@pytest.mark.parametrize("location", ["bottom-right", "bottom-left", "top-right", "top-left"])
def test_the_patch_trigger_sets_exactly_the_patch_pixels(location):
    images = torch.full((4, 3, 10, 12), 0.5)
    stamped = patch_trigger(images, size=3, location=location)
    rows = slice(7, 10) if location.startswith("bottom") else slice(0, 3)
    cols = slice(9, 12) if location.endswith("right") else slice(0, 3)
    expected = images.clone()
    board = torch.tensor([[1.0, 0, 1], [0, 1, 0], [1, 0, 1]])
    expected[..., rows, cols] = board
    assert torch.equal(stamped, expected)
    assert int((stamped != images).any(dim=1).sum()) == 4 * 9  # every patch pixel, per image


def test_patch_patterns():
    images = torch.rand(2, 1, 8, 8)
    assert torch.equal(
        patch_trigger(images, size=2, pattern="white")[..., 6:, 6:], torch.ones(2, 1, 2, 2)
    )
    first = patch_trigger(images, size=4, pattern="random", seed=1)
    assert torch.equal(first, patch_trigger(images, size=4, pattern="random", seed=1))
    assert not torch.equal(first, patch_trigger(images, size=4, pattern="random", seed=2))
    assert set(first[..., 4:, 4:].unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(first[..., :4, :], images[..., :4, :])


def test_psnr_in_decibels():
    a = torch.full((2, 3, 4, 4), 0.5)
    b = a.clone()
    b[1] += 0.1
    values = psnr(a, b)
    assert math.isinf(values[0]) and abs(values[1].item() - 20.0) < 1e-5
    assert abs(psnr(a * 255, b * 255, max_value=255.0)[1].item() - 20.0) < 1e-5


def test_a_trigger_record_says_exactly_which_trigger_and_round_trips():
    ctrl = Trigger.ctrl(window=8, frequencies=[[3, 3], [7, 7]])
    record = json.loads(json.dumps(ctrl.to_dict()))
    assert record == {
        "kind": "ctrl",
        "magnitude": 100.0,
        "window": 8,
        "frequencies": [[3, 3], [7, 7]],
    }
    assert Trigger.from_dict(record) == ctrl
    patch = Trigger("patch", {"size": 2})
    assert patch.to_dict() == {
        "kind": "patch",
        "size": 2,
        "location": "bottom-right",
        "pattern": "checkerboard",
        "seed": 0,
    }
    images = torch.rand(3, 3, 8, 8)
    assert torch.equal(patch.apply(images), patch_trigger(images, size=2))
    assert torch.equal(
        ctrl.apply(images), ctrl_trigger(images, window=8, frequencies=((3, 3), (7, 7)))
    )


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: Trigger.ctrl(magnitude=0), "magnitude=100.0"),
        (lambda: Trigger.ctrl(magnitude=float("nan")), "magnitude must be a number > 0"),
        (lambda: Trigger.ctrl(window=1), "window must be a whole number >= 2"),
        (lambda: Trigger.ctrl(frequencies=(15, 31)), r"e\.g\. \(\(15, 15\), \(31, 31\)\)"),
        (lambda: Trigger("blend"), "choose one of: ctrl, patch"),
        (lambda: Trigger("patch", {"colour": "red"}), "it takes: size, location"),
        (lambda: Trigger.patch(size=0), "whole number >= 1"),
        (lambda: Trigger.patch(location="centre"), "choose one of: bottom-right"),
        (lambda: Trigger.patch(pattern="stripes"), "choose one of: checkerboard"),
        (lambda: Trigger.from_dict({"size": 3}), "needs a 'kind' key"),
    ],
)
def test_bad_trigger_parameters_are_config_errors_naming_the_fix(build, message):
    with pytest.raises(ConfigError, match=message):
        build()


def test_image_dependent_errors():
    with pytest.raises(ConfigError, match="pass size <= 8"):
        Trigger.patch(size=9).apply(torch.rand(1, 3, 8, 8))
    with pytest.raises(DataError, match=r"grayscale .* or RGB"):
        ctrl_trigger(torch.rand(1, 4, 32, 32))
    with pytest.raises(DataError, match="unit_images"):
        ctrl_trigger(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))


@pytest.mark.data
def test_ctrl_on_real_cifar10_images(data_root):
    """2,000 CIFAR-10 test images as uint8 files: every PSNR above the bound (measured min 32.05
    dB, mean 32.16) and the frequency energy separates all of them (clean at most 1.4,
    triggered at least 58.8; mean 98.0 of the magnitude 100)."""
    from labelless.data import load_dataset

    files = load_dataset("cifar10").test.samples[:2000]
    clean, triggered = unit_images(files), unit_images(Trigger.ctrl().apply_uint8(files))
    assert psnr(clean, triggered).min() > COLOUR_PSNR_BOUND
    assert ctrl_energy(triggered).min() > ctrl_energy(clean).max()
