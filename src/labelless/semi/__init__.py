"""Semi-supervised learning: few labels plus many unlabelled samples.

``labelless.semi.semi(data, method=..., labels_per_class=...)`` (also ``labelless.semi(...)``
from the top-level package) trains a classifier and writes a run directory; the pieces are
``splits`` (which samples keep labels), ``state`` (``SampleState``, per-sample history),
``losses`` (plain functions), ``algorithms`` (registry), ``module`` (the LightningModule).
"""

from __future__ import annotations

import sys
import types

from labelless.semi.algorithms import ALGORITHMS, SemiAlgorithm, create_algorithm, list_algorithms
from labelless.semi.splits import LabelSplit, split_labels
from labelless.semi.state import SampleState

__all__ = [
    "ALGORITHMS",
    "LabelSplit",
    "SampleState",
    "SemiAlgorithm",
    "create_algorithm",
    "list_algorithms",
    "semi",
    "split_labels",
]


def semi(*args, **kwargs):
    """See ``labelless.semi.api.semi``."""
    from labelless.semi.api import semi as run

    return run(*args, **kwargs)


class _CallableModule(types.ModuleType):
    """``labelless.semi`` is this package and the verb at once: ``labelless.semi(data, ...)``
    calls ``labelless.semi.api.semi`` (the package attribute would otherwise shadow a function
    of the same name in ``labelless``)."""

    def __call__(self, *args, **kwargs):
        return semi(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
