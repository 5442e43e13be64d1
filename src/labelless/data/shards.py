"""Shard sets for streaming: ``labelless convert`` writes them, ``stream:DIR`` reads them.

A shard set is a litdata-optimised folder (chunk files + litdata's ``index.json``) plus our
header ``labelless-shards.json``. Every sample is a dict ``{"inputs", "label", "source",
"hash"}``: the sample as the run's in-memory loader would hold it (images ``uint8 [C, H, W]`` at
the load size, raw or JPEG-encoded; table rows and series as float arrays), its label (-1 =
unlabelled), its row or file number in the source, and the SHA-256 of its pixels / values. The
sample's ``index`` in a batch is its position in the shard set, so it is unique across merged
parts.

The order is a seeded global permutation of the source, fixed at conversion: litdata's shuffle
permutes chunks and then samples inside a window of chunks, so a batch draws from a few chunks;
from a class-sorted source stored in order, those chunks would hold one class each.

A set is written into a hidden sibling folder and renamed into place once its header is written:
an interrupted conversion leaves no folder that looks complete. ``--part I/N`` converts every N-th
sample of the permutation from the I-th on, so N machines write disjoint parts that
``merge_parts`` joins.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from labelless.data.dataset import Dataset
from labelless.data.formats import sample_format
from labelless.errors import ConfigError, DataError

HEADER = "labelless-shards.json"
ENCODINGS = ("uint8", "jpeg")
FORMAT_VERSION = 1


def require_litdata() -> Any:
    """The ``litdata`` module, or a ConfigError saying which extra installs it."""
    try:
        import litdata
    except ImportError as error:
        raise ConfigError(
            "streaming shards needs litdata: pip install 'labelless[stream]' (litdata)"
        ) from error
    return litdata


@dataclass(frozen=True)
class Part:
    """Part ``index`` of ``count`` of a conversion split across machines."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str | None) -> Part:
        if not text:
            return cls()
        try:
            index, count = (int(value) for value in text.split("/"))
        except ValueError:
            raise ConfigError(f"--part must look like I/N (e.g. 0/4), got {text!r}") from None
        if count < 1 or not 0 <= index < count:
            raise ConfigError(f"--part {text}: need 0 <= I < N, e.g. 0/{max(count, 2)}")
        return cls(index, count)


def _sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def _encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    from PIL import Image

    pixels = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
    stream = io.BytesIO()
    Image.fromarray(pixels).save(stream, format="JPEG", quality=quality)
    return stream.getvalue()


class _Stats:
    """Per-channel mean and std on the 0..1 scale of every image written (float64 sums)."""

    def __init__(self) -> None:
        self.count = 0
        self.total: np.ndarray | float = 0.0
        self.squares: np.ndarray | float = 0.0

    def add(self, image: np.ndarray) -> None:
        values = image.reshape(image.shape[0], -1).astype(np.float64) / 255.0
        self.count += values.shape[1]
        self.total = self.total + values.sum(axis=1)
        self.squares = self.squares + (values**2).sum(axis=1)

    def result(self) -> dict[str, list[float]]:
        mean = np.asarray(self.total) / self.count
        std = np.sqrt(np.maximum(np.asarray(self.squares) / self.count - mean**2, 0.0))
        std = np.where(std < 1e-6, 1.0, std)
        return {"mean": [float(m) for m in mean], "std": [float(s) for s in std]}


def _json_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """The parts of a dataset's ``meta`` that describe the whole set (per-sample arrays and
    objects JSON cannot hold are left out; a stream's batches do not carry them)."""
    kept = {}
    for key, value in meta.items():
        try:
            json.dumps(value)
        except TypeError:
            continue
        kept[key] = value
    return kept


def _rows(dataset: Dataset, order: np.ndarray) -> Iterator[tuple[int, np.ndarray | None, int]]:
    labels = dataset.labels
    for row in order:
        label = -1 if labels is None else int(labels[row])
        yield int(row), dataset.samples[row], label


def _folder_rows(files: list[Path], labels, order: np.ndarray, load_size: int, block: int = 256):
    """Decode ``files`` in ``order`` a block at a time (threads; PIL releases the GIL); a file
    that cannot be decoded gives ``None``."""
    from concurrent.futures import ThreadPoolExecutor

    from labelless.data.files import decode_image

    with ThreadPoolExecutor(max_workers=2) as pool:
        for start in range(0, len(order), block):
            rows = order[start : start + block]
            images = pool.map(lambda row: decode_image(files[row], load_size, "RGB"), rows)
            for row, image in zip(rows, images, strict=True):
                yield int(row), image, -1 if labels is None else int(labels[row])


def convert(
    source: str,
    out: str | Path,
    *,
    load_size: int = 64,
    encoding: str = "uint8",
    chunk_size: int = 1024,
    seed: int = 0,
    part: Part = Part(),
    split: str = "train",
    quality: int = 90,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``source`` (a built-in, an image folder, a table or series file) as a shard set at
    ``out`` and return its header.

    Folders are decoded a block at a time at ``load_size`` (never all in memory); files that do
    not decode are skipped and counted (``skipped``). Other sources are loaded with
    ``load_dataset`` and their ``split`` (``train`` or ``test``) written. ``out`` must not exist.
    """
    from labelless.data import load_dataset
    from labelless.progress import task

    litdata_writer = _writer_class()
    target = Path(out).expanduser()
    if target.exists():
        raise DataError(
            f"{str(target)!r} already exists: convert into a new folder (labelless never "
            "overwrites or deletes what it did not create)"
        )
    if encoding not in ENCODINGS:
        raise ConfigError(f"encoding must be one of {', '.join(ENCODINGS)}, got {encoding!r}")
    if chunk_size < 1:
        raise ConfigError(f"chunk size must be at least 1 sample, got {chunk_size}")
    if split not in ("train", "test"):
        raise ConfigError(f"split must be 'train' or 'test', got {split!r}")
    header: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "source": str(source),
        "split": split,
        "encoding": encoding,
        "chunk_size": int(chunk_size),
        "seed": int(seed),
        "part": [part.index, part.count],
    }
    path = Path(source).expanduser()
    if path.is_dir():
        from labelless.data.files import scan_folder

        files, labels, class_names = scan_folder(path)
        total = len(files)
        rows = lambda order: _folder_rows(files, labels, order, load_size)  # noqa: E731
        header.update(modality="image", name=path.name, load_size=int(load_size))
        meta: dict[str, Any] = {"source": str(path)}
        if class_names is not None:
            meta["class_names"] = class_names
    else:
        splits = load_dataset(source, load_size=load_size, **(options or {}))
        dataset = splits.train if split == "train" else splits.test
        if dataset is None:
            raise DataError(f"{source!r} has no test split; convert its train split instead")
        if dataset.format.batches is not None:
            raise DataError(
                f"{source!r} holds {dataset.modality} data, which is not stored as sample rows: "
                "only images, tables and series stream from shards"
            )
        total = len(dataset)
        rows = lambda order: _rows(dataset, order)  # noqa: E731
        header.update(modality=dataset.modality, name=dataset.name)
        if dataset.format.pixels:
            header["load_size"] = int(dataset.samples.shape[-1])
        meta = _json_meta(dataset.meta)
    pixels = sample_format(header["modality"]).pixels
    if encoding == "jpeg" and not pixels:
        raise ConfigError(f"encoding 'jpeg' is for images; {source!r} holds {header['modality']}")
    order = np.random.default_rng(seed).permutation(total)[part.index :: part.count]
    staging = target.parent / f".{target.name}.partial-{uuid.uuid4().hex[:8]}"
    staging.mkdir(parents=True)
    try:
        written, skipped, stats, shape = _write(
            litdata_writer, staging, rows(order), len(order), encoding, chunk_size, quality, task
        )
        if written == 0:
            raise DataError(f"none of the {len(order)} samples of {source!r} could be read")
        if pixels:
            meta.update(stats.result())
            meta.setdefault("image_size", int(shape[-1]))
        header.update(count=written, skipped=skipped, shape=list(shape), meta=meta)
        (staging / HEADER).write_text(json.dumps(header, indent=1))
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # ours: made above, never the user's
        raise
    return header


def _writer_class():
    require_litdata()
    from litdata.streaming.writer import BinaryWriter

    return BinaryWriter


def _write(writer_class, folder: Path, rows, total, encoding, chunk_size, quality, task):
    writer = writer_class(str(folder), chunk_size=chunk_size)
    stats, written, skipped, shape = _Stats(), 0, 0, None
    with task(f"converting {total} samples", total=total) as progress:
        for row, sample, label in rows:
            progress.advance()
            if sample is None:
                skipped += 1
                continue
            if shape is None:
                shape = tuple(int(s) for s in sample.shape)
            elif tuple(sample.shape) != shape:
                raise DataError(f"sample {row} has shape {tuple(sample.shape)}, not {shape}")
            item: dict[str, Any] = {"label": label, "source": row, "hash": _sha256(sample)}
            if sample.dtype == np.uint8:
                stats.add(sample)
            if encoding == "jpeg":
                item["inputs"] = _encode_jpeg(sample, quality)
            else:
                item["inputs"] = np.ascontiguousarray(sample)
            writer.add_item(written, item)
            written += 1
    writer.done()
    writer.merge()
    return written, skipped, stats, shape


def read_header(location: str | Path) -> dict[str, Any]:
    """The header of the shard set at ``location`` (a local folder)."""
    path = Path(location).expanduser() / HEADER
    if not path.is_file():
        raise DataError(
            f"{str(location)!r} is not a labelless shard set (no {HEADER}): make one with "
            "labelless convert SRC OUT"
        )
    return json.loads(path.read_text())


def merge_parts(parts: list[str | Path], out: str | Path) -> dict[str, Any]:
    """Join the parts ``0/N .. N-1/N`` of one conversion (each written on its own machine) into
    one shard set at ``out``, written atomically like a conversion."""
    require_litdata()
    from litdata import merge_datasets

    headers = [read_header(part) for part in parts]
    first = headers[0]
    same = ("source", "split", "encoding", "seed", "modality", "shape", "format")
    for path, header in zip(parts, headers, strict=True):
        for key in same:
            if header.get(key) != first.get(key):
                raise DataError(
                    f"{str(path)!r} has {key}={header.get(key)!r} but {str(parts[0])!r} has "
                    f"{first.get(key)!r}: merge only the parts of one conversion"
                )
    count = first["part"][1]
    found = sorted(header["part"][0] for header in headers)
    if found != list(range(count)) or any(h["part"][1] != count for h in headers):
        raise DataError(f"merging needs every part 0..{count - 1} of {count} once; got {found}")
    target = Path(out).expanduser()
    if target.exists():
        raise DataError(f"{str(target)!r} already exists: merge into a new folder")
    staging = target.parent / f".{target.name}.partial-{uuid.uuid4().hex[:8]}"
    try:
        merge_datasets([str(Path(p).expanduser().resolve()) for p in parts], str(staging))
        merged = dict(first, part=[0, 1], count=sum(h["count"] for h in headers))
        merged["skipped"] = sum(h["skipped"] for h in headers)
        if sample_format(first["modality"]).pixels:
            weights = np.asarray([h["count"] for h in headers], dtype=np.float64)
            merged["meta"] = dict(first["meta"], **_pooled([h["meta"] for h in headers], weights))
        (staging / HEADER).write_text(json.dumps(merged, indent=1))
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return merged


def _pooled(metas: list[dict[str, Any]], weights: np.ndarray) -> dict[str, list[float]]:
    """Per-channel mean and std of the union of parts from each part's mean, std and count."""
    means = np.asarray([m["mean"] for m in metas])
    squares = np.asarray([m["std"] for m in metas]) ** 2 + means**2
    share = (weights / weights.sum())[:, None]
    mean = (share * means).sum(axis=0)
    std = np.sqrt(np.maximum((share * squares).sum(axis=0) - mean**2, 0.0))
    return {"mean": [float(m) for m in mean], "std": [float(s) for s in std]}
