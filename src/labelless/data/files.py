"""Image files decoded lazily, one file per ``__getitem__`` in a DataLoader worker.

For folders too large to hold decoded in memory. Each file is decoded with PIL, converted to RGB
(or L), resized so its shorter side is ``load_size`` and centre-cropped to a square, so batches
stack into the same ``uint8 [B, C, S, S]`` the in-memory loader gives (``train/loader.py``);
augmentation then runs on whole batches on the training device. Unreadable files are dropped by
``collate_images`` and counted in ``batch["skipped"]``; a worker never raises for a bad file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, RandomSampler, SequentialSampler

from labelless.errors import ConfigError, DataError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def _image_files(folder: Path, recursive: bool) -> list[Path]:
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in found if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def scan_folder(path: str | Path) -> tuple[list[Path], list[int] | None, list[str] | None]:
    """List the image files under ``path``: ``(files, labels, class_names)``.

    A folder with subfolders has one class per subfolder (sorted names, hidden ones ignored; files
    found recursively inside each; loose files next to the subfolders are ignored) and gives labels
    and class names. A flat folder is unlabelled: ``labels`` and ``class_names`` are None.
    """
    root = Path(path).expanduser()
    if not root.exists():
        raise DataError(f"data path {str(root)!r} does not exist: check the path or the spelling")
    if not root.is_dir():
        raise DataError(f"data path {str(root)!r} is not a folder of images or a dataset name")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    files: list[Path] = []
    labels: list[int] = []
    for index, class_dir in enumerate(class_dirs):
        found = _image_files(class_dir, recursive=True)
        files += found
        labels += [index] * len(found)
    if not class_dirs:
        files = _image_files(root, recursive=False)
    if not files:
        raise DataError(
            f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) found in {str(root)!r}: "
            "point --data at a folder of images or of class subfolders"
        )
    if not class_dirs:
        return files, None, None
    return files, labels, [p.name for p in class_dirs]


HIGH_BIT_DEPTH_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I", "F"}


def to_uint8(image) -> np.ndarray:
    """A high-bit-depth greyscale PIL image as ``uint8 [H, W]``, on the scale its mode implies:

    - ``I;16*`` (16-bit PNG, TIFF, PGM): ``round(value / 257)``, so 0 -> 0 and 65535 -> 255.
    - ``I`` (32-bit int; PIL records no bit depth): values within 0..65535 are taken as 16-bit
      (``/ 257``, as above); anything else (negative, or wider) is stretched min..max of the image.
    - ``F`` (32-bit float): values within 0..1 are taken as fractions (``x 255``); anything else
      is stretched min..max of the image. NaNs become 0.

    A constant image outside those ranges maps to 0. Min-max stretching is per image, so such
    images lose their absolute scale (no other is known for them).
    """
    values = np.asarray(image).astype(np.float64)
    values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    low, high = float(values.min()), float(values.max())
    if image.mode.startswith("I;16") or (image.mode == "I" and low >= 0 and high <= 65535):
        scaled = values / 257.0
    elif image.mode == "F" and low >= 0 and high <= 1:
        scaled = values * 255.0
    elif high > low:
        scaled = (values - low) * 255.0 / (high - low)
    else:
        scaled = np.zeros_like(values)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def decode_image(path: str | Path, size: int, mode: str = "RGB") -> np.ndarray | None:
    """One file as ``uint8 [C, size, size]`` (shorter side resized, centre-cropped), else None.

    ``mode`` is ``"RGB"`` or ``"L"``. High-bit-depth greyscale images (16-bit PNG / TIFF,
    32-bit int or float TIFF) are scaled to 0..255 by ``to_uint8`` first (PIL's own conversion
    clips them to white); 16-bit RGB(A) PNGs PIL already reduces to their high byte. EXIF
    orientation is applied; large JPEGs are decoded at a
    reduced scale (PIL ``draft``, never below ``size``) before the bilinear resize. Any failure to
    read or decode the file gives None, so one bad file never stops a loader.
    """
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as image:
            image.draft(mode, (size, size))  # JPEG only: DCT-domain downscale, >= size
            image = ImageOps.exif_transpose(image)
            if image.mode in HIGH_BIT_DEPTH_MODES:
                image = Image.fromarray(to_uint8(image), "L")
            if image.mode == "P" and "transparency" in image.info:
                image = image.convert("RGBA")  # PIL warns when converting these straight to RGB
            image = image.convert(mode)
            width, height = image.size
            scale = size / min(width, height)
            resized = (max(size, round(width * scale)), max(size, round(height * scale)))
            image = image.resize(resized, Image.BILINEAR)
            left = (resized[0] - size) // 2
            top = (resized[1] - size) // 2
            array = np.asarray(image.crop((left, top, left + size, top + size)), dtype=np.uint8)
    except Exception:  # PIL raises OSError, ValueError, SyntaxError, struct.error, ...
        return None
    # a writable, contiguous copy (PIL's buffer is read-only)
    return np.array(array[None] if array.ndim == 2 else array.transpose(2, 0, 1), order="C")


class FileSample(NamedTuple):
    """One decoded file: ``image`` uint8 ``[C, S, S]`` (zeros when ``readable`` is False)."""

    image: torch.Tensor
    index: int
    label: int
    readable: bool


class ImageFiles(torch.utils.data.Dataset):
    """Image files decoded on access to ``uint8 [C, load_size, load_size]`` (see ``decode_image``).

    ``labels`` gives one int per file (-1 = unlabelled), or None for an unlabelled set. An
    unreadable file gives a zero image with ``readable=False``; ``collate_images`` drops it.
    """

    def __init__(
        self,
        files: Sequence[str | Path],
        labels: Sequence[int] | None = None,
        *,
        load_size: int,
        grayscale: bool = False,
    ) -> None:
        if not (isinstance(load_size, int) and load_size > 0):
            raise ConfigError(f"load_size must be a positive int, got {load_size!r}")
        if labels is not None and len(labels) != len(files):
            raise DataError(
                f"{len(files)} files but {len(labels)} labels: pass one label per file "
                "(-1 for unlabelled) or labels=None"
            )
        self.files = [str(f) for f in files]
        self.labels = [-1] * len(files) if labels is None else [int(v) for v in labels]
        self.load_size = load_size
        self.mode = "L" if grayscale else "RGB"

    @property
    def channels(self) -> int:
        return 1 if self.mode == "L" else 3

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> FileSample:
        array = decode_image(self.files[index], self.load_size, self.mode)
        if array is None:
            blank = torch.zeros((self.channels, self.load_size, self.load_size), dtype=torch.uint8)
            return FileSample(blank, index, self.labels[index], False)
        return FileSample(torch.from_numpy(array), index, self.labels[index], True)


def collate_images(samples: Sequence[FileSample]) -> dict[str, torch.Tensor | int]:
    """Stack readable samples: ``{"inputs": uint8 [B, C, S, S], "index": int64 [B],
    "label": int64 [B], "skipped": int}``; ``B`` is the batch size less the unreadable files."""
    keep = [s for s in samples if s.readable]
    if keep:
        images = torch.stack([s.image for s in keep])
    else:
        images = torch.empty((0, *samples[0].image.shape), dtype=torch.uint8)
    return {
        "inputs": images,
        "index": torch.tensor([s.index for s in keep], dtype=torch.int64),
        "label": torch.tensor([s.label for s in keep], dtype=torch.int64),
        "skipped": len(samples) - len(keep),
    }


def file_loader(
    files: Sequence[str | Path],
    labels: Sequence[int] | None = None,
    *,
    load_size: int,
    batch_size: int,
    workers: int = 2,
    shuffle: bool = True,
    seed: int = 0,
    drop_last: bool = True,
    grayscale: bool = False,
) -> DataLoader:
    """Batches of decoded files, decoded in ``workers`` processes (0 = in this process).

    The order comes from a sampler with its own generator seeded by ``seed``, so it is the same for
    any number of workers, epoch after epoch. Workers persist across epochs; memory is pinned only
    when CUDA is available. Batches are ``collate_images`` dicts.
    """
    if workers < 0:
        raise ConfigError(f"workers must be >= 0, got {workers}")
    dataset = ImageFiles(files, labels, load_size=load_size, grayscale=grayscale)
    if shuffle:
        sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(seed))
    else:
        sampler = SequentialSampler(dataset)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        drop_last=drop_last,
        collate_fn=collate_images,
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=torch.cuda.is_available(),
        generator=torch.Generator().manual_seed(seed + 1),  # worker seeds, not the order
    )
