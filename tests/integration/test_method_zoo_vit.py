"""The masked-prediction methods' digits recipes: a short run must beat the same ViT at random init.

As ``test_method_zoo.py``, but for the methods that need a Vision Transformer (MAE, I-JEPA):
``configs/digits/<method>.yaml`` (a small ViT, 8 px views, 2 px patches) for fewer epochs. The
conftest floor rebuilds a ResNet, so the floor here is a fresh ViT built from the trained
encoder's own architecture, kwargs (pooling included) and preprocessing, under the same seed.
The numbers measured are in each method card (docs/methods/mae.md, docs/methods/ijepa.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from labelless import api
from labelless.backbones import create_backbone
from labelless.config import load_yaml
from labelless.evaluate import embed, knn_accuracy

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


def random_init_vit_knn(encoder, digits, k: int, seed: int) -> float:
    """kNN top-1 on digits of a freshly initialised copy of ``encoder``'s ViT (same kwargs,
    input size, mean and std): the floor a pretrained encoder must beat."""
    meta = encoder.meta
    torch.manual_seed(seed)
    fresh = create_backbone(
        meta.architecture,
        in_channels=meta.in_channels,
        input_size=meta.input_size,
        mean=meta.mean,
        std=meta.std,
        **meta.kwargs,
    )
    train, test = digits.train, digits.test
    return knn_accuracy(
        embed(fresh, train.samples),
        torch.as_tensor(train.labels),
        embed(fresh, test.samples),
        torch.as_tensor(test.labels),
        k=k,
        temperature=0.1,
    )


@pytest.mark.parametrize("name", _cases())
def test_short_run_beats_random_init(name, tmp_path, digits):
    config = load_yaml(CONFIGS / f"{name}.yaml")
    assert config["method"]["name"] == name and config["backbone"]["name"].startswith("vit_")
    config["trainer"].update(max_epochs=EPOCHS[name], max_time=None, progress_bar=False)
    config["monitor"]["every_n_epochs"] = 1000  # only the final evaluation
    result = api.pretrain(config=config, out=str(tmp_path / name))
    k = config["monitor"]["knn_k"]
    floor = random_init_vit_knn(result.encoder, digits, k=k, seed=config["seed"])
    knn = result.metrics["knn_top1"]
    assert knn >= floor + 0.05, (name, knn, floor)
    assert result.metrics["rankme"] > 5, (name, result.metrics["rankme"])  # not collapsed
