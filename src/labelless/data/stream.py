"""Reading shard sets (``data.shards``) with litdata: ``--data stream:DIR`` or
``stream:s3://bucket/prefix``.

litdata gives the guarantees a run needs at scale: every sample once per epoch with equal
per-rank lengths (``drop_last``), a new deterministic order each epoch, mid-epoch resume through
the loader's ``state_dict`` (Lightning stores it in the checkpoint), and object stores. Workers
only read and decode: a batch is the in-memory loader's ``{"inputs", "index", "label"}`` and
augmentation stays batched in the engine.

The dataset reads the process group when it is made, so ``stream_loader`` is called from the
training loader hook (``train.stream.StreamData.train_dataloader``), where the group exists.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from labelless.data.dataset import Dataset, DataSplits
from labelless.data.shards import HEADER, read_header, require_litdata
from labelless.errors import DataError

PREFIX = "stream:"


def is_stream(name: str | None) -> bool:
    """True for a data name ``stream:LOCATION``."""
    return bool(name) and str(name).startswith(PREFIX)


def location(name: str) -> str:
    """``LOCATION`` of ``stream:LOCATION``: a local folder (``~`` expanded) or a store URL."""
    where = str(name)[len(PREFIX) :]
    if not where:
        raise DataError("stream: needs a location, e.g. --data stream:shards/cifar10")
    return where if "://" in where else str(Path(where).expanduser())


def local_folder(name: str) -> Path | None:
    """The folder of a local stream (protected from becoming a run directory); None for a URL."""
    where = location(name)
    return None if "://" in where else Path(where)


def header(name: str) -> dict[str, Any]:
    """The shard set's header; remote sets are read through litdata's downloader."""
    where = location(name)
    if "://" not in where:
        return read_header(where)
    require_litdata()
    from litdata.streaming.downloader import get_downloader

    with tempfile.TemporaryDirectory() as folder:
        local = str(Path(folder) / HEADER)
        get_downloader(where, folder, []).download_file(f"{where.rstrip('/')}/{HEADER}", local)
        return json.loads(Path(local).read_text())


def _decode(inputs: Any) -> Any:
    """A stored sample as a tensor: JPEG bytes decoded to ``uint8 [C, H, W]``, arrays as-is."""
    import torch

    if isinstance(inputs, bytes | bytearray):
        import io

        from PIL import Image

        pixels = np.asarray(Image.open(io.BytesIO(inputs)))
        pixels = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
        return torch.from_numpy(np.ascontiguousarray(pixels))
    return torch.as_tensor(np.asarray(inputs))


def _samples_class():
    require_litdata()
    from litdata import StreamingDataset

    class StreamSamples(StreamingDataset):
        """litdata's dataset yielding ``{"inputs", "index", "label"}``; ``index`` is the
        sample's position in the shard set."""

        def __getitem__(self, index: Any) -> dict[str, Any]:
            item = super().__getitem__(index)
            position = getattr(index, "index", index)
            return {
                "inputs": _decode(item["inputs"]),
                "index": int(position),
                "label": int(item["label"]),
            }

    return StreamSamples


def stream_dataset(name: str, *, shuffle: bool = True, seed: int = 0, drop_last: bool = True):
    """The shard set as a litdata ``StreamingDataset`` (make it where the process group exists)."""
    dataset = _samples_class()(location(name), shuffle=shuffle, drop_last=drop_last, seed=seed)
    return dataset


def _loader_class():
    require_litdata()
    from litdata import StreamingDataLoader

    class EpochStreamLoader(StreamingDataLoader):
        """litdata's loader, whose restored epoch also ends when its consumer stops at the
        epoch's length. litdata leaves its ``restore`` flag set until an iteration runs to
        ``StopIteration``; Lightning stops a sized loader after its last batch instead, so the
        epoch after a resume would replay the restored position and yield nothing."""

        _iterated_since_restore = False

        def load_state_dict(self, obj: dict[str, Any]) -> None:
            super().load_state_dict(obj)
            self._iterated_since_restore = False

        def __iter__(self):
            if self.restore and self._iterated_since_restore:
                self.restore = False  # the restored epoch was read to its end
            self._iterated_since_restore = True
            yield from super().__iter__()

    return EpochStreamLoader


def stream_loader(
    name: str, batch_size: int, *, seed: int = 0, workers: int = 0, shuffle: bool = True
):
    """A litdata ``StreamingDataLoader`` of ``batch_size`` samples per process: a stateful,
    resumable loader (never a plain DataLoader, which would lose the stream's position)."""
    dataset = stream_dataset(name, shuffle=shuffle, seed=seed, drop_last=True)
    return _loader_class()(
        dataset, batch_size=batch_size, num_workers=workers, drop_last=True, shuffle=shuffle
    )


def read_stream(name: str, *, max_samples: int | None = None, seed: int = 0) -> DataSplits:
    """The shard set in memory (at most ``max_samples``, a seeded random subset, for statistics,
    monitors and evaluation): a Dataset with the header's modality and metadata."""
    info = header(name)
    dataset = stream_dataset(name, shuffle=False, drop_last=False)
    count = len(dataset)
    rows = np.arange(count)
    if max_samples is not None and max_samples < count:
        rows = np.sort(np.random.default_rng(seed).choice(count, max_samples, replace=False))
    items = [dataset[int(row)] for row in rows]
    samples = np.stack([item["inputs"].numpy() for item in items])
    labels = np.asarray([item["label"] for item in items], dtype=np.int64)
    meta = dict(info.get("meta", {}), stream=location(name), stream_count=count)
    data = Dataset(
        samples,
        labels if (labels >= 0).any() else None,
        modality=info["modality"],
        name=info.get("name", "stream"),
        meta=meta,
    )
    return DataSplits(data)
