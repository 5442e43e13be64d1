"""Time-series evaluation: TS2Vec's protocols and the 1-NN DTW baseline.

- ``encode_series``: instance embeddings of a frozen encoder (eval mode, batches of similar length
  trimmed to their longest valid series).
- ``svm_accuracy``: the UCR/UEA protocol of TS2Vec (Yue et al. 2022): an RBF SVC on the instance
  embeddings, C chosen by 5-fold CV on train over 1e-4 .. 1e4 and inf (C = inf without search
  when a class has fewer than 5 samples on average or train has fewer than 50); at most
  ``SVM_MAX_ITER`` solver iterations per fit.
- ``dtw_distances`` / ``dtw_1nn``: dependent DTW (squared Euclidean local cost summed over
  channels) on each series' valid part, inside a Sakoe-Chiba band, computed for many pairs at
  once by an anti-diagonal wavefront (torch, no per-pair Python loop).
- ``forecasting_ridge``: TS2Vec's forecasting protocol: the representation of the last timestamp
  of a ``lookback`` window -> the next H steps of every channel by ridge regression, alpha chosen
  on the validation segment, MSE / MAE on the (standardised) test segment.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from labelless.augment.timeseries import series_lengths
from labelless.evaluate.catalog import declare_metric

SVM_C_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3, 1e4, math.inf)
# libsvm iterations per fit: with C = inf on data that is not separable the solver can run for
# many minutes (PLAID: over 10); TS2Vec allows 1e7, we stop at 1e5 (a ConvergenceWarning).
SVM_MAX_ITER = 100_000
RIDGE_ALPHAS = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0)
HORIZONS = (24, 48, 168, 336, 720)

# ``svm_accuracy`` as recorded; its settings are ``protocol["svm"]`` (C is chosen by the search).
declare_metric("svm_top1", "RBF SVM top-1 accuracy (TS2Vec)", "svm", charted=True, fitted=("C",))


def _as_tensor(x: Any) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.float32))


@torch.no_grad()
def encode_series(encoder: nn.Module, x: Any, batch_size: int = 64) -> torch.Tensor:
    """``encoder(x)`` in eval mode for ``x [N, C, T]`` (NaN-padded) -> ``[N, D]``. Series are
    batched by length and each batch is trimmed to its longest series (the padding only adds
    zeros, so the result is the same as on the full width)."""
    x = _as_tensor(x)
    lengths = series_lengths(x)
    order = torch.argsort(lengths)
    was_training = encoder.training
    encoder.eval()
    try:
        parts = []
        for start in range(0, len(x), batch_size):
            index = order[start : start + batch_size]
            longest = max(int(lengths[index].max()), 1)
            parts.append(encoder(x[index, :, :longest]))
        out = torch.cat(parts)
    finally:
        encoder.train(was_training)
    result = torch.empty_like(out)
    result[order] = out
    return result


@dataclass
class SVMResult:
    accuracy: float
    C: float
    searched: bool
    protocol: dict[str, Any] = field(default_factory=dict)


def svm_accuracy(train_z: Any, train_y: Any, test_z: Any, test_y: Any, seed: int = 0) -> SVMResult:
    """TS2Vec's SVM protocol on embeddings ``[N, D]`` (see the module docstring)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning, FitFailedWarning
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.svm import SVC

    train_z, test_z = np.asarray(train_z, np.float64), np.asarray(test_z, np.float64)
    train_y, test_y = np.asarray(train_y), np.asarray(test_y)
    classes = len(np.unique(train_y))
    _, counts = np.unique(train_y, return_counts=True)
    searched = len(train_y) // classes >= 5 and len(train_y) >= 50 and counts.min() >= 5
    svc = SVC(kernel="rbf", gamma="scale", max_iter=SVM_MAX_ITER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", FitFailedWarning)  # C = inf diverging: scored NaN
        warnings.filterwarnings("ignore", "One or more of the test scores are non-finite")
        if searched:
            grid = GridSearchCV(
                svc,
                {"C": list(SVM_C_GRID)},
                cv=StratifiedKFold(5, shuffle=True, random_state=seed),
            )
            grid.fit(train_z, train_y)
            model, c = grid.best_estimator_, float(grid.best_params_["C"])
        else:
            model, c = svc.set_params(C=math.inf).fit(train_z, train_y), math.inf
    accuracy = float((model.predict(test_z) == test_y).mean())
    protocol = {
        "classifier": "SVC rbf gamma=scale",
        "C_grid": list(SVM_C_GRID),
        "cv": 5,
        "max_iter": SVM_MAX_ITER,
    }
    return SVMResult(accuracy, c, searched, protocol)


# ---------------------------------------------------------------------------------------------
# DTW


def _band(n: torch.Tensor, m: torch.Tensor, window: float | int | None) -> torch.Tensor:
    longest = torch.maximum(n, m)
    if window is None:
        return longest
    width = torch.full_like(n, int(window)) if isinstance(window, int) else None
    if width is None:
        width = torch.ceil(float(window) * longest.double()).long()
    return torch.maximum(width, (n - m).abs())


def _dtw_chunk(
    x: torch.Tensor, y: torch.Tensor, n: torch.Tensor, m: torch.Tensor, band: torch.Tensor
) -> torch.Tensor:
    """DTW of P pairs: ``x [P, N, C]``, ``y [P, M, C]``, valid lengths ``n, m [P]``, band ``[P]``.

    Anti-diagonal k holds the cells (i, k - i); buffers are indexed by i + 1 (index 0 is a
    permanent +inf) and only the band's slice of each diagonal is computed."""
    pairs, rows, _ = x.shape
    cols = y.shape[1]
    y_rev = y.flip(1)  # y_rev[:, M - 1 - j] = y[:, j]
    widest = int(band.max())
    inf = float("inf")
    buffers = [torch.full((pairs, rows + 1), inf, dtype=x.dtype) for _ in range(3)]
    result = torch.full((pairs,), inf, dtype=x.dtype)
    ends = (n + m - 2).tolist()
    finishing: dict[int, list[int]] = {}
    for p, k in enumerate(ends):
        finishing.setdefault(k, []).append(p)
    n_col, m_col, band_col = n.unsqueeze(1), m.unsqueeze(1), band.unsqueeze(1)
    for k in range(rows + cols - 1):
        lo = max(0, k - (cols - 1), -((widest - k) // 2))
        hi = min(rows - 1, k, (k + widest) // 2)
        current, previous, before = buffers[k % 3], buffers[(k - 1) % 3], buffers[(k - 2) % 3]
        i = torch.arange(lo, hi + 1)
        start = cols - 1 - k + lo
        diff = x[:, lo : hi + 1] - y_rev[:, start : start + hi - lo + 1]
        cost = (diff * diff).sum(-1)
        if k == 0:
            values = cost
        else:
            best = torch.minimum(previous[:, lo : hi + 1], previous[:, lo + 1 : hi + 2])
            values = cost + torch.minimum(best, before[:, lo : hi + 1])
        j = k - i
        outside = (i >= n_col) | (j >= m_col) | ((i - j).abs() > band_col)
        current[:, lo + 1 : hi + 2] = values.masked_fill(outside, inf)
        current[:, lo] = inf
        done = finishing.get(k)
        if done:
            index = torch.tensor(done)
            result[index] = current[index, n[index]]
    return result


def _prepare(x: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """``[N, C, T]`` -> ``([N, T, C]`` NaN-padded, valid lengths ``[N])``."""
    x = _as_tensor(x)
    return x.transpose(1, 2).contiguous(), series_lengths(x)


def _pair_distances(
    a: torch.Tensor,
    len_a: torch.Tensor,
    b: torch.Tensor,
    len_b: torch.Tensor,
    pair_a: torch.Tensor,
    pair_b: torch.Tensor,
    window: float | int | None,
    pairs_per_chunk: int,
) -> torch.Tensor:
    """DTW of the pairs ``(a[pair_a[p]], b[pair_b[p]])``, in chunks of similar lengths."""
    n, m = len_a[pair_a], len_b[pair_b]
    band = _band(n, m, window)
    order = torch.argsort((n + m) * 100_000 + band)
    out = torch.empty(len(pair_a), dtype=torch.float32)
    for start in range(0, len(order), pairs_per_chunk):
        chunk = order[start : start + pairs_per_chunk]
        rows, cols = int(n[chunk].max()), int(m[chunk].max())
        x = torch.nan_to_num(a[pair_a[chunk], :rows])
        y = torch.nan_to_num(b[pair_b[chunk], :cols])
        out[chunk] = _dtw_chunk(x, y, n[chunk], m[chunk], band[chunk])
    return out


def dtw_distances(
    a: Any,
    b: Any,
    window: float | int | None = 0.1,
    pairs_per_chunk: int = 512,
) -> torch.Tensor:
    """Dependent-DTW distances ``[Na, Nb]`` (sum of squared differences along the best warping
    path, no square root) between ``a [Na, C, T]`` and ``b [Nb, C, T']`` (NaN-padded at the end;
    each series is used up to its valid length).

    ``window``: Sakoe-Chiba band half-width as a fraction of the longer series of a pair (float),
    in steps (int), or None for no band; widened to the length difference of a pair so the end
    cell stays reachable. Pairs are processed in chunks sorted by length (little padding)."""
    (a, len_a), (b, len_b) = _prepare(a), _prepare(b)
    grid_a, grid_b = torch.meshgrid(torch.arange(len(a)), torch.arange(len(b)), indexing="ij")
    pair_a, pair_b = grid_a.reshape(-1), grid_b.reshape(-1)
    out = _pair_distances(a, len_a, b, len_b, pair_a, pair_b, window, pairs_per_chunk)
    return out.view(len(a), len(b))


def _keogh(query: torch.Tensor, len_q: torch.Tensor, ref: torch.Tensor, width: int):
    """LB_Keogh ``[Nq, Nr]`` with envelopes of half-width ``width`` over each reference's valid
    part, summed over the query's valid steps and the channels (inputs ``[N, T, C]``)."""
    length = max(query.shape[1], ref.shape[1])
    series = torch.nn.functional.pad(
        ref.transpose(1, 2), (0, length - ref.shape[1]), value=math.nan
    )
    invalid = torch.isnan(series)
    pool = torch.nn.functional.max_pool1d
    upper = pool(series.masked_fill(invalid, -math.inf), 2 * width + 1, 1, width)
    lower = -pool((-series).masked_fill(invalid, -math.inf), 2 * width + 1, 1, width)
    upper, lower = upper[..., : query.shape[1]], lower[..., : query.shape[1]]
    q = torch.nan_to_num(query).transpose(1, 2).unsqueeze(1)  # [Nq, 1, C, T]
    valid = (torch.arange(query.shape[1]) < len_q[:, None]).view(len(query), 1, 1, -1)
    bounds = []
    for start in range(0, len(query), 16):
        part = q[start : start + 16]
        gap = (part - upper).clamp(min=0) ** 2 + (lower - part).clamp(min=0) ** 2
        bounds.append(torch.where(valid[start : start + 16], gap, 0.0).sum(dim=(2, 3)))
    return torch.cat(bounds)


def dtw_lower_bounds(
    query: torch.Tensor,
    len_q: torch.Tensor,
    ref: torch.Tensor,
    len_r: torch.Tensor,
    window: float | int | None,
) -> torch.Tensor:
    """Lower bounds ``[Nq, Nr]`` of DTW for 1-NN pruning (inputs ``[N, T, C]``, NaN-padded).

    LB_Keogh (Keogh 2002), summed over channels (valid for dependent DTW): every query step i is
    matched to some reference step within the pair's band, so its cost is at least its squared
    distance to the reference's envelope over that band. Envelopes are computed at a few
    half-widths (the set's band, then doubling) and each pair uses the narrowest one that
    covers its own band (a wider envelope gives a smaller, still valid, bound). Combined with
    the cost of the first and last cells, which every warping path contains."""
    q0, r0 = torch.nan_to_num(query[:, 0]), torch.nan_to_num(ref[:, 0])
    ends_q = torch.nan_to_num(query[torch.arange(len(query)), len_q - 1])
    ends_r = torch.nan_to_num(ref[torch.arange(len(ref)), len_r - 1])
    kim = torch.cdist(q0, r0) ** 2 + torch.cdist(ends_q, ends_r) ** 2
    kim = kim * ((len_q[:, None] + len_r[None]) > 2)
    band = _band(len_q[:, None].expand(-1, len(ref)), len_r[None].expand(len(query), -1), window)
    width = int(band.min())
    bounds = torch.zeros_like(kim)
    covered = torch.zeros_like(kim, dtype=torch.bool)
    while not covered.all():
        level = (band <= width) & ~covered
        if level.any():
            rows, cols = level.any(dim=1), level.any(dim=0)
            part = _keogh(query[rows], len_q[rows], ref[cols], width)
            sub = bounds[rows][:, cols]
            bounds[rows.nonzero(), cols.nonzero().T] = torch.where(level[rows][:, cols], part, sub)
            covered |= level
        width *= 2
    return torch.maximum(bounds, kim)


def dtw_1nn(
    train_x: Any,
    train_y: Any,
    test_x: Any,
    test_y: Any,
    window: float | int | None = 0.1,
    candidates_per_round: int = 4,
) -> float:
    """Accuracy of the 1-nearest-neighbour classifier under DTW (``dtw_distances``), exact.

    Lower bounds (``dtw_lower_bounds``) prune: in each round every unfinished test series
    computes DTW to its next ``candidates_per_round`` train series in order of lower bound (all
    of them together, one wavefront), and is finished when the next bound exceeds its best
    distance. Ties go to the candidate found first."""
    (test, len_test), (train, len_train) = _prepare(test_x), _prepare(train_x)
    bounds = dtw_lower_bounds(test, len_test, train, len_train, window)
    order = bounds.argsort(dim=1)
    sorted_bounds = bounds.gather(1, order)
    best = torch.full((len(test),), float("inf"))
    nearest = torch.zeros(len(test), dtype=torch.long)
    position = 0
    while position < len(train):
        active = (sorted_bounds[:, position] < best).nonzero().squeeze(1)
        if len(active) == 0:
            break
        width = min(candidates_per_round, len(train) - position)
        pair_test = active.repeat_interleave(width)
        pair_train = order[active, position : position + width].reshape(-1)
        distances = _pair_distances(
            test, len_test, train, len_train, pair_test, pair_train, window, 512
        ).view(len(active), width)
        round_best, round_index = distances.min(dim=1)
        better = round_best < best[active]
        best[active[better]] = round_best[better]
        nearest[active[better]] = order[active, position + round_index][better]
        position += width
    predictions = np.asarray(train_y)[nearest.numpy()]
    return float((predictions == np.asarray(test_y)).mean())


# ---------------------------------------------------------------------------------------------
# Forecasting


@torch.no_grad()
def forecast_features(
    encoder: nn.Module,
    values: Any,
    steps: Sequence[int] | np.ndarray,
    lookback: int = 201,
    batch_size: int = 256,
) -> torch.Tensor:
    """Representation at timestamp t of the window ``values[t - lookback + 1 : t + 1]`` (NaN
    before the series starts) for each t in ``steps``: ``values [T, C]`` -> ``[len(steps), D]``.
    The encoder sees no step after t (TS2Vec's causal sliding encoding)."""
    series = _as_tensor(values).T  # [C, T]
    padded = torch.cat([torch.full((series.shape[0], lookback - 1), float("nan")), series], 1)
    steps = torch.as_tensor(np.asarray(steps), dtype=torch.long)
    offsets = torch.arange(lookback)
    was_training = encoder.training
    encoder.eval()
    try:
        parts = []
        for start in range(0, len(steps), batch_size):
            index = steps[start : start + batch_size].unsqueeze(1) + offsets  # [B, L]
            windows = padded[:, index].permute(1, 0, 2)  # [B, C, L]
            parts.append(encoder.forward_sequence(windows)[:, -1])
        return torch.cat(parts)
    finally:
        encoder.train(was_training)


def _targets(values: np.ndarray, steps: np.ndarray, horizon: int) -> np.ndarray:
    """``values[t + 1 : t + 1 + horizon]`` flattened for each t: ``[len(steps), horizon * C]``."""
    index = steps[:, None] + 1 + np.arange(horizon)
    return values[index].reshape(len(steps), -1)


def _ridge_path(x: np.ndarray, y: np.ndarray, alphas: Sequence[float]):
    """Closed-form ridge with intercept for several alphas from one eigendecomposition."""
    x_mean, y_mean = x.mean(0), y.mean(0)
    xc = x - x_mean
    eigenvalues, vectors = np.linalg.eigh(xc.T @ xc)
    projected = vectors.T @ (xc.T @ (y - y_mean))
    for alpha in alphas:
        weights = vectors @ (projected / (eigenvalues + alpha)[:, None])
        yield alpha, weights, y_mean - x_mean @ weights


def forecasting_ridge(
    features: np.ndarray,
    values: np.ndarray,
    borders: tuple[int, int, int],
    horizons: Sequence[int] = HORIZONS,
    train_steps: np.ndarray | None = None,
    lookback: int = 201,
    alphas: Sequence[float] = RIDGE_ALPHAS,
) -> dict[int, dict[str, float]]:
    """TS2Vec's ridge protocol: ``features [T, D]`` (row t = representation at t, NaN rows for
    steps not computed), ``values [T, C]`` standardised; for each horizon H, train on the train
    segment's t (from ``lookback - 1`` on, or ``train_steps``) with targets inside the train
    segment, pick alpha by sqrt(MSE) + MAE on the validation segment, report MSE and MAE on the
    test segment. Returns ``{H: {"mse", "mae", "alpha", "val_score", "train_samples"}}``."""
    train_end, val_end, test_end = borders
    if train_steps is None:
        train_steps = np.arange(lookback - 1, train_end)
    results = {}
    for horizon in horizons:
        fit = train_steps[train_steps + horizon < train_end]
        val = np.arange(train_end, val_end - horizon)
        test = np.arange(val_end, test_end - horizon)
        x_fit, y_fit = features[fit].astype(np.float64), _targets(values, fit, horizon)
        x_val, y_val = features[val].astype(np.float64), _targets(values, val, horizon)
        best = None
        for alpha, weights, bias in _ridge_path(x_fit, y_fit, alphas):
            error = x_val @ weights + bias - y_val
            score = math.sqrt(float((error**2).mean())) + float(np.abs(error).mean())
            if best is None or score < best[0]:
                best = (score, alpha, weights, bias)
        score, alpha, weights, bias = best
        error = features[test].astype(np.float64) @ weights + bias - _targets(values, test, horizon)
        results[int(horizon)] = {
            "mse": float((error**2).mean()),
            "mae": float(np.abs(error).mean()),
            "alpha": float(alpha),
            "val_score": score,
            "train_samples": len(fit),
            "test_samples": len(test),
        }
    return results
