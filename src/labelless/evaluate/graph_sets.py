"""Graph classification on frozen graph embeddings: the SVM protocol of InfoGraph (Sun et al.
2020), GraphCL (You et al. 2020) and GraphMAE (Hou et al. 2022).

sklearn ``SVC`` with its default RBF kernel (``gamma="scale"``), as their evaluation code calls
it; C chosen by stratified 5-fold CV accuracy inside each training fold; refit on the training
fold; the test fold scored once; 10-fold mean accuracy; repeated over seeds of the inner CV
shuffle (and of the outer folds when none are shipped). GraphMAE's ``+-`` is the std over seeds
of the 10-fold mean; InfoGraph / GraphCL also quote the std over folds: both are returned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from labelless.errors import ConfigError, DataError
from labelless.evaluate.catalog import declare_metric
from labelless.evaluate.knn import ArrayLike, as_float_tensor, as_label_tensor
from labelless.progress import task

SVM_C_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3)  # InfoGraph / GraphCL
SVM_INNER_FOLDS = 5  # sklearn GridSearchCV's default, as InfoGraph / GraphCL / GraphMAE

declare_metric(
    "svm_10fold_top1",
    "SVM 10-fold accuracy (C by inner CV)",
    "graph_svm",
    charted=True,
    fitted=("chosen_C",),
)
declare_metric(
    "svm_10fold_std",
    "SVM 10-fold accuracy, std over seeds",
    "graph_svm",
    shown=False,
    fitted=("chosen_C",),
)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and population std (``np.std``, as the papers' scripts report)."""
    array = np.asarray(values, dtype=np.float64)
    return float(array.mean()), float(array.std())


@dataclass
class GraphSVMResult:
    """10-fold test accuracy: ``mean`` over seeds of the fold mean, ``std`` over seeds of the
    fold mean (GraphMAE's ``+-``), ``fold_std`` the std over folds (mean over seeds), one entry
    per seed in ``runs`` (fold accuracies and chosen C), and the protocol."""

    mean: float
    std: float
    fold_std: float
    runs: list[dict[str, Any]]
    protocol: dict[str, Any] = field(default_factory=dict)

    @property
    def per_seed(self) -> list[float]:
        """The 10-fold mean accuracy of each seed."""
        return [run["accuracy"] for run in self.runs]


def _outer_folds(labels: np.ndarray, folds, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    if folds:
        return [(np.asarray(train), np.asarray(test)) for train, test in folds]
    from sklearn.model_selection import StratifiedKFold

    splitter = StratifiedKFold(10, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(labels)), labels))


def _svm_fold(x, y, train, test, c_grid, kernel, standardise, seed):
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    svc = SVC(kernel=kernel, gamma="scale")
    model = make_pipeline(StandardScaler(), svc) if standardise else make_pipeline(svc)
    _, counts = np.unique(y[train], return_counts=True)
    inner = min(SVM_INNER_FOLDS, int(counts.min()))
    if inner < 2:
        raise DataError("a training fold has a class with one graph: inner CV cannot choose C")
    grid = GridSearchCV(
        model,
        {f"{model.steps[-1][0]}__C": list(c_grid)},
        cv=StratifiedKFold(inner, shuffle=True, random_state=seed),
        scoring="accuracy",
    )
    grid.fit(x[train], y[train])  # only the training fold: the test fold is scored once below
    accuracy = float((grid.predict(x[test]) == y[test]).mean())
    return accuracy, float(next(iter(grid.best_params_.values()))), inner


def graph_svm(
    z: ArrayLike,
    labels: ArrayLike,
    folds: Sequence[tuple[ArrayLike, ArrayLike]] | None = None,
    *,
    seeds: int | Sequence[int] = 5,
    C_grid: Sequence[float] = SVM_C_GRID,
    kernel: str = "rbf",
    standardise: bool = False,
) -> GraphSVMResult:
    """The graph-classification protocol of InfoGraph / GraphCL / GraphMAE on frozen graph
    embeddings ``z [G, D]`` with labels ``[G]``.

    For each outer fold (``folds``: the shipped (train, test) index pairs; ``None``: a
    stratified, shuffled 10-fold split drawn from the seed), an ``SVC(kernel, gamma="scale")``
    (their code's default RBF) has its C chosen by stratified 5-fold CV accuracy inside the
    training fold (sklearn ``GridSearchCV``, shuffled by the seed), is refit on the whole
    training fold and scores the test fold once. Repeated for each seed. ``standardise``:
    z-score the features with the training fold's statistics (the papers do not).
    """
    c_grid = [float(c) for c in C_grid]
    if not c_grid or min(c_grid) <= 0:
        raise ConfigError(f"C_grid must hold positive values, got {list(C_grid)}")
    x = as_float_tensor(z, "graph embeddings").cpu().double().numpy()
    y = as_label_tensor(labels, len(x), "graph labels").cpu().numpy()
    if (y < 0).any():
        raise DataError("graph_svm needs a label for every graph (found -1)")
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_list:
        raise ConfigError("seeds must be >= 1")
    runs = []
    with task("graph SVM", len(seed_list)) as bar:
        for seed in seed_list:
            outer = _outer_folds(y, folds, seed)
            scores = [
                _svm_fold(x, y, tr, te, c_grid, kernel, standardise, seed) for tr, te in outer
            ]
            fold_mean, fold_std = mean_std([s[0] for s in scores])
            runs.append(
                {
                    "seed": seed,
                    "accuracy": fold_mean,
                    "fold_std": fold_std,
                    "fold_accuracies": [s[0] for s in scores],
                    "chosen_C": [s[1] for s in scores],
                    "inner_folds": [s[2] for s in scores],
                }
            )
            bar.advance()
    mean, std = mean_std([run["accuracy"] for run in runs])
    protocol = {
        "classifier": f"sklearn SVC kernel={kernel} gamma=scale"
        + (", features standardised on the training fold" if standardise else ", raw features"),
        "C_grid": c_grid,
        "selection": f"C by stratified {SVM_INNER_FOLDS}-fold CV accuracy inside each training "
        "fold (shuffled by the seed), refit on the training fold, test fold scored once",
        "outer_folds": "shipped folds"
        if folds
        else "stratified 10-fold, shuffled by the seed (no folds given)",
        "num_folds": len(runs[0]["fold_accuracies"]),
        "seeds": seed_list,
        "std": "population std over seeds of the 10-fold mean; fold_std: std over folds",
        "chosen_C": [run["chosen_C"] for run in runs],
        "num_graphs": len(y),
    }
    return GraphSVMResult(mean, std, mean_std([r["fold_std"] for r in runs])[0], runs, protocol)
