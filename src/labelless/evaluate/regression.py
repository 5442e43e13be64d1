"""Regression on frozen embeddings: the protocol of tables with a numeric target."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from labelless.data import Dataset
from labelless.evaluate.catalog import declare_metric

# ``protocol["regression"]`` holds the ridge protocol.
declare_metric(
    "ridge_rmse",
    "ridge RMSE (target units)",
    "ridge",
    higher_is_better=False,
    charted=True,
    settings=("regression",),
)
declare_metric("ridge_r2", "ridge R^2", "ridge", settings=("regression",))


def ridge_rmse(
    train_z: torch.Tensor, train: Dataset, test_z: torch.Tensor, test: Dataset
) -> dict[str, Any]:
    """Regression on frozen embeddings: ridge on standardised embeddings, the penalty chosen by
    leave-one-out cross-validation on train (scikit-learn ``RidgeCV``); test RMSE and R^2 over
    the rows with a known target."""
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    alphas = np.logspace(-3, 3, 13)
    rows, test_rows = np.isfinite(train.targets), np.isfinite(test.targets)
    model = make_pipeline(StandardScaler(), RidgeCV(alphas=alphas))
    model.fit(train_z.numpy()[rows], train.targets[rows])
    truth = test.targets[test_rows]
    error = model.predict(test_z.numpy()[test_rows]) - truth
    rmse = float(np.sqrt(np.mean(error**2)))
    r2 = 1.0 - float(np.sum(error**2) / max(np.sum((truth - truth.mean()) ** 2), 1e-12))
    protocol = f"ridge on standardised embeddings, alpha {alphas[0]:g}..{alphas[-1]:g} by LOO CV"
    return {"ridge_rmse": rmse, "ridge_r2": r2, "protocol": {"regression": protocol}}
