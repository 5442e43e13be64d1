"""The algorithm contract, checked for every registered semi-supervised algorithm.

Beyond the output dict and gradient (``test_algorithms.py``): the docstring names the paper, the
step takes the training module's generator and is a function of its state alone (never the
global RNG; the same after a ``get_state`` / ``set_state`` round trip, as a resumed run), and
``on_step_end(progress)`` moves the EMA model with the warm-up momentum it owns.
"""

from __future__ import annotations

import copy
import inspect
import re
import sys

import pytest
import torch

from labelless.semi.algorithms import ALGORITHMS, create_algorithm
from labelless.semi.state import SampleState

from .conftest import TinyEncoder

NAMES = sorted(ALGORITHMS)


def _algorithm(name: str):
    torch.manual_seed(0)
    return create_algorithm(name, TinyEncoder(), 3, SampleState(12, torch.arange(4, 12)))


def _batches(algorithm, tiny_batches):
    views = len(algorithm.unlabelled_views)
    labelled, unlabelled = tiny_batches(batch=4, mu=2, classes=3, num_views=max(views, 1))
    unlabelled["views"] = unlabelled["views"][:views]
    return labelled, unlabelled


@pytest.mark.parametrize("name", NAMES)
def test_docstring_cites_a_paper_and_forward_takes_the_generator(name):
    cls = ALGORITHMS[name]
    doc = (sys.modules[cls.__module__].__doc__ or "") + (cls.__doc__ or "")
    assert re.search(r"\b(19|20)\d\d\b", doc), f"{name}: cite the paper (authors, year)"
    assert cls.summary
    assert "generator" in inspect.signature(cls.forward).parameters


@pytest.mark.parametrize("name", NAMES)
def test_step_is_a_function_of_the_generator_state(name, tiny_batches):
    first = _algorithm(name)
    second = copy.deepcopy(first)
    labelled, unlabelled = _batches(first, tiny_batches)
    generator = torch.Generator().manual_seed(7)
    saved = generator.get_state()
    torch.manual_seed(1)
    global_state = torch.get_rng_state()
    out = first(labelled, unlabelled, 0.5, generator=generator)
    assert torch.equal(torch.get_rng_state(), global_state), f"{name} drew from the global RNG"
    resumed = torch.Generator()
    resumed.set_state(saved)
    torch.manual_seed(2)
    again = second(labelled, unlabelled, 0.5, generator=resumed)
    assert torch.equal(out["loss"], again["loss"])
    assert torch.equal(generator.get_state(), resumed.get_state())


def test_mixmatch_mixing_follows_the_generator(tiny_batches):
    first = _algorithm("mixmatch")
    second = copy.deepcopy(first)
    labelled, unlabelled = _batches(first, tiny_batches)
    losses = [
        algorithm(labelled, unlabelled, 1.0, generator=torch.Generator().manual_seed(seed))["loss"]
        for algorithm, seed in ((first, 0), (second, 1))
    ]
    assert not torch.equal(*losses)


@pytest.mark.parametrize("name", NAMES)
def test_on_step_end_moves_the_ema_with_the_warmup_momentum(name):
    algorithm = _algorithm(name)
    ema_param = next(algorithm.ema_model.parameters())
    online_param = next(algorithm.model.parameters())
    with torch.no_grad():
        online_param.add_(1.0)
    before = ema_param.clone()
    algorithm.on_step_end(0.5)  # first update: momentum min(0.999, 1 / 10)
    torch.testing.assert_close(ema_param, 0.1 * before + 0.9 * online_param)
    assert int(algorithm.state_dict()["ema.updates"]) == 1


def test_a_checkpoint_from_before_the_ema_counted_its_updates_loads():
    algorithm = _algorithm("fixmatch")
    state = algorithm.state_dict()
    state["ema_updates"] = state.pop("ema.updates").fill_(5)
    algorithm.load_state_dict(state)
    assert int(algorithm.ema.updates) == 5
