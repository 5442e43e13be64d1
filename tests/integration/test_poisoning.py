"""Tiny poisoning experiments on digits (1 epoch each, seconds): the records' structure, and
that the poisoned run's data really held the trigger where the record says, and only there."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import labelless.api
import labelless.semi.api
from labelless.audit.triggers import Trigger, ctrl_frequencies
from labelless.data import load_dataset
from labelless.verbs.poisoning import poisoning_experiment, semi_poisoning_experiment

SEMI_RECIPE = Path(__file__).parents[2] / "configs" / "semi" / "digits_fixmatch.yaml"
QUICK = ["trainer.progress_bar=false", "trainer.threads=1"]


def _spy(monkeypatch, module, name: str) -> list:
    """Wrap ``module.name`` so that every call's data argument is kept."""
    seen, real = [], getattr(module, name)

    def wrapper(data, *args, **kwargs):
        seen.append(data)
        return real(data, *args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return seen


def _check_held_the_trigger(clean_run, poisoned_run, original, trigger, indices) -> None:
    assert np.array_equal(clean_run.samples, original.samples)
    changed = (poisoned_run.samples != original.samples).reshape(len(original), -1).any(axis=1)
    assert np.array_equal(np.flatnonzero(changed), indices)
    assert np.array_equal(
        poisoned_run.samples[indices], trigger.apply_uint8(original.samples[indices])
    )


def test_pretrain_poisoning_on_digits(tmp_path, monkeypatch, one_thread):
    seen = _spy(monkeypatch, labelless.api, "pretrain")
    trigger = Trigger.ctrl(window=8, frequencies=ctrl_frequencies(8))
    record = poisoning_experiment(
        "digits",
        "simclr",
        trigger=trigger,
        fraction=0.05,
        target_class=3,
        out=tmp_path,
        seed=0,
        epochs=1,
        batch_size=128,
        width=0.25,
        overrides=[*QUICK, "monitor.every_n_epochs=1000"],
    )
    assert json.loads((tmp_path / "poisoning.json").read_text()) == json.loads(json.dumps(record))
    assert record["experiment"] == "pretrain-poisoning" and record["trigger"] == trigger.to_dict()
    poison = record["poison"]
    digits = load_dataset("digits")
    assert poison["count"] == poison["changed_samples"] == round(0.05 * 1437) == 72
    assert poison["pool"] == 1437 and poison["target_class_in_pool"] == 146
    indices = np.array(poison["indices"])
    assert (digits.train.labels[indices] == 3).all()
    # the data each run trained on: clean, then the poisoned copy with the trigger at `indices`
    clean_run, poisoned_run = (data.train for data in seen)
    _check_held_the_trigger(clean_run, poisoned_run, digits.train, trigger, indices)
    assert poison["ctrl_energy"]["poisoned"] > poison["ctrl_energy"]["clean"] + 50
    for name in ("clean", "poisoned"):
        run = record["runs"][name]
        assert (Path(run["run_dir"]) / "encoder.safetensors").is_file()
        attack = run["attack"]
        assert (attack["num_test"], attack["num_attacked"]) == (360, 360 - 37)
        for head in ("knn", "linear"):
            rates = attack[head]
            assert set(rates) >= {"clean_accuracy", "attack_success", "base_rate"}
            assert all(0 <= rates[key] <= 1 for key in ("attack_success", "base_rate"))
            assert rates["clean_accuracy"] > 0.3  # above chance (0.1) after one epoch
    clean = record["runs"]["clean"]
    # on clean data the run's own kNN and ours are the same protocol on the same embeddings
    assert clean["attack"]["knn"]["clean_accuracy"] == pytest.approx(
        clean["run_metrics"]["knn_top1"], abs=1e-6
    )
    expected = (
        record["runs"]["poisoned"]["attack"]["knn"]["attack_success"]
        - clean["attack"]["knn"]["attack_success"]
    )
    assert record["effect"]["knn_attack_success"] == pytest.approx(expected)


def test_semi_poisoning_poisons_only_unlabelled_images(tmp_path, monkeypatch, one_thread):
    seen = _spy(monkeypatch, labelless.semi.api, "semi")
    record = semi_poisoning_experiment(
        "digits",
        "fixmatch",
        trigger=Trigger.patch(size=3),
        fraction=0.05,
        target_class=0,
        out=tmp_path,
        seed=0,
        labels_per_class=2,
        config=str(SEMI_RECIPE),
        epochs=1,
        overrides=[*QUICK, "report=false", "semi.mu=2", "semi.shift_check=false"],
    )
    assert json.loads((tmp_path / "semi_poisoning.json").read_text()) == json.loads(
        json.dumps(record)
    )
    assert record["split"]["labelled"] == 20 and record["split"]["unlabelled"] == 1417
    poison = record["poison"]
    assert poison["count"] == poison["changed_samples"] == round(0.05 * 1417)
    indices = np.array(poison["indices"])
    clean_run, poisoned_run = (data.train for data in seen)
    labelled = np.flatnonzero(clean_run.labels >= 0)
    assert len(labelled) == 20 and not np.isin(indices, labelled).any()
    digits = load_dataset("digits")
    assert (digits.train.labels[indices] == 0).all()
    _check_held_the_trigger(clean_run, poisoned_run, digits.train, Trigger.patch(size=3), indices)
    for name in ("clean", "poisoned"):
        run = record["runs"][name]
        assert run["run_split"]["labelled"] == 20 and run["run_split"]["mode"] == "given"
        rates = run["attack"]["classifier"]
        assert rates["clean_accuracy"] == pytest.approx(run["run_metrics"]["test_top1"])
        assert 0 <= rates["attack_success"] <= 1
    assert set(record["effect"]) == {"classifier_attack_success", "classifier_clean_accuracy"}
