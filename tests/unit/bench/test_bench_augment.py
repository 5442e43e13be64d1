"""bench/augment.py: the torchvision baseline is built from the same ViewSpec fields."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import torch

from labelless.augment import RECIPES, ViewSpec, view_recipe
from labelless.errors import ConfigError

SCRIPT = Path(__file__).resolve().parents[3] / "bench" / "augment.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_augment", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_simclr_spec_maps_to_a_pipeline_of_the_right_shape_and_dtype(bench):
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    for spec in RECIPES["simclr"]:
        pipeline = bench.torchvision_pipeline(replace(spec, size=16), mean, std)
        out = pipeline(torch.randint(0, 256, (3, 24, 20), dtype=torch.uint8))
        assert out.shape == (3, 16, 16) and out.dtype == torch.float32
    names = [type(t).__name__ for t in pipeline.transforms]
    assert names == [
        "RandomResizedCrop",
        "RandomHorizontalFlip",
        "RandomApply",  # ColorJitter, p = jitter_p
        "RandomGrayscale",
        "ToDtype",
        "Normalize",
    ]
    assert pipeline.transforms[2].p == pytest.approx(0.8)
    byol_pipeline = bench.torchvision_pipeline(RECIPES["byol"][1], mean, std)
    byol = [type(t).__name__ for t in byol_pipeline.transforms]
    assert byol.count("RandomApply") == 2 and "RandomSolarize" in byol  # jitter, blur; solarize


def test_without_randomness_both_pipelines_only_normalise(bench):
    """Full-image crop and every probability 0, or the eval view: both give the same tensor."""
    off = {"jitter_p": 0.0, "grayscale_p": 0.0, "hflip_p": 0.0, "scale": (1, 1), "ratio": (1, 1)}
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.3, 0.25)
    images = torch.randint(0, 256, (2, 3, 12, 12), dtype=torch.uint8)
    for ours in (
        view_recipe("simclr", size=12, mean=mean, std=std, **off),
        view_recipe("eval", size=12, mean=mean, std=std),
    ):
        theirs = bench.torchvision_pipeline(ours.specs[0], mean, std)
        expected = ours(images)[0]
        assert torch.allclose(torch.stack([theirs(x) for x in images]), expected, atol=1e-5)


def test_every_recipe_maps_to_views_of_our_shapes(bench):
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    for name in RECIPES:
        ours = view_recipe(name, size=32, mean=(0.5,) * 3, std=(0.25,) * 3)
        for spec, view in zip(ours.specs, ours(images), strict=True):
            out = bench.torchvision_pipeline(spec, ours.mean, ours.std)(images[0])
            assert out.shape == view.shape[1:] and out.dtype == view.dtype, name


def test_an_unmapped_field_or_value_raises(bench):
    @dataclass(frozen=True)
    class WithSharpness(ViewSpec):
        sharpness_p: float = 0.5

    with pytest.raises(ConfigError, match="sharpness_p"):
        bench.torchvision_pipeline(WithSharpness(size=8), (0.5,) * 3, (0.2,) * 3)
    with pytest.raises(ConfigError, match="style_standardization"):
        spec = ViewSpec(size=8, style_standardization=True)
        bench.torchvision_pipeline(spec, (0.5,) * 3, (0.2,) * 3)
