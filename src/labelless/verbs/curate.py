"""``labelless curate``: choose which unlabelled samples to pretrain on, from an encoder's
embeddings; writes ``subset.txt`` (read by ``pretrain --subset``), ``curate.json`` and
``curate.html`` into a fresh folder. Strategies: ``labelless.curate``; docs/curation.md."""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from labelless.data import Dataset, load_dataset
from labelless.encoders import resolve_preprocessing
from labelless.errors import ConfigError, unknown_name
from labelless.verbs.targets import (
    check_data_fits,
    check_verb_out,
    embed_with,
    load_for,
    write_json,
)

STRATEGIES = ("dedup", "kcenter", "balanced", "typical", "sas", "simcore")
SUBSET_FILE, RECORD_FILE, PAGE_FILE = "subset.txt", "curate.json", "curate.html"
SAS_RECIPE = "simclr"


@dataclass
class CurateSettings:
    """What ``curate`` does; recorded in ``curate.json`` as ``parameters``."""

    keep: float
    strategy: str = "balanced"
    dedup: bool = False
    dedup_threshold: float = 0.95
    clusters: int | None = None
    seed: int = 0

    def check(self, target) -> None:
        if self.strategy not in STRATEGIES:
            raise unknown_name("curation strategy", self.strategy, STRATEGIES)
        keep = self.keep
        if isinstance(keep, bool) or not isinstance(keep, (int, float)) or not 0 < keep <= 1:
            raise ConfigError(
                f"--keep is the fraction of the pool to keep, in (0, 1]; got {keep} "
                "(e.g. --keep 0.3 keeps 30%)"
            )
        from labelless.curate.dedup import check_threshold

        check_threshold(self.dedup_threshold)
        clusters = self.clusters
        if clusters is not None and (isinstance(clusters, bool) or clusters < 2):
            raise ConfigError(f"--clusters must be at least 2, got {clusters}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"--seed must be a whole number >= 0, got {self.seed!r}")
        if (self.strategy == "simcore") != (target is not None):
            raise ConfigError(
                "--strategy simcore needs --target DATA (the set to sample towards)"
                if target is None
                else "--target is the set SimCore samples towards: use it with --strategy simcore"
            )


def default_clusters(pool: int) -> int:
    """k-means clusters when ``--clusters`` is not given: about sqrt(N), in [2, 1000]."""
    return int(min(1000, max(2, round(math.sqrt(pool)))))


def check_out(out: str | Path) -> Path:
    """``out`` must be new, empty, or a folder an earlier ``curate`` wrote (its curate.json)."""
    return check_verb_out(out, RECORD_FILE, "curate", "subset")


def curate_data(
    data: str | Path,
    encoder,
    settings: CurateSettings,
    *,
    out: str | Path,
    target: str | Path | None = None,
    weights: str | Path | None = None,
    load_size: int = 64,
) -> dict[str, Any]:
    """Embed the training split of ``data`` with ``encoder`` (its recorded preprocessing),
    optionally drop near-duplicates, select ``keep`` of the pool by ``strategy``; write
    ``subset.txt``, ``curate.json`` and ``curate.html`` into ``out``. Returns the record."""
    from labelless.curate import cluster_balance, kmeans, near_duplicates, vendi_score

    settings.check(target)
    out = check_out(out)
    pool = load_dataset(data, load_size=load_size).train
    model, source = load_for(encoder, weights, pool, data)
    pre = resolve_preprocessing(model.meta)
    z = F.normalize(embed_with(model, pool.samples, pre), dim=1)
    clusters = min(settings.clusters or default_clusters(len(pool)), len(pool))
    summary = kmeans(z, clusters, seed=settings.seed)
    candidates, duplicates = torch.arange(len(pool)), None
    if settings.dedup or settings.strategy == "dedup":
        duplicates = near_duplicates(z, settings.dedup_threshold, seed=settings.seed)
        candidates = torch.from_numpy(np.flatnonzero(duplicates.keep))
    wanted = max(1, round(settings.keep * len(pool)))
    count = min(wanted, len(candidates))
    if count < wanted:
        warnings.warn(
            f"near-duplicate removal left {count} of {len(pool)} samples, fewer than the "
            f"{wanted} that --keep {settings.keep} asks for: all {count} are kept. If the groups "
            "in curate.html are not duplicates, raise --dedup-threshold (this encoder's "
            "embeddings may all be alike: a trained encoder separates samples better)",
            stacklevel=2,
        )
    chosen = _select(settings, z[candidates], count, (model, pool, pre, candidates), target)
    kept = torch.sort(candidates[chosen]).values
    record = {
        "labelless": "curate",
        "strategy": settings.strategy,
        "parameters": {**asdict(settings), "clusters": clusters, **_extra(settings)},
        "data": str(data),
        "target": None if target is None else str(target),
        "pool_size": len(pool),
        "requested_size": wanted,
        "kept_size": len(kept),
        "encoder": source,
        "preprocessing": pre.protocol(),
        "duplicates": None if duplicates is None else _duplicate_record(duplicates),
        "diversity": {
            "vendi_before": round(vendi_score(z), 4),
            "vendi_after": round(vendi_score(z[kept]), 4),
            "clusters_before": cluster_balance(summary.assignment, clusters),
            "clusters_after": cluster_balance(summary.assignment[kept], clusters),
            "definition": "Vendi score: cosine kernel (Friedman & Dieng 2023); clusters: "
            f"k-means of the pool's embeddings into {clusters} (seed {settings.seed})",
        },
        "subset_file": SUBSET_FILE,
    }
    _write(out, record, pool, kept.numpy(), (duplicates, summary.assignment))
    return record


def _extra(settings: CurateSettings) -> dict[str, Any]:
    from labelless.curate.opensets import SIMCORE_CENTROIDS
    from labelless.curate.sas import SAS_VIEWS
    from labelless.curate.typicality import TYPICALITY_K

    return {
        "typical": {"typicality_k": TYPICALITY_K},
        "sas": {"views": SAS_VIEWS, "recipe": SAS_RECIPE},
        "simcore": {"centroids": SIMCORE_CENTROIDS},
    }.get(settings.strategy, {})


def _duplicate_record(duplicates) -> dict[str, Any]:
    sizes = [len(members) for members in duplicates.groups]
    return {
        "groups": len(sizes),
        "removed": duplicates.removed,
        "largest_group": max(sizes, default=0),
        "search": duplicates.search,
        "representative": "the smallest sample index of each group",
    }


def _select(settings: CurateSettings, z, count: int, context, target) -> torch.Tensor:
    """Positions (in ``z``, the candidates' embeddings) of the ``count`` samples to keep."""
    from labelless import curate

    model, pool, pre, candidates = context
    clusters = min(settings.clusters or default_clusters(len(pool)), len(z))
    seed, strategy = settings.seed, settings.strategy
    if strategy == "dedup":  # a seeded uniform draw of what dedup left, down to the budget
        return torch.randperm(len(z), generator=torch.Generator().manual_seed(seed))[:count]
    if strategy == "kcenter":
        return curate.k_center_greedy(z, count, seed=seed)[0]
    if strategy == "balanced":
        return curate.balanced_kmeans(z, count, clusters, seed=seed)[0]
    if strategy == "typical":
        return curate.typical_subset(z, count, clusters, seed=seed)[0]
    if strategy == "sas":
        return _sas(model, pool, pre, candidates, (z, count, clusters, seed))
    return curate.simcore(z, _target_embeddings(model, target, pool), count, seed=seed)


def _sas(model, pool: Dataset, pre, candidates, settings) -> torch.Tensor:
    from labelless.augment import view_recipe
    from labelless.curate import kmeans, sas_subset, view_embeddings

    z, count, clusters, seed = settings
    if not pool.format.pixels:
        raise ConfigError(
            f"--strategy sas compares augmented views of images; {pool.name!r} holds "
            f"{pool.modality} data: use kcenter, balanced, typical or dedup"
        )
    pipeline = view_recipe(SAS_RECIPE, size=pre.input_size, mean=pre.mean, std=pre.std)
    views = view_embeddings(model, pool.samples[candidates.numpy()], pipeline, seed=seed)
    latent = kmeans(z, clusters, seed=seed).assignment  # the proxy's approximate classes
    return sas_subset(views, latent, count)


def _target_embeddings(model, target, pool: Dataset) -> torch.Tensor:
    target_set = load_dataset(target, load_size=int(pool.samples.shape[-1])).train
    check_data_fits(model, target_set, target)
    pre = resolve_preprocessing(model.meta)
    return F.normalize(embed_with(model, target_set.samples, pre), dim=1)


def _write(out: Path, record: dict[str, Any], pool: Dataset, kept: np.ndarray, found) -> None:
    """``subset.txt``, ``curate.html`` and, last, ``curate.json`` (what marks the folder)."""
    from labelless.data.subsets import FILES_KEY, write_subset
    from labelless.report.curation import write_curation_page

    duplicates, assignment = found
    comments = [
        f"labelless curate: {record['strategy']} kept {record['kept_size']} of "
        f"{record['pool_size']} samples of {record['data']} (seed {record['parameters']['seed']})",
        "one sample a line: its index in the training split as `labelless pretrain --data` "
        "loads it (0-based), then, for image folders, a tab and its path in the folder",
    ]
    out.mkdir(parents=True, exist_ok=True)
    write_subset(out / SUBSET_FILE, kept, files=pool.meta.get(FILES_KEY), comments=comments)
    groups = [] if duplicates is None else duplicates.groups
    images = pool.samples if pool.format.pixels else None
    write_curation_page(
        out / PAGE_FILE,
        record,
        images,
        groups,
        assignment.numpy(),
        kept,
        seed=record["parameters"]["seed"],
    )
    write_json(out / RECORD_FILE, record)
