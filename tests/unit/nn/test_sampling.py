"""Draws through the step's generator: reproducible from its state, independent of the global
RNG; without a generator, the global RNG as before."""

from __future__ import annotations

import pytest
import torch

from labelless.nn import sampling
from labelless.nn.masking import random_masking, sample_block_masks


def _draws(generator):
    return (
        sampling.rand((3, 4), generator=generator),
        sampling.randint(0, 10, (5,), generator=generator),
        sampling.randperm(7, generator=generator),
        sampling.beta(0.75, generator),
    )


def test_same_generator_state_same_draws_whatever_the_global_rng():
    generator = torch.Generator().manual_seed(3)
    saved = generator.get_state()
    torch.manual_seed(0)
    global_state = torch.get_rng_state()
    first = _draws(generator)
    assert torch.equal(torch.get_rng_state(), global_state)  # the global RNG is untouched
    resumed = torch.Generator()
    resumed.set_state(saved)  # as a checkpoint resume restores it
    torch.manual_seed(1)
    second = _draws(resumed)
    for a, b in zip(first[:3], second[:3], strict=True):
        assert torch.equal(a, b)
    assert first[3] == second[3] and 0 < first[3] < 1
    assert sorted(first[2].tolist()) == list(range(7))
    assert int(first[1].min()) >= 0 and int(first[1].max()) < 10


def test_without_a_generator_the_global_rng_draws_on_the_device():
    torch.manual_seed(5)
    expected = torch.rand(2, 3)
    torch.manual_seed(5)
    assert torch.equal(sampling.rand((2, 3), device="cpu"), expected)
    torch.manual_seed(5)
    alpha = torch.tensor(0.5)
    mix = float(torch.distributions.Beta(alpha, alpha).sample())
    torch.manual_seed(5)
    assert sampling.beta(0.5) == pytest.approx(mix)


def test_masks_follow_the_generator():
    def masks(seed):
        generator = torch.Generator().manual_seed(seed)
        keep, _ = random_masking(4, 16, 0.75, generator=generator)
        blocks = sample_block_masks(4, (8, 8), generator=generator)
        return keep, blocks.context_index, blocks.target_index

    torch.manual_seed(0)
    first = masks(1)
    torch.manual_seed(1)
    again = masks(1)
    other = masks(2)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(
        a.shape == b.shape and torch.equal(a, b) for a, b in zip(first, other, strict=True)
    )
