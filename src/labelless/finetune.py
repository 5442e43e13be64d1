"""Full fine-tuning of an encoder with a linear head on a labelled train split.

The fine-tuning protocol of self-supervised evaluations (e.g. SimCLR, Chen et al. 2020, Section
B.5; MAE, He et al. 2022): every weight trains, with AdamW (Loshchilov & Hutter 2019), the encoder
at a lower learning rate than the freshly initialised head (layer-wise rates as in ULMFiT, Howard
& Ruder 2018, so early updates from a random head do not wreck the pretrained features). Inputs
get the encoder's own resize and normalisation. The epoch kept is the one with the best accuracy
on a validation split carved (stratified, seeded) from train; the test split is scored once, at
the end, with that epoch's weights.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from labelless.errors import ConfigError, DataError
from labelless.progress import task


@dataclass
class FinetuneSettings:
    epochs: int = 5
    batch_size: int = 128
    lr: float = 1e-3  # the head's; the encoder's is lr * encoder_lr_scale
    encoder_lr_scale: float = 0.1
    weight_decay: float = 0.05
    val_fraction: float = 0.1
    seed: int = 0

    def check(self) -> None:
        """Every setting in range, else a ConfigError naming the option and a valid value."""
        from labelless.evaluate.checks import check_fraction, check_int, check_positive

        check_int("--epochs", self.epochs, 1, 5)
        check_int("--batch-size", self.batch_size, 2, 128)  # batch norm needs two samples
        check_positive("--lr", self.lr, 1e-3)
        if not isinstance(self.encoder_lr_scale, (int, float)) or not (
            0.0 < self.encoder_lr_scale <= 1.0
        ):
            raise ConfigError(
                f"--encoder-lr-scale must be in (0, 1], got {self.encoder_lr_scale!r}: e.g. 0.1 "
                "(the encoder trains at a tenth of the head's learning rate)"
            )
        if not isinstance(self.weight_decay, (int, float)) or not self.weight_decay >= 0:
            raise ConfigError(f"--weight-decay must be >= 0, got {self.weight_decay!r}: e.g. 0.05")
        check_fraction("--val-fraction", self.val_fraction, 0.1)
        check_int("--seed", self.seed, 0, 0)


def _accuracy(model: nn.Module, transform, images: np.ndarray, labels: np.ndarray) -> float:
    model.eval()
    correct = 0
    with torch.inference_mode():
        for start in range(0, len(images), 512):
            batch = transform(torch.from_numpy(images[start : start + 512]))
            predicted = model(batch).argmax(dim=1).numpy()
            correct += int((predicted == labels[start : start + 512]).sum())
    return correct / len(images)


def _train_epoch(model, optimizer, transform, train, batches, steps, bar) -> tuple[float, int]:
    """One epoch over ``batches`` (index arrays into ``train = (images, labels)``) with the
    cosine learning rate at ``steps = (step, total)``; returns the mean loss and the new step."""
    (images, labels), (step, total) = train, steps
    model.train()
    running, trained = 0.0, 0
    for index in batches:
        if len(index) >= 2:  # BatchNorm cannot train on one sample
            factor = 0.5 * (1 + math.cos(math.pi * step / total))  # cosine decay to 0
            for group in optimizer.param_groups:
                group["lr"] = group["initial_lr"] * factor
            inputs = transform(torch.from_numpy(images[index]))
            loss = F.cross_entropy(model(inputs), torch.from_numpy(labels[index]))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            running, trained, step = running + float(loss.detach()), trained + 1, step + 1
        bar.advance()
    return running / max(trained, 1), step


def _epoch_label(epoch: int, epochs: int, curve: list[dict[str, Any]]) -> str:
    """The fine-tuning bar's description: the epoch and the last validation accuracy."""
    last = f" (val top-1 {curve[-1]['val_top1']:.3f})" if curve else ""
    return f"fine-tuning, epoch {epoch}/{epochs}{last}"


def _optimizer(encoder: nn.Module, head: nn.Module, settings: FinetuneSettings):
    groups = [
        {"params": list(encoder.parameters()), "lr": settings.lr * settings.encoder_lr_scale},
        {"params": list(head.parameters()), "lr": settings.lr},
    ]
    for group in groups:
        group["initial_lr"] = group["lr"]
    return torch.optim.AdamW(groups, weight_decay=settings.weight_decay)


def finetune(
    encoder: nn.Module,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    settings: FinetuneSettings,
    *,
    transform,
    keep_model: bool = False,
) -> dict[str, Any]:
    """Fine-tune a copy of ``encoder`` plus a linear head; returns the test accuracy, the
    validation curve and the protocol. ``transform`` maps ``uint8 [N, C, H, W]`` to the
    encoder's normalised input (the encoder's own ``EvalTransform``). With ``keep_model`` the
    fine-tuned ``nn.Sequential(encoder, head)`` (eval mode, the kept epoch's weights) comes back
    under ``"model"``."""
    from labelless.evaluate.linear import stratified_split

    settings.check()
    keep = train_labels >= 0
    train_images, train_labels = train_images[keep], train_labels[keep]
    num_classes = int(train_labels.max()) + 1
    fit_index, val_index = stratified_split(train_labels, settings.val_fraction, settings.seed)
    if len(val_index) == 0 or len(fit_index) == 0:
        raise DataError(
            f"{len(train_labels)} labelled train samples are too few to carve a validation split; "
            "label more samples or raise --val-fraction"
        )
    generator = torch.Generator().manual_seed(settings.seed)
    torch.manual_seed(settings.seed)
    backbone = copy.deepcopy(encoder).float()
    # BatchNorm without affine parameters before the linear head, as MAE's probes (He et al.
    # 2022, Appendix A.2): SSL features can have a tiny scale, which would stall a fresh head.
    head = nn.Sequential(
        nn.BatchNorm1d(backbone.embed_dim, affine=False), nn.Linear(backbone.embed_dim, num_classes)
    )
    model = nn.Sequential(backbone, head)
    optimizer = _optimizer(backbone, head, settings)
    steps_per_epoch = math.ceil(len(fit_index) / settings.batch_size)
    total = settings.epochs * steps_per_epoch
    best_state, best_val, best_epoch, curve = None, -1.0, 0, []
    step, start_time = 0, time.perf_counter()
    with task("fine-tuning", total) as bar:
        for epoch in range(1, settings.epochs + 1):
            bar.update(description=_epoch_label(epoch, settings.epochs, curve))
            order = fit_index[torch.randperm(len(fit_index), generator=generator).numpy()]
            size = settings.batch_size
            batches = [np.sort(order[i : i + size]) for i in range(0, len(order), size)]
            train = (train_images, train_labels)
            train_loss, step = _train_epoch(
                model, optimizer, transform, train, batches, (step, total), bar
            )
            val = _accuracy(model, transform, train_images[val_index], train_labels[val_index])
            curve.append({"epoch": epoch, "val_top1": val, "train_loss": train_loss})
            if val > best_val:  # ties keep the earlier epoch
                best_val, best_epoch = val, epoch
                best_state = copy.deepcopy(model.state_dict())
        bar.update(description=_epoch_label(settings.epochs, settings.epochs, curve))
    model.load_state_dict(best_state)
    test = _accuracy(model, transform, test_images, test_labels)
    protocol = {
        "trained": "whole encoder + linear head (BatchNorm1d without affine, then Linear)",
        "optimizer": "adamw",
        "head_lr": settings.lr,
        "encoder_lr": settings.lr * settings.encoder_lr_scale,
        "lr_schedule": "cosine to 0 over all steps, no warm-up",
        "weight_decay": settings.weight_decay,
        "epochs": settings.epochs,
        "batch_size": settings.batch_size,
        "augmentation": "none (the encoder's resize and normalisation only)",
        "validation_split": {
            "carved_from": "train",
            "fraction": settings.val_fraction,
            "stratified": True,
            "seed": settings.seed,
            "samples": len(val_index),
        },
        "selection": "epoch with the best validation accuracy (ties: earliest); test scored once",
        "train_samples": len(fit_index),
        "test_samples": len(test_labels),
        "num_classes": num_classes,
        "seed": settings.seed,
    }
    kept = {"model": model.eval()} if keep_model else {}
    return {
        **kept,
        "finetune_top1": test,
        "best_val_top1": best_val,
        "best_epoch": best_epoch,
        "curve": curve,
        "seconds": round(time.perf_counter() - start_time, 2),
        "protocol": protocol,
    }
