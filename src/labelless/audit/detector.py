"""Adversarial-input detection by neighbourhood relations: BEYOND (He et al., ICML 2024, "Be Your
Own Neighborhood: Detecting Adversarial Examples by the Neighborhood Relations Built on
Self-Supervised Learning").

A clean input agrees with its augmented copies (its *neighbours*): their embeddings stay close to
its own and a classifier on the embeddings gives them its label. An adversarial perturbation is
tuned to the exact pixels of one input, so augmentation partly undoes it: the neighbours' embeddings
fall back towards the clean one, away from the adversarial embedding, and their labels disagree.

Per input ``x`` with ``K`` neighbours ``v_1..v_K`` (``beyond_scores``):

- representation similarity ``s = mean_k cos(f(x), f(v_k))``;
- label consistency ``c = mean_k [g(f(v_k)) == g(f(x))]`` for a classifier ``g`` on embeddings
  (``fit_embedding_classifier``);
- detection score ``1 - (alpha c + (1 - alpha) s)``, higher = more likely adversarial. The
  reference code (github.com/allenhzy/BEYOND, ``detect_cifar10.py``) blends the label and the
  representation agreement of each neighbour with ``alpha = 0.8``; we average over the
  neighbours where it takes an order statistic. Without a classifier the score is ``1 - s``.

The paper thresholds both parts: an input is adversarial when either falls below its threshold.
``either_rule`` makes that one score, so one ROC summarises the detector (``detection_metrics``:
AUROC and the TPR at a fixed FPR): each part's rank among a clean *calibration* set's (the share
of clean inputs at least as consistent), and the larger of the two; a threshold on it is a pair of
per-part thresholds at the same clean false-positive rate.

Neighbours (``NEIGHBOUR_VIEWS``) are made by ``labelless.augment`` at the encoder's input size
without normalisation and normalised by ``PixelEncoder`` itself, so an input and its neighbours
reach the encoder through the same normalisation:

- ``"beyond"``: the reference code's augmentations (random resized crop 0.2-1, flip, colour
  jitter 0.4/0.4/0.4/0.1 with p=0.8, grayscale p=0.2), for an encoder trained long enough to be
  invariant to them;
- ``"light"`` (our default): a random resized crop of 90-100% of the image, nothing else. The
  resampling alone misaligns a perturbation tuned to exact pixels; an encoder trained for
  minutes is not invariant to BEYOND's strong views, so they scatter *clean* neighbours as much
  as adversarial ones (measured on a 15-minute SimCLR on CIFAR-10 against PGD at 8/255:
  similarity AUROC 0.78 with BEYOND's views, 0.96 with the light ones; bench/README.md, audit).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score, roc_curve
from torch import Tensor

from labelless.audit.pixels import EMBED_BATCH, PixelEncoder, embed_pixels, unit_images
from labelless.augment.spec import ViewSpec
from labelless.augment.views import ViewPipeline
from labelless.errors import ConfigError, DataError
from labelless.evaluate.checks import check_knn_options
from labelless.evaluate.knn import as_float_tensor, as_label_tensor, knn_predict
from labelless.evaluate.linear import LinearHead, fit_head, standardise, validation_curve

Classifier = Callable[[Tensor], Tensor]
"""Embeddings ``[M, D]`` -> predicted labels ``[M]`` (int64)."""

LABEL_WEIGHT = 0.8  # alpha of the reference code: label agreement vs representation similarity
BEYOND_VIEW = ViewSpec(
    size=1,  # replaced by the encoder's input size
    scale=(0.2, 1.0),
    hflip_p=0.5,
    jitter_p=0.8,
    brightness=0.4,
    contrast=0.4,
    saturation=0.4,
    hue=0.1,
    grayscale_p=0.2,
)
LIGHT_VIEW = replace(
    BEYOND_VIEW, scale=(0.9, 1.0), hflip_p=0.0, jitter_p=0.0, grayscale_p=0.0
)  # resampling only
NEIGHBOUR_VIEWS = {"light": LIGHT_VIEW, "beyond": BEYOND_VIEW}


@dataclass
class BeyondScores:
    """BEYOND's per-input measurements, all ``[N]`` float32 on the CPU (``predicted`` int64).

    ``score``: the detection score (higher = more likely adversarial); ``similarity``: mean cosine
    similarity to the neighbours; ``consistency`` and ``predicted``: the fraction of neighbours
    given the input's predicted label, and that label (None without a classifier).
    """

    score: Tensor
    similarity: Tensor
    consistency: Tensor | None
    predicted: Tensor | None
    num_neighbours: int
    label_weight: float


@dataclass(frozen=True)
class DetectionMetrics:
    """How well a score separates adversarial (positive) from clean inputs: ``auroc``, and
    ``tpr`` at the largest threshold whose false-positive rate on the clean inputs is at most
    ``fpr`` (``fpr_achieved`` <= ``fpr``; inputs scoring >= ``threshold`` are flagged)."""

    auroc: float
    tpr: float
    fpr: float
    fpr_achieved: float
    threshold: float
    num_clean: int
    num_adversarial: int


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _check_options(model: PixelEncoder, images: Tensor, num_neighbours, alpha, batch_size) -> None:
    if not _whole(num_neighbours):
        raise ConfigError(
            f"num_neighbours must be a whole number >= 1, got {num_neighbours!r} (BEYOND uses 50)"
        )
    if not _whole(batch_size):
        raise ConfigError(f"batch_size must be a whole number >= 1, got {batch_size!r}")
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"label_weight must be in [0, 1] (BEYOND uses 0.8), got {alpha}")
    if images.shape[1] != model.channels or len(images) == 0:
        raise DataError(
            f"got images of shape {tuple(images.shape)} for an encoder of {model.channels}-"
            "channel images: pass a non-empty batch of the kind of data it was trained on"
        )


def neighbour_views(model: PixelEncoder, view: ViewSpec = LIGHT_VIEW) -> ViewPipeline:
    """A one-view pipeline making BEYOND neighbours at ``model``'s input size, left in [0, 1]
    (mean 0, std 1): ``model`` normalises them as it does the inputs."""
    spec = replace(view, size=model.size, size_ratio=1.0)
    return ViewPipeline([spec], mean=[0.0] * model.channels, std=[1.0] * model.channels)


def beyond_scores(
    model: PixelEncoder,
    images: Tensor | np.ndarray,
    *,
    classifier: Classifier | None = None,
    num_neighbours: int = 50,
    label_weight: float = LABEL_WEIGHT,
    view: ViewSpec = LIGHT_VIEW,
    seed: int = 0,
    batch_size: int = EMBED_BATCH,
) -> BeyondScores:
    """BEYOND scores of ``images`` (uint8, or float in [0, 1], ``[N, C, H, W]``).

    ``num_neighbours`` (K) augmented copies per input (``view``; its size is set to the encoder's
    input size) are drawn from a ``torch.Generator`` seeded with ``seed``; about ``batch_size``
    neighbours go through the encoder at a time. Runs under ``torch.inference_mode``; costs
    ``N (K + 1)`` encoder passes.
    """
    x = unit_images(images)
    _check_options(model, x, num_neighbours, label_weight, batch_size)
    device = model.mean.device
    x = x.to(device)
    pipeline = neighbour_views(model, view)
    generator = torch.Generator(device=device).manual_seed(int(seed))
    per_chunk = max(1, batch_size // num_neighbours)
    similarity, consistency, predicted = [], [], []
    with torch.inference_mode():
        for start in range(0, len(x), per_chunk):
            chunk = x[start : start + per_chunk]
            own = model(chunk).float()
            views = pipeline(chunk.repeat_interleave(num_neighbours, dim=0), generator)[0]
            theirs = embed_pixels(model, views, batch_size).view(len(chunk), num_neighbours, -1)
            cosine = (F.normalize(theirs, dim=2) @ F.normalize(own, dim=1).unsqueeze(2)).squeeze(2)
            similarity.append(cosine.mean(dim=1).cpu())
            if classifier is not None:
                labels = classifier(torch.cat([own, theirs.flatten(0, 1)])).to(own.device)
                mine, others = labels[: len(chunk)], labels[len(chunk) :].view(len(chunk), -1)
                consistency.append((others == mine[:, None]).float().mean(dim=1).cpu())
                predicted.append(mine.long().cpu())
    return _combine(similarity, consistency, predicted, num_neighbours, label_weight)


def _combine(similarity, consistency, predicted, num_neighbours, alpha) -> BeyondScores:
    s = torch.cat(similarity)
    if not consistency:
        return BeyondScores(1.0 - s, s, None, None, num_neighbours, alpha)
    c = torch.cat(consistency)
    score = 1.0 - (alpha * c + (1.0 - alpha) * s)
    return BeyondScores(score, s, c, torch.cat(predicted), num_neighbours, alpha)


def either_rule(scores: BeyondScores, calibration: BeyondScores) -> Tensor:
    """BEYOND's decision (adversarial when the representation similarity *or* the label
    consistency is too low) as one score ``[N]`` in [0, 1], higher = more likely adversarial:
    for each part, the share of the clean ``calibration`` inputs whose value is at least the
    input's (1 when it is below every clean one), and the larger of the two parts. Without label
    consistency (no classifier), the similarity part alone."""
    parts = [(scores.similarity, calibration.similarity)]
    if scores.consistency is not None:
        if calibration.consistency is None:
            raise ConfigError("the calibration scores need label consistency too: pass the same "
                              "classifier for both")  # fmt: skip
        parts.append((scores.consistency, calibration.consistency))
    ranks = []
    for values, clean in parts:
        order = torch.sort(clean.float()).values
        below = torch.searchsorted(order, values.float(), right=False)
        ranks.append(1.0 - below.float() / len(order))
    return torch.stack(ranks).max(dim=0).values


def fit_embedding_classifier(
    embeddings: Tensor | np.ndarray,
    labels: Tensor | np.ndarray,
    *,
    kind: Literal["knn", "linear"] = "knn",
    k: int = 20,
    temperature: float = 0.1,
    seed: int = 0,
) -> Classifier:
    """A classifier on embeddings fitted to clean labelled ones (``labels`` -1: ignored), for
    BEYOND's label consistency.

    ``kind="knn"``: weighted kNN vote (``evaluate.knn_predict``, Wu et al. 2018) over the
    ``k`` most similar labelled embeddings; ``"linear"``: the linear probe's softmax head
    (``evaluate.linear``; weight decay chosen on a seeded validation split, refit on all).
    """
    z = as_float_tensor(embeddings, "classifier embeddings").detach().cpu()
    y = as_label_tensor(labels, len(z), "classifier labels").cpu()
    keep = y >= 0
    if int(keep.sum()) < 2 or len(torch.unique(y[keep])) < 2:
        raise DataError(
            "the label-consistency classifier needs labelled embeddings of at least 2 classes: "
            "pass labels, or run BEYOND without a classifier (representation similarity only)"
        )
    z, y = z[keep], y[keep]
    num_classes = int(y.max()) + 1
    if kind == "knn":
        check_knn_options(k, temperature)

        def vote(query: Tensor) -> Tensor:
            query = query.detach().float().cpu()
            options = {"k": k, "temperature": temperature, "num_classes": num_classes}
            return knn_predict(z, y, query, backend="torch", **options)

        return vote
    if kind == "linear":
        head = _linear_head(z, y, num_classes, seed)
        return lambda query: head.logits(query.detach().float().cpu()).argmax(dim=1)
    raise ConfigError(f"unknown classifier kind {kind!r}; choose one of: knn, linear")


def _linear_head(z: Tensor, y: Tensor, num_classes: int, seed: int) -> LinearHead:
    """The linear probe's protocol: weight decay by validation, refit on every embedding."""
    decays = (0.0, 1e-4, 1e-3, 1e-2)
    curve = validation_curve(z, y, decays, num_classes, epochs=100, val_fraction=0.2, seed=seed)
    x, mean, std = standardise(z.clone())
    weight, bias = fit_head(x, y, curve["chosen"], num_classes, 100, curve["params"])
    return LinearHead(mean, std, weight, bias)


def detection_metrics(
    clean_scores: Tensor | np.ndarray,
    adversarial_scores: Tensor | np.ndarray,
    *,
    fpr: float = 0.05,
) -> DetectionMetrics:
    """AUROC of adversarial (positive) against clean scores, and the true-positive rate at a
    false-positive rate of at most ``fpr`` (the largest TPR whose threshold flags at most that
    fraction of the clean inputs; ties share a threshold). ``threshold`` is ``inf`` when no
    threshold meets ``fpr`` with a positive TPR (then ``tpr`` is 0)."""
    if not 0.0 <= fpr < 1.0:
        raise ConfigError(f"fpr is a false-positive rate in [0, 1), got {fpr} (e.g. 0.05)")
    clean = np.asarray(torch.as_tensor(clean_scores).detach().cpu(), dtype=np.float64).ravel()
    adversarial = np.asarray(torch.as_tensor(adversarial_scores).detach().cpu(), dtype=np.float64)
    adversarial = adversarial.ravel()
    if len(clean) == 0 or len(adversarial) == 0:
        raise DataError("detection metrics need at least one clean and one adversarial score")
    if not (np.isfinite(clean).all() and np.isfinite(adversarial).all()):
        raise DataError("detection scores hold NaN or infinite values: check the encoder")
    truth = np.concatenate([np.zeros(len(clean)), np.ones(len(adversarial))])
    scores = np.concatenate([clean, adversarial])
    rates, tprs, thresholds = roc_curve(truth, scores, drop_intermediate=False)
    best = int(np.flatnonzero(rates <= fpr + 1e-12)[-1])
    return DetectionMetrics(
        auroc=float(roc_auc_score(truth, scores)),
        tpr=float(tprs[best]),
        fpr=float(fpr),
        fpr_achieved=float(rates[best]),
        threshold=float(thresholds[best]),
        num_clean=len(clean),
        num_adversarial=len(adversarial),
    )
