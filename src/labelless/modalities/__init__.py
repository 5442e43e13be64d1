"""The modality registry: one descriptor per kind of data (``modalities.base.Modality``).

Adding a modality is a data module that registers its sample format and loaders, a backbone and
views registered like the others, a descriptor module here, and one line below.
"""

from __future__ import annotations

from labelless.modalities import graph, image, tabular, timeseries  # noqa: F401  (registrations)
from labelless.modalities.base import (
    MODALITIES,
    Modality,
    get_modality,
    modality_of,
    register_modality,
)

__all__ = ["MODALITIES", "Modality", "get_modality", "modality_of", "register_modality"]
