"""Folders of image files: flat (unlabelled) or one subfolder per class."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from labelless.data.dataset import Dataset
from labelless.errors import DataError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def _decode(path: Path, size: int, mode: str) -> np.ndarray | None:
    """One file as ``uint8 [C, size, size]`` (resized, centre-cropped), or None when unreadable."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image = image.convert(mode)
            width, height = image.size
            scale = size / min(width, height)
            resized = (max(size, round(width * scale)), max(size, round(height * scale)))
            image = image.resize(resized, Image.BILINEAR)
            left = (resized[0] - size) // 2
            top = (resized[1] - size) // 2
            image = image.crop((left, top, left + size, top + size))
            array = np.asarray(image, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError):
        return None
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def image_folder(
    path: str | Path, *, load_size: int = 64, grayscale: bool = False, workers: int = 2
) -> Dataset:
    """Decode every image under ``path`` to ``uint8 [N, C, load_size, load_size]``.

    A folder whose images sit in subfolders gets one class per subfolder (sorted names); a flat
    folder is unlabelled. Files that cannot be decoded are skipped and counted in
    ``meta["skipped"]``. Images are resized (shorter side) and centre-cropped to the fixed load
    size, so batches stack; augmentation later crops and resizes on whole batches.
    """
    root = Path(path).expanduser()
    if not root.exists():
        raise DataError(f"data path {str(root)!r} does not exist: check the path or the spelling")
    if not root.is_dir():
        raise DataError(f"data path {str(root)!r} is not a folder of images or a dataset name")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    files: list[Path] = []
    labels: list[int] = []
    if class_dirs:
        for index, class_dir in enumerate(class_dirs):
            found = sorted(p for p in class_dir.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            files += found
            labels += [index] * len(found)
    else:
        files = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(
            f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) found in {str(root)!r}: "
            "point --data at a folder of images or of class subfolders"
        )
    mode = "L" if grayscale else "RGB"
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        decoded = list(pool.map(lambda p: _decode(p, load_size, mode), files))
    keep = [i for i, image in enumerate(decoded) if image is not None]
    skipped = len(files) - len(keep)
    if not keep:
        raise DataError(f"none of the {len(files)} image files in {str(root)!r} could be decoded")
    samples = np.stack([decoded[i] for i in keep])
    label_array = np.asarray([labels[i] for i in keep], dtype=np.int64) if class_dirs else None
    meta = {"skipped": skipped, "source": str(root)}
    if class_dirs:
        meta["class_names"] = [p.name for p in class_dirs]
    return Dataset(samples, label_array, modality="image", name=root.name, meta=meta)
