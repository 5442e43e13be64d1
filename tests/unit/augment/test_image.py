"""Batched augmentation: distributions, torchvision parity for equal factors, pipeline outputs."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from torchvision.transforms import RandomResizedCrop

from labelless.augment import (
    EvalTransform,
    ViewPipeline,
    ViewSpec,
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    color_jitter,
    crop_and_resize,
    gaussian_blur,
    horizontal_flip,
    list_recipes,
    random_grayscale,
    random_resized_crop,
    rgb_to_grayscale,
    sample_crop_boxes,
    solarize,
    view_recipe,
)
from labelless.augment.image import JITTER_OPS, jitter_parameters
from labelless.errors import ConfigError

from ...helpers import gen, rand_images

# torchvision's tensor grayscale uses 0.2989 for red, ITU-R 601-2 (ours) 0.299: up to 1e-4 apart.
GRAY_ATOL = 1.5e-4


def per_sample(fn, images, factors) -> torch.Tensor:
    return torch.cat([fn(img[None], float(f)) for img, f in zip(images, factors, strict=True)])


# ---- geometry ---------------------------------------------------------------------------------


def test_crop_boxes_inside_image_and_ranges():
    boxes = sample_crop_boxes(4000, 96, 128, generator=gen())
    top, left, h, w = boxes.unbind(1)
    assert boxes.shape == (4000, 4) and torch.equal(boxes, boxes.round())
    assert (top >= 0).all() and (left >= 0).all() and (h >= 1).all() and (w >= 1).all()
    assert (top + h <= 96).all() and (left + w <= 128).all()
    # rounding to whole pixels moves area and ratio by at most half a pixel per side
    assert ((w + 0.5) * (h + 0.5) / (96 * 128) >= 0.08).all()
    assert ((w + 0.5) / (h - 0.5) >= 3 / 4).all() and ((w - 0.5) / (h + 0.5) <= 4 / 3).all()


def test_crop_box_distribution():
    # square ratio on a square image: every try fits, so area ~ U(0.08, 1), mean 0.54
    boxes = sample_crop_boxes(4000, 200, 200, ratio=(1.0, 1.0), generator=gen())
    area = boxes[:, 2] * boxes[:, 3] / 200**2
    assert abs(area.mean().item() - 0.54) < 0.02
    assert abs(area.std().item() - 0.92 / math.sqrt(12)) < 0.02
    # default ratios: rejected tries bias towards smaller crops exactly as torchvision's do
    boxes = sample_crop_boxes(4000, 224, 224, generator=gen(1))
    torch.manual_seed(0)
    image = torch.zeros(1, 224, 224)
    ref = torch.tensor(
        [RandomResizedCrop.get_params(image, [0.08, 1.0], [3 / 4, 4 / 3]) for _ in range(4000)],
        dtype=torch.float32,
    )
    for b in (boxes, ref):
        b_area = b[:, 2] * b[:, 3] / 224**2
        assert abs(b_area.mean().item() - 0.48) < 0.02
        assert abs((b[:, 3] / b[:, 2]).log().mean().item()) < 0.02  # log-ratio symmetric
    offsets = boxes[:, 1] / (224 - boxes[:, 3]).clamp_min(1)
    assert abs(offsets.mean().item() - 0.5) < 0.03


def test_crop_box_fallback_is_centred_and_clamped_to_ratio():
    boxes = sample_crop_boxes(50, 10, 100, scale=(0.9, 1.0), generator=gen())
    # no try fits a 10 x 100 image with area >= 0.9 and ratio <= 4/3: centred 10 x 13 crop
    expected = torch.tensor([0.0, 43.0, 10.0, 13.0]).expand(50, 4)
    assert torch.equal(boxes, expected)


@pytest.mark.parametrize("size", [16, 40])
def test_full_image_crop_equals_bilinear_resize(size):
    images = rand_images()
    boxes = torch.tensor([0.0, 0.0, 20.0, 24.0]).expand(8, 4)
    expected = F.interpolate(
        images, size=(size, size), mode="bilinear", align_corners=False, antialias=False
    )
    torch.testing.assert_close(crop_and_resize(images, boxes, size), expected, atol=1e-5, rtol=0)
    whole = random_resized_crop(images, size, scale=(1.0, 1.0), ratio=(1.2, 1.2), generator=gen())
    torch.testing.assert_close(whole, expected, atol=1e-5, rtol=0)


def test_each_crop_equals_resize_of_its_box():
    images = rand_images()
    boxes = sample_crop_boxes(8, 20, 24, generator=gen(3))
    out = crop_and_resize(images, boxes, 17)
    for i, (top, left, h, w) in enumerate(boxes.long().tolist()):
        crop = images[i : i + 1, :, top : top + h, left : left + w]
        expected = F.interpolate(crop, size=(17, 17), mode="bilinear", align_corners=False)
        torch.testing.assert_close(out[i : i + 1], expected, atol=1e-5, rtol=0)


def test_horizontal_flip_rate_and_content():
    images = rand_images(n=2000, h=4, w=5)
    out = horizontal_flip(images, p=0.3, generator=gen())
    flipped = (out == images.flip(-1)).flatten(1).all(1)
    unchanged = (out == images).flatten(1).all(1)
    assert (flipped ^ unchanged).all()
    assert abs(flipped.float().mean().item() - 0.3) < 0.04


# ---- colour: torchvision parity for the same per-sample factor --------------------------------


@pytest.mark.parametrize(
    ("ours", "theirs", "atol"),
    [
        (adjust_brightness, TF.adjust_brightness, 1e-6),
        (adjust_contrast, TF.adjust_contrast, GRAY_ATOL),
        (adjust_saturation, TF.adjust_saturation, GRAY_ATOL),
    ],
)
def test_colour_factors_match_torchvision(ours, theirs, atol):
    images = rand_images()
    factors = torch.rand(8, generator=gen(1)) * 1.6 + 0.2
    expected = per_sample(theirs, images, factors)
    torch.testing.assert_close(ours(images, factors), expected, atol=atol, rtol=0)


def test_hue_matches_torchvision():
    images = torch.cat([rand_images(), torch.full((1, 3, 20, 24), 0.5)])  # incl. grey (no hue)
    shifts = torch.rand(9, generator=gen(2)) - 0.5
    expected = per_sample(TF.adjust_hue, images, shifts)
    torch.testing.assert_close(adjust_hue(images, shifts), expected, atol=1e-4, rtol=0)


def test_grayscale_and_solarize_match_torchvision():
    images = rand_images()
    gray = rgb_to_grayscale(images)
    torch.testing.assert_close(gray, TF.rgb_to_grayscale(images), atol=GRAY_ATOL, rtol=0)
    out = random_grayscale(images, p=1.0, generator=gen())
    assert out.shape == images.shape and torch.equal(out, gray.expand_as(images))
    out = solarize(images, p=1.0, threshold=0.3, generator=gen())
    torch.testing.assert_close(out, TF.solarize(images, 0.3), atol=1e-6, rtol=0)


def test_color_jitter_factors_in_range_and_rate():
    images = rand_images(n=1000, h=3, w=3) * 0.5  # no clamping at factor <= 2
    out = color_jitter(
        images, brightness=0.4, contrast=0, saturation=0, hue=0, p=0.6, generator=gen()
    )
    ratio = out / images
    factor = ratio.flatten(1).mean(1)
    torch.testing.assert_close(ratio, factor.view(-1, 1, 1, 1).expand_as(ratio))
    changed = factor != 1.0
    assert abs(changed.float().mean().item() - 0.6) < 0.05
    assert factor.min() >= 0.6 - 1e-5 and factor.max() <= 1.4 + 1e-5
    assert abs(factor[changed].mean().item() - 1.0) < 0.03  # uniform on [0.6, 1.4]


def test_color_jitter_unselected_samples_unchanged():
    images = rand_images(n=200, h=4, w=4)
    out = color_jitter(images, p=0.5, generator=gen())
    same = (out == images).flatten(1).all(1)
    assert 0.4 < same.float().mean().item() < 0.6
    assert (out >= 0).all() and (out <= 1).all()


JITTER_FNS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)


def test_color_jitter_fixed_order_is_the_sequential_composition():
    images = rand_images(n=16)
    factors, order, selected = jitter_parameters(16, p=0.7, generator=gen(3), random_order=False)
    assert torch.equal(order, torch.arange(4).expand(16, 4))
    expected = images
    for k, fn in enumerate(JITTER_FNS):
        expected = fn(expected, factors[:, k])
    expected = torch.where(selected.view(-1, 1, 1, 1), expected, images)
    out = color_jitter(images, p=0.7, generator=gen(3), random_order=False)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)


def test_color_jitter_random_order_composes_each_sample_in_its_drawn_order():
    images = rand_images(n=32)
    factors, order, selected = jitter_parameters(32, p=0.9, generator=gen(4))
    out = color_jitter(images, p=0.9, generator=gen(4))
    for i in range(32):
        expected = images[i : i + 1]
        for k in order[i].tolist() if selected[i] else []:
            expected = JITTER_FNS[k](expected, factors[i, k : k + 1])
        torch.testing.assert_close(out[i : i + 1], expected, atol=1e-6, rtol=0)
    fixed = color_jitter(images, p=0.9, generator=gen(4), random_order=False)
    assert not torch.allclose(out, fixed, atol=1e-3)  # the order matters


def test_jitter_parameters_orders_are_uniform_permutations():
    n = 24000
    factors, order, selected = jitter_parameters(n, p=0.8, generator=gen())
    assert JITTER_OPS == ("brightness", "contrast", "saturation", "hue")
    assert torch.equal(order.sort(dim=1).values, torch.arange(4).expand(n, 4))
    assert abs(selected.float().mean().item() - 0.8) < 0.01
    assert (factors[~selected] == torch.tensor([1.0, 1.0, 1.0, 0.0])).all()
    low, high = torch.tensor([0.6, 0.6, 0.8, -0.1]), torch.tensor([1.4, 1.4, 1.2, 0.1])
    assert ((factors >= low) & (factors <= high)).all()
    # each op at each step a quarter of the time, and all 24 permutations about equally often
    step_op = F.one_hot(order, 4).float().mean(dim=0)
    torch.testing.assert_close(step_op, torch.full((4, 4), 0.25), atol=0.015, rtol=0)
    codes = (order * torch.tensor([64, 16, 4, 1])).sum(dim=1)
    counts = codes.unique(return_counts=True)[1]
    assert len(counts) == 24 and counts.min() > 850 and counts.max() < 1150  # 1000 expected


def test_colour_ops_on_one_channel():
    images = rand_images(c=1)
    assert torch.equal(adjust_saturation(images, torch.full((8,), 0.3)), images)
    assert torch.equal(adjust_hue(images, torch.full((8,), 0.2)), images)
    assert torch.equal(random_grayscale(images, p=1.0, generator=gen()), images)
    factors = torch.rand(8, generator=gen(1)) * 1.6 + 0.2
    expected = per_sample(TF.adjust_contrast, images, factors)
    torch.testing.assert_close(adjust_contrast(images, factors), expected, atol=1e-6, rtol=0)


# ---- blur -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("sigma", "kernel_size"), [(0.7, 3), (1.5, 7)])
def test_blur_matches_torchvision(sigma, kernel_size):
    images = rand_images()
    out = gaussian_blur(images, p=1.0, sigma=(sigma, sigma), kernel_size=kernel_size)
    expected = TF.gaussian_blur(images, [kernel_size, kernel_size], [sigma, sigma])
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=0)


def test_blur_per_sample_rate_and_smoothing():
    images = rand_images(n=400, h=16, w=16)
    out = gaussian_blur(images, p=0.5, sigma=(1.0, 2.0), generator=gen())
    changed = ~(out == images).flatten(1).all(1)
    assert abs(changed.float().mean().item() - 0.5) < 0.08
    torch.testing.assert_close(
        out.mean(dim=(1, 2, 3)), images.mean(dim=(1, 2, 3)), atol=0.02, rtol=0
    )
    assert (out[changed].std() < 0.6 * images[changed].std()).item()


# ---- pipeline ---------------------------------------------------------------------------------


def test_pipeline_reproducible_and_seed_dependent():
    pipe = view_recipe("byol", size=16, mean=[0.5] * 3, std=[0.25] * 3)
    images = torch.randint(0, 256, (6, 3, 24, 24), dtype=torch.uint8, generator=gen())
    a, b, c = pipe(images, gen(7)), pipe(images, gen(7)), pipe(images, gen(8))
    assert pipe.num_views == 2 and len(a) == 2
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[0], c[0])
    assert not torch.equal(a[0], a[1])  # the two views differ


def test_pipeline_shapes_and_normalisation():
    # one random colour per image: crop and flip keep each image's pixels, so stats are exact
    colours = torch.randint(0, 256, (64, 3, 1, 1), dtype=torch.uint8, generator=gen())
    images = colours.expand(64, 3, 40, 40).contiguous()
    pixels = images.float() / 255
    mean = pixels.mean(dim=(0, 2, 3)).tolist()
    std = pixels.std(dim=(0, 2, 3)).tolist()
    pipe = view_recipe("simclr", size=24, mean=mean, std=std, jitter_p=0.0, grayscale_p=0.0)
    for view in pipe(images, gen(1)):
        assert view.shape == (64, 3, 24, 24) and view.dtype == torch.float32
        assert view.is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(view.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4, rtol=0)
        torch.testing.assert_close(view.std(dim=(0, 2, 3)), torch.ones(3), atol=0.01, rtol=0)


def test_pipeline_one_channel_and_all_ops():
    images = torch.randint(0, 256, (5, 1, 20, 20), dtype=torch.uint8, generator=gen())
    spec = ViewSpec(size=12, blur_p=1.0, solarize_p=1.0, grayscale_p=1.0, jitter_p=1.0)
    views = ViewPipeline([spec], mean=[0.5], std=[0.5])(images, gen())
    assert len(views) == 1 and views[0].shape == (5, 1, 12, 12)
    assert torch.isfinite(views[0]).all() and views[0].abs().max() <= 1.0 + 1e-6


def test_recipes_and_overrides():
    assert set(list_recipes()) >= {"simclr", "byol"}
    byol = view_recipe("byol", size=32, mean=[0.5] * 3, std=[0.5] * 3)
    assert [s.blur_p for s in byol.specs] == [1.0, 0.1]
    assert [s.solarize_p for s in byol.specs] == [0.0, 0.2]
    assert all(s.saturation == 0.2 and s.size == 32 for s in byol.specs)
    simclr = view_recipe("simclr", size=32, mean=[0.5] * 3, std=[0.5] * 3, scale=[0.2, 1.0])
    assert simclr.specs[0] == simclr.specs[1] and simclr.specs[0].scale == (0.2, 1.0)
    with pytest.raises(ConfigError, match="hflip_p"):
        view_recipe("simclr", size=32, mean=[0.5] * 3, std=[0.5] * 3, flip_p=0.5)
    with pytest.raises(ConfigError, match="barlow_twins, byol, dino"):
        view_recipe("moco_v9", size=32, mean=[0.5] * 3, std=[0.5] * 3)
    with pytest.raises(ConfigError, match="blur_p"):
        view_recipe("simclr", size=32, mean=[0.5] * 3, std=[0.5] * 3, blur_p=1.5)


def test_normalize_channel_mismatch_is_config_error():
    pipe = view_recipe("simclr", size=8, mean=[0.5] * 3, std=[0.5] * 3)
    with pytest.raises(ConfigError, match="channel"):
        pipe(torch.zeros(2, 1, 8, 8, dtype=torch.uint8))


# ---- evaluation transform ---------------------------------------------------------------------


def test_eval_transform_same_size_is_exact_normalisation():
    images = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8, generator=gen())
    out = EvalTransform(16, mean=[0.2, 0.4, 0.6], std=[0.5, 0.25, 0.1])(images)
    mean = torch.tensor([0.2, 0.4, 0.6]).view(1, 3, 1, 1)
    std = torch.tensor([0.5, 0.25, 0.1]).view(1, 3, 1, 1)
    torch.testing.assert_close(out, (images.float() / 255 - mean) / std)
    assert out.is_contiguous(memory_format=torch.channels_last)


def test_eval_transform_resize_statistics():
    images = torch.rand(16, 3, 64, 48, generator=gen())
    out = EvalTransform(32, mean=[0.5] * 3, std=[0.5] * 3)(images)
    assert out.shape == (16, 3, 32, 32) and out.dtype == torch.float32
    # antialiased resize keeps each image's mean and smooths noise (lower std)
    torch.testing.assert_close(
        out.mean(dim=(1, 2, 3)), (images.mean(dim=(1, 2, 3)) - 0.5) / 0.5, atol=0.01, rtol=0
    )
    assert out.std().item() < 0.8 * ((images - 0.5) / 0.5).std().item()
    assert out.abs().max() <= 1.0 + 1e-5
