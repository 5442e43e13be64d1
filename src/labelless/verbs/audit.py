"""``labelless audit``: security checks of an encoder on the pixels it is fed (docs/security.md).

Checks: ``backdoor-scan`` (label-free trigger inversion, calibrated against reference encoders),
``adversarial`` (PGD on the embedding, a universal perturbation, the Downstream Transfer Attack on
a fine-tuned copy), ``detector`` (BEYOND's neighbourhood consistency against PGD inputs) and
``data-scan`` (spectral-signature and frequency outliers of the training data). Writes
``audit.json`` and ``audit.html`` into a fresh folder, last the JSON (what marks the folder).
The algorithms live in ``labelless.audit``; this module loads, samples and records.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from labelless.audit.pixels import PixelEncoder, unit_images
from labelless.data import Dataset, load_dataset
from labelless.encoders import resolve_preprocessing
from labelless.errors import ConfigError, DataError, unknown_name
from labelless.verbs.audit_checks import RUNNERS, AuditInputs
from labelless.verbs.targets import (
    check_verb_out,
    load_for,
    run_data_options,
    write_json,
)

CHECKS = ("backdoor-scan", "adversarial", "detector", "data-scan")
RECORD_FILE, PAGE_FILE = "audit.json", "audit.html"


@dataclass
class AuditSettings:
    """What ``audit`` runs and with which budgets; recorded in ``audit.json``."""

    checks: tuple[str, ...] = CHECKS
    epsilon: float = 8 / 255
    steps: int = 10
    shadow: int = 512
    samples: int = 1000
    inversion_steps: int = 400
    universal_epochs: int = 5
    dta_layers: int = 2
    finetune_epochs: int = 2
    neighbours: int = 20
    neighbour_view: str = "light"
    seed: int = 0

    def check(self) -> None:
        from labelless.audit.adversarial import check_epsilon
        from labelless.evaluate.checks import check_int

        if not self.checks:
            raise ConfigError(f"--checks is empty; choose from {', '.join(CHECKS)}")
        for name in self.checks:
            if name not in CHECKS:
                raise unknown_name("audit check", name, CHECKS)
        check_epsilon(self.epsilon)
        check_int("--steps", self.steps, 1, 10)
        check_int("--shadow", self.shadow, 16, 512)
        check_int("--samples", self.samples, 10, 1000)
        check_int("--inversion-steps", self.inversion_steps, 1, 400)
        check_int("--universal-epochs", self.universal_epochs, 1, 5)
        check_int("--dta-layers", self.dta_layers, 1, 2)
        check_int("--finetune-epochs", self.finetune_epochs, 1, 2)
        check_int("--neighbours", self.neighbours, 1, 20)
        if self.neighbour_view not in ("light", "beyond"):
            raise unknown_name("--neighbour-view", self.neighbour_view, ["light", "beyond"])
        check_int("--seed", self.seed, 0, 0)


def check_out(out: str | Path) -> Path:
    """``out`` must be new, empty, or a folder an earlier ``audit`` wrote (its audit.json)."""
    return check_verb_out(out, RECORD_FILE, "audit", "audit")


def check_preprocessing(meta, input_size: int | None, normalize: str | None) -> None:
    """Attacks are only meaningful on the pixels the encoder is really fed: an encoder that
    records no input size or statistics needs them given."""
    recorded = bool(getattr(meta, "input_size", None)) and bool(getattr(meta, "mean", None))
    if not recorded and (input_size is None or normalize in (None, "encoder")):
        raise ConfigError(
            "this encoder records no input size or normalisation (encoder.json), and an audit "
            "must attack the pixels it is really fed: pass --input-size N and --normalize "
            "MEAN/STD (e.g. --input-size 224 --normalize imagenet)"
        )


def load_inputs(
    encoder, data, settings: AuditSettings, *, weights=None, input_size=None, normalize=None
) -> AuditInputs:
    """The encoder (checked against ``data``), its preprocessing and the sampled image sets."""
    splits = load_dataset(data, **run_data_options(encoder, data))
    train = splits.train
    if not train.format.pixels:
        raise DataError(
            f"`labelless audit` attacks images; {str(data)!r} holds {train.modality} data. "
            "Audit an image encoder on image data"
        )
    module, source = load_for(encoder, weights, train, data)
    check_preprocessing(module.meta, input_size, normalize)
    pre = resolve_preprocessing(module.meta, input_size=input_size, normalize=normalize)
    model = PixelEncoder(_frozen_copy(module), pre)
    generator = torch.Generator().manual_seed(settings.seed)
    order = torch.randperm(len(train), generator=generator).numpy()
    if settings.shadow > len(train):
        raise DataError(
            f"--shadow {settings.shadow} asks for more clean images than {str(data)!r}'s training "
            f"split holds ({len(train)}); lower --shadow (a few hundred is enough)"
        )
    shadow_rows = np.sort(order[: settings.shadow])
    evaluation = splits.test if splits.test is not None else _rest(train, order[settings.shadow :])
    rows = torch.randperm(len(evaluation), generator=generator)[: settings.samples].numpy()
    rows = np.sort(rows)
    labels = evaluation.labels[rows] if evaluation.has_labels else None
    return AuditInputs(
        model=model,
        source={**source, "preprocessing": pre.protocol()},
        train=train,
        shadow=unit_images(train.samples[shadow_rows]),
        images=unit_images(evaluation.samples[rows]),
        labels=labels,
        train_labels=train.labels if train.has_labels else None,
        settings=settings,
    )


def _frozen_copy(module: nn.Module) -> nn.Module:
    """The user's module is never changed: the audit freezes a copy (an in-memory encoder)."""
    import copy

    return copy.deepcopy(module).eval()


def _rest(train: Dataset, rows: np.ndarray) -> Dataset:
    """Train rows outside the shadow set, for data without a test split."""
    if len(rows) == 0:
        raise DataError("no images are left outside the shadow set to attack; lower --shadow")
    return train.subset(np.sort(rows))


def audit_encoder(
    encoder,
    data: str | Path,
    settings: AuditSettings,
    *,
    out: str | Path,
    references: list[str | Path] | tuple = (),
    weights: str | Path | None = None,
    input_size: int | None = None,
    normalize: str | None = None,
) -> dict[str, Any]:
    """Run ``settings.checks`` on ``encoder`` with ``data``; write ``audit.json`` and
    ``audit.html`` into ``out``; return the record."""
    from labelless.report.audit import write_audit_page

    settings.checks = tuple(settings.checks)
    settings.check()
    out = check_out(out)
    for path in references:
        if not Path(str(path)).exists():
            raise ConfigError(f"--reference {str(path)!r} does not exist; pass an encoder or run")
    inputs = load_inputs(
        encoder, data, settings, weights=weights, input_size=input_size, normalize=normalize
    )
    results, figures = {}, []
    for name in settings.checks:
        record, shown = RUNNERS[name](inputs, list(references))
        results[name], figures = record, figures + [(name, *item) for item in shown]
    record = {
        "labelless": "audit",
        "encoder": inputs.source,
        "data": str(data),
        "parameters": asdict(settings),
        "shadow_size": len(inputs.shadow),
        "evaluated_images": len(inputs.images),
        "checks": results,
    }
    out.mkdir(parents=True, exist_ok=True)
    write_audit_page(out / PAGE_FILE, record, figures)
    write_json(out / RECORD_FILE, record)
    return record
