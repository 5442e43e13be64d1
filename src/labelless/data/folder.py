"""Folders of image files decoded eagerly: flat (unlabelled) or one subfolder per class."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from labelless.data.dataset import Dataset
from labelless.errors import DataError


def image_folder(
    path: str | Path,
    *,
    load_size: int = 64,
    grayscale: bool = False,
    workers: int = 2,
    max_samples: int | None = None,
    seed: int = 0,
) -> Dataset:
    """Decode every image under ``path`` to ``uint8 [N, C, load_size, load_size]``.

    A folder whose images sit in subfolders gets one class per subfolder (sorted names); a flat
    folder is unlabelled (``data.files.scan_folder`` lists it). Files that cannot be decoded are
    skipped and counted in ``meta["skipped"]``; ``meta["files"]`` holds each sample's path relative
    to the folder. Images are resized (shorter side) and
    centre-cropped to the fixed load size, so batches stack; augmentation later crops and resizes
    on whole batches. For folders too large for memory, ``data.files.file_loader`` decodes lazily;
    ``max_samples`` then decodes only a seeded random subset (for statistics and evaluation).
    """
    # imported here: data.files needs torch, and `import labelless.data` stays without it
    from labelless.data.files import decode_image, scan_folder

    root = Path(path).expanduser()
    files, labels, class_names = scan_folder(root)
    if max_samples is not None and max_samples < len(files):
        chosen = np.sort(np.random.default_rng(seed).choice(len(files), max_samples, replace=False))
        files = [files[i] for i in chosen]
        labels = None if labels is None else [labels[i] for i in chosen]
    mode = "L" if grayscale else "RGB"
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        decoded = list(pool.map(lambda p: decode_image(p, load_size, mode), files))
    keep = [i for i, image in enumerate(decoded) if image is not None]
    if not keep:
        raise DataError(f"none of the {len(files)} image files in {str(root)!r} could be decoded")
    samples = np.stack([decoded[i] for i in keep])
    label_array = None if labels is None else np.asarray([labels[i] for i in keep], np.int64)
    meta = {"skipped": len(files) - len(keep), "source": str(root)}
    # each sample's file, relative to the folder (subset files name samples by it)
    meta["files"] = np.asarray([files[i].relative_to(root).as_posix() for i in keep])
    if class_names is not None:
        meta["class_names"] = class_names
    return Dataset(samples, label_array, modality="image", name=root.name, meta=meta)
