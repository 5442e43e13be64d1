"""Config precedence, overrides and errors."""

from __future__ import annotations

import pytest

from labelless.config import RunConfig, dump_yaml, load_yaml, resolve_config
from labelless.errors import ConfigError


def test_precedence_defaults_file_set_flags(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("optim:\n  lr: 0.05\n  batch_size: 64\ntrainer:\n  max_epochs: 7\n")
    config = resolve_config(
        path,
        overrides=["optim.batch_size=32", "method.kwargs.temperature=0.5"],
        flags={"trainer.max_epochs": 3, "optim.lr": None},
    )
    assert config.optim.lr == 0.05  # file beats default; a flag left at None changes nothing
    assert config.optim.batch_size == 32  # --set beats the file
    assert config.trainer.max_epochs == 3  # a typed flag beats the file
    assert config.method.kwargs == {"temperature": 0.5}
    assert config.optim.weight_decay == RunConfig().optim.weight_decay


def test_yaml_round_trip(tmp_path):
    config = resolve_config(None, ["optim.lr=0.2", "data.name=mnist"])
    path = tmp_path / "config.yaml"
    path.write_text(dump_yaml(config))
    assert resolve_config(path) == config


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("optim: [1, 2", "not valid YAML"),
        ("- a\n- b\n", "must hold a mapping"),
        ("optim:\n  lrate: 1\n", "optim.lrate"),
        ("optim:\n  lr: -1\n", "optim.lr"),
    ],
)
def test_bad_config_files(tmp_path, text, match):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        resolve_config(path)


def test_bad_overrides(tmp_path):
    with pytest.raises(ConfigError, match="key=value"):
        resolve_config(None, ["optim.lr"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_yaml(tmp_path / "missing.yaml")
