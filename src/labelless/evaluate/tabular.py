"""Evaluation of table encoders with labels, at 100% and at a fraction of the training labels.

Protocols, all on the same labelled training rows (``label_subset``: a seeded, stratified
fraction for classification) and scored once on the test rows:

- ``linear`` / ``mlp``: a linear or 1-hidden-layer MLP head on frozen, standardised embeddings;
- ``finetune``: the encoder and a head (MLP by default) trained together from the pretrained
  weights, at a lower learning rate (1e-4);
- ``scratch``: the same encoder architecture and head, freshly initialised, trained together
  (the "MLP from scratch" baseline when the encoder is the ``mlp``);
- ``gbdt``: scikit-learn ``HistGradientBoostingClassifier`` / ``Regressor`` on the rows
  (categorical codes as native categories).

Neural protocols share one loop (``fit_supervised``): AdamW, mini-batches, the number of epochs
chosen by early stopping on a stratified 20% of the labelled training rows, then a refit on all
of them for that many epochs (batches of 256, or fewer rows so that an epoch has ~8 steps on
small label sets). Nothing is chosen on the test rows. Metrics: accuracy for
classification, RMSE (in the target's units) for regression. Everything is batched tensor code.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from labelless.data.dataset import Dataset
from labelless.errors import ConfigError, DataError
from labelless.evaluate.catalog import declare_metric

PROTOCOLS = ("linear", "mlp", "finetune", "scratch", "gbdt")

# ``evaluate_table`` rows as recorded: ``<protocol>_<metric>_<fraction>``, e.g.
# ``linear_accuracy_1`` or ``mlp_rmse_0.01`` (``protocol["tables"]`` holds the settings).
for _protocol in PROTOCOLS:
    declare_metric(
        f"{_protocol}_accuracy_{{fraction}}",
        f"{_protocol} accuracy, trained on a fraction {{fraction}} of the labels",
        "tables",
        charted=_protocol == "linear",
    )
    declare_metric(
        f"{_protocol}_rmse_{{fraction}}",
        f"{_protocol} RMSE (target units), trained on a fraction {{fraction}} of the targets",
        "tables",
        higher_is_better=False,
        charted=_protocol == "linear",
    )


def row_metric_name(row: dict[str, Any]) -> str:
    """The name an ``evaluate_table`` row is recorded under (``linear_accuracy_1``, ...)."""
    return f"{row['protocol']}_{row['metric']}_{row['fraction']:g}"


def task_of(dataset: Dataset) -> str:
    task = dataset.meta.get("task")
    if task in ("classification", "regression"):
        return task
    if dataset.targets is not None:
        return "regression"
    if dataset.has_labels:
        return "classification"
    raise DataError(f"{dataset.name!r} has no labels or targets to evaluate with")


def answers(dataset: Dataset, task: str) -> np.ndarray:
    """Labels (int64, -1 unknown) or regression targets (float32, NaN unknown)."""
    if task == "regression":
        if dataset.targets is None:
            raise DataError(f"{dataset.name!r} has no regression targets")
        return dataset.targets
    if dataset.labels is None:
        raise DataError(f"{dataset.name!r} has no labels")
    return dataset.labels


def known(y: np.ndarray, task: str) -> np.ndarray:
    return ~np.isnan(y) if task == "regression" else y >= 0


def label_subset(y: np.ndarray, fraction: float, seed: int, task: str) -> np.ndarray:
    """Sorted indices of a seeded ``fraction`` of the rows with a known answer: stratified for
    classification (``round(fraction * class count)`` per class, at least 1), uniform for
    regression (at least 2)."""
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(f"label fraction must be in (0, 1], got {fraction}")
    rows = np.flatnonzero(known(y, task))
    if fraction == 1.0:
        return rows
    rng = np.random.default_rng(seed)
    if task == "regression":
        return np.sort(rng.choice(rows, max(2, round(fraction * len(rows))), replace=False))
    picked = []
    for label in np.unique(y[rows]):
        members = rows[y[rows] == label]
        picked.append(rng.choice(members, max(1, round(fraction * len(members))), replace=False))
    return np.sort(np.concatenate(picked))


@torch.no_grad()
def embed_rows(encoder: nn.Module, rows: np.ndarray | torch.Tensor, batch_size: int = 4096):
    """Encoder outputs ``[N, D]`` for table rows, in eval mode (the mode is restored)."""
    was_training = encoder.training
    encoder.eval()
    device = next(encoder.parameters()).device
    rows = torch.as_tensor(np.asarray(rows), dtype=torch.float32)
    out = torch.cat(
        [
            encoder(rows[i : i + batch_size].to(device)).cpu()
            for i in range(0, len(rows), batch_size)
        ]
    )
    encoder.train(was_training)
    return out


class Standardise(nn.Module):
    def __init__(self, features: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", features.mean(0))
        self.register_buffer("std", features.std(0).clamp_min(1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def head(kind: str, in_dim: int, out_dim: int, hidden: int = 256) -> nn.Module:
    if kind == "linear":
        return nn.Linear(in_dim, out_dim)
    return nn.Sequential(
        nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(0.1), nn.Linear(hidden, out_dim)
    )


def _validation_split(y: np.ndarray, task: str, fraction: float, seed: int):
    rng = np.random.default_rng(seed + 10_000)
    index = np.arange(len(y))
    if task == "regression":
        val = rng.choice(index, max(1, round(fraction * len(y))), replace=False)
    else:
        val = np.concatenate(
            [
                rng.choice(m, round(fraction * len(m)), replace=False)
                for m in (index[y == c] for c in np.unique(y))
            ]
        )
        if len(val) == 0:
            val = rng.choice(index, 1, replace=False)
    fit = np.setdiff1d(index, val)
    return fit, np.sort(val)


def _score(model: nn.Module, x: torch.Tensor, y: torch.Tensor, task: str, scale: float) -> float:
    """Accuracy (classification) or RMSE in target units (regression); higher-is-better sign
    is the caller's business."""
    model.eval()
    with torch.no_grad():
        out = torch.cat([model(x[i : i + 8192]) for i in range(0, len(x), 8192)])
    model.train()
    if task == "regression":
        return float(((out.squeeze(1) - y) ** 2).mean().sqrt()) * scale
    return float((out.argmax(1) == y).float().mean())


def _val_score(model: nn.Module, x: torch.Tensor, y: torch.Tensor, task: str, select: str):
    """Higher is better: accuracy, or minus the validation loss (cross-entropy / MSE)."""
    if select == "accuracy" and task == "classification":
        return _score(model, x, y, task, 1.0)
    model.eval()
    with torch.no_grad():
        out = model(x)
    model.train()
    if task == "regression":
        return -float(F.mse_loss(out.squeeze(1), y))
    return -float(F.cross_entropy(out, y))


def _train(model, x, y, task, epochs, lr, weight_decay, batch_size, seed, val=None, select="loss"):
    """AdamW for ``epochs`` (with ``val=(x, y)``: early stopping, returns the best epoch)."""
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    batch_size = min(batch_size, len(x))
    steps = max(1, len(x) // batch_size)  # drop the last partial batch (BatchNorm needs > 1)
    best, best_epoch, best_state, waited = -math.inf, epochs, None, 0
    patience = max(5, epochs // 8)
    for epoch in range(1, epochs + 1):
        order = torch.randperm(len(x), generator=generator)
        for step in range(steps):
            index = order[step * batch_size : (step + 1) * batch_size]
            out = model(x[index])
            if task == "regression":
                loss = F.mse_loss(out.squeeze(1), y[index])
            else:
                loss = F.cross_entropy(out, y[index])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
        if val is not None:
            score = _val_score(model, *val, task, select)
            if score > best:
                best, best_epoch, best_state, waited = (
                    score,
                    epoch,
                    copy.deepcopy(model.state_dict()),
                    0,
                )
            else:
                waited += 1
                if waited >= patience:
                    break
    if best_state is not None:
        model.load_state_dict(best_state)
    return best_epoch


def fit_supervised(
    model: nn.Module,
    x_train: torch.Tensor,
    y_train: np.ndarray,
    x_test: torch.Tensor,
    y_test: np.ndarray,
    *,
    task: str,
    lr: float = 1e-3,
    weight_decay: float = 1e-5,
    batch_size: int = 256,
    max_steps: int = 4000,
    val_fraction: float = 0.2,
    refit: bool = True,
    select: str = "accuracy",
    seed: int = 0,
) -> dict[str, Any]:
    """Train ``model`` (rows or embeddings -> logits, or one output for regression) and score
    it on the test rows. The epoch count is chosen by early stopping on a seeded, stratified
    ``val_fraction`` of the training rows (at most ``max_steps`` steps); with ``refit`` the
    model restarts from its initial weights and trains on all training rows for that many
    epochs. Regression targets are standardised for training; RMSE is in target units."""
    x_train = torch.as_tensor(x_train, dtype=torch.float32)
    x_test = torch.as_tensor(x_test, dtype=torch.float32)
    scale, shift = 1.0, 0.0
    if task == "regression":
        shift, scale = float(np.mean(y_train)), float(np.std(y_train)) or 1.0
        target = lambda y: torch.as_tensor((np.asarray(y) - shift) / scale, dtype=torch.float32)  # noqa: E731
    else:
        target = lambda y: torch.as_tensor(np.asarray(y), dtype=torch.long)  # noqa: E731
    initial = copy.deepcopy(model.state_dict())
    fit, val = _validation_split(np.asarray(y_train), task, val_fraction, seed)
    batch_size = min(batch_size, max(16, len(fit) // 8))  # at least ~8 steps per epoch
    steps = max(1, len(fit) // batch_size)
    epochs = max(5, min(300, max_steps // steps))
    torch.manual_seed(seed)
    best_epoch = _train(
        model,
        x_train[fit],
        target(y_train[fit]),
        task,
        epochs,
        lr,
        weight_decay,
        batch_size,
        seed,
        val=(x_train[val], target(y_train[val])),
        select=select,
    )
    if refit:
        model.load_state_dict(initial)
        torch.manual_seed(seed)
        _train(
            model, x_train, target(y_train), task, best_epoch, lr, weight_decay, batch_size, seed
        )
    value = _score(model, x_test, target(y_test), task, scale)
    return {"value": value, "epochs": best_epoch, "num_labelled": len(x_train)}


def gbdt(x_train, y_train, x_test, y_test, *, task: str, num_numeric: int, seed: int = 0):
    """HistGradientBoosting (scikit-learn defaults; early stopping on its own 10% validation
    split above 10,000 rows) with the categorical codes as native categories."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    x_train, x_test = np.asarray(x_train), np.asarray(x_test)
    categorical = np.arange(x_train.shape[1]) >= num_numeric
    categorical &= np.concatenate([x_train, x_test]).max(0) < 255  # native categories < 255
    cls = HistGradientBoostingRegressor if task == "regression" else HistGradientBoostingClassifier
    model = cls(categorical_features=categorical, random_state=seed)
    model.fit(x_train, y_train)
    prediction = model.predict(x_test)
    if task == "regression":
        return {"value": float(np.sqrt(np.mean((prediction - y_test) ** 2)))}
    return {"value": float(np.mean(prediction == y_test))}


def evaluate_table(
    encoder: nn.Module,
    train: Dataset,
    test: Dataset,
    *,
    fractions: Sequence[float] = (1.0, 0.01),
    seeds: Sequence[int] = (0,),
    protocols: Sequence[str] = PROTOCOLS,
    scratch_encoder: nn.Module | None = None,
    finetune_lr: float = 1e-4,
    network_head: str = "mlp",
    max_steps: int = 4000,
    select: str = "accuracy",
    repeat_full: bool = False,
) -> list[dict[str, Any]]:
    """Every protocol at every label fraction (each fraction below 1 drawn once per seed; with
    ``repeat_full`` the 100% runs repeat too, with each seed's training randomness).

    ``finetune`` trains ``encoder`` + a ``network_head`` (``"mlp"``: 256 hidden units, dropout
    0.1; or ``"linear"``) at ``finetune_lr``; ``scratch`` the same architecture from a fresh
    initialisation (``scratch_encoder``, default: rebuilt from ``encoder.meta``) + the same head
    at lr 1e-3. Frozen heads use lr 1e-3, weight decay 1e-4. ``select``: the early-stopping
    criterion on the validation rows (``"accuracy"``, or ``"loss"``). Returns one dict per
    (protocol, fraction, seed): ``protocol``, ``fraction``, ``seed``, ``num_labelled``,
    ``metric`` (``accuracy`` / ``rmse``), ``value``, ``seconds`` and, for neural protocols,
    ``epochs``.
    """
    unknown = sorted(set(protocols) - set(PROTOCOLS))
    if unknown:
        raise ConfigError(f"unknown protocols {unknown}; choose from {', '.join(PROTOCOLS)}")
    task = task_of(train)
    y_train, y_test = answers(train, task), answers(test, task)
    test_rows = known(y_test, task)
    x_test, y_test = test.samples[test_rows], y_test[test_rows]
    out_dim = 1 if task == "regression" else int(max(y_train.max(), y_test.max())) + 1
    metric = "rmse" if task == "regression" else "accuracy"
    num_numeric = len(train.meta.get("numeric", train.samples[0]))
    z_train = z_test = None
    if {"linear", "mlp"} & set(protocols):
        z_train, z_test = embed_rows(encoder, train.samples), embed_rows(encoder, x_test)
    results = []
    for fraction in fractions:
        for seed in seeds if fraction < 1.0 or repeat_full else seeds[:1]:
            rows = label_subset(y_train, fraction, seed, task)
            for protocol in protocols:
                start = time.perf_counter()
                torch.manual_seed(seed)
                if protocol == "gbdt":
                    result = gbdt(
                        train.samples[rows],
                        y_train[rows],
                        x_test,
                        y_test,
                        task=task,
                        num_numeric=num_numeric,
                        seed=seed,
                    )
                elif protocol in ("linear", "mlp"):
                    z = z_train[rows]
                    model = nn.Sequential(Standardise(z), head(protocol, z.shape[1], out_dim))
                    result = fit_supervised(
                        model,
                        z,
                        y_train[rows],
                        z_test,
                        y_test,
                        task=task,
                        weight_decay=1e-4,
                        max_steps=max_steps,
                        select=select,
                        seed=seed,
                    )
                else:
                    base = encoder if protocol == "finetune" else scratch_encoder
                    base = copy.deepcopy(base if base is not None else _reinitialised(encoder))
                    model = nn.Sequential(base, head(network_head, base.embed_dim, out_dim))
                    lr = finetune_lr if protocol == "finetune" else 1e-3
                    result = fit_supervised(
                        model,
                        train.samples[rows],
                        y_train[rows],
                        x_test,
                        y_test,
                        task=task,
                        lr=lr,
                        max_steps=max_steps,
                        select=select,
                        seed=seed,
                    )
                results.append(
                    {
                        "protocol": protocol,
                        "fraction": fraction,
                        "seed": seed,
                        "num_labelled": len(rows),
                        "metric": metric,
                        **result,
                        "seconds": round(time.perf_counter() - start, 2),
                    }
                )
    return results


def _reinitialised(encoder: nn.Module) -> nn.Module:
    """A freshly initialised encoder of the same architecture (rebuilt from ``encoder.meta``)."""
    from labelless.backbones import create_backbone

    meta = encoder.meta
    return create_backbone(meta.architecture, in_channels=meta.in_channels, **meta.kwargs)
