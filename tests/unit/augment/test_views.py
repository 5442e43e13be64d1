"""View recipes: view counts and sizes, multi-crop, weak / strong / eval, overrides."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from labelless.augment import (
    RECIPES,
    EvalTransform,
    ViewPipeline,
    ViewSpec,
    normalize,
    view_recipe,
)
from labelless.errors import ConfigError

MEAN, STD = [0.5] * 3, [0.25] * 3


def _images(n=8, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)


def _gen(seed=1):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_recipe_makes_normalised_views_of_the_right_size(name):
    pipe = view_recipe(name, size=32, mean=MEAN, std=STD)
    views = pipe(_images(), _gen())
    assert len(views) == pipe.num_views == len(RECIPES[name])
    for view, spec in zip(views, pipe.specs, strict=True):
        assert view.shape == (8, 3, spec.size, spec.size) and view.dtype == torch.float32
        assert view.is_contiguous(memory_format=torch.channels_last)
        assert torch.isfinite(view).all()
    again = view_recipe(name, size=32, mean=MEAN, std=STD)(_images(), _gen())
    assert all(torch.equal(a, b) for a, b in zip(views, again, strict=True))


def test_multi_crop_sizes_and_local_count():
    dino = view_recipe("dino", size=224, mean=MEAN, std=STD)
    assert [s.size for s in dino.specs] == [224, 224] + [96] * 6
    assert dino.specs[0].scale == (0.4, 1.0) and dino.specs[2].scale == (0.05, 0.4)
    assert dino.specs[1].solarize_p == 0.2 and dino.specs[0].solarize_p == 0.0
    swav = view_recipe("swav", size=32, mean=MEAN, std=STD, num_local_crops=2)
    assert [s.size for s in swav.specs] == [32, 32, 14, 14]
    with pytest.raises(ConfigError, match="no local crops"):
        view_recipe("simclr", size=32, mean=MEAN, std=STD, num_local_crops=2)


def test_overrides_all_views_and_per_view():
    pipe = view_recipe("byol", size=32, mean=MEAN, std=STD, hue=0.0, per_view=[{"blur_p": 0.3}])
    assert [s.blur_p for s in pipe.specs] == [0.3, 0.1]
    assert all(s.hue == 0.0 for s in pipe.specs)
    with pytest.raises(ConfigError, match="unknown view override"):
        view_recipe("byol", size=32, mean=MEAN, std=STD, per_view=[{"blurr": 1}])
    with pytest.raises(ConfigError, match="per_view has 3 entries"):
        view_recipe("byol", size=32, mean=MEAN, std=STD, per_view=[{}, {}, {}])
    with pytest.raises(ConfigError, match="crop must be one of"):
        ViewSpec(crop="random")


def test_weak_view_is_a_shifted_or_flipped_copy():
    images = _images(6, 16)
    (weak,) = view_recipe("weak", size=16, mean=MEAN, std=STD)(images, _gen())
    reference = normalize(images.float() / 255, MEAN, STD)
    pad = round(0.125 * 16)
    padded = torch.nn.functional.pad(reference, (pad,) * 4, mode="reflect")
    for i in range(6):
        candidates = [
            padded[i, :, top : top + 16, left : left + 16]
            for top in range(2 * pad + 1)
            for left in range(2 * pad + 1)
        ]
        candidates += [c.flip(-1) for c in candidates]
        assert any(torch.allclose(weak[i], c, atol=1e-5) for c in candidates), i


def test_strong_view_cuts_out_a_square_of_grey():
    images = torch.full((4, 3, 32, 32), 255, dtype=torch.uint8)
    spec = ViewSpec(
        size=32,
        crop="pad",
        padding=0.0,
        hflip_p=0.0,
        jitter_p=0.0,
        grayscale_p=0.0,
        cutout_p=1.0,
        cutout_size=0.25,
    )
    (view,) = ViewPipeline([spec], [0.0] * 3, [1.0] * 3)(images, _gen())
    grey = (view - 0.5).abs() < 1e-6
    counts = grey[:, 0].sum(dim=(1, 2))
    assert torch.all(counts > 0) and torch.all(counts <= 64)  # an 8x8 square, clipped at edges
    strong = view_recipe("strong", size=32, mean=MEAN, std=STD)(_images(), _gen())[0]
    weak = view_recipe("weak", size=32, mean=MEAN, std=STD)(_images(), _gen())[0]
    assert not torch.allclose(strong, weak)


def test_eval_recipe_equals_eval_transform_and_center_crop():
    images = _images(4, 40)
    (view,) = view_recipe("eval", size=32, mean=MEAN, std=STD)(images, _gen())
    torch.testing.assert_close(view, EvalTransform(32, MEAN, STD)(images))
    cropped = EvalTransform(32, MEAN, STD, crop_fraction=0.8)(images)  # resize to 40: no resample
    expected = normalize(images[..., 4:36, 4:36].float() / 255, MEAN, STD)
    torch.testing.assert_close(cropped, expected)


def test_style_standardization_shares_one_amplitude_per_batch():
    spec = ViewSpec(
        size=16,
        crop="center",
        hflip_p=0.0,
        jitter_p=0.0,
        grayscale_p=0.0,
        style_standardization=True,
    )
    (view,) = ViewPipeline([spec], [0.0] * 3, [1.0] * 3)(_images(4, 16), _gen())
    amplitude = torch.fft.fft2(view.double()).abs()
    # clamping to 0..1 perturbs the spectra a little; the shared style dominates
    spread = (amplitude - amplitude.mean(0, keepdim=True)).abs().mean() / amplitude.mean()
    original = torch.fft.fft2(_images(4, 16).double() / 255).abs()
    original_spread = (original - original.mean(0, keepdim=True)).abs().mean() / original.mean()
    assert spread < 0.5 * original_spread


_ALL_OPS = ViewSpec(
    size=24,
    vflip_p=0.5,
    blur_p=0.5,
    solarize_p=0.5,
    randaugment_ops=2,
    cutout_p=0.5,
)


@pytest.mark.parametrize("source_size", [32, 40])
@pytest.mark.parametrize("name", [*sorted(RECIPES), "all_ops"])
def test_chunked_pipeline_equals_the_whole_batch(name, source_size):
    """Parameters are drawn for the whole batch before the chunks run: same seed, same output."""
    images = _images(13, source_size)
    if name == "all_ops":
        specs = [_ALL_OPS, replace(_ALL_OPS, crop="pad"), replace(_ALL_OPS, crop="center")]
    else:
        specs = view_recipe(name, size=32, mean=MEAN, std=STD).specs
    outputs = [
        ViewPipeline(specs, MEAN, STD, chunk_size=chunk)(images, _gen(3)) for chunk in (1, 7, 13)
    ]
    outputs.append(ViewPipeline(specs, MEAN, STD)(images, _gen(3)))  # default chunking
    for other in outputs[1:]:
        for a, b in zip(outputs[0], other, strict=True):
            assert torch.equal(a, b), name


def test_chunk_size_must_be_positive():
    with pytest.raises(ConfigError, match="chunk_size"):
        ViewPipeline([ViewSpec(size=8)], MEAN, STD, chunk_size=0)
