"""Size checks of loaded data: too few samples is an error, few enough to be unreliable a
warning, and a batch larger than the data a warning (it is capped, so an epoch is one step).

``load_dataset`` runs ``check_splits`` on everything it loads (built-ins, folders, tables,
series), so every modality gets the same checks from one place.
"""

from __future__ import annotations

import warnings

from labelless.data.dataset import DataSplits
from labelless.errors import DataError

MIN_TRAIN_SAMPLES = 2  # fewer: nothing to compare or to fit, an error
TINY_TRAIN_SAMPLES = 50  # fewer: training and evaluation numbers are noise, a warning
TINY_TEST_SAMPLES = 20  # fewer: one test sample moves the accuracy by more than 5 points


def check_splits(splits: DataSplits, source: str) -> None:
    """A DataError when the train split has fewer than ``MIN_TRAIN_SAMPLES`` samples; a warning
    when it has fewer than ``TINY_TRAIN_SAMPLES`` or the test split fewer than
    ``TINY_TEST_SAMPLES``. ``source`` names the data as the user gave it."""
    count = len(splits.train)
    if count < MIN_TRAIN_SAMPLES:
        raise DataError(
            f"{source!r} has {count} training sample(s); training and evaluation need at least "
            f"{MIN_TRAIN_SAMPLES} (and {TINY_TRAIN_SAMPLES} or more for numbers worth reading): "
            "give more rows, images or series"
        )
    if count < TINY_TRAIN_SAMPLES:
        warnings.warn(
            f"{source!r} has only {count} training samples (fewer than {TINY_TRAIN_SAMPLES}): "
            "a model trained or evaluated on so few gives numbers that are mostly noise; use "
            "more data if you can",
            UserWarning,
            stacklevel=3,
        )
    test = splits.test
    if test is not None and len(test) < TINY_TEST_SAMPLES:
        warnings.warn(
            f"the test split of {source!r} has only {len(test)} samples (fewer than "
            f"{TINY_TEST_SAMPLES}): each one moves the accuracy by {100 / len(test):.0f} points, "
            "so read its accuracy as a rough indication; hold out more samples if you can",
            UserWarning,
            stacklevel=3,
        )


def warn_if_batch_exceeds_data(batch_size: int, num_samples: int, what: str = "training") -> bool:
    """Warn when ``batch_size`` is larger than the ``num_samples`` samples it is drawn from: the
    loader caps the batch at the data size, so every step sees the whole data and an epoch is
    one step. Returns whether it warned. ``what`` names the samples (``"training"``,
    ``"labelled"``)."""
    if batch_size <= num_samples:
        return False
    warnings.warn(
        f"--batch-size {batch_size} is larger than the {num_samples} {what} samples: the batch "
        f"is capped at {num_samples}, so each epoch is a single step over all of them; for "
        f"several steps per epoch pass --batch-size {max(2, num_samples // 4)} or so",
        UserWarning,
        stacklevel=2,
    )
    return True
