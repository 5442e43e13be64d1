from __future__ import annotations

from pathlib import Path

import pytest

from labelless.errors import ConfigError
from labelless.semi.config import resolve_semi_config

RECIPES = sorted((Path(__file__).parents[3] / "configs" / "semi").glob("*.yaml"))


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_every_recipe_validates(path):
    config = resolve_semi_config(str(path), None, {})
    assert config.semi.method and config.out


def test_partial_sections_keep_semi_defaults_and_flags_win():
    config = resolve_semi_config(None, ["optim.batch_size=16"], {"lr": 0.05, "mu": 3})
    assert config.optim.name == "sgd" and config.optim.batch_size == 16
    assert config.optim.lr == 0.05 and config.semi.mu == 3
    assert config.out == "runs/semi-fixmatch-digits"


def test_bad_keys_are_config_errors():
    with pytest.raises(ConfigError, match="unknown option"):
        resolve_semi_config(None, None, {"bogus": 1})
    with pytest.raises(ConfigError, match=r"semi\.mu"):
        resolve_semi_config(None, ["semi.mu=0"], {})
    with pytest.raises(ConfigError, match="keep one"):
        resolve_semi_config(None, ["semi.labels_per_class=2", "semi.label_fraction=0.1"], {})
