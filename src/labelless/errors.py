"""User-facing errors. Each message says what was wrong and how to fix it.

The CLI prints ``str(error)`` on one line and exits with code 2; the Python API raises them.
"""

from __future__ import annotations


class LabellessError(Exception):
    """Base class of every error caused by user input (data, config, checkpoint, names)."""

    exit_code = 2


class DataError(LabellessError):
    """A data path, file or array is missing, empty, corrupt or of the wrong shape."""


class ConfigError(LabellessError):
    """A config file, flag or override is invalid or names something unknown."""


class CheckpointError(LabellessError):
    """A checkpoint or exported encoder is missing, corrupt or incompatible."""


class TrainingError(LabellessError):
    """Training diverged (NaN loss) or collapsed in a way the user must act on."""


def unknown_name(kind: str, name: str, known: list[str] | tuple[str, ...]) -> ConfigError:
    """A ConfigError for an unknown registry name, listing the valid choices."""
    choices = ", ".join(sorted(known))
    return ConfigError(f"unknown {kind} {name!r}; choose one of: {choices}")


def did_you_mean(name: str, known) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``known`` to a mistyped ``name``, else ``""``."""
    import difflib

    close = difflib.get_close_matches(str(name), [str(k) for k in known], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
