"""End-of-training evaluation of a semi-supervised run: the EMA model on the test split.

Protocol (DESIGN.md, semi-supervised contract): the model evaluated is the EMA of the weights
at the END of training, on the held-out test split; nothing is picked on the test split. The
online (non-averaged) model's accuracy is recorded next to it for reference. Open-set splits
score accuracy on the known classes and, for open-set algorithms, the AUROC of their outlier
score at telling known from unknown classes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from labelless.atomic import write_path_atomic
from labelless.data import Dataset
from labelless.evaluate import embed
from labelless.runfiles import RunFiles
from labelless.semi.algorithms.base import SemiAlgorithm
from labelless.semi.metrics import OPEN_SET_AUROC, TEST_TOP1, TEST_TOP1_ONLINE
from labelless.semi.splits import LabelSplit
from labelless.train.callbacks import budget_ended


def _logits(algorithm: SemiAlgorithm, images: np.ndarray, *, ema: bool = True):
    model = algorithm.ema_model if ema else algorithm.model
    z = embed(model.backbone, images)
    head = model.head.to("cpu")
    with torch.no_grad():
        logits = head(z)
    model.head.to(next(model.backbone.parameters()).device)
    return z, logits


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for the boolean ``positive`` (rank statistic,
    ties averaged)."""
    from scipy.stats import rankdata

    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def final_metrics(
    algorithm: SemiAlgorithm,
    test: Dataset | None,
    split: LabelSplit,
    config,
    preprocessing: dict[str, Any],
    data: str,
):
    """``test_top1`` (EMA model, end of training), ``test_top1_online`` and the protocol;
    ``preprocessing`` is the modality's record of how inputs were read, ``data`` the name of
    the scored data."""
    protocol: dict[str, Any] = {
        "model": "EMA of the weights at the end of training (final, not best)",
        "ema_momentum": config.semi.ema_momentum,
        "data": data,
        "split": test.name if test is not None else None,
        "preprocessing": preprocessing,
    }
    if test is None or not test.has_labels:
        note = (
            "no labelled test split: accuracy not measured; hold out a share with "
            "--set data.options.test=0.2 (CSV / parquet tables) or name labelled test data with "
            "--set data.eval=PATH"
        )
        return {"protocol": protocol, "note": note}
    labels = test.labels
    known = (labels >= 0) & (labels < split.num_classes)
    z, logits = _logits(algorithm, test.samples, ema=True)
    _, online = _logits(algorithm, test.samples[known], ema=False)
    predictions = logits.argmax(dim=1).numpy()
    metrics: dict[str, Any] = {
        TEST_TOP1: float((predictions[known] == labels[known]).mean()),
        TEST_TOP1_ONLINE: float((online.argmax(1).numpy() == labels[known]).mean()),
        "protocol": protocol,
    }
    protocol["classes"] = "known classes only" if split.open_set else "all"
    outliers = labels >= split.num_classes
    if algorithm.open_set and outliers.any():
        algorithm.ema_model.cpu()
        scores = algorithm.outlier_score_from_embeddings(z, algorithm.ema_model).numpy()
        metrics[OPEN_SET_AUROC] = auroc(scores[labels >= 0], outliers[labels >= 0])
    return metrics


def save_classifier(algorithm: SemiAlgorithm, run_dir: Path) -> Path:
    """``classifier.safetensors``: the EMA model's whole state (backbone + heads), atomically."""
    from safetensors.torch import save_file

    state = {
        k: v.detach().cpu().contiguous().clone()
        for k, v in algorithm.ema_model.state_dict().items()
    }
    metadata = {"num_classes": str(algorithm.num_classes), "method": algorithm.name}
    return write_path_atomic(
        RunFiles(Path(run_dir)).classifier,
        lambda temporary: save_file(state, str(temporary), metadata=metadata),
    )


def write_semi_report(run_dir: Path, algorithm: SemiAlgorithm, test: Dataset | None, split):
    """report.html with the EMA model's test embeddings and its predictions (per-class accuracy,
    confusion matrix); the training curves come from logs/metrics.csv."""
    from labelless.report import write_report

    if test is None:
        return write_report(run_dir)
    z, logits = _logits(algorithm, test.samples)
    labels = test.labels if test.labels is not None else None
    return write_report(
        run_dir,
        embeddings=z,
        labels=labels,
        class_names=test.meta.get("class_names"),
        predictions=logits.argmax(dim=1).numpy(),
    )


class TestAccuracyMonitor(L.Callback):
    """Logs ``monitor/ema_test_top1`` every N epochs: a curve for the report, never a selection."""

    def __init__(self, test: Dataset, every_n_epochs: int) -> None:
        self.test, self.every_n_epochs = test, every_n_epochs

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        last = trainer.max_epochs is not None and trainer.current_epoch + 1 >= trainer.max_epochs
        if (trainer.current_epoch + 1) % self.every_n_epochs and not (last or trainer.should_stop):
            return
        if budget_ended(pl_module):  # the final evaluation measures it next
            return
        algorithm = pl_module.algorithm
        known = (self.test.labels >= 0) & (self.test.labels < algorithm.num_classes)
        _, logits = _logits(algorithm, self.test.samples[known])
        accuracy = float((logits.argmax(1).numpy() == self.test.labels[known]).mean())
        pl_module.log("monitor/ema_test_top1", accuracy, on_epoch=True, rank_zero_only=True)
