"""KRR-ST: self-supervised dataset distillation by kernel ridge regression on target
representations.

Lee, Lee & Hwang 2024, "Self-Supervised Dataset Distillation for Transfer Learning" (ICLR):
a small synthetic set of images ``X_s [m, C, H, W]`` with target representations
``Y_s [m, D]`` is learnt so that regressing ``Y_s`` from ``X_s`` stands in for learning the
real images' representations ``Y = t(X)`` from a frozen self-supervised teacher ``t``. Each
outer step draws a real batch ``(X_b, Y_b)`` and a feature extractor ``g`` from a model pool,
predicts the batch's targets by kernel ridge regression on the synthetic set,

    Y_hat_b = F_b F_s^T (F_s F_s^T + lambda I)^{-1} Y_s,   F_s = g(X_s), F_b = g(X_b),

and moves ``X_s`` and ``Y_s`` (Adam, own learning rates) down the mean squared error of
``Y_hat_b`` against ``Y_b`` (``g`` is not updated by this loss; features carry an appended
constant 1, and ``lambda`` is relative to the kernel's scale). Then ``g`` takes
``inner_steps`` steps of MSE regression of ``Y_s`` from ``X_s`` through a linear head, and is
re-initialised once it has taken ``max_model_steps``: the pool holds models at different
stages of training on the synthetic set. A fresh encoder pretrained on the result
(``pretrain_on_synthetic``) is then evaluated as any other (``labelless.evaluate``).

Images live in the data's pixel space (float32, 0..1 scale, native resolution) and are
normalised with the data's per-channel mean / std before every model; targets are the teacher's
embeddings, standardised per dimension over the real data by default.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from labelless.curate.synthetic import (
    SyntheticSet,
    build_regressor,
    channel_columns,
    load_synthetic,
    pretrain_on_synthetic,
    regression_loss,
    save_synthetic,
)
from labelless.errors import ConfigError, DataError, did_you_mean
from labelless.runfiles import file_sha256

__all__ = [
    "KRRSTOptions",
    "ModelPool",
    "SyntheticSet",
    "distill_dataset",
    "krr_loss",
    "krr_predict",
    "load_synthetic",
    "pretrain_on_synthetic",
    "save_synthetic",
    "teacher_targets",
]
PAPER = "Lee, Lee & Hwang 2024, Self-Supervised Dataset Distillation for Transfer Learning"


def krr_predict(
    support_features: torch.Tensor,
    query_features: torch.Tensor,
    support_targets: torch.Tensor,
    ridge: float,
) -> torch.Tensor:
    """Kernel ridge regression with the linear kernel: ``[b, D]`` predictions
    ``F_q F_s^T (F_s F_s^T + lambda I)^{-1} Y_s`` from ``support_features F_s [m, f]``,
    ``query_features F_q [b, f]`` and ``support_targets Y_s [m, D]``. ``lambda = ridge x
    mean(diag(F_s F_s^T))``: relative to the kernel's scale, so one value fits every model."""
    kernel = support_features @ support_features.T
    scale = kernel.diagonal().mean().detach().clamp_min(1e-12)
    eye = torch.eye(len(kernel), dtype=kernel.dtype, device=kernel.device)
    weights = torch.linalg.solve(kernel + ridge * scale * eye, support_targets)
    return (query_features @ support_features.T) @ weights


def krr_loss(
    model: nn.Module,
    synthetic_images: torch.Tensor,
    synthetic_targets: torch.Tensor,
    real_images: torch.Tensor,
    real_targets: torch.Tensor,
    *,
    ridge: float,
    mean: torch.Tensor,
    std: torch.Tensor,
) -> torch.Tensor:
    """KRR-ST's outer loss: the mean squared error (over samples and target dimensions) of
    ``krr_predict`` on ``model``'s features, each with a constant 1 appended (a bias, as the
    authors' code). Images are 0..1 pixel-scale floats, normalised with ``mean`` / ``std``
    (``[1, C, 1, 1]``); the real images' features carry no gradient (only the synthetic set
    learns), and ``model`` runs in the mode it is in (the outer loop uses eval mode)."""

    def features(images: torch.Tensor) -> torch.Tensor:
        out = model((images - mean) / std)
        return torch.cat([out, torch.ones(len(out), 1, dtype=out.dtype, device=out.device)], 1)

    with torch.no_grad():
        real_features = features(real_images)
    predicted = krr_predict(features(synthetic_images), real_features, synthetic_targets, ridge)
    return (predicted - real_targets).square().mean()


def teacher_targets(
    teacher: nn.Module,
    images: torch.Tensor,
    *,
    mean: list[float] | None = None,
    std: list[float] | None = None,
    batch_size: int = 512,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """The teacher's embeddings ``float32 [N, D]`` of ``images`` (``uint8 [N, C, H, W]``), in
    batches under ``torch.inference_mode()`` at the teacher's own preprocessing (its
    ``meta``), or at the data's ``mean`` / ``std`` (needed then) for a teacher without
    metadata. Compute once
    and pass to ``distill_dataset(teacher_embeddings=...)`` to reuse it."""
    from labelless.evaluate import embed

    has_meta = getattr(teacher, "meta", None) is not None
    size = None if has_meta else int(images.shape[-1])
    stats = {} if has_meta else {"mean": mean, "std": std}
    return embed(teacher, images, input_size=size, batch_size=batch_size, device=device, **stats)


def _real_images(data) -> tuple[torch.Tensor, list[float], list[float], str]:
    """``uint8 [N, C, H, W]`` images, the data's per-channel mean and std, and its name."""
    from labelless.data import Dataset

    if not isinstance(data, Dataset):
        array = data.numpy() if isinstance(data, torch.Tensor) else np.asarray(data)
        if array.ndim != 4 or len(array) == 0 or array.dtype != np.uint8:
            raise DataError(
                "KRR-ST distils images: pass a labelless Dataset or a non-empty uint8 "
                f"[N, C, H, W] array, got {array.dtype} {tuple(array.shape)}"
            )
        data = Dataset(array)
    if not data.format.pixels or np.asarray(data.samples).ndim != 4:
        raise DataError(
            f"KRR-ST distils images, but {data.name!r} holds {data.modality} samples: "
            "load an image dataset"
        )
    images = torch.from_numpy(np.ascontiguousarray(data.samples))
    return images, list(data.meta["mean"]), list(data.meta["std"]), data.name


def _load_teacher(teacher) -> tuple[nn.Module, dict[str, Any]]:
    """The teacher module and its record (path and SHA-256 when read from a file). It is only
    ever run by ``teacher_targets`` (eval mode, inference mode), so it is left as given."""
    from labelless.backbones import load_encoder
    from labelless.backbones.io import META_FILE, WEIGHTS_FILE

    record: dict[str, Any] = {}
    if isinstance(teacher, (str, Path)):
        path = Path(teacher)
        if not path.exists():
            raise ConfigError(f"teacher {str(path)!r} does not exist: pass an encoder folder")
        weights = path / WEIGHTS_FILE if path.is_dir() else path
        weights = weights.with_name(WEIGHTS_FILE) if weights.name == META_FILE else weights
        record = {"path": str(path.resolve()), "weights_sha256": file_sha256(weights)}
        teacher = load_encoder(path)
    if not isinstance(teacher, nn.Module) or not isinstance(getattr(teacher, "embed_dim", 0), int):
        raise ConfigError("the teacher must be an encoder (nn.Module with .embed_dim) or its path")
    meta = getattr(teacher, "meta", None)
    record.update(embed_dim=int(teacher.embed_dim), meta=meta.to_dict() if meta else None)
    return teacher, record


def _check_teacher(teacher: nn.Module, images: torch.Tensor) -> None:
    """The teacher reads these images: same channels and, with metadata, the same input size
    (the synthetic images are learnt at the data's resolution)."""
    channels, height, width = images.shape[1:]
    meta = getattr(teacher, "meta", None)
    if meta is not None:
        if meta.in_channels != channels:
            raise ConfigError(
                f"the teacher expects {meta.in_channels}-channel images but the data has "
                f"{channels} channels: use a teacher trained on this kind of image"
            )
        if meta.input_size != height or height != width:
            raise ConfigError(
                f"the teacher reads {meta.input_size} px images but the data is {height}x{width}: "
                "KRR-ST learns images at the data's resolution; use a teacher of that input size"
            )
        return
    parameter = next(teacher.parameters(), None)
    probe = images[:2].float().to(parameter.device if parameter is not None else "cpu")
    was_training = teacher.training
    try:
        with torch.inference_mode():
            teacher.eval()(probe)
    except RuntimeError as error:
        message = f"the teacher cannot read {tuple(images.shape[1:])} images: {error}"
        raise ConfigError(message) from error
    finally:
        teacher.train(was_training)


def _check_sizes(synthetic_size: int, real_count: int, settings: KRRSTOptions) -> None:
    if not 1 <= synthetic_size < real_count:
        raise ConfigError(
            f"synthetic_size must be at least 1 and below the {real_count} real images it is "
            f"distilled from, got {synthetic_size}"
        )
    if settings.pool_size < 1:
        raise ConfigError(
            f"the model pool is empty (pool_size={settings.pool_size}): use at least 1"
        )
    minimum = {"steps": 0, "inner_steps": 0, "batch_size": 1, "max_model_steps": 1}
    for name, least in minimum.items():
        if getattr(settings, name) < least:
            raise ConfigError(f"{name} must be >= {least}, got {getattr(settings, name)}")
    if not settings.ridge > 0:
        raise ConfigError(f"ridge must be > 0 (the KRR system is singular), got {settings.ridge}")


def _seed_from(generator: torch.Generator) -> int:
    return int(torch.randint(2**62, (1,), generator=generator))


class ModelPool:
    """``size`` regressors ``(g_i, head_i)``, each with its own optimiser (SGD, momentum 0.9,
    as the authors' online models) and step count; a model is rebuilt from a fresh seed once it
    has taken ``max_steps`` of its own updates. ``stagger`` trains each model for a random
    number of steps below ``max_steps`` first, so that the pool starts at different stages."""

    def __init__(
        self,
        size: int,
        build,
        *,
        max_steps: int,
        lr: float,
        weight_decay: float,
        generator: torch.Generator,
    ):
        self.build, self.max_steps, self.generator = build, max_steps, generator
        self.lr, self.weight_decay = lr, weight_decay
        self.models = [self._fresh() for _ in range(size)]
        self.resets = 0

    def _fresh(self) -> dict[str, Any]:
        model, head = self.build(_seed_from(self.generator))
        params = [*model.parameters(), *head.parameters()]
        optimizer = torch.optim.SGD(
            params, lr=self.lr, momentum=0.9, weight_decay=self.weight_decay
        )
        return {"model": model, "head": head, "optimizer": optimizer, "steps": 0}

    def draw(self) -> int:
        return int(torch.randint(len(self.models), (1,), generator=self.generator))

    def stagger(self, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        """Model i takes a random number of steps in ``[0, max_steps)`` on the set."""
        ages = torch.randint(self.max_steps, (len(self.models),), generator=self.generator)
        for index, age in enumerate(ages.tolist()):
            self.update(index, inputs, targets, age)

    def update(self, index: int, inputs: torch.Tensor, targets: torch.Tensor, steps: int) -> None:
        """``steps`` steps of MSE regression of ``targets`` from ``inputs`` (normalised,
        detached) in train mode, then a rebuild if the model is due."""
        entry = self.models[index]
        entry["model"].train()
        for _ in range(steps):
            loss = regression_loss(entry["model"], entry["head"], inputs, targets)
            entry["optimizer"].zero_grad(set_to_none=True)
            loss.backward()
            entry["optimizer"].step()
            entry["steps"] += 1
        if entry["steps"] >= self.max_steps:
            self.models[index] = self._fresh()
            self.resets += 1


@dataclass(frozen=True)
class KRRSTOptions:
    """KRR-ST's settings (recorded with every synthetic set).

    ``steps`` outer steps on real batches of ``batch_size``; ``image_lr`` / ``target_lr``: Adam
    on the synthetic images (0..1 pixel scale) and targets, decayed linearly to 1/1000 over the
    steps (the authors' schedule); ``ridge``: the KRR regulariser relative to the kernel's mean
    diagonal; a pool of ``pool_size`` models of ``backbone`` (``backbone_kwargs``;
    resnet18_cifar defaults to width 0.25), each taking ``inner_steps`` SGD steps
    (``inner_lr``, ``inner_weight_decay``, momentum 0.9) per use and re-initialised after
    ``max_model_steps``, started at random ages below it with ``stagger_pool``;
    ``standardize``: targets standardised per dimension over the real data; ``clamp_pixels``:
    keep the images in 0..1 after every step; ``seed``: the initial images, batches, pool
    draws and model inits.
    """

    steps: int = 300
    batch_size: int = 256
    image_lr: float = 0.01
    target_lr: float = 0.01
    ridge: float = 1e-3
    pool_size: int = 5
    inner_steps: int = 1
    inner_lr: float = 0.1
    inner_weight_decay: float = 1e-3
    max_model_steps: int = 100
    stagger_pool: bool = True
    backbone: str = "resnet18_cifar"
    backbone_kwargs: dict[str, Any] | None = None
    standardize: bool = True
    clamp_pixels: bool = False
    seed: int = 0

    def resolved_kwargs(self) -> dict[str, Any]:
        if self.backbone_kwargs is not None:
            return dict(self.backbone_kwargs)
        return {"width": 0.25} if self.backbone == "resnet18_cifar" else {}


def _options(given: dict[str, Any]) -> KRRSTOptions:
    known = [f.name for f in fields(KRRSTOptions)]
    for name in given:
        if name not in known:
            raise ConfigError(f"unknown KRR-ST option {name!r}{did_you_mean(name, known)}")
    return KRRSTOptions(**given)


def _standardised(embeddings: torch.Tensor, standardize: bool):
    """``(targets, mean, std)``: embeddings standardised per dimension, or as they are."""
    embeddings = embeddings.float().cpu()
    if not standardize:
        zeros = torch.zeros(embeddings.shape[1])
        return embeddings, zeros, torch.ones_like(zeros)
    mean, std = embeddings.mean(dim=0), embeddings.std(dim=0).clamp_min(1e-6)
    return (embeddings - mean) / std, mean, std


def distill_dataset(
    data,
    teacher,
    synthetic_size: int,
    *,
    teacher_embeddings: torch.Tensor | None = None,
    device: str | torch.device = "cpu",
    **options: Any,
) -> SyntheticSet:
    """Distil ``synthetic_size`` images with target representations from ``data`` (a labelless
    image ``Dataset`` or ``uint8 [N, C, H, W]``) and ``teacher`` (an encoder with
    ``.embed_dim``, or the path of an exported one: its SHA-256 is recorded) by KRR-ST.

    ``options`` are ``KRRSTOptions`` fields (``steps``, ``image_lr``, ``ridge``, ``pool_size``,
    ``seed``, ...). ``teacher_embeddings`` (``[N, D]``, from ``teacher_targets``) skips the
    teacher pass. With ``steps=0`` the result is the initialisation: ``synthetic_size`` random
    real images (seeded) with their teacher targets, the baseline KRR-ST must beat.
    """
    started = time.perf_counter()
    settings = _options(options)
    images, mean, std, name = _real_images(data)
    teacher, teacher_record = _load_teacher(teacher)
    _check_sizes(synthetic_size, len(images), settings)
    _check_teacher(teacher, images)
    device = torch.device(device)
    if teacher_embeddings is None:
        teacher_embeddings = teacher_targets(teacher, images, mean=mean, std=std, device=device)
    teacher_embeddings = torch.as_tensor(teacher_embeddings)
    if teacher_embeddings.ndim != 2 or len(teacher_embeddings) != len(images):
        shape = tuple(teacher_embeddings.shape)
        raise ConfigError(f"teacher_embeddings must be [{len(images)}, D], got {shape}")
    targets, target_mean, target_std = _standardised(teacher_embeddings, settings.standardize)
    teacher_seconds = time.perf_counter() - started

    generator = torch.Generator().manual_seed(int(settings.seed))
    chosen = torch.randperm(len(images), generator=generator)[:synthetic_size]
    synthetic_images = (images[chosen].float() / 255.0).to(device).requires_grad_(True)
    synthetic_targets = targets[chosen].clone().to(device).requires_grad_(True)
    channels, size, target_dim = images.shape[1], images.shape[-1], targets.shape[1]
    backbone_kwargs = settings.resolved_kwargs()

    def build(model_seed: int):
        model, head = build_regressor(
            settings.backbone, backbone_kwargs, channels, size, mean, std, target_dim, model_seed
        )
        return model.to(device), head.to(device)

    pool = ModelPool(
        settings.pool_size,
        build,
        max_steps=settings.max_model_steps,
        lr=settings.inner_lr,
        weight_decay=settings.inner_weight_decay,
        generator=generator,
    )
    synthetic = (synthetic_images, synthetic_targets)
    stats = channel_columns(mean, std, device)
    if settings.stagger_pool and settings.steps > 0:
        pool.stagger((synthetic_images.detach() - stats[0]) / stats[1], synthetic_targets.detach())
    losses = _outer_loop(images, targets, synthetic, pool, settings, stats, generator)
    record = {
        "method": "krrst",
        "paper": PAPER,
        **asdict(settings),
        "backbone_kwargs": backbone_kwargs,
        "data": name,
        "real_samples": len(images),
        "synthetic_size": synthetic_size,
        "channels": int(channels),
        "image_size": int(size),
        "mean": mean,
        "std": std,
        "teacher": teacher_record,
        "target_dim": int(target_dim),
        "target_mean": target_mean.tolist(),
        "target_std": target_std.tolist(),
        "init_indices": chosen.tolist(),
        "pool_resets": pool.resets,
        "teacher_seconds": round(teacher_seconds, 3),
        "seconds": round(time.perf_counter() - started, 3),
    }
    if len(losses):
        tenth = max(1, len(losses) // 10)
        first, last = losses[:tenth].mean(), losses[-tenth:].mean()
        record["outer_loss"] = {"first": float(first), "last": float(last)}
    images_out, targets_out = (t.detach().cpu().contiguous() for t in synthetic)
    return SyntheticSet(images_out, targets_out, losses, record)


def _outer_loop(
    images: torch.Tensor,
    targets: torch.Tensor,
    synthetic: tuple[torch.Tensor, torch.Tensor],
    pool: ModelPool,
    settings: KRRSTOptions,
    stats: tuple[torch.Tensor, torch.Tensor],
    generator: torch.Generator,
) -> torch.Tensor:
    """KRR-ST's outer steps on the real ``images`` (uint8) and ``targets``; returns each step's
    loss. Updates the synthetic images and targets (leaf tensors) in place."""
    from labelless.progress import task

    synthetic_images, synthetic_targets = synthetic
    optimizer = torch.optim.Adam(
        [
            {"params": [synthetic_images], "lr": settings.image_lr},
            {"params": [synthetic_targets], "lr": settings.target_lr},
        ]
    )
    decay = torch.optim.lr_scheduler.LinearLR(optimizer, 1.0, 1e-3, max(1, settings.steps))
    (mean, std), device = stats, synthetic_images.device
    batch_size = min(settings.batch_size, len(images))
    losses = torch.zeros(settings.steps)
    with task(f"KRR-ST: distilling {len(synthetic_images)} images", settings.steps) as bar:
        for step in range(settings.steps):
            rows = torch.randperm(len(images), generator=generator)[:batch_size]
            real = images[rows].to(device).float().div_(255.0)
            index = pool.draw()
            loss = krr_loss(
                pool.models[index]["model"].eval(),
                synthetic_images,
                synthetic_targets,
                real,
                targets[rows].to(device),
                ridge=settings.ridge,
                mean=mean,
                std=std,
            )  # the pool model is not updated by this loss: gradients for the synthetic set only
            synthetic_images.grad, synthetic_targets.grad = torch.autograd.grad(loss, synthetic)
            optimizer.step()
            decay.step()
            if settings.clamp_pixels:
                with torch.no_grad():
                    synthetic_images.clamp_(0.0, 1.0)
            losses[step] = loss.detach()
            inputs = (synthetic_images.detach() - mean) / std
            pool.update(index, inputs, synthetic_targets.detach(), settings.inner_steps)
            bar.advance()
    return losses
