"""Trigger inversion (DECREE-style, labelless.audit.backdoor) on a small encoder made backdoored
in the test (BadEncoder-style fine-tuning, labelless.audit.implant)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from labelless.audit.backdoor import (
    InversionSettings,
    centred_similarity,
    invert_trigger,
    scan_backdoor,
    window_starts,
)
from labelless.audit.implant import ImplantSettings, implant_backdoor
from labelless.audit.pixels import PixelEncoder, embed_pixels
from labelless.errors import ConfigError, DataError

from .encoders import digits_pixels, stamp, trained_encoder

FAST = InversionSettings(steps=200, batch_size=64)


@pytest.fixture(scope="module")
def encoders():
    torch.set_num_threads(1)
    train, labels, _, _ = digits_pixels()
    clean = trained_encoder(train, labels)
    reference_image = train[600]
    bad, effect = implant_backdoor(
        clean, train[:512], stamp, reference_image, ImplantSettings(steps=150)
    )
    torch.set_num_threads(2)
    return train, clean, PixelEncoder(bad, clean.pre), reference_image, effect


def test_centred_similarity_is_the_mean_off_diagonal_cosine():
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    centre = torch.tensor([0.0, 0.0])
    u = F.normalize(z, dim=1)
    pairs = [(0, 1), (0, 2), (1, 2)]
    expected = sum(float(u[i] @ u[j]) for i, j in pairs) / 3
    assert float(centred_similarity(z, centre)) == pytest.approx(expected, abs=1e-6)
    # centring: identical embeddings are perfectly alike unless they sit on the centre
    same = torch.ones(4, 3)
    assert float(centred_similarity(same, torch.zeros(3))) == pytest.approx(1.0)


@pytest.mark.parametrize("size,window", [(8, 4), (28, 7), (32, 8), (32, 5), (6, 8)])
def test_the_window_grid_holds_every_trigger_up_to_half_a_window(size, window):
    starts = window_starts(size, window)
    window = min(window, size)
    assert starts[0] == 0 and starts[-1] == size - window
    width = max(window // 2, 1)
    for offset in range(size - width + 1):  # every placement of a trigger this wide
        assert any(s <= offset and offset + width <= s + window for s in starts)


def test_bad_screen_settings_are_refused():
    with pytest.raises(ConfigError, match="window"):
        InversionSettings(window=-1).check()
    with pytest.raises(ConfigError, match="screen_batch"):
        InversionSettings(screen_batch=1).check()
    InversionSettings(screen_steps=0).check()  # no screen: DECREE's random start


@pytest.mark.slow
def test_the_implanted_backdoor_works_and_keeps_clean_embeddings(encoders, one_thread):
    train, clean, bad, reference, effect = encoders
    assert effect["effectiveness"] > 0.95 and effect["utility"] > 0.95
    target = embed_pixels(clean, reference[None])[0]
    triggered = embed_pixels(bad, stamp(train[800:1000]))
    assert F.cosine_similarity(triggered, target[None]).mean() > 0.9
    kept = F.cosine_similarity(
        embed_pixels(bad, train[800:1000]), embed_pixels(clean, train[800:1000])
    )
    assert kept.mean() > 0.9


@pytest.mark.slow
def test_inversion_recovers_the_planted_patch_trigger(encoders, one_thread):
    """Measured (seed 0): the backdoored encoder's trigger covers 0.7% of the image (the patch is
    1.6%), 99.8% of its mass in 9 pixels, and sends images to the backdoor's target (cosine
    0.97); the clean encoder needs 8.6%, spread out, and its trigger lands elsewhere (0.53).
    A convolutional encoder with global pooling answers the patch anywhere, so the position is
    not asserted."""
    train, clean, bad, reference, _ = encoders
    target = embed_pixels(clean, reference[None])[0]
    found = invert_trigger(bad, train[:256], FAST)
    control = invert_trigger(clean, train[:256], FAST)
    assert found.found and found.similarity >= FAST.similarity
    assert found.score < 0.25 * control.score
    # the window screen: some window takes the backdoored encoder much closer to one embedding
    assert found.screen.numel() > 1 and found.screen.max() > control.screen.max() + 0.2
    top9 = found.mask.flatten().topk(9).values.sum() / found.mask.sum()
    assert top9 > 0.9
    moved = embed_pixels(bad, found.apply(train[300:500]))
    assert F.cosine_similarity(moved, target[None]).mean() > 0.9
    assert (
        F.cosine_similarity(embed_pixels(clean, control.apply(train[300:500])), target[None]).mean()
        < 0.8
    )


@pytest.mark.slow
def test_the_scan_flags_the_backdoored_encoder_and_passes_the_clean_one(encoders, one_thread):
    train, clean, bad, _, _ = encoders
    other_clean = trained_encoder(*digits_pixels()[:2], seed=1)
    references = {"other clean run": other_clean}
    assert scan_backdoor(bad, train[:256], references, FAST).flagged
    assert not scan_backdoor(clean, train[:256], references, FAST).flagged


@pytest.mark.slow
def test_bad_shadow_sets_and_settings_are_refused(encoders):
    train, clean, _, _, _ = encoders
    with pytest.raises(DataError, match="at least"):
        invert_trigger(clean, train[:5], FAST)
    with pytest.raises(DataError, match="1, H, W"):
        invert_trigger(clean, train[:64].expand(-1, 3, -1, -1), FAST)
    with pytest.raises(ConfigError, match="similarity"):
        InversionSettings(similarity=1.5).check()
    with pytest.raises(ConfigError, match="reference"):
        scan_backdoor(clean, train[:64], {}, FAST)
