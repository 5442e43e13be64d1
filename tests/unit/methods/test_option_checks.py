"""Temperatures and other divisors of every method must be > 0 (methods/base.py
``check_positive_options``): a ConfigError naming the config key, with the default as the fix."""

from __future__ import annotations

import pytest
import torch

from labelless.errors import ConfigError
from labelless.methods import create_method

CASES = [
    ("simclr", "temperature"),
    ("dcl", "temperature"),
    ("moco_v2", "temperature"),
    ("moco_v3", "temperature"),
    ("scarf", "temperature"),
    ("tstcc", "temperature"),
    ("nnclr", "temperature"),
    ("swav", "temperature"),
    ("swav", "epsilon"),
    ("dino", "student_temp"),
    ("dino", "teacher_temp"),
    ("dino", "warmup_teacher_temp"),
]


@pytest.mark.parametrize(("method", "key"), CASES)
@pytest.mark.parametrize("value", [0, -0.1, float("nan")])
def test_non_positive_temperatures_are_config_errors(backbone, method, key, value):
    with pytest.raises(ConfigError) as error:
        create_method(method, backbone, **{key: value})
    message = str(error.value)
    assert f"method.kwargs.{key} must be a number > 0" in message
    assert f"--set method.kwargs.{key}=" in message


def test_the_default_is_the_suggested_fix(backbone):
    with pytest.raises(
        ConfigError, match=r"--set method\.kwargs\.teacher_temp=0\.04 \(the default\)"
    ):
        create_method("dino", backbone, teacher_temp=0.0)


def test_positive_temperatures_still_train(backbone, views, check_contract):
    check_contract(create_method("simclr", backbone, temperature=1e-3), views)


def test_mixmatch_sharpening_temperature_zero_is_refused():
    from tests.unit.semi.conftest import TinyEncoder

    from labelless.semi.algorithms import create_algorithm
    from labelless.semi.state import SampleState

    state = SampleState(8, torch.arange(8))
    with pytest.raises(ConfigError, match=r"semi\.kwargs\.temperature must be a number > 0"):
        create_algorithm("mixmatch", TinyEncoder(), 3, state, temperature=0.0)
