"""``labelless audit``'s input checks, before any work: settings, the preprocessing an attack
needs, the output folder (the end-to-end CLI cases are in tests/e2e/test_bad_inputs.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from labelless.errors import ConfigError
from labelless.verbs.audit import AuditSettings, check_out, check_preprocessing


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"checks": ()}, "--checks is empty"),
        ({"checks": ("backdoor",)}, "backdoor"),
        ({"epsilon": 0.0}, "--epsilon"),
        ({"epsilon": 2.0}, "--epsilon"),
        ({"shadow": 8}, "--shadow"),
        ({"samples": 0}, "--samples"),
        ({"neighbours": 0}, "--neighbours"),
        ({"dta_layers": 0}, "--dta-layers"),
    ],
)
def test_settings_out_of_range_name_the_option(options, fragment):
    with pytest.raises(ConfigError, match=fragment):
        AuditSettings(**options).check()


def test_an_encoder_without_recorded_preprocessing_needs_both_overrides():
    bare = SimpleNamespace(input_size=None, mean=None)
    with pytest.raises(ConfigError, match="--input-size N and --normalize"):
        check_preprocessing(bare, None, None)
    with pytest.raises(ConfigError, match="--normalize"):
        check_preprocessing(bare, 224, None)
    check_preprocessing(bare, 224, "imagenet")  # both given: fine
    check_preprocessing(SimpleNamespace(input_size=32, mean=[0.5]), None, None)


def test_out_must_be_new_empty_or_an_earlier_audit(tmp_path):
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("keep me\n")
    with pytest.raises(ConfigError, match="did not write"):
        check_out(user)
    assert (user / "notes.txt").read_text() == "keep me\n"
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        check_out(tmp_path / "file")
    earlier = tmp_path / "audit"
    earlier.mkdir()
    (earlier / "audit.json").write_text('{"labelless": "audit"}')
    assert check_out(earlier) == earlier
    assert check_out(tmp_path / "new") == tmp_path / "new"
