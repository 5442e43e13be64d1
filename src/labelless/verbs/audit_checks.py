"""The four checks of ``labelless audit``, each ``(inputs, references) -> (record, figures)``;
a figure is ``(PNG bytes, caption)``. Loading and writing: ``verbs/audit.py``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from labelless.audit.pixels import PixelEncoder, embed_pixels, to_uint8
from labelless.data import Dataset
from labelless.encoders import resolve_preprocessing

KNN_K = 20
SHOWN = 8
PROBE_BATCH = 64
LISTED = 200
SHOWN_FLAGGED = 24


@dataclass
class AuditInputs:
    """What every check reads: the encoder on pixels, the shadow set (clean train images the
    scans optimise on), the evaluation images (test split, else train rows outside the shadow
    set) with their labels (None without), and the labelled train images for the probes."""

    model: PixelEncoder
    source: dict[str, Any]
    train: Dataset
    shadow: Tensor
    images: Tensor
    labels: np.ndarray | None
    train_labels: np.ndarray | None
    settings: Any  # verbs.audit.AuditSettings
    cache: dict[str, Any] = field(default_factory=dict)

    def pgd(self) -> Tensor:
        """PGD examples of ``images`` (computed once, shared by adversarial and detector)."""
        if "pgd" not in self.cache:
            from labelless.audit.adversarial import AttackBudget, pgd_embedding

            budget = AttackBudget(self.settings.epsilon, self.settings.steps)
            self.cache["pgd"] = pgd_embedding(
                self.model, self.images, budget, seed=self.settings.seed
            )
        return self.cache["pgd"]


def reference_encoders(
    inputs: AuditInputs, references: list[str | Path]
) -> dict[str, PixelEncoder]:
    """The backdoor scan's calibration: a random initialisation of the audited architecture
    (seeded) and each encoder in ``references``, each with its own preprocessing."""
    from labelless.backbones import create_backbone
    from labelless.encoders import load_any_encoder

    meta = inputs.model.encoder.meta
    torch.manual_seed(inputs.settings.seed)
    random_init = create_backbone(
        meta.architecture, in_channels=meta.in_channels, input_size=meta.input_size,
        mean=meta.mean, std=meta.std, **meta.kwargs,
    ).eval()  # fmt: skip
    found = {f"random init ({meta.architecture})": PixelEncoder(random_init, inputs.model.pre)}
    for path in references:
        module, _ = load_any_encoder(path, in_channels=meta.in_channels)
        found[str(path)] = PixelEncoder(module, resolve_preprocessing(module.meta))
    return found


def run_backdoor_scan(inputs: AuditInputs, references: list) -> tuple[dict, list]:
    from labelless.audit.backdoor import InversionSettings, scan_backdoor
    from labelless.report.audit import score_bars_png, trigger_rows_png

    settings = InversionSettings(steps=inputs.settings.inversion_steps, seed=inputs.settings.seed)
    scan = scan_backdoor(
        inputs.model, inputs.shadow, reference_encoders(inputs, references), settings
    )
    record = scan.to_dict()
    triggers = {"audited encoder": scan.trigger, **scan.references}
    examples = inputs.shadow[:4]
    figures = [
        (trigger_rows_png(triggers, examples), "inverted triggers: mask, pattern, mask x pattern "
         "and four triggered shadow images, for the audited encoder and each reference"),
        (score_bars_png(record), "trigger size (mask L1 / image area; smaller = easier to "
         "trigger) of each encoder; the line is the flagging threshold"),
    ]  # fmt: skip
    return record, figures


def shift_summary(model: PixelEncoder, clean: Tensor, perturbed: Tensor) -> dict[str, float]:
    """How far ``perturbed`` moved each image's embedding: the mean cosine distance to its clean
    embedding, and the share of images whose nearest clean embedding (among all the clean
    images) is no longer their own (retrieval broken: the encoder no longer recognises them)."""
    a = F.normalize(embed_pixels(model, clean), dim=1)
    b = F.normalize(embed_pixels(model, perturbed), dim=1)
    distance = 1 - (a * b).sum(dim=1)
    own = (b @ a.T).argmax(dim=1) == torch.arange(len(a))
    return {
        "mean_cosine_distance": round(float(distance.mean()), 4),
        "median_cosine_distance": round(float(distance.median()), 4),
        "success_rate": round(float((~own).float().mean()), 4),
    }


def _probes(inputs: AuditInputs, sets: dict[str, Tensor]) -> dict[str, Any]:
    """kNN (k = 20) and linear-probe accuracy on each image set, both fitted on the clean
    labelled training split's embeddings."""
    from labelless.evaluate.knn import knn_predict
    from labelless.evaluate.linear import fit_head, linear_probe, standardise

    train_z, train_y = _train_embeddings(inputs)
    test_y = torch.as_tensor(inputs.labels)
    embedded = {name: embed_pixels(inputs.model, images) for name, images in sets.items()}
    chosen = linear_probe(train_z, train_y, embedded["clean"], test_y, seed=inputs.settings.seed)
    x, mean, std = standardise(train_z)
    classes = int(train_y.max()) + 1
    weight, bias = fit_head(x, train_y, chosen.weight_decay, classes, 100)
    result = {}
    for name, z in embedded.items():
        knn = knn_predict(train_z, train_y, z, k=KNN_K, num_classes=classes)
        linear = F.linear((z - mean) / std, weight, bias).argmax(dim=1)
        result[name] = {
            "knn_top1": round(float((knn == test_y).float().mean()), 4),
            "linear_top1": round(float((linear == test_y).float().mean()), 4),
        }
    result["protocol"] = {
        "knn_k": KNN_K,
        "linear_weight_decay": chosen.weight_decay,
        "fitted_on": "clean embeddings of the labelled training split",
    }
    return result


def _unit(samples) -> Tensor:
    from labelless.audit.pixels import unit_images

    return unit_images(samples)


def _finetuned(inputs: AuditInputs):
    """A fine-tuned copy of the encoder (+ linear head), as a downstream user would make it."""
    from labelless.augment import EvalTransform
    from labelless.finetune import FinetuneSettings, finetune

    pre = inputs.model.pre
    labelled = inputs.train_labels >= 0
    settings = FinetuneSettings(epochs=inputs.settings.finetune_epochs, seed=inputs.settings.seed)
    images, labels = inputs.train.samples[labelled], inputs.train_labels[labelled]
    transform = EvalTransform(pre.input_size, pre.mean, pre.std)
    copy = _trainable_copy(inputs.model.encoder)
    evaluated = to_uint8(inputs.images)
    result = finetune(
        copy, images, labels, evaluated, inputs.labels, settings, transform=transform,
        keep_model=True,
    )  # fmt: skip
    model = result["model"]
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    kept = ("best_val_top1", "best_epoch", "finetune_top1")
    return PixelEncoder(model, pre), {k: result[k] for k in kept}


def _trainable_copy(encoder):
    import copy

    clone = copy.deepcopy(encoder)
    for parameter in clone.parameters():
        parameter.requires_grad_(True)
    return clone


def _transfer(classifier: PixelEncoder, labels: np.ndarray, sets: dict[str, Tensor]) -> dict:
    """Accuracy of the fine-tuned model on each set, and attack success: of the images it gets
    right when clean, the share it gets wrong under attack."""
    truth = torch.as_tensor(labels)
    predicted = {name: embed_pixels(classifier, x).argmax(dim=1) for name, x in sets.items()}
    right = predicted["clean"] == truth
    found = {}
    for name, guess in predicted.items():
        found[name] = {"accuracy": round(float((guess == truth).float().mean()), 4)}
        if name != "clean":
            wrong = (
                (guess[right] != truth[right]).float().mean() if right.any() else torch.tensor(0.0)
            )
            found[name]["attack_success"] = round(float(wrong), 4)
    return found


def run_adversarial(inputs: AuditInputs, references: list) -> tuple[dict, list]:
    from labelless.audit.adversarial import (
        AttackBudget,
        apply_perturbation,
        candidate_layers,
        downstream_transfer_attack,
        layer_vulnerability,
        universal_perturbation,
    )
    from labelless.report.audit import adversarial_rows_png, shift_histogram_png

    settings, model, clean = inputs.settings, inputs.model, inputs.images
    budget = AttackBudget(settings.epsilon, settings.steps)
    generator = torch.Generator().manual_seed(settings.seed)
    noise = clean + (torch.rand(clean.shape, generator=generator) * 2 - 1) * settings.epsilon
    noise = noise.clamp(0, 1)
    pgd = inputs.pgd()
    delta = universal_perturbation(
        model, inputs.shadow, budget, epochs=settings.universal_epochs, seed=settings.seed
    )
    universal = apply_perturbation(clean, delta)
    sets = {"clean": clean, "uniform noise": noise, "pgd": pgd, "universal": universal}
    record: dict[str, Any] = {
        "epsilon": settings.epsilon,
        "epsilon_in_grey_levels": round(settings.epsilon * 255, 2),
        "pgd_steps": settings.steps,
        "step_size": budget.alpha,
        "embedding_shift": {
            name: shift_summary(model, clean, images)
            for name, images in sets.items()
            if name != "clean"
        },
        "shift_definition": "success: the perturbed image's nearest clean embedding (cosine, among "
        "the evaluated images) is not its own",
    }
    if inputs.labels is None or inputs.train_labels is None:
        record["downstream"] = (
            "skipped: the data has no labels (kNN, linear probe and DTA need them)"
        )
    else:
        record["downstream"] = _probes(inputs, sets)
        probe = inputs.shadow[:PROBE_BATCH]
        layers = candidate_layers(model.encoder)
        light = AttackBudget(settings.epsilon, min(5, settings.steps))
        vulnerability = layer_vulnerability(model, probe, layers, light, seed=settings.seed)
        chosen = sorted(vulnerability, key=vulnerability.get, reverse=True)[: settings.dta_layers]
        dta = downstream_transfer_attack(model, clean, chosen, budget, seed=settings.seed)
        classifier, tuned = _finetuned(inputs)
        record["transfer"] = {
            "layer_vulnerability": {k: round(v, 4) for k, v in vulnerability.items()},
            "chosen_layers": chosen,
            "finetuned": {**tuned, "epochs": settings.finetune_epochs},
            "on_finetuned_model": _transfer(
                classifier, inputs.labels, {"clean": clean, "pgd": pgd, "dta": dta}
            ),
        }
        sets["dta"] = dta
    shifts = {
        name: 1 - F.cosine_similarity(embed_pixels(model, clean), embed_pixels(model, x), dim=1)
        for name, x in sets.items() if name != "clean"
    }  # fmt: skip
    figures = [
        (adversarial_rows_png(clean[:SHOWN], sets, delta), "clean images, their attacked copies "
         "and the universal perturbation (stretched to the full grey range)"),
        (shift_histogram_png(shifts), "embedding shift (1 - cosine to the clean embedding) per "
         "attack"),
    ]  # fmt: skip
    return record, figures


def _train_embeddings(inputs: AuditInputs) -> tuple[Tensor, Tensor]:
    """Embeddings and labels of the labelled training images (computed once per audit)."""
    if "train" not in inputs.cache:
        labelled = inputs.train_labels >= 0
        z = embed_pixels(inputs.model, _unit(inputs.train.samples[labelled]))
        inputs.cache["train"] = (z, torch.as_tensor(inputs.train_labels[labelled]))
    return inputs.cache["train"]


def run_detector(inputs: AuditInputs, references: list) -> tuple[dict, list]:
    from labelless.audit.detector import (
        NEIGHBOUR_VIEWS,
        beyond_scores,
        detection_metrics,
        either_rule,
        fit_embedding_classifier,
    )
    from labelless.report.audit import histogram_png

    settings = inputs.settings
    classifier = None
    if inputs.train_labels is not None:
        z, y = _train_embeddings(inputs)
        classifier = fit_embedding_classifier(z, y, kind="knn", k=KNN_K, seed=settings.seed)
    options = {
        "classifier": classifier,
        "num_neighbours": settings.neighbours,
        "view": NEIGHBOUR_VIEWS[settings.neighbour_view],
        "seed": settings.seed,
    }
    calibration = beyond_scores(inputs.model, inputs.shadow, **options)  # clean, not evaluated
    clean = beyond_scores(inputs.model, inputs.images, **options)
    attacked = beyond_scores(inputs.model, inputs.pgd(), **options)
    clean_rule, attacked_rule = either_rule(clean, calibration), either_rule(attacked, calibration)
    metrics = detection_metrics(clean_rule, attacked_rule)
    blend = detection_metrics(clean.score, attacked.score)
    similarity = detection_metrics(-clean.similarity, -attacked.similarity)
    record = {
        "auroc": round(metrics.auroc, 4),
        "auroc_blend": round(blend.auroc, 4),
        "auroc_similarity_only": round(similarity.auroc, 4),
        "neighbour_view": settings.neighbour_view,
        "tpr_at_5pct_fpr": round(metrics.tpr, 4),
        "fpr_achieved": round(metrics.fpr_achieved, 4),
        "threshold": round(metrics.threshold, 5),
        "clean_inputs": metrics.num_clean,
        "adversarial_inputs": metrics.num_adversarial,
        "attack": f"PGD on the embedding, epsilon {settings.epsilon:.5f}, {settings.steps} steps",
        "neighbours": settings.neighbours,
        "score": "either rule: the larger of the clean-calibration ranks (shadow set) of the "
        "representation similarity and the label consistency (kNN labels, k = 20) over "
        "augmented neighbours; auroc_blend: the reference code's 1 - (0.8 consistency + 0.2 "
        "similarity)"
        if classifier is not None
        else "the clean-calibration rank (shadow set) of the representation similarity over "
        "augmented neighbours (no labels)",
    }
    figure = histogram_png(
        {"clean": clean_rule.numpy(), "PGD": attacked_rule.numpy()},
        "BEYOND detection score (higher = more likely adversarial)",
        f"AUROC {metrics.auroc:.3f}, TPR {metrics.tpr:.3f} at FPR {metrics.fpr_achieved:.3f}",
    )
    return record, [(figure, "detection scores of clean and PGD inputs")]


def run_data_scan(inputs: AuditInputs, references: list) -> tuple[dict, list]:
    from labelless.audit.datascan import scan_training_data
    from labelless.report.audit import histogram_png, image_grid_png

    settings, train = inputs.settings, inputs.train
    images = _unit(train.samples)
    z = embed_pixels(inputs.model, images)
    labels = train.labels if train.labels is not None and (train.labels >= 0).all() else None
    scan = scan_training_data(images, z, labels=labels, seed=settings.seed)
    flagged = scan.flagged
    small = [asdict_summary(c) for c in scan.clusters if c.small]
    record = {
        "scanned": len(images),
        "flagged_count": len(flagged),
        "flagged_spectral": scan.flagged_spectral.tolist()[:LISTED],
        "flagged_frequency": scan.flagged_frequency.tolist()[:LISTED],
        "listed": f"sample indices in the training split, at most {LISTED} per list",
        "groups": scan.spectral.source,
        "small_clusters": small,
        "thresholds": scan.thresholds,
    }
    figures = [
        (histogram_png(
            {"spectral z": scan.spectral.z.numpy(), "frequency z": scan.frequency.z.numpy()},
            "outlier z-score (robust)"), "outlier scores of every training sample"),
    ]  # fmt: skip
    order = {
        "spectral": torch.argsort(scan.spectral.z, descending=True)[:SHOWN_FLAGGED],
        "frequency": torch.argsort(scan.frequency.z, descending=True)[:SHOWN_FLAGGED],
    }
    for name, rows in order.items():
        scores = scan.spectral.z if name == "spectral" else scan.frequency.z
        captions = [f"#{int(i)} z {float(scores[i]):.1f}" for i in rows]
        grid = image_grid_png(train.samples[rows.numpy()], captions)
        figures.append((grid, f"the {len(rows)} training images with the highest {name} z"))
    return record, figures


def asdict_summary(cluster) -> dict[str, Any]:
    from dataclasses import asdict

    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(cluster).items()}


RUNNERS = {
    "backdoor-scan": run_backdoor_scan,
    "adversarial": run_adversarial,
    "detector": run_detector,
    "data-scan": run_data_scan,
}
