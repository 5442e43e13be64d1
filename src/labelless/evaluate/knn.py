"""Weighted k-nearest-neighbour classification of embeddings (Wu et al. 2018).

"Unsupervised Feature Learning via Non-Parametric Instance Discrimination", Section 3.4: each test
embedding votes with its k most cosine-similar training embeddings, neighbour i weighing
``exp(s_i / T)``; the class with the largest summed weight wins.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from labelless.errors import DataError
from labelless.evaluate.checks import check_knn_options
from labelless.evaluate.neighbours import DEFAULT_NPROBE, IVF_MIN_ROWS, Backend, search

ArrayLike = torch.Tensor | np.ndarray


def as_float_tensor(z: ArrayLike, name: str) -> torch.Tensor:
    """``z`` as a float32 ``[N, D]`` tensor; a DataError names ``name`` when the shape is wrong."""
    tensor = torch.as_tensor(z)
    if tensor.ndim != 2 or tensor.shape[0] == 0:
        raise DataError(
            f"{name} must be a non-empty [N, D] matrix, got shape {tuple(tensor.shape)}"
        )
    return tensor.float()


def as_label_tensor(y: ArrayLike, length: int, name: str) -> torch.Tensor:
    """``y`` as an int64 ``[N]`` tensor of ``length`` entries (-1 = unlabelled)."""
    labels = torch.as_tensor(y).long().reshape(-1)
    if len(labels) != length:
        raise DataError(f"{name} has {len(labels)} labels for {length} embeddings: pass one each")
    return labels


def knn_predict(
    train_z: ArrayLike,
    train_y: ArrayLike,
    test_z: ArrayLike,
    *,
    k: int = 200,
    temperature: float = 0.1,
    num_classes: int | None = None,
    chunk_size: int = 0,
    backend: Backend = "auto",
    nprobe: int = DEFAULT_NPROBE,
    ivf_min_rows: int | None = IVF_MIN_ROWS,
    seed: int = 0,
) -> torch.Tensor:
    """Predicted class of each test embedding by weighted kNN vote (Wu et al. 2018).

    Args:
        train_z: ``[N, D]`` training embeddings (any scale: they are L2-normalised here).
        train_y: ``[N]`` integer labels; entries < 0 are unlabelled and ignored.
        test_z: ``[M, D]`` embeddings to classify.
        k: neighbours per test sample, clipped to the number of labelled training samples.
        temperature: T in the neighbour weight ``exp(cos(z_test, z_i) / T)``.
        num_classes: size of the vote vector; ``max(train_y) + 1`` when None.
        chunk_size: test samples per ``[chunk, N]`` similarity block of the torch search, which
            bounds memory; 0 sizes the block to 256 MiB.
        backend: neighbour search, ``auto`` (faiss when installed and the embeddings are on
            CPU, else chunked torch), ``torch`` or ``faiss`` (see ``evaluate.neighbours``).
        nprobe, ivf_min_rows: faiss searches an approximate IVF index (``nprobe`` cells a
            query) when the labelled train set has at least ``ivf_min_rows`` rows (default one
            million; None: always exact). Below, every backend is exact.
        seed: seed of the IVF k-means and of its recall measurement (:func:`knn_evaluate`).

    Returns:
        ``[M]`` int64 predicted labels on the device of ``train_z``.

    Raises:
        ConfigError: ``k`` < 1, ``temperature`` <= 0, or faiss asked for and not installed.
    """
    predicted, _ = _knn(
        train_z,
        train_y,
        test_z,
        k=k,
        temperature=temperature,
        num_classes=num_classes,
        chunk_size=chunk_size,
        backend=backend,
        nprobe=nprobe,
        ivf_min_rows=ivf_min_rows,
        seed=seed,
    )
    return predicted


def _knn(
    train_z: ArrayLike,
    train_y: ArrayLike,
    test_z: ArrayLike,
    *,
    k: int = 200,
    temperature: float = 0.1,
    num_classes: int | None = None,
    chunk_size: int = 0,
    backend: Backend = "auto",
    nprobe: int = DEFAULT_NPROBE,
    ivf_min_rows: int | None = IVF_MIN_ROWS,
    seed: int = 0,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """``knn_predict`` and the record of its neighbour search (``neighbours.search``)."""
    check_knn_options(k, temperature)
    train = as_float_tensor(train_z, "train embeddings")
    test = as_float_tensor(test_z, "test embeddings").to(train.device)
    labels = as_label_tensor(train_y, len(train), "train labels").to(train.device)
    if train.shape[1] != test.shape[1]:
        raise DataError(
            f"train embeddings have {train.shape[1]} dims and test ones {test.shape[1]}: "
            "embed both with the same encoder"
        )
    labelled = labels >= 0
    if not bool(labelled.any()):
        raise DataError("kNN needs labelled training embeddings, but every train label is -1")
    if not bool(labelled.all()):
        train, labels = train[labelled], labels[labelled]
    train, test = F.normalize(train, dim=1), F.normalize(test, dim=1)
    if num_classes is None:
        num_classes = int(labels.max()) + 1
    elif int(labels.max()) >= num_classes:
        raise DataError(
            f"train labels go up to {int(labels.max())} but num_classes={num_classes}: "
            "pass num_classes > the largest label, or leave it None"
        )
    k = min(k, len(train))
    similarity, index, record = search(
        test,
        train,
        k,
        backend=backend,
        chunk_size=chunk_size,
        ivf_min_rows=ivf_min_rows,
        nprobe=nprobe,
        seed=seed,
        description=f"kNN (k={k})",
    )
    similarity, index = similarity.to(train.device), index.to(train.device)
    # Subtracting the row maximum leaves the argmax unchanged and keeps exp() finite; a missing
    # IVF neighbour (index -1, similarity -inf) weighs 0.
    top = similarity[:, :1].clone().nan_to_num_(0.0, posinf=0.0, neginf=0.0)
    weights = similarity.sub_(top).div_(temperature).exp_()
    votes = torch.zeros(len(test), num_classes, device=train.device)
    votes.scatter_add_(1, labels[index.clamp(min=0)], weights)
    return votes.argmax(dim=1), record


def knn_evaluate(
    train_z: ArrayLike,
    train_y: ArrayLike,
    test_z: ArrayLike,
    test_y: ArrayLike,
    **knn_kwargs,
) -> tuple[float, dict[str, Any]]:
    """kNN accuracy of the labelled test samples and how their neighbours were searched.

    ``knn_kwargs`` go to :func:`knn_predict`. The record: ``backend`` (``torch`` or ``faiss``),
    ``index`` (``exact``, ``flat`` or ``ivf``) and, for IVF, ``nlist``, ``nprobe``,
    ``recall_at_k`` of its neighbours against the exact torch search on a seeded subsample of
    ``recall_queries`` test samples, and ``recall_seed``.
    """
    test_labels = as_label_tensor(test_y, len(torch.as_tensor(test_z)), "test labels")
    labelled = test_labels >= 0
    if not bool(labelled.any()):
        raise DataError("kNN accuracy needs labelled test samples, but every test label is -1")
    test = torch.as_tensor(test_z)
    test = test[labelled.to(test.device)]
    predicted, record = _knn(train_z, train_y, test, **knn_kwargs)
    return float((predicted.cpu() == test_labels[labelled]).float().mean()), record


def knn_accuracy(
    train_z: ArrayLike,
    train_y: ArrayLike,
    test_z: ArrayLike,
    test_y: ArrayLike,
    **knn_kwargs,
) -> float:
    """Fraction of labelled test samples (``test_y >= 0``) that ``knn_predict`` gets right.

    ``knn_kwargs`` go to :func:`knn_predict` (``k``, ``temperature``, ``backend``, ...).
    """
    return knn_evaluate(train_z, train_y, test_z, test_y, **knn_kwargs)[0]
