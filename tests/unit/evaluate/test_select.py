"""rank_runs: label-free ranking of run directories on the same images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from labelless.backbones import create_backbone, save_encoder
from labelless.errors import ConfigError, DataError
from labelless.evaluate.select import rank_runs


def make_run(root: Path, name: str, method: str, *, collapsed: bool, seed: int) -> Path:
    """A run directory: config.yaml naming the method, and an exported tiny encoder."""
    torch.manual_seed(seed)
    backbone = create_backbone(
        "resnet18_cifar", in_channels=1, width=0.125, input_size=8, mean=[0.3], std=[0.3]
    )
    if collapsed:  # every input maps to the same embedding: RankMe about 1
        with torch.no_grad():
            for parameter in backbone.parameters():
                parameter.zero_()
    run = root / name
    save_encoder(backbone, run)
    (run / "config.yaml").write_text(yaml.safe_dump({"method": {"name": method}}))
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {
        "healthy": make_run(root, "healthy", "simclr", collapsed=False, seed=0),
        "collapsed": make_run(root, "collapsed", "simclr", collapsed=True, seed=1),
        "byol": make_run(root, "byol", "byol", collapsed=False, seed=2),
    }


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, size=(300, 1, 8, 8), dtype=np.uint8)


def test_rankme_ranks_the_healthy_run_first(runs, images):
    rows = rank_runs([runs["collapsed"], runs["healthy"]], "rankme", images)
    assert [Path(row["run"]).name for row in rows] == ["healthy", "collapsed"]
    assert [row["rank"] for row in rows] == [1, 2]
    assert rows[0]["value"] > 5 and rows[1]["value"] == pytest.approx(1.0, abs=0.01)
    assert all(row["images"] == 300 and row["method"] == "simclr" for row in rows)
    subset = rank_runs([runs["healthy"]], "rankme", images, max_samples=100)
    assert subset[0]["images"] == 100


def test_lidar_ranks_the_healthy_run_first(runs, images):
    rows = rank_runs([runs["collapsed"], runs["healthy"]], "lidar", images, max_samples=40)
    assert [Path(row["run"]).name for row in rows] == ["healthy", "collapsed"]
    assert rows[0]["value"] > rows[1]["value"]


def test_mixed_methods_are_refused_unless_allowed(runs, images):
    with pytest.raises(ConfigError, match=r"--allow-mixed \(allow_mixed=True\)"):
        rank_runs([runs["healthy"], runs["byol"]], "rankme", images)
    with pytest.warns(UserWarning, match="different methods .* ranked together"):
        rows = rank_runs([runs["healthy"], runs["byol"]], "rankme", images, allow_mixed=True)
    assert {row["method"] for row in rows} == {"simclr", "byol"}


def test_bad_inputs_explain_the_fix(runs, images, tmp_path):
    with pytest.raises(ConfigError, match="unknown measure"):
        rank_runs([runs["healthy"]], "accuracy", images)
    with pytest.raises(Exception, match="not a run directory"):
        rank_runs([tmp_path], "rankme", images)
    with pytest.raises(DataError, match="1-channel"):
        rank_runs([runs["healthy"]], "rankme", np.zeros((4, 3, 8, 8), dtype=np.uint8))
    with pytest.raises(DataError, match="uint8"):
        rank_runs([runs["healthy"]], "rankme", np.zeros((4, 1, 8, 8), dtype=np.float32))
