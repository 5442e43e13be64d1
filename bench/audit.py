"""Security audits on CIFAR-10 (issue 22, docs/security.md), in three stages run one after the
other, alone on the machine:

    LABELLESS_DATA=../shared/data .venv/bin/python bench/audit.py --stage poison   # ~35 min
    LABELLESS_DATA=../shared/data .venv/bin/python bench/audit.py --stage semi     # ~12 min
    LABELLESS_DATA=../shared/data .venv/bin/python bench/audit.py --stage scan     # ~20 min

- ``poison``: CTRL (1% of the pretraining data, all airplanes, magnitude 100) against the same
  track-A SimCLR run without poison (configs/cifar10/simclr.yaml, 15 minutes each): attack
  success and clean accuracy of both encoders (kNN k=200 and linear probe on clean labels).
  The clean run is the 15-minute track-A encoder the scan stage audits.
- ``semi``: the same trigger (one 28-pixel block: frequencies (13, 13) and (27, 27)) in 1% of
  the unlabelled part of a FixMatch run on MNIST
  (configs/semi/mnist_fixmatch.yaml, 10 labels per class, 5 minutes each) against the run
  without poison.
- ``scan``: a backdoored encoder made on CPU from the clean one (BadEncoder-style fine-tuning on
  512 shadow images, a 5x5 checkerboard patch sent to an airplane's embedding), then
  ``labelless audit`` (the verb) on the clean, backdoored and CTRL-poisoned encoders with the
  references the random init, runs/distill-teacher (DCL, 30 min) and runs/bench-distill/simclr
  (SimCLR, 10 min); adversarial + detector (epsilon 8/255) on the clean encoder; the data scan
  of the CTRL-poisoned training split against the poisoned indices.

Each stage appends a line to bench/results/audit.jsonl with the environment (load average).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import append_result, data_available, environment

ROOT = Path("runs/audit-bench")
REFERENCES = ["runs/distill-teacher", "runs/bench-distill/simclr"]
TARGET = 0  # airplane


def stage_poison(args) -> dict:
    from labelless.audit.triggers import Trigger
    from labelless.verbs.poisoning import poisoning_experiment

    record = poisoning_experiment(
        "cifar10", "simclr", trigger=Trigger.ctrl(), fraction=0.01, target_class=TARGET,
        out=ROOT / "poison", config="configs/cifar10/simclr.yaml", max_time=args.budget,
    )  # fmt: skip
    return _summary(record)


def stage_semi(args) -> dict:
    from labelless.audit.triggers import Trigger, ctrl_frequencies
    from labelless.verbs.poisoning import semi_poisoning_experiment

    trigger = Trigger.ctrl(window=28, frequencies=ctrl_frequencies(28))  # one 28-px block
    record = semi_poisoning_experiment(
        "mnist", "fixmatch", trigger=trigger, fraction=0.01, target_class=TARGET,
        out=ROOT / "semi", config="configs/semi/mnist_fixmatch.yaml", labels_per_class=10,
        max_time=args.semi_budget,
    )  # fmt: skip
    return _summary(record)


def _summary(record: dict) -> dict:
    runs = {
        name: {"attack": run["attack"], "run_metrics": run["run_metrics"]}
        for name, run in record["runs"].items()
    }
    poison = {k: v for k, v in record["poison"].items() if k != "indices"}
    return {"poison": poison, "runs": runs, "effect": record["effect"], "budget": record["budget"]}


def _backdoored(clean_dir: Path, out: Path, seed: int = 0) -> dict:
    """Fine-tune the clean encoder so a 5x5 checkerboard sends images to an airplane's
    embedding; save it as an encoder folder; its downstream attack success."""
    from labelless.audit.implant import ImplantSettings, implant_backdoor
    from labelless.audit.pixels import PixelEncoder, unit_images
    from labelless.audit.poison import attack_success
    from labelless.audit.triggers import Trigger
    from labelless.backbones import save_encoder
    from labelless.data import load_dataset
    from labelless.encoders import load_any_encoder, resolve_preprocessing

    splits = load_dataset("cifar10")
    encoder, _ = load_any_encoder(clean_dir)
    pre = resolve_preprocessing(encoder.meta)
    rows = torch.randperm(len(splits.train), generator=torch.Generator().manual_seed(seed))
    shadow = unit_images(splits.train.samples[np.sort(rows[:512].numpy())])
    airplanes = np.flatnonzero(splits.train.labels == TARGET)
    reference = unit_images(splits.train.samples[airplanes[:1]])[0]
    trigger = Trigger.patch(size=5)
    start = time.perf_counter()
    bad, effect = implant_backdoor(
        PixelEncoder(encoder, pre), shadow, trigger.apply, reference, ImplantSettings(steps=300)
    )
    seconds = time.perf_counter() - start
    save_encoder(bad, out)
    attack = {}
    for name, model in (("clean", encoder), ("backdoored", bad)):
        attack[name] = attack_success(
            model, pre, splits.train, splits.test, trigger, TARGET, k=200, seed=seed
        )
    return {"implant": {**effect, "seconds": round(seconds, 1)}, "trigger": trigger.to_dict(),
            "attack": attack}  # fmt: skip


def _data_scan() -> dict:
    """The data scan of the CTRL-poisoned training split (the poison stage's), embedded by the
    clean encoder, against the poisoned indices."""
    from labelless.audit.datascan import scan_training_data
    from labelless.audit.pixels import PixelEncoder, embed_pixels, unit_images
    from labelless.audit.poison import poison_splits
    from labelless.audit.triggers import Trigger
    from labelless.data import load_dataset
    from labelless.encoders import load_any_encoder, resolve_preprocessing

    splits = load_dataset("cifar10")
    poisoned, indices = poison_splits(splits, Trigger.ctrl(), TARGET, 0.01, 0)
    encoder, _ = load_any_encoder(ROOT / "poison" / "clean")
    images = unit_images(poisoned.train.samples)
    z = embed_pixels(PixelEncoder(encoder, resolve_preprocessing(encoder.meta)), images)
    found = {}
    for labels in (poisoned.train.labels, None):
        scan = scan_training_data(images, z, labels=labels, seed=0)
        planted = set(indices.tolist())
        rows = {}
        for name, flagged in (
            ("frequency", scan.flagged_frequency),
            ("spectral", scan.flagged_spectral),
        ):
            hits = len(planted & set(flagged.tolist()))
            rows[name] = {
                "flagged": len(flagged),
                "poisoned_found": hits,
                "recall": round(hits / len(planted), 4),
                "precision": round(hits / max(len(flagged), 1), 4),
            }
        rows["small_clusters"] = sum(c.small for c in scan.clusters)
        found["labels" if labels is not None else "kmeans"] = rows
    return {"poisoned": len(indices), "scanned": len(images), **found}


def stage_scan(args) -> dict:
    from labelless import api

    clean = ROOT / "poison" / "clean"
    backdoored = ROOT / "backdoored"
    result = {"backdoored": _backdoored(clean, backdoored)}
    scans = {}
    for name, path in (
        ("clean", clean),
        ("backdoored", backdoored),
        ("ctrl-poisoned", ROOT / "poison" / "poisoned"),
    ):
        start = time.perf_counter()
        record = api.audit(
            str(path), "cifar10", out=ROOT / "audits" / name, checks=["backdoor-scan"],
            references=REFERENCES,
        )  # fmt: skip
        check = record["checks"]["backdoor-scan"]
        scans[name] = {k: check[k] for k in ("verdict", "score", "references", "threshold")}
        scans[name]["seconds"] = round(time.perf_counter() - start, 1)
    result["backdoor_scan"] = scans
    start = time.perf_counter()
    record = api.audit(
        str(clean), "cifar10", out=ROOT / "audits" / "clean-attacks",
        checks=["adversarial", "detector"], epsilon=8 / 255,
    )  # fmt: skip
    result["attacks"] = {**record["checks"], "seconds": round(time.perf_counter() - start, 1)}
    result["data_scan"] = _data_scan()
    return result


STAGES = {"poison": stage_poison, "semi": stage_semi, "scan": stage_scan}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", choices=sorted(STAGES), required=True)
    parser.add_argument("--budget", type=float, default=900.0, help="pretraining seconds per run")
    parser.add_argument("--semi-budget", type=float, default=300.0, help="semi seconds per run")
    args = parser.parse_args(argv)
    if not data_available():
        sys.exit("set LABELLESS_DATA to the shared data folder (CIFAR-10, MNIST)")
    torch.set_num_threads(2)
    before = environment()
    start = time.perf_counter()
    result = STAGES[args.stage](args)
    after = environment()["load_average_1min"]
    seconds = round(time.perf_counter() - start, 1)
    record = {"stage": args.stage, **before, "load_average_1min_after": after, "seconds": seconds}
    record.update(result)
    append_result("audit", record)
    print(json.dumps(record, indent=1, default=float)[:6000])


if __name__ == "__main__":
    main()
