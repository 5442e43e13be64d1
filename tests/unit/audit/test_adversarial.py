"""Label-free attacks on the embedding (labelless.audit.adversarial): PGD, the universal
perturbation and the layer-wise Downstream Transfer Attack stay in their epsilon ball and move
what they attack more than random noise of the same size."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from labelless.audit.adversarial import (
    AttackBudget,
    _Features,
    apply_perturbation,
    candidate_layers,
    downstream_transfer_attack,
    embedding_shift,
    layer_vulnerability,
    pgd_embedding,
    universal_perturbation,
)
from labelless.audit.pixels import PixelEncoder
from labelless.backbones import create_backbone
from labelless.encoders import resolve_preprocessing
from labelless.errors import ConfigError

from .encoders import digits_pixels

EPS = 8 / 255


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    encoder = create_backbone("small_cnn", in_channels=1, width=8, input_size=24).eval()
    images = digits_pixels()[2][:96]
    return PixelEncoder(encoder, resolve_preprocessing(encoder.meta)), images


def _noise(images, eps, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return (images + (torch.rand(images.shape, generator=generator) * 2 - 1) * eps).clamp(0, 1)


def test_pgd_stays_in_its_ball_and_moves_the_embedding_more_than_noise(setup, one_thread):
    model, images = setup
    adversarial = pgd_embedding(model, images, AttackBudget(EPS, 10))
    assert (adversarial - images).abs().max() <= EPS + 1e-6
    assert adversarial.min() >= 0 and adversarial.max() <= 1
    pgd = embedding_shift(model, images, adversarial)
    noise = embedding_shift(model, images, _noise(images, EPS))
    assert pgd.mean() > 5 * noise.mean()
    assert (pgd > noise).float().mean() > 0.95


def test_pgd_is_seeded_and_takes_the_step_size_rule():
    budget = AttackBudget(0.04, 8)
    assert budget.alpha == pytest.approx(2.5 * 0.04 / 8)
    assert AttackBudget(0.04, 8, step_size=0.01).alpha == 0.01


def test_pgd_is_reproducible(setup, one_thread):
    model, images = setup
    a = pgd_embedding(model, images[:16], AttackBudget(EPS, 3), seed=4)
    b = pgd_embedding(model, images[:16], AttackBudget(EPS, 3), seed=4)
    assert torch.equal(a, b)


def test_the_universal_perturbation_is_one_delta_in_the_ball(setup, one_thread):
    model, images = setup
    delta = universal_perturbation(model, images, AttackBudget(EPS), epochs=4, batch_size=32)
    assert delta.shape == images.shape[1:]
    assert delta.abs().max() <= EPS + 1e-6
    moved = embedding_shift(model, images, apply_perturbation(images, delta))
    noise = embedding_shift(model, images, _noise(images, EPS))
    assert moved.mean() > 2 * noise.mean()


def test_candidate_layers_are_blocks_not_their_insides():
    resnet = create_backbone("resnet18_cifar", width=0.125)
    assert candidate_layers(resnet) == [f"layer{s}.{b}" for s in range(1, 5) for b in (0, 1)]
    vit = create_backbone("vit_tiny", image_size=32, patch_size=8)
    assert candidate_layers(vit, limit=4) == ["blocks.0", "blocks.4", "blocks.7", "blocks.11"]


def test_dta_moves_its_layers_features_inside_the_ball(setup, one_thread):
    model, images = setup
    layers = candidate_layers(model.encoder)
    scores = layer_vulnerability(model, images[:32], layers, AttackBudget(EPS, 3))
    assert set(scores) == set(layers) and all(0 <= v <= 2 for v in scores.values())
    chosen = [max(scores, key=scores.get)]
    adversarial = downstream_transfer_attack(model, images, chosen, AttackBudget(EPS, 10))
    assert (adversarial - images).abs().max() <= EPS + 1e-6
    features = _Features(model.encoder, chosen)
    try:
        with torch.no_grad():
            clean = (model(images), features.outputs[chosen[0]])[1]
            attacked = (model(adversarial), features.outputs[chosen[0]])[1]
            noisy = (model(_noise(images, EPS)), features.outputs[chosen[0]])[1]
    finally:
        features.close()
    moved = 1 - F.cosine_similarity(clean, attacked, dim=1)
    random = 1 - F.cosine_similarity(clean, noisy, dim=1)
    assert moved.mean() > 3 * random.mean()


@pytest.mark.parametrize("epsilon", [0, -0.1, 1, 8, float("nan"), True])
def test_epsilon_out_of_range_is_refused(epsilon):
    with pytest.raises(ConfigError, match="--epsilon"):
        AttackBudget(epsilon)


def test_unknown_layers_are_named(setup):
    model, _ = setup
    with pytest.raises(ConfigError, match=r"features\.0"):
        _Features(model.encoder, ["nope"])
