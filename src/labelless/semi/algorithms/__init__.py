"""Semi-supervised algorithms, one module each, registered by name."""

from __future__ import annotations

from labelless.semi.algorithms import (  # noqa: F401 (registration)
    dac,
    fixmatch,
    flexmatch,
    freematch,
    iomatch,
    mean_teacher,
    mixmatch,
    pseudo_label,
    softmatch,
    supervised,
    wad,
)
from labelless.semi.algorithms.base import (
    ALGORITHMS,
    SemiAlgorithm,
    create_algorithm,
    list_algorithms,
    register_algorithm,
)

__all__ = [
    "ALGORITHMS",
    "SemiAlgorithm",
    "create_algorithm",
    "list_algorithms",
    "register_algorithm",
]
