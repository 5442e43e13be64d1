"""Checks of the numbers the evaluation verbs take, and the end-of-run collapse warning.

Every check raises a ``ConfigError`` naming the option, the value given and a valid example,
before any data is loaded or file written; ``warn_if_collapsed`` warns (never raises) when an
encoder's embeddings look collapsed.
"""

from __future__ import annotations

import math
import numbers
import warnings

from labelless.errors import ConfigError

# The thresholds of the per-epoch monitor (train/callbacks.py RankMeMonitor): RankMe below 1.5
# means the embeddings use about one direction; the std of L2-normalised embeddings times
# sqrt(D) sits near 1 for embeddings spread over the sphere and near 0 when they collapsed.
COLLAPSE_RANK = 1.5
COLLAPSE_STD = 0.05


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_int(name: str, value, minimum: int, example: int) -> None:
    """``value`` must be an int >= ``minimum``; ``name`` is the option as the user typed it."""
    if not _is_int(value) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}: e.g. {example}")


def check_positive(name: str, value, example: float) -> None:
    """``value`` must be a finite number > 0."""
    if not _is_real(value) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a number > 0, got {value!r}: e.g. {example}")


def check_fraction(name: str, value, example: float) -> None:
    """``value`` must lie strictly between 0 and 1."""
    if not _is_real(value) or not 0.0 < value < 1.0:
        raise ConfigError(
            f"{name} must be a fraction strictly between 0 and 1, got {value!r}: e.g. {example}"
        )


def check_knn_options(k, temperature) -> None:
    """kNN's neighbour count (an int >= 1) and vote temperature (> 0), as ``--k`` and
    ``--temperature``: ``k=0`` would vote with no neighbour (chance accuracy) and a temperature
    of 0 divides by zero."""
    check_int("--k (kNN neighbours)", k, 1, 200)
    check_positive("--temperature (kNN vote temperature)", temperature, 0.1)


def collapse_message(rank: float, normalised_std: float, where: str = "") -> str | None:
    """Why the embeddings look collapsed, or None: RankMe below ``COLLAPSE_RANK`` or the std of
    the L2-normalised embeddings times sqrt(D) below ``COLLAPSE_STD``."""
    if rank >= COLLAPSE_RANK and normalised_std >= COLLAPSE_STD:
        return None
    where = f" {where}" if where else ""
    return (
        f"the encoder looks collapsed{where} (RankMe {rank:.2f}, below {COLLAPSE_RANK} means "
        f"about one direction used; normalised embedding std {normalised_std:.3f}, healthy "
        "near 1): its embeddings carry little information. Likely fixes: a lower learning "
        "rate (--lr), more epochs or a larger batch, stronger augmentations, or the method's "
        "predictor / stop-gradient / EMA settings left at their defaults"
    )


def warn_if_collapsed(rank: float, embedding_std: float, dim: int, where: str = "") -> bool:
    """Warn when embeddings of dimension ``dim`` with RankMe ``rank`` and mean per-dimension std
    of the L2-normalised embeddings ``embedding_std`` (``evaluate.embedding_std``) look collapsed;
    returns whether they do. ``where`` names the embeddings (e.g. ``"on digits test"``)."""
    normalised = float(embedding_std) * math.sqrt(max(int(dim), 1))
    message = collapse_message(float(rank), normalised, where)
    if message is None:
        return False
    warnings.warn(message, UserWarning, stacklevel=2)
    return True
