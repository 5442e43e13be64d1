"""The masked-prediction methods' digits recipes: a short run must beat the same ViT at random init.

As ``test_method_zoo.py``, but for the methods that need a Vision Transformer (MAE, I-JEPA):
``configs/digits/<method>.yaml`` (a small ViT, 8 px views, 2 px patches) for fewer epochs. The
floor (conftest ``random_init_knn``) is a fresh ViT built from the trained encoder's own
architecture, kwargs (pooling included) and preprocessing.
The numbers measured are in each method card (docs/methods/mae.md, docs/methods/ijepa.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from labelless import api
from labelless.config import load_yaml

pytestmark = pytest.mark.slow

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "digits"

# Epochs per method for the short run; no wall-clock cap, so a loaded machine gives the same result.
EPOCHS = {"mae": 30, "ijepa": 30}

# Neither recipe passes yet (measured with these configs; details in the method cards). The
# thresholds stay as for every other method; strict, so a recipe that starts passing is noticed.
KNOWN_FAILURES = {
    "mae": "kNN 0.414 vs floor 0.308 passes, RankMe 4.0 <= 5 (pooled tokens share a direction)",
    "ijepa": "kNN 0.347 vs floor 0.308 (< +0.05), RankMe 3.4; a 4x4 grid leaves ~5 context patches",
}


def _cases() -> list:
    cases = []
    for name in sorted(EPOCHS):
        marks = []
        if name in KNOWN_FAILURES:
            marks.append(pytest.mark.xfail(reason=KNOWN_FAILURES[name], strict=True))
        cases.append(pytest.param(name, marks=marks, id=name))
    return cases


@pytest.mark.parametrize("name", _cases())
def test_short_run_beats_random_init(name, tmp_path, random_init_knn):
    config = load_yaml(CONFIGS / f"{name}.yaml")
    assert config["method"]["name"] == name and config["backbone"]["name"].startswith("vit_")
    config["trainer"].update(max_epochs=EPOCHS[name], max_time=None, progress_bar=False)
    config["monitor"]["every_n_epochs"] = 1000  # only the final evaluation
    result = api.pretrain(config=config, out=str(tmp_path / name))
    floor = random_init_knn(result.encoder, k=config["monitor"]["knn_k"])
    knn = result.metrics["knn_top1"]
    assert knn >= floor + 0.05, (name, knn, floor)
    assert result.metrics["rankme"] > 5, (name, result.metrics["rankme"])  # not collapsed
