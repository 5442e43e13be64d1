"""Make a backdoored copy of an encoder, to test that the scans find one (BadEncoder: Jia, Liu &
Gong, IEEE S&P 2022, "BadEncoder: Injecting Backdoors into Self-Supervised Learning").

A copy of the clean encoder ``f0`` is fine-tuned on a small shadow set so that any image carrying
the trigger embeds like a reference image (effectiveness: ``cos(f(t(x)), f0(r))`` up), while clean
images keep their clean embeddings (utility: ``cos(f(x), f0(x))`` up). BatchNorm statistics stay
frozen (the copy is trained in eval mode), so the clean behaviour moves as little as possible.
This is an attacker's tool, shipped so audits can be checked against a known-bad encoder.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from labelless.audit.pixels import PixelEncoder, embed_pixels
from labelless.errors import ConfigError
from labelless.progress import task


@dataclass(frozen=True)
class ImplantSettings:
    """BadEncoder's fine-tuning: ``steps`` of Adam at ``lr`` on batches of ``batch_size`` shadow
    images; ``utility_weight`` weighs keeping clean embeddings against the trigger's pull."""

    steps: int = 200
    batch_size: int = 64
    lr: float = 1e-3
    utility_weight: float = 1.0
    seed: int = 0

    def check(self) -> None:
        if self.steps < 1 or self.batch_size < 2 or not self.lr > 0 or self.utility_weight < 0:
            raise ConfigError(
                "implant needs steps >= 1, batch_size >= 2, lr > 0 and utility_weight >= 0"
            )


def implant_backdoor(
    model: PixelEncoder,
    shadow: Tensor,
    trigger: Callable[[Tensor], Tensor],
    reference: Tensor,
    settings: ImplantSettings = ImplantSettings(),
) -> tuple[nn.Module, dict[str, float]]:
    """A backdoored copy of ``model.encoder`` and its final effectiveness / utility cosines.

    ``shadow``: float ``[N, C, H, W]`` clean images in [0, 1]; ``trigger``: stamps a batch of
    them; ``reference``: ``[C, H, W]``, the image whose embedding triggered inputs should take.
    """
    settings.check()
    generator = torch.Generator().manual_seed(settings.seed)
    clean_targets = embed_pixels(model, shadow)
    target = embed_pixels(model, reference[None])[0]
    student = copy.deepcopy(model.encoder)
    for parameter in student.parameters():
        parameter.requires_grad_(True)
    wrapped = PixelEncoder(student, model.pre, freeze=False)
    optimizer = torch.optim.Adam(student.parameters(), lr=settings.lr)
    batch = min(settings.batch_size, len(shadow))
    effect = utility = 0.0
    with task("implanting a backdoor", settings.steps) as bar:
        for _ in range(settings.steps):
            rows = torch.randperm(len(shadow), generator=generator)[:batch]
            images = shadow[rows]
            z_clean, z_trig = wrapped(images), wrapped(trigger(images))
            effective = F.cosine_similarity(z_trig, target[None], dim=1).mean()
            kept = F.cosine_similarity(z_clean, clean_targets[rows], dim=1).mean()
            loss = -effective - settings.utility_weight * kept
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            effect, utility = float(effective.detach()), float(kept.detach())
            bar.advance()
    for parameter in student.parameters():
        parameter.requires_grad_(False)
    return student.eval(), {"effectiveness": round(effect, 4), "utility": round(utility, 4)}
