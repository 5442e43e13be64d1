"""Adversarial inputs for an encoder, found without labels: they move the embedding.

- ``pgd_embedding``: projected gradient descent (Madry et al. 2018, "Towards Deep Learning Models
  Resistant to Adversarial Attacks") in an L-inf ball of radius ``epsilon`` around each image,
  maximising ``1 - cos(f(x + delta), f(x))``: the label-free objective that transfers to any
  downstream head (as in AdvEncoder, Zhou et al. 2023, "Downstream-agnostic Adversarial Examples").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from labelless.audit.pixels import EMBED_BATCH, PixelEncoder, embed_pixels
from labelless.errors import ConfigError


@dataclass(frozen=True)
class AttackBudget:
    """An L-inf attack's budget: radius ``epsilon`` (pixel scale, [0, 1]), ``steps`` and the
    step size (default ``2.5 * epsilon / steps``, Madry et al.'s rule)."""

    epsilon: float = 8 / 255
    steps: int = 10
    step_size: float | None = None

    def __post_init__(self) -> None:
        check_epsilon(self.epsilon)
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ConfigError(f"attack steps must be a whole number >= 1, got {self.steps!r}")
        if self.step_size is not None and not 0 < self.step_size <= 1:
            raise ConfigError(f"attack step size must be in (0, 1], got {self.step_size}")

    @property
    def alpha(self) -> float:
        return self.step_size if self.step_size is not None else 2.5 * self.epsilon / self.steps


def check_epsilon(epsilon: float) -> None:
    """An L-inf radius on [0, 1] pixels must be in (0, 1): e.g. 8/255 = 0.031."""
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not 0 < epsilon < 1:
        raise ConfigError(
            f"--epsilon is an L-inf radius on pixels scaled to [0, 1], in (0, 1); got {epsilon!r} "
            "(8/255 = 0.0314 is the usual CIFAR-10 budget; write --epsilon 0.0314)"
        )


def embedding_shift(model: PixelEncoder, clean: Tensor, perturbed: Tensor) -> Tensor:
    """``1 - cos(f(clean), f(perturbed))`` per image, ``[N]`` (0: unmoved, up to 2)."""
    a, b = embed_pixels(model, clean), embed_pixels(model, perturbed)
    return 1.0 - F.cosine_similarity(a, b, dim=1)


def pgd_embedding(
    model: PixelEncoder,
    images: Tensor,
    budget: AttackBudget = AttackBudget(),
    *,
    seed: int = 0,
    batch_size: int = EMBED_BATCH,
) -> Tensor:
    """Adversarial copies of ``images`` (float ``[N, C, H, W]`` in [0, 1]): every pixel within
    ``budget.epsilon`` of the original and in [0, 1]; each maximises its embedding's cosine
    distance to the clean embedding. Starts from a seeded uniform point of the ball."""
    generator = torch.Generator().manual_seed(seed)
    parts = []
    for start in range(0, len(images), batch_size):
        clean = images[start : start + batch_size]
        noise = torch.rand(clean.shape, generator=generator) * 2 - 1
        parts.append(_pgd_batch(model, clean, noise.mul_(budget.epsilon), budget))
    return torch.cat(parts)


def _pgd_batch(model: PixelEncoder, clean: Tensor, delta: Tensor, budget: AttackBudget) -> Tensor:
    with torch.no_grad():
        anchor = F.normalize(model(clean), dim=1)
    eps = budget.epsilon
    delta = ((clean + delta).clamp(0, 1) - clean).requires_grad_(True)
    for _ in range(budget.steps):
        z = F.normalize(model(clean + delta), dim=1)
        loss = (1.0 - (z * anchor).sum(dim=1)).sum()
        (grad,) = torch.autograd.grad(loss, delta)
        with torch.no_grad():
            delta += budget.alpha * grad.sign()
            delta.clamp_(-eps, eps)
            delta.copy_((clean + delta).clamp(0, 1) - clean)
    return (clean + delta).detach()


def universal_perturbation(
    model: PixelEncoder,
    images: Tensor,
    budget: AttackBudget = AttackBudget(),
    *,
    epochs: int = 5,
    batch_size: int = 128,
    seed: int = 0,
) -> Tensor:
    """One perturbation ``[C, H, W]`` in the L-inf ball that moves the embeddings of all of
    ``images`` at once: signed-gradient ascent of the mean ``1 - cos(f(x + delta), f(x))`` over
    shuffled batches for ``epochs`` passes (``budget.steps`` is not used; each batch is a step).
    The downstream-agnostic universal perturbation of AdvEncoder (Zhou et al., ICCV 2023), found
    by direct optimisation rather than their generator network (docs/security.md)."""
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ConfigError(f"universal perturbation epochs must be >= 1, got {epochs!r}")
    generator = torch.Generator().manual_seed(seed)
    anchors = F.normalize(embed_pixels(model, images), dim=1)
    eps = budget.epsilon
    delta = ((torch.rand(images.shape[1:], generator=generator) * 2 - 1) * eps).requires_grad_(True)
    step = budget.step_size if budget.step_size is not None else eps / 10
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=generator)
        for start in range(0, len(images), batch_size):
            rows = order[start : start + batch_size]
            z = F.normalize(model((images[rows] + delta).clamp(0, 1)), dim=1)
            loss = (1.0 - (z * anchors[rows]).sum(dim=1)).mean()
            (grad,) = torch.autograd.grad(loss, delta)
            with torch.no_grad():
                delta += step * grad.sign()
                delta.clamp_(-eps, eps)
    return delta.detach()


def apply_perturbation(images: Tensor, delta: Tensor) -> Tensor:
    """``images + delta`` kept in [0, 1] (``delta`` broadcasts: one universal perturbation)."""
    return (images + delta).clamp(0, 1)


def candidate_layers(encoder: torch.nn.Module, limit: int = 12) -> list[str]:
    """Names of the encoder's blocks a layer-wise attack can target: the members with parameters
    of its ``nn.Sequential`` / ``nn.ModuleList`` containers (a ResNet's residual blocks, a ViT's
    transformer blocks, a plain CNN's convolutions), at most ``limit`` evenly spaced ones."""
    names = []
    for name, module in encoder.named_modules():
        if not isinstance(module, (torch.nn.Sequential, torch.nn.ModuleList)):
            continue
        if any(name.startswith(f"{block}.") for block in names):
            continue  # a container inside a block already chosen (a downsample, an MLP)
        for child, member in module.named_children():
            has_weights = any(True for _ in member.parameters())
            leaf_norm = isinstance(member, (torch.nn.BatchNorm2d, torch.nn.LayerNorm))
            if has_weights and not leaf_norm and not isinstance(member, torch.nn.Sequential):
                names.append(f"{name}.{child}" if name else child)
    if not names:
        raise ConfigError(
            "found no blocks to attack layer by layer in this encoder (no nn.Sequential or "
            "nn.ModuleList of blocks); name the layers explicitly"
        )
    if len(names) > limit:
        picks = torch.linspace(0, len(names) - 1, limit).round().long().tolist()
        names = [names[i] for i in sorted(set(picks))]
    return names


class _Features:
    """Forward hooks that keep the outputs of the named modules, flattened per sample."""

    def __init__(self, encoder: torch.nn.Module, names: list[str]):
        modules = dict(encoder.named_modules())
        unknown = [n for n in names if n not in modules]
        if unknown:
            raise ConfigError(f"unknown layer(s) {unknown}; valid: {candidate_layers(encoder)}")
        self.outputs: dict[str, Tensor] = {}
        self.handles = [modules[n].register_forward_hook(self._keep(n)) for n in names]

    def _keep(self, name: str):
        def hook(module, inputs, output):
            value = output[0] if isinstance(output, tuple) else output
            self.outputs[name] = value.flatten(1)

        return hook

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


def _layer_pgd(model: PixelEncoder, clean: Tensor, layers: list[str], budget, seed: int) -> Tensor:
    """PGD maximising the mean over ``layers`` of ``1 - cos`` between adversarial and clean
    features at that layer."""
    features = _Features(model.encoder, layers)
    try:
        with torch.no_grad():
            model(clean)
            anchors = {n: F.normalize(v, dim=1) for n, v in features.outputs.items()}
        generator = torch.Generator().manual_seed(seed)
        eps = budget.epsilon
        delta = (torch.rand(clean.shape, generator=generator) * 2 - 1) * eps
        delta = ((clean + delta).clamp(0, 1) - clean).requires_grad_(True)
        for _ in range(budget.steps):
            model(clean + delta)
            loss = sum(
                (1 - (F.normalize(features.outputs[n], dim=1) * anchors[n]).sum(1)).sum()
                for n in layers
            )
            (grad,) = torch.autograd.grad(loss, delta)
            with torch.no_grad():
                delta += budget.alpha * grad.sign()
                delta.clamp_(-eps, eps)
                delta.copy_((clean + delta).clamp(0, 1) - clean)
    finally:
        features.close()
    return (clean + delta).detach()


def layer_vulnerability(
    model: PixelEncoder, images: Tensor, layers: list[str], budget: AttackBudget, seed: int = 0
) -> dict[str, float]:
    """Per layer, the mean cosine distance its own features reach under a PGD that attacks
    that layer alone (``images``: a small probe batch): the layers easiest to move first."""
    scores = {}
    for name in layers:
        adversarial = _layer_pgd(model, images, [name], budget, seed)
        features = _Features(model.encoder, [name])
        try:
            with torch.no_grad():
                model(images)
                clean = features.outputs[name]
                model(adversarial)
                moved = features.outputs[name]
        finally:
            features.close()
        scores[name] = float((1 - F.cosine_similarity(clean, moved, dim=1)).mean())
    return scores


def downstream_transfer_attack(
    model: PixelEncoder,
    images: Tensor,
    layers: list[str],
    budget: AttackBudget = AttackBudget(),
    *,
    seed: int = 0,
    batch_size: int = EMBED_BATCH,
) -> Tensor:
    """Adversarial copies of ``images`` that move the features of the chosen (most vulnerable)
    ``layers`` of the pretrained encoder; crafted on the pretrained encoder alone and meant for
    models fine-tuned from it (DTA: Zheng et al. 2024, "Downstream Transfer Attack: Adversarial
    Attacks on Downstream Models with Pre-trained Vision Transformers")."""
    parts = [
        _layer_pgd(model, images[i : i + batch_size], layers, budget, seed + i)
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat(parts)
