"""Synthetic training sets (images with regression targets, e.g. distilled by KRR-ST,
``labelless.curate.krrst``): the container, its file format and pretraining an encoder on one.

A set is pretrained on by regressing its targets from its images through a linear head (MSE),
as in Lee, Lee & Hwang 2024, "Self-Supervised Dataset Distillation for Transfer Learning"
(ICLR); the returned backbone carries the data's input size and normalisation, so it is
evaluated like any other encoder (``labelless.evaluate``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from labelless.errors import ConfigError, DataError

SYNTHETIC_FILE = "synthetic.safetensors"
RECORD_FILE = "synthetic.json"


@dataclass
class SyntheticSet:
    """A distilled set: ``images`` float32 ``[m, C, H, W]`` (0..1 pixel scale, normalise with
    ``record["mean"]`` / ``record["std"]``), ``targets`` float32 ``[m, D]`` (the regression
    targets), ``losses`` float32 ``[steps]`` (outer KRR loss per step) and ``record`` (every
    parameter, seed, the teacher and its SHA-256 when read from a file, timings)."""

    images: torch.Tensor
    targets: torch.Tensor
    losses: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    record: dict[str, Any] = field(default_factory=dict)


def build_regressor(
    backbone: str,
    backbone_kwargs: dict[str, Any],
    channels: int,
    size: int,
    mean: list[float],
    std: list[float],
    target_dim: int,
    seed: int,
) -> tuple[nn.Module, nn.Linear]:
    """A fresh backbone (``create_backbone`` at the data's size and statistics) and a linear
    head to ``target_dim``, initialised from ``seed`` without touching the global RNG."""
    from labelless.backbones import create_backbone

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = create_backbone(
            backbone, in_channels=channels, input_size=size, mean=mean, std=std, **backbone_kwargs
        )
        head = nn.Linear(model.embed_dim, target_dim)
    return model, head


def regression_loss(
    model: nn.Module, head: nn.Module, inputs: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """Mean squared error (over samples and target dimensions) of ``head(model(inputs))``
    against ``targets [n, D]``; ``inputs [n, C, H, W]`` normalised."""
    return (head(model(inputs)) - targets).square().mean()


def channel_columns(
    mean: list[float], std: list[float], device
) -> tuple[torch.Tensor, torch.Tensor]:
    """``mean`` and ``std`` as ``[1, C, 1, 1]`` tensors on ``device``."""
    shape = (1, len(mean), 1, 1)
    column = lambda values: torch.tensor(values, device=device).view(shape)  # noqa: E731
    return column(mean), column(std)


DEFAULT_LR = {"sgd": 0.1, "adam": 1e-3}  # the authors' SGD pretraining; Adam's usual default


def _optimizer(params, name: str, lr: float | None, weight_decay: float):
    if name not in DEFAULT_LR:
        raise ConfigError(f"unknown optimizer {name!r}; choose one of: {', '.join(DEFAULT_LR)}")
    lr = DEFAULT_LR[name] if lr is None else lr
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


def pretrain_on_synthetic(
    synthetic: SyntheticSet,
    *,
    backbone: str | None = None,
    backbone_kwargs: dict[str, Any] | None = None,
    epochs: int = 100,
    batch_size: int = 128,
    optimizer: str = "sgd",
    lr: float | None = None,
    weight_decay: float = 1e-3,
    augment: str | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> nn.Module:
    """A fresh ``backbone`` (default: the distillation's pool architecture and options) pretrained
    on ``synthetic`` by MSE regression of its targets through a linear head (the paper's
    pretraining stage): ``optimizer`` ``"sgd"`` (momentum 0.9, ``lr`` 0.1, the authors') or
    ``"adam"`` (``lr`` 1e-3), ``weight_decay``, cosine decay, ``epochs`` passes over the set in
    shuffled batches. ``augment``: a view recipe (``"simclr"``, ``"weak"``, ...) whose first
    view is applied to each batch; None trains on the images as they are. Returns the backbone
    (eval mode) with the data's input size and normalisation in its ``meta``, initialised from
    ``seed`` (which also orders the batches)."""
    from labelless.augment import view_recipe

    if epochs < 1 or batch_size < 1:
        raise ConfigError(f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}")
    record, device = synthetic.record, torch.device(device)
    name = backbone or record.get("backbone", "resnet18_cifar")
    same = name == record.get("backbone")
    options = backbone_kwargs or (record.get("backbone_kwargs", {}) if same else {})
    images, targets = synthetic.images.float().to(device), synthetic.targets.float().to(device)
    channels, size = images.shape[1], images.shape[-1]
    mean = record.get("mean") or [0.5] * channels
    std = record.get("std") or [0.25] * channels
    model, head = build_regressor(
        name, dict(options), channels, size, mean, std, targets.shape[1], int(seed)
    )
    model, head = model.to(device).train(), head.to(device)
    views = view_recipe(augment, size=size, mean=mean, std=std) if augment else None
    column_mean, column_std = channel_columns(mean, std, device)
    solver = _optimizer([*model.parameters(), *head.parameters()], optimizer, lr, weight_decay)
    batches = -(-len(images) // batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(solver, epochs * batches)
    generator = torch.Generator().manual_seed(int(seed))
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=generator).to(device)
        for start in range(0, len(images), batch_size):
            rows = order[start : start + batch_size]
            if views is None:
                inputs = (images[rows] - column_mean) / column_std
            else:
                inputs = views(images[rows].clamp(0.0, 1.0), generator)[0]
            loss = regression_loss(model, head, inputs, targets[rows])
            solver.zero_grad(set_to_none=True)
            loss.backward()
            solver.step()
            schedule.step()
    return model.eval()


def save_synthetic(synthetic: SyntheticSet, path: str | Path) -> Path:
    """Write ``synthetic`` into the folder ``path``: ``synthetic.safetensors`` (``images``
    float32, ``targets``, ``losses``) and ``synthetic.json`` (the record), each atomically.
    Returns the folder."""
    from safetensors.torch import save_file

    from labelless.atomic import write_path_atomic, write_text_atomic

    folder = Path(path)
    tensors = {
        "images": synthetic.images.detach().float().cpu().contiguous(),
        "targets": synthetic.targets.detach().float().cpu().contiguous(),
        "losses": synthetic.losses.detach().float().cpu().contiguous(),
    }
    text = json.dumps(synthetic.record, indent=2, sort_keys=True)
    write_path_atomic(folder / SYNTHETIC_FILE, lambda p: save_file(tensors, str(p)))
    write_text_atomic(folder / RECORD_FILE, text + "\n")
    return folder


def load_synthetic(path: str | Path) -> SyntheticSet:
    """A set written by ``save_synthetic``, from its folder or either of its two files."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    folder = path if path.is_dir() else path.parent
    files = folder / SYNTHETIC_FILE, folder / RECORD_FILE
    missing = [str(file) for file in files if not file.is_file()]
    if missing:
        raise DataError(
            f"{str(path)!r} is not a synthetic set: {', '.join(missing)} not found "
            "(save_synthetic writes both files into one folder)"
        )
    try:
        tensors = load_file(str(files[0]))
        record = json.loads(files[1].read_text(encoding="utf-8"))
    except (SafetensorError, OSError, ValueError) as error:
        raise DataError(f"cannot read the synthetic set in {str(folder)!r}: {error}") from error
    return SyntheticSet(tensors["images"], tensors["targets"], tensors["losses"], record)
