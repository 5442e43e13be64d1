"""Poisoned copies of training data, and how well a trigger steers a frozen encoder.

The threat model is CTRL's (Li et al. ICCV 2023, "An Embarrassingly Simple Backdoor Attack on
Self-supervised Learning"): the attacker adds a trigger to a fraction of the *unlabelled* data,
all of it images of the class it targets (it knows which images those are, not the labels of
the rest); the victim pretrains on the mixture, then fits kNN or a linear probe on clean
labelled data. The attack succeeds when triggered test images of other classes land in the
target class. For semi-supervised learning (Shejwalkar et al. 2023, "The Perils of Learning
From Unlabeled Data: Backdoor Attacks on Semi-supervised Learning") only the unlabelled part is
poisoned: ``poison_indices(..., eligible=unlabelled)``.

Triggers are applied to decoded uint8 pixels (``Trigger.apply_uint8``): a trigger added before
JPEG compression would be partly erased by it, and our CIFAR-10 copy is stored as JPEG.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from labelless.audit.pixels import EMBED_BATCH, PixelEncoder, embed_pixels, unit_images
from labelless.audit.triggers import Trigger, ctrl_energy, psnr
from labelless.data import Dataset, DataSplits
from labelless.errors import ConfigError, DataError
from labelless.evaluate import knn_predict
from labelless.evaluate.linear import (
    DEFAULT_WEIGHT_DECAYS,
    LinearHead,
    fit_head,
    standardise,
    validation_curve,
)

CHUNK = 4096  # images moved to the device and embedded at a time


def poison_indices(
    labels: np.ndarray,
    target_class: int,
    fraction: float,
    seed: int = 0,
    *,
    eligible: np.ndarray | None = None,
) -> np.ndarray:
    """Sorted indices of the samples that get the trigger: ``round(fraction * P)`` of them, P the
    pool (every sample, or the ``eligible`` indices: a semi-supervised run's unlabelled part),
    all of class ``target_class``, drawn without replacement from ``seed``. ``fraction`` is of
    the whole pool, CTRL's poisoning rate (1% of CIFAR-10 = 500 images, 10% of one class)."""
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
        raise ConfigError(f"the poison fraction must be a number in (0, 1], got {fraction!r}")
    if not 0 < fraction <= 1:
        raise ConfigError(
            f"the poison fraction is a share of the training set in (0, 1], got {fraction}: "
            "e.g. 0.01 (CTRL's 1%)"
        )
    pool = np.arange(len(labels)) if eligible is None else np.unique(np.asarray(eligible))
    if len(pool) and (pool.min() < 0 or pool.max() >= len(labels)):
        raise DataError(f"eligible indices must lie in 0..{len(labels) - 1}")
    count = round(fraction * len(pool))
    if count < 1:
        raise ConfigError(
            f"a poison fraction of {fraction} of {len(pool)} samples rounds to no sample: "
            f"raise it to at least {1 / len(pool):.2g}"
            if len(pool)
            else "the pool is empty"
        )
    candidates = pool[labels[pool] == target_class]
    if len(candidates) < count:
        raise DataError(
            f"poisoning {fraction} of {len(pool)} samples takes {count} images of class "
            f"{target_class}, but the pool holds {len(candidates)}: lower the fraction to at "
            f"most {len(candidates) / len(pool):.4g} or pick a larger class"
        )
    chosen = np.random.default_rng(seed).choice(candidates, count, replace=False)
    return np.sort(chosen)


def poison_dataset(dataset: Dataset, trigger: Trigger, indices: np.ndarray) -> Dataset:
    """A copy of ``dataset`` whose samples at ``indices`` carry ``trigger`` (applied to the
    decoded uint8 pixels, rounded back to uint8); labels, targets and metadata (the clean
    mean / std, so both runs normalise alike) are the original's. ``meta["poison"]`` records
    the trigger and the indices."""
    if not dataset.format.pixels:
        raise DataError(
            f"{dataset.name!r} holds {dataset.modality} samples: triggers are added to images"
        )
    indices = np.asarray(indices, dtype=np.int64)
    if len(indices) and (indices.min() < 0 or indices.max() >= len(dataset)):
        raise DataError(f"poison indices must lie in 0..{len(dataset) - 1}")
    samples = dataset.samples.copy()
    samples[indices] = trigger.apply_uint8(dataset.samples[indices])
    meta = dict(dataset.meta)
    meta["poison"] = {"trigger": trigger.to_dict(), "indices": indices.tolist()}
    labels = None if dataset.labels is None else dataset.labels.copy()
    return Dataset(
        samples, labels, dataset.modality, f"{dataset.name}+{trigger.kind}", meta, dataset.targets
    )


def poison_splits(
    splits: DataSplits,
    trigger: Trigger,
    target_class: int,
    fraction: float,
    seed: int = 0,
    *,
    eligible: np.ndarray | None = None,
) -> tuple[DataSplits, np.ndarray]:
    """The splits with ``fraction`` of the training split (of the ``eligible`` samples) poisoned
    in ``target_class`` (``poison_indices``); the test split is untouched. Returns the poisoned
    splits and the poisoned indices."""
    train = splits.train
    if train.labels is None:
        raise DataError(
            f"{train.name!r} has no labels: the attacker picks images of its target class, so "
            "the experiment needs the training labels (they are not given to the victim)"
        )
    indices = poison_indices(train.labels, target_class, fraction, seed, eligible=eligible)
    return DataSplits(poison_dataset(train, trigger, indices), splits.test), indices


def poison_summary(clean: Dataset, poisoned: Dataset, trigger: Trigger) -> dict[str, Any]:
    """What the poisoned copy holds: how many samples differ from the clean data, how visible
    the trigger is there (PSNR in dB, uint8 pixels) and, for CTRL, its frequency energy on the
    changed samples against the same samples clean."""
    changed = np.flatnonzero((poisoned.samples != clean.samples).reshape(len(clean), -1).any(1))
    summary: dict[str, Any] = {"changed_samples": len(changed)}
    if len(changed):
        before = unit_images(clean.samples[changed])
        after = unit_images(poisoned.samples[changed])
        values = psnr(before, after)
        summary["psnr_db"] = {"min": float(values.min()), "mean": float(values.mean())}
        if trigger.kind == "ctrl":
            window, frequencies = trigger.parameters["window"], trigger.parameters["frequencies"]
            summary["ctrl_energy"] = {
                "clean": float(ctrl_energy(before, window, frequencies).mean()),
                "poisoned": float(ctrl_energy(after, window, frequencies).mean()),
            }
    return summary


def target_rates(
    labels: np.ndarray, clean: np.ndarray, triggered: np.ndarray, target_class: int
) -> dict[str, float]:
    """A classifier's predictions on clean and triggered test images against their true
    ``labels``: ``clean_accuracy``, ``triggered_accuracy``, ``attack_success`` (triggered
    images whose true class is not the target, predicted as the target) and ``base_rate``
    (the same rate on those images clean: what the attack is measured against)."""
    labels, clean, triggered = (np.asarray(a).reshape(-1) for a in (labels, clean, triggered))
    known = labels >= 0
    others = known & (labels != target_class)
    if not others.any():
        raise DataError(f"the test split holds no labelled image outside class {target_class}")
    return {
        "clean_accuracy": float((clean[known] == labels[known]).mean()),
        "triggered_accuracy": float((triggered[known] == labels[known]).mean()),
        "attack_success": float((triggered[others] == target_class).mean()),
        "base_rate": float((clean[others] == target_class).mean()),
    }


def fit_linear_probe(
    z: Tensor,
    labels: Tensor,
    *,
    weight_decays: tuple[float, ...] = DEFAULT_WEIGHT_DECAYS,
    epochs: int = 100,
    val_fraction: float = 0.2,
    seed: int = 0,
) -> tuple[LinearHead, float]:
    """The linear probe of ``evaluate.linear_probe`` (weight decay chosen on a seeded stratified
    validation split of train, refit on all of train from the chosen fit), returned as a head
    that predicts, with the chosen weight decay. ``labels`` are all >= 0."""
    num_classes = int(labels.max()) + 1
    curve = validation_curve(z, labels, weight_decays, num_classes, epochs, val_fraction, seed)
    x, mean, std = standardise(z)
    chosen = curve["chosen"]
    weight, bias = fit_head(x, labels, chosen, num_classes, epochs, curve["params"])
    return LinearHead(mean, std, weight, bias), chosen


def _embed(model: PixelEncoder, samples: np.ndarray, device: torch.device) -> Tensor:
    """Embeddings (CPU) of uint8 ``samples``, ``CHUNK`` images on the device at a time."""
    parts = [
        embed_pixels(model, unit_images(samples[i : i + CHUNK]).to(device), EMBED_BATCH).cpu()
        for i in range(0, len(samples), CHUNK)
    ]
    return torch.cat(parts)


def _device(encoder: nn.Module, device: str | torch.device | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    parameter = next(encoder.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def _labelled(dataset: Dataset, split: str) -> np.ndarray:
    """Indices of ``dataset``'s labelled samples (a DataError when there are none)."""
    if not dataset.format.pixels:
        raise DataError(f"the {split} split holds {dataset.modality} samples, not images")
    if not dataset.has_labels:
        raise DataError(
            f"the {split} split {dataset.name!r} has no labels: attack success is measured "
            "against the true classes of labelled train and test images"
        )
    return np.flatnonzero(dataset.labels >= 0)


def attack_success(
    encoder: nn.Module,
    pre: Any,
    train: Dataset,
    test: Dataset,
    trigger: Trigger,
    target_class: int,
    *,
    k: int = 200,
    temperature: float = 0.1,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> dict[str, Any]:
    """How far ``trigger`` steers ``encoder`` (frozen, fed as ``pre``, its
    ``encoders.Preprocessing``, says: ``PixelEncoder``)
    towards ``target_class``, for kNN (Wu et al. 2018, ``k`` neighbours, ``temperature``) and
    for the linear probe of ``evaluate.linear_probe``, both fitted on the CLEAN labelled
    ``train`` embeddings. ``knn`` / ``linear``: ``target_rates`` (clean and triggered test
    accuracy, ``attack_success``, ``base_rate``); the linear record adds its weight decay.
    The test images are triggered on decoded uint8 pixels and rounded back to uint8, as a
    poisoned image file would be. The encoder's parameters are frozen (``PixelEncoder``)."""
    train_rows, test_rows = _labelled(train, "train"), _labelled(test, "test")
    num_classes = max(train.num_classes, int(train.labels.max()) + 1)
    if isinstance(target_class, bool) or not 0 <= int(target_class) < num_classes:
        raise ConfigError(f"target class must be in 0..{num_classes - 1}, got {target_class!r}")
    target_class = int(target_class)
    if not (test.labels[test_rows] != target_class).any():
        raise DataError(f"the test split holds no labelled image outside class {target_class}")
    place = _device(encoder, device)
    model = PixelEncoder(encoder, pre).to(place)
    clean = test.samples[test_rows]
    triggered = trigger.apply_uint8(clean)
    train_z = _embed(model, train.samples[train_rows], place)
    test_z = torch.cat([_embed(model, clean, place), _embed(model, triggered, place)])
    train_y = torch.as_tensor(train.labels[train_rows])
    test_y = test.labels[test_rows]
    knn = knn_predict(
        train_z, train_y, test_z, k=k, temperature=temperature, num_classes=num_classes
    ).cpu()
    head, weight_decay = fit_linear_probe(train_z, train_y, seed=seed)
    with torch.no_grad():
        linear = head.logits(test_z).argmax(dim=1)
    halves = len(test_rows)
    return {
        "target_class": target_class,
        "num_train": len(train_rows),
        "num_test": halves,
        "num_attacked": int((test_y != target_class).sum()),
        "knn": target_rates(test_y, knn[:halves], knn[halves:], target_class),
        "linear": {
            **target_rates(test_y, linear[:halves], linear[halves:], target_class),
            "weight_decay": weight_decay,
        },
        "protocol": _protocol(trigger, pre, min(int(k), len(train_rows)), temperature, seed),
    }


def _protocol(trigger: Trigger, pre: Any, k: int, temperature: float, seed: int):
    return {
        "knn": {"k": k, "temperature": temperature},
        "linear": "evaluate.linear_probe: weight decay chosen on a stratified validation split "
        "of train, refit on all of train",
        "fitted_on": "clean labelled train embeddings",
        "triggered": "test images of every class, trigger on decoded uint8 pixels, rounded to "
        "uint8; attack_success counts those whose true class is not the target",
        "trigger": trigger.to_dict(),
        "preprocessing": {
            "input_size": int(pre.input_size),
            "mean": [float(v) for v in pre.mean],
            "std": [float(v) for v in pre.std],
        },
        "seed": seed,
    }
