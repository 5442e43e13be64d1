"""Label splits for semi-supervised learning: which training samples keep their label.

Three ways to choose the labelled set, all stratified and seeded:

- ``per_class=N``: N samples of each (known) class, drawn without replacement;
- ``fraction=f``: ``round(f * n_c)`` samples of each class ``c`` (at least one);
- neither: the labels already in the data (``-1`` marks an unlabelled sample).

The unlabelled pool is every other training sample (its labels are kept only to measure
pseudo-label accuracy; the algorithms never read them). An open-set split (``known_classes=K``)
labels only classes ``0..K-1`` and leaves the samples of classes ``K..`` in the unlabelled pool as
outliers, the protocol of open-set semi-supervised learning (Oliver et al. 2018; Yu et al. 2020).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labelless.errors import ConfigError, DataError


@dataclass(frozen=True)
class LabelSplit:
    """Indices into the training set: ``labelled`` and ``unlabelled`` (disjoint, sorted).

    ``num_classes`` is the classifier's number of outputs (the known classes of an open-set
    split); ``open_set`` says whether the unlabelled pool may hold classes outside them.
    """

    labelled: np.ndarray
    unlabelled: np.ndarray
    num_classes: int
    open_set: bool = False
    mode: str = "given"

    def describe(self) -> str:
        kind = "open-set " if self.open_set else ""
        return (
            f"{kind}split ({self.mode}): {len(self.labelled)} labelled, "
            f"{len(self.unlabelled)} unlabelled, {self.num_classes} classes"
        )


def _per_class_counts(counts: np.ndarray, per_class: int | None, fraction: float | None):
    if per_class is not None:
        short = np.flatnonzero(counts < per_class)
        if len(short):
            raise ConfigError(
                f"--labels-per-class {per_class} asks for more samples than class(es) "
                f"{short.tolist()} hold (smallest: {int(counts[short].min())}): lower it"
            )
        return np.full(len(counts), per_class)
    return np.clip(np.round(fraction * counts).astype(int), 1, counts)


def split_labels(
    labels: np.ndarray,
    *,
    per_class: int | None = None,
    fraction: float | None = None,
    known_classes: int | None = None,
    num_classes: int | None = None,
    seed: int = 0,
) -> LabelSplit:
    """Choose the labelled samples of a training set whose ``labels`` are ``int [N]`` (-1 none).

    ``per_class`` and ``fraction`` exclude each other; with neither, the labels already in the
    data define the split. ``known_classes=K`` makes an open-set split: only classes ``< K`` are
    labelled and the classifier has K outputs. Same ``seed``, same split.
    """
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if per_class is not None and fraction is not None:
        raise ConfigError("give either labels per class or a label fraction, not both")
    if per_class is not None and per_class < 1:
        raise ConfigError(f"labels per class must be >= 1, got {per_class}")
    if fraction is not None and not 0 < fraction <= 1:
        raise ConfigError(f"the label fraction must be in (0, 1], got {fraction}")
    present = labels[labels >= 0]
    if len(present) == 0:
        raise DataError(
            "the training data has no labels: semi-supervised learning needs a few; give labels "
            "(-1 for unlabelled samples) or use `labelless pretrain` for label-free learning"
        )
    total = int(num_classes or present.max() + 1)
    known = total if known_classes is None else int(known_classes)
    if not 1 <= known <= total:
        raise ConfigError(f"known_classes must be in 1..{total}, got {known_classes}")
    candidates = labels >= 0
    candidates &= labels < known
    mode = "given"
    if per_class is None and fraction is None:
        labelled = np.flatnonzero(candidates)
    else:
        mode = f"{per_class} per class" if per_class is not None else f"fraction {fraction}"
        counts = np.bincount(labels[candidates], minlength=known)
        missing = np.flatnonzero(counts == 0)
        if len(missing):
            raise DataError(
                f"class(es) {missing.tolist()} have no labelled sample: drop them from the data "
                "or lower known_classes"
            )
        take = _per_class_counts(counts, per_class, fraction)
        rng = np.random.default_rng(seed)
        # One shuffle of all candidates, then a stable sort by class: the first ``take[c]`` of
        # each class block are a uniform draw without replacement, with no loop over samples.
        order = rng.permutation(np.flatnonzero(candidates))
        order = order[np.argsort(labels[order], kind="stable")]
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        rank = np.arange(len(order)) - np.repeat(starts, counts)
        labelled = np.sort(order[rank < np.repeat(take, counts)])
    unlabelled = np.setdiff1d(np.arange(len(labels)), labelled)
    if len(unlabelled) == 0:
        raise ConfigError(
            "every training sample is labelled, so there is nothing to learn from without "
            "labels: use --labels-per-class or --label-fraction to hold labels back"
        )
    open_set = bool((labels[unlabelled] >= known).any()) or known < total
    return LabelSplit(labelled, unlabelled, known, open_set, mode)


def require_class_labels(train, source: str, target: str | None = None) -> None:
    """A DataError when ``train`` (a ``Dataset``) holds regression targets instead of class
    labels: semi-supervised classification needs a column of classes. Data with neither is left
    to the caller (its message is about giving labels at all)."""
    if train.labels is not None or train.targets is None:
        return
    values = np.asarray(train.targets, dtype=np.float64)
    distinct = len(np.unique(values[np.isfinite(values)]))
    column = f"--target {target!r}" if target else "the target"
    raise DataError(
        f"{column} of {source!r} is a numeric column with {distinct} distinct values, read as a "
        "regression target; semi-supervised classification needs a column of classes: pick a "
        "column of class labels with --target, or convert this one into classes (e.g. bins) in "
        "the file; if its values are class numbers, add --set data.options.task=classification"
    )


def warn_no_test_split(test, source: str) -> None:
    """Warn before training that no test accuracy will be reported when there is no test split
    (``test`` None) or it has no labels, and how to get one."""
    import warnings

    if test is not None and test.has_labels:
        return
    why = "has no test split" if test is None else "has a test split without labels"
    warnings.warn(
        f"{source!r} {why}, so no test accuracy will be reported: for a CSV / parquet table "
        "hold out a labelled share with --set data.options.test=0.2 (a .ts file takes its "
        "NAME_TEST.ts beside NAME_TRAIN.ts), or name labelled test data with --set "
        "data.eval=PATH (a built-in name, a labelled image folder or a table with the same "
        "--target column)",
        UserWarning,
        stacklevel=3,
    )
