"""The final metrics of a semi-supervised run, by name, declared for readers of metrics.json.

``semi/evaluation.py`` computes them (it imports Lightning); their names and descriptions live
here so that ``labelless compare`` reads them without importing Lightning. Their settings are
the protocol's ``model`` (which weights are scored) and ``classes`` (all, or the known classes
of an open-set split).
"""

from __future__ import annotations

from labelless.evaluate.catalog import declare_metric

SETTINGS = ("model", "classes")

TEST_TOP1 = declare_metric(
    "test_top1",
    "test top-1 accuracy (EMA model, end of training)",
    "semi_test",
    charted=True,
    settings=SETTINGS,
)
TEST_TOP1_ONLINE = declare_metric(
    "test_top1_online",
    "test top-1 accuracy of the online (non-averaged) model",
    "semi_test",
    settings=SETTINGS,
)
OPEN_SET_AUROC = declare_metric(
    "open_set_auroc",
    "AUROC of the outlier score, known vs unknown classes",
    "semi_test",
    settings=SETTINGS,
)
