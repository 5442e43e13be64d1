"""Label-free backdoor scan of an encoder by trigger inversion (DECREE: Feng et al., CVPR 2023,
"Detecting Backdoors in Pre-trained Encoders").

A backdoored encoder maps any image carrying its trigger to (nearly) one embedding. So search for
the smallest stamp that does that: a mask ``m`` (``[H, W]`` in [0, 1]) and a pattern ``p``
(``[C, H, W]``), triggered images ``x' = (1 - m) x + m p`` of a small clean shadow set, and
minimise ``-similarity(f(x')) + lambda * mean(m)``, with ``lambda`` adapted so the similarity stays
at the success threshold (raised after ``patience`` successful steps in a row, lowered after as
many failures; DECREE's schedule). The score is the mask's L1 norm as a fraction of the image
(DECREE's PL1-norm) of the smallest successful trigger: a backdoored encoder needs a few percent
of the image, a clean one most of it (at full mask every image *is* the pattern).

Our changes to DECREE:

- similarity is measured on embeddings *centred* on the clean shadow set's mean, so that an
  encoder whose raw embeddings are all alike (a random initialisation: ReLU features are all
  positive) does not pass the threshold with an empty mask;
- a window screen before the joint optimisation (``screen_windows``): for every square window
  of a grid (``window`` pixels, stride ``window / 2``: any trigger up to half a window wide lies
  inside one), only the pattern is optimised for a few steps with the mask fixed to the window.
  A trigger the encoder was fine-tuned to obey is a narrow target: from a random start, the
  joint optimisation settles on a generic stamp a few times larger (measured on a CPU-made
  BadEncoder-style backdoor, bench/audit.py), while with the mask on the right window the
  pattern converges within tens of steps. The joint optimisation then starts from the window
  that reached the highest similarity, and can still move and grow the mask anywhere.

The score is calibrated against reference encoders (a random initialisation of the same
architecture, always; other runs the user trusts), and the verdict is relative to them
(``BackdoorScan``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from labelless.audit.pixels import PixelEncoder, embed_pixels
from labelless.errors import ConfigError, DataError
from labelless.progress import task

MIN_SHADOW = 16


@dataclass(frozen=True)
class InversionSettings:
    """Trigger inversion's budget and schedule. ``similarity``: the mean pairwise cosine of the
    centred triggered embeddings that counts as "they embed alike" (DECREE uses 0.99 on raw
    embeddings); ``flag_ratio``: flagged when the score is below this share of the smallest
    reference score; ``window`` (0: a quarter of the shorter image side, at least 4 pixels),
    ``screen_steps`` (0: no screen) and ``screen_batch``: the window screen."""

    steps: int = 400
    batch_size: int = 128
    lr: float = 0.1
    similarity: float = 0.9
    lambda_init: float = 1e-2
    lambda_factor: float = 2.0
    patience: int = 5
    flag_ratio: float = 0.5
    seed: int = 0
    window: int = 0
    screen_steps: int = 30
    screen_batch: int = 32

    def check(self) -> None:
        if isinstance(self.window, bool) or not isinstance(self.window, int) or self.window < 0:
            raise ConfigError(
                f"the screen window must be a whole number of pixels >= 0 (0: a quarter of the "
                f"image side), got {self.window!r}"
            )
        for name, least in (("screen_steps", 0), ("screen_batch", 2)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ConfigError(
                    f"trigger inversion {name} must be a whole number >= {least} "
                    f"(screen_steps 0: no window screen), got {value!r}"
                )
        for name in ("steps", "batch_size", "patience"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(
                    f"trigger inversion {name} must be a whole number >= 1, got {value!r}"
                )
        if not 0 < self.similarity < 1:
            raise ConfigError(f"the similarity threshold must be in (0, 1), got {self.similarity}")
        if not 0 < self.flag_ratio < 1:
            raise ConfigError(f"flag_ratio must be in (0, 1), got {self.flag_ratio}: e.g. 0.5")
        if not self.lr > 0 or not self.lambda_init > 0 or not self.lambda_factor > 1:
            raise ConfigError("trigger inversion needs lr > 0, lambda_init > 0, lambda_factor > 1")


@dataclass
class InvertedTrigger:
    """The smallest trigger found: ``mask`` ``[H, W]``, ``pattern`` ``[C, H, W]`` (both [0, 1]);
    ``score`` its mask's mean (1.0 when no trigger reached the threshold); ``similarity`` what
    it reached; ``curve`` (step, similarity, mask mean) every 10 steps; ``screen`` the window
    screen's similarity per window ``[rows, cols]`` (empty without a screen)."""

    mask: Tensor
    pattern: Tensor
    score: float
    similarity: float
    found: bool
    curve: list[tuple[int, float, float]] = field(default_factory=list)
    screen: Tensor = field(default_factory=lambda: torch.zeros(0, 0))

    def apply(self, images: Tensor) -> Tensor:
        return (1 - self.mask) * images + self.mask * self.pattern


def check_shadow(images: Tensor, channels: int) -> None:
    """A shadow set: float ``[N, C, H, W]`` images in [0, 1], at least ``MIN_SHADOW`` of them,
    with the encoder's channels."""
    if images.ndim != 4 or images.shape[1] != channels:
        raise DataError(
            f"the shadow set must be [N, {channels}, H, W] images for this encoder; got shape "
            f"{tuple(images.shape)}: pass clean images of the kind the encoder was trained on"
        )
    if len(images) < MIN_SHADOW:
        raise DataError(
            f"the shadow set has {len(images)} images; trigger inversion needs at least "
            f"{MIN_SHADOW} (a few hundred is better): raise --shadow"
        )


def centred_similarity(z: Tensor, centre: Tensor) -> Tensor:
    """Mean cosine similarity over distinct pairs of ``z - centre`` (``z``: ``[B, D]``)."""
    u = F.normalize(z - centre, dim=1)
    gram = u @ u.T
    count = len(u)
    return (gram.sum() - gram.diagonal().sum()) / (count * (count - 1))


def window_starts(size: int, window: int) -> list[int]:
    """Window offsets along one side of ``size`` pixels: stride ``window // 2`` (at least 1),
    the last window flush with the edge."""
    if window >= size:
        return [0]
    starts = list(range(0, size - window + 1, max(window // 2, 1)))
    return starts if starts[-1] == size - window else [*starts, size - window]


def screen_windows(
    model: PixelEncoder,
    shadow: Tensor,
    centre: Tensor,
    settings: InversionSettings,
    generator: torch.Generator,
) -> tuple[Tensor, Tensor, Tensor]:
    """For each window of the grid, the mask fixed to the window and only the pattern optimised
    for ``screen_steps`` Adam steps on batches of ``screen_batch`` shadow images. Returns the
    similarity each window reached ``[rows, cols]`` (its last step's batch), and the best
    window's mask and pattern logits as the joint optimisation's start."""
    _, channels, height, width = shadow.shape
    window = settings.window or max(4, min(height, width) // 4)
    window = min(window, height, width)
    rows, cols = window_starts(height, window), window_starts(width, window)
    reached = torch.zeros(len(rows), len(cols))
    best: tuple[float, Tensor, Tensor] | None = None
    batch = min(settings.screen_batch, len(shadow))
    with task("trigger inversion: window screen", len(rows) * len(cols)) as bar:
        for i, top in enumerate(rows):
            for j, left in enumerate(cols):
                mask = torch.zeros(height, width)
                mask[top : top + window, left : left + window] = 1.0
                logit = torch.rand(channels, height, width, generator=generator) * 4 - 2
                logit.requires_grad_(True)
                optimizer = torch.optim.Adam([logit], lr=settings.lr, betas=(0.5, 0.9))
                similarity = torch.tensor(0.0)
                for _ in range(settings.screen_steps):
                    picked = torch.randperm(len(shadow), generator=generator)[:batch]
                    triggered = (1 - mask) * shadow[picked] + mask * torch.sigmoid(logit)
                    similarity = centred_similarity(model(triggered), centre)
                    optimizer.zero_grad(set_to_none=True)
                    (-similarity).backward()
                    optimizer.step()
                reached[i, j] = float(similarity.detach())
                if best is None or reached[i, j] > best[0]:
                    best = (float(reached[i, j]), mask, logit.detach().clone())
                bar.advance()
    _, mask, pattern_logit = best  # type: ignore[misc]  (the grid is never empty)
    return reached, (mask * 6 - 3), pattern_logit  # logits: sigmoid(3) = 0.95 inside


def invert_trigger(
    model: PixelEncoder, shadow: Tensor, settings: InversionSettings = InversionSettings()
) -> InvertedTrigger:
    """The smallest mask and its pattern that make ``shadow`` (float ``[N, C, H, W]``, [0, 1])
    embed alike under ``model``; see the module docstring."""
    settings.check()
    check_shadow(shadow, model.channels)
    generator = torch.Generator().manual_seed(settings.seed)
    _, channels, height, width = shadow.shape
    centre = embed_pixels(model, shadow).mean(dim=0)
    screen = torch.zeros(0, 0)
    if settings.screen_steps > 0:
        screen, mask_logit, pattern_logit = screen_windows(
            model, shadow, centre, settings, generator
        )
    else:
        mask_logit = torch.rand(height, width, generator=generator) * 2 - 1
        pattern_logit = torch.rand(channels, height, width, generator=generator) * 4 - 2
    mask_logit.requires_grad_(True)
    pattern_logit.requires_grad_(True)
    optimizer = torch.optim.Adam([mask_logit, pattern_logit], lr=settings.lr, betas=(0.5, 0.9))
    weight, streak, best = settings.lambda_init, 0, None
    curve, last = [], 0.0
    batch = min(settings.batch_size, len(shadow))
    with task("trigger inversion", settings.steps) as bar:
        for step in range(settings.steps):
            rows = torch.randperm(len(shadow), generator=generator)[:batch]
            mask, pattern = torch.sigmoid(mask_logit), torch.sigmoid(pattern_logit)
            triggered = (1 - mask) * shadow[rows] + mask * pattern
            similarity = centred_similarity(model(triggered), centre)
            size = mask.mean()
            loss = -similarity + weight * size
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            last = float(similarity.detach())
            success = last >= settings.similarity
            if success and (best is None or float(size.detach()) < best[0]):
                best = (float(size.detach()), mask.detach().clone(), pattern.detach().clone(), last)
            streak = max(streak, 0) + 1 if success else min(streak, 0) - 1
            if abs(streak) > settings.patience:
                weight = (
                    weight * settings.lambda_factor
                    if streak > 0
                    else weight / settings.lambda_factor
                )
                streak = 0
            if step % 10 == 0 or step == settings.steps - 1:
                curve.append((step, round(last, 4), round(float(size.detach()), 4)))
            bar.advance()
    if best is None:
        mask, pattern = torch.sigmoid(mask_logit).detach(), torch.sigmoid(pattern_logit).detach()
        return InvertedTrigger(mask, pattern, 1.0, last, False, curve, screen)
    score, mask, pattern, reached = best
    return InvertedTrigger(mask, pattern, score, reached, True, curve, screen)


@dataclass
class BackdoorScan:
    """The scan's verdict with its evidence: the encoder's trigger and score, each reference's
    score, the threshold (``flag_ratio`` x the smallest reference score) and whether the score is
    under it."""

    trigger: InvertedTrigger
    references: dict[str, InvertedTrigger]
    threshold: float
    flagged: bool
    settings: InversionSettings

    def to_dict(self) -> dict:
        smallest = min(t.score for t in self.references.values())
        return {
            "verdict": "backdoor suspected" if self.flagged else "no backdoor found",
            "flagged": self.flagged,
            "score": round(self.trigger.score, 5),
            "score_definition": "mask L1 norm / image area of the smallest inverted trigger that "
            f"makes the shadow set embed alike (centred mean pairwise cosine >= "
            f"{self.settings.similarity}); 1.0 when none was found",
            "similarity_reached": round(self.trigger.similarity, 4),
            "found": self.trigger.found,
            "references": {name: round(t.score, 5) for name, t in self.references.items()},
            "threshold": round(self.threshold, 5),
            "ratio_to_smallest_reference": round(self.trigger.score / max(smallest, 1e-12), 4),
            "rule": f"flagged when score < {self.settings.flag_ratio} x the smallest reference "
            "score",
            "settings": {k: getattr(self.settings, k) for k in self.settings.__dataclass_fields__},
            "curve": self.trigger.curve,
            "screen_best_similarity": (
                round(float(self.trigger.screen.max()), 4) if self.trigger.screen.numel() else None
            ),
        }


def scan_backdoor(
    model: PixelEncoder,
    shadow: Tensor,
    references: dict[str, PixelEncoder],
    settings: InversionSettings = InversionSettings(),
) -> BackdoorScan:
    """Invert a trigger for ``model`` and for each reference encoder on the same shadow set and
    with the same settings; flag ``model`` when its score is below ``flag_ratio`` times the
    smallest reference score."""
    if not references:
        raise ConfigError("the backdoor scan needs at least one reference encoder to calibrate")
    trigger = invert_trigger(model, shadow, settings)
    found = {name: invert_trigger(ref, shadow, settings) for name, ref in references.items()}
    threshold = settings.flag_ratio * min(t.score for t in found.values())
    return BackdoorScan(trigger, found, threshold, trigger.score < threshold, settings)
