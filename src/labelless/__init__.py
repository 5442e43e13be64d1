"""labelless: self-supervised and semi-supervised learning for data with few or no labels."""

from __future__ import annotations

__version__ = "0.1.0"

from labelless.errors import CheckpointError, ConfigError, DataError, LabellessError

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "LabellessError",
    "__version__",
    "load_dataset",
    "pretrain",
    "semi",
]


def __getattr__(name: str):
    # The verbs live in api.py, which imports torch and Lightning: load it only when asked.
    # (``labelless.evaluate`` is the evaluation package; the verb is ``labelless.api.evaluate``.)
    if name == "pretrain":
        from labelless import api

        return getattr(api, name)
    if name == "semi":  # the package is callable: labelless.semi(data, method=..., ...)
        import labelless.semi

        return labelless.semi
    if name == "load_dataset":
        from labelless.data import load_dataset

        return load_dataset
    raise AttributeError(f"module 'labelless' has no attribute {name!r}")
