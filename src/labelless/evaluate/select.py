"""Label-free model selection: rank run directories by RankMe, LiDAR or alpha-ReQ.

Every run is measured on the SAME images (a seeded subset of one dataset), each through its own
encoder and its own preprocessing (``encoder.json``: input size, mean, std), so the values are
comparable. Label-free measures are shown to track downstream accuracy across runs of one method
and one architecture (Garrido et al. 2023; Thilak et al. 2024); their scales differ between
methods, and RankMe's grows with the embedding size (a 512-d encoder can outrank a better 256-d
one), so runs of different methods, architectures or embedding sizes are refused unless
``allow_mixed=True`` (then a warning). Every row says what its measure can compare (``SCOPE``).
For alpha-ReQ, closeness to 1 is a heuristic reading of Agrawal et al. 2022 (good models fall in
an interval of alpha).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from labelless.errors import CheckpointError, ConfigError, DataError, unknown_name
from labelless.evaluate.checks import check_int
from labelless.evaluate.embed import embed
from labelless.evaluate.labelfree import alpha_req, lidar
from labelless.evaluate.rankme import RANKME_MAX_SAMPLES, rankme
from labelless.progress import task
from labelless.runfiles import RunFiles

# measure -> (what is better, description)
MEASURES: dict[str, str] = {
    "rankme": "higher is better (effective rank, Garrido et al. 2023)",
    "lidar": "higher is better (LDA effective rank over augmented views, Thilak et al. 2024)",
    "alpha_req": "closer to 1 is better (eigenspectrum decay, Agrawal et al. 2022)",
}
LIDAR_SAMPLES = 1000
LIDAR_VIEWS = 8
# What each measure can rank and what it cannot: every row of ``rank_runs`` carries it.
SCOPE: dict[str, str] = {
    "rankme": "RankMe ranks runs of one method and one encoder architecture (their "
    "hyper-parameters, epochs; Garrido et al. 2023); it cannot compare methods, architectures "
    "or embedding sizes (the effective rank grows with the dimension), nor replace a labelled "
    "evaluation",
    "lidar": "LiDAR ranks runs of one method and one encoder architecture (Thilak et al. 2024); "
    "it cannot compare methods, architectures or embedding sizes, nor replace a labelled "
    "evaluation",
    "alpha_req": "alpha-ReQ's closeness to 1 is a heuristic for runs of one method and one "
    "encoder architecture (Agrawal et al. 2022); it cannot compare methods, architectures or "
    "embedding sizes, nor replace a labelled evaluation",
}


def _run_config(run_dir: Path) -> dict[str, Any]:
    from labelless.config import load_yaml

    path = RunFiles(run_dir).config_file
    if not path.is_file():
        raise CheckpointError(
            f"{str(run_dir)!r} is not a run directory (no config.yaml): pass directories written "
            "by labelless pretrain"
        )
    return load_yaml(path)


def _method_name(config: dict[str, Any]) -> str:
    method = config.get("method") or {}
    return str(method.get("name", "simclr")) if isinstance(method, dict) else "simclr"


def _samples(data, split: str, run_configs: list[dict[str, Any]]) -> tuple[Any, str]:
    """The samples the runs are measured on and a name for them: uint8 ``[N, C, H, W]``
    images, or a non-image dataset's samples (table rows, series, graph nodes or graphs), which
    ``evaluate.embed`` reads through their sample format. A dataset name the runs trained on is
    loaded with their ``data.options`` (e.g. row-normalised graph features)."""
    from labelless.data import Dataset, DataSplits, load_dataset

    names = {str((c.get("data") or {}).get("name", "digits")) for c in run_configs}
    if data is None:
        if len(names) != 1:
            raise ConfigError(
                f"the runs were trained on different data ({sorted(names)}): pass data= to "
                "measure them all on the same images"
            )
        data = next(iter(names))
    if isinstance(data, (str, Path)):
        options = [(c.get("data") or {}).get("options") or {} for c in run_configs]
        same = names == {str(data)} and all(o == options[0] for o in options)
        splits, name = load_dataset(data, **(options[0] if same else {})), str(data)
        data = splits
    else:
        name = getattr(data, "name", "<in-memory images>")
    if isinstance(data, DataSplits):
        data = data.train if split == "train" else data.test
        if data is None:
            raise DataError(f"{name!r} has no {split} split: pass split='train'")
    if isinstance(data, Dataset):
        from labelless.data.formats import sample_format

        if not sample_format(data.modality).pixels and len(data):
            return data.samples, name
        data = data.samples
    images = np.asarray(data.cpu() if isinstance(data, torch.Tensor) else data)
    if images.ndim != 4 or images.dtype != np.uint8 or len(images) == 0:
        raise DataError(
            f"rank_runs needs uint8 images [N, C, H, W] or a non-image Dataset, got "
            f"{images.dtype} {images.shape}: pass a dataset name, a Dataset or such an array "
            "as data="
        )
    return images, name


def _architecture(run_dir: Path) -> str | None:
    """``"resnet18_cifar (width=0.5), 256-d"`` from the run's ``encoder.json``; None when it
    cannot be read (loading the encoder then says why)."""
    try:
        meta = json.loads(RunFiles(run_dir).encoder_meta.read_text())
        options = ", ".join(f"{k}={v}" for k, v in sorted((meta.get("kwargs") or {}).items()))
        return f"{meta['architecture']}{f' ({options})' if options else ''}, {meta['embed_dim']}-d"
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _check_comparable(paths: list[Path], methods: list[str], measure: str, mixed: bool) -> None:
    """Runs of different methods, encoder architectures or embedding sizes: a ConfigError (the
    measure's values do not compare across them: ``SCOPE``), or with ``mixed`` a warning."""
    found = {"methods": methods, "encoders": [_architecture(path) for path in paths]}
    for what, values in found.items():
        if len({value for value in values if value is not None}) <= 1:
            continue
        listed = "; ".join(f"{p.name}: {v}" for p, v in zip(paths, values, strict=True))
        problem = f"the runs use different {what} ({listed}): {SCOPE[measure]}"
        if not mixed:
            raise ConfigError(
                f"{problem}. Rank each {what[:-1]}'s runs separately, or pass --allow-mixed "
                "(allow_mixed=True) to rank them together anyway"
            )
        warnings.warn(f"{problem}; ranked together because of --allow-mixed", stacklevel=3)


def _subset(images: np.ndarray, count: int, seed: int) -> np.ndarray:
    if len(images) <= count:
        return images
    rows = np.random.default_rng(seed).choice(len(images), count, replace=False)
    return images[np.sort(rows)]


def _view_embeddings(
    encoder: nn.Module, images: np.ndarray, config: dict[str, Any], views: int, seed: int
) -> torch.Tensor:
    """``[n, views, D]`` embeddings of the run's own augmentation (its recipe's first view)."""
    from labelless.augment import view_recipe
    from labelless.augment.views import ViewPipeline
    from labelless.methods import METHODS

    meta = encoder.meta
    view_config = config.get("views") or {}
    method = _method_name(config)
    recipe = view_config.get("recipe") or getattr(METHODS.get(method), "default_views", "simclr")
    first = view_recipe(
        recipe,
        size=meta.input_size,
        mean=meta.mean,
        std=meta.std,
        **(view_config.get("overrides") or {}),
    ).specs[0]
    pipeline = ViewPipeline([first] * views, meta.mean, meta.std)
    generator = torch.Generator().manual_seed(seed)
    device = next(encoder.parameters()).device
    outputs = []
    starts = range(0, len(images), 256)
    label = f"embedding {views} views of {len(images):,} images"
    with torch.inference_mode(), task(label, len(starts)) as bar:
        for start in starts:
            batch = torch.from_numpy(images[start : start + 256])  # views drawn on CPU
            embedded = [
                encoder(view.to(device)).float().cpu() for view in pipeline(batch, generator)
            ]
            outputs.append(torch.stack(embedded, dim=1))
            bar.advance()
    return torch.cat(outputs)


def _measure(
    measure: str, encoder: nn.Module, images: np.ndarray, config: dict[str, Any], seed: int
) -> float:
    if measure == "lidar":
        return lidar(_view_embeddings(encoder, images, config, LIDAR_VIEWS, seed))
    z = embed(encoder, images)
    return rankme(z) if measure == "rankme" else alpha_req(z)


def rank_runs(
    run_dirs: Sequence[str | Path],
    measure: str = "rankme",
    data=None,
    *,
    split: str = "train",
    max_samples: int | None = None,
    allow_mixed: bool = False,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Rank pretraining runs by a label-free measure on the same images; best first.

    Args:
        run_dirs: run directories (each with ``config.yaml`` and ``encoder.safetensors`` +
            ``encoder.json``), all of the same method unless ``allow_mixed``.
        measure: ``rankme`` (higher is better), ``lidar`` (higher; ``LIDAR_VIEWS`` augmented
            views of each image from the run's own view recipe, first view's parameters) or
            ``alpha_req`` (closest to 1 is better).
        data: the images: a dataset name or folder path, a ``Dataset`` / ``DataSplits``, or a
            ``uint8 [N, C, H, W]`` array; default the dataset the runs were trained on (they
            must agree). Labels are never read.
        split: which split of a dataset name / ``DataSplits`` to use (``train`` or ``test``).
        max_samples: images measured (a seeded subset, the same for every run); default
            25,600 (RankMe's count), 1,000 for LiDAR.
        allow_mixed: rank runs of different methods, encoder architectures or embedding sizes
            together (a warning says that their values do not compare); without it, a
            ConfigError.
        seed: seed of the image subset and of LiDAR's augmentations.

    Returns:
        One dict per run, best first: ``rank`` (1 = best), ``run`` (path), ``method``,
        ``measure``, ``value``, ``images`` (count), ``data`` (name) and ``scope`` (what the
        measure can and cannot compare).
    """
    if measure not in MEASURES:
        raise unknown_name("measure", measure, list(MEASURES))
    if not run_dirs:
        raise ConfigError("rank_runs needs at least one run directory")
    if split not in ("train", "test"):
        raise ConfigError(f"--split must be 'train' or 'test', got {split!r}")
    if max_samples is not None:  # 0 used to fall back to the default silently
        check_int("--max-samples (images measured)", max_samples, 2, 1000)
    check_int("--seed", seed, 0, 0)
    paths = [Path(p) for p in run_dirs]
    configs = [_run_config(p) for p in paths]
    methods = [_method_name(c) for c in configs]
    _check_comparable(paths, methods, measure, allow_mixed)
    images, name = _samples(data, split, configs)
    is_images = isinstance(images, np.ndarray) and images.ndim == 4 and images.dtype == np.uint8
    if measure == "lidar" and not is_images:
        raise ConfigError(
            f"lidar measures augmented views of images; {name!r} is not images: use "
            "--measure rankme or alpha_req"
        )
    count = max_samples or (LIDAR_SAMPLES if measure == "lidar" else RANKME_MAX_SAMPLES)
    images = _subset(images, count, seed)

    from labelless.backbones import load_encoder

    rows = []
    with task(f"measuring {measure} of {len(paths)} runs", len(paths)) as bar:
        for path, config, method in zip(paths, configs, methods, strict=True):
            encoder = load_encoder(path)
            if is_images and encoder.meta.in_channels != images.shape[1]:
                raise DataError(
                    f"{str(path)!r} expects {encoder.meta.in_channels}-channel images but the "
                    f"data has {images.shape[1]}: measure runs on data of the kind they were "
                    "trained on"
                )
            value = _measure(measure, encoder, images, config, seed)
            rows.append({"run": str(path), "method": method, "measure": measure, "value": value})
            bar.advance()
    key = (lambda r: abs(r["value"] - 1.0)) if measure == "alpha_req" else (lambda r: -r["value"])
    rows.sort(key=key)
    for rank, row in enumerate(rows, start=1):
        row.update(rank=rank, images=len(images), data=name, scope=SCOPE[measure])
    return rows
