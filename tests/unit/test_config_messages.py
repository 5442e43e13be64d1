"""Config mistakes name the key and the fix (config.py ``_validation_message``): unknown keys get
a did-you-mean, in YAML, in --set and in the semi config; a batch of one is refused."""

from __future__ import annotations

import pytest

from labelless.config import resolve_config
from labelless.errors import ConfigError
from labelless.semi.config import resolve_semi_config


@pytest.mark.parametrize(
    ("override", "suggestion"),
    [
        ("optim.learning_rate=0.1", "optim.learning_rate: unknown key (did you mean optim.lr?)"),
        ("optim.lrr=0.1", "(did you mean optim.lr?)"),
        ("trainer.max_epoch=3", "(did you mean trainer.max_epochs?)"),
        ("optim.epochs=3", "(did you mean trainer.max_epochs?)"),
        ("optimizer.lr=0.1", "optimizer: unknown key (did you mean optim?)"),
        ("data.optionz.test=0.2", "(did you mean data.options?)"),
    ],
)
def test_unknown_keys_in_set_get_a_did_you_mean(override, suggestion):
    with pytest.raises(ConfigError) as error:
        resolve_config(None, [override])
    assert suggestion in str(error.value)


def test_unknown_key_without_a_close_name_lists_the_sections_keys():
    with pytest.raises(ConfigError) as error:
        resolve_config(None, ["optim.zzz=1"])
    assert "optim.zzz: unknown key; valid keys of optim: name, lr," in str(error.value)


def test_yaml_typos_get_a_did_you_mean(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("optim:\n  learning_rate: 0.1\ntrainer:\n  max_epoch: 3\n")
    with pytest.raises(ConfigError) as error:
        resolve_config(path)
    message = str(error.value)
    assert f"invalid config in {path}" in message
    assert "(did you mean optim.lr?)" in message and "(did you mean trainer.max_epochs?)" in message


def test_semi_config_typos_get_a_did_you_mean():
    with pytest.raises(ConfigError, match=r"semi\.muu: unknown key \(did you mean semi\.mu\?\)"):
        resolve_semi_config(None, ["semi.muu=3"], {})
    with pytest.raises(ConfigError, match=r"did you mean optim\.lr\?"):
        resolve_semi_config(None, ["optim.learning_rate=0.1"], {})


@pytest.mark.parametrize("size", [1, 0, -4])
def test_batch_of_fewer_than_two_is_refused_with_the_fix(size):
    with pytest.raises(ConfigError) as error:
        resolve_config(None, flags={"optim.batch_size": size})
    message = str(error.value)
    assert f"optim.batch_size: must be at least 2, got {size}" in message
    assert "--batch-size 2 or more" in message and "Value error" not in message
    with pytest.raises(ConfigError, match="must be at least 2"):
        resolve_semi_config(None, None, {"batch_size": size})
    assert resolve_config(None, flags={"optim.batch_size": 2}).optim.batch_size == 2


def test_pretrain_cli_batch_size_one_exits_2_before_writing(tmp_path, capsys):
    from labelless.cli import main

    out = tmp_path / "run"
    assert main(["pretrain", "--batch-size", "1", "--epochs", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "optim.batch_size: must be at least 2, got 1" in err
    assert not out.exists()
