"""Shard sets: ``labelless convert`` writes them (``data.shards``), ``stream:DIR`` reads them
(``data.stream``, litdata)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from labelless import api
from labelless.data import load_dataset
from labelless.data.shards import read_header
from labelless.data.stream import read_stream, stream_dataset, stream_loader
from labelless.errors import ConfigError, DataError

pytest.importorskip(
    "litdata", reason="streaming needs the stream extra: pip install labelless[stream]"
)


def _class_folder(root: Path, classes: int = 4, per_class: int = 48, corrupt: int = 0) -> Path:
    """A folder of ``classes`` subfolders of small PNGs whose pixels encode class and number."""
    from PIL import Image

    for label in range(classes):
        folder = root / f"class{label}"
        folder.mkdir(parents=True)
        for number in range(per_class):
            pixels = np.full((10, 10, 3), label * 60, np.uint8)
            pixels[0, 0] = [number, label, 7]
            Image.fromarray(pixels).save(folder / f"{number:03d}.png")
        for number in range(corrupt if label == 0 else 0):
            (folder / f"broken{number}.png").write_bytes(b"not a png")
    return root


def _epoch(loader) -> list[torch.Tensor]:
    return [batch["index"] for batch in loader]


def test_a_converted_builtin_holds_every_sample_once_with_its_label_and_hash(tmp_path):
    header = api.convert("digits", tmp_path / "shards", chunk_size=100, seed=3)
    source = load_dataset("digits").train
    assert header["count"] == len(source) and header["skipped"] == 0
    assert read_header(tmp_path / "shards")["shape"] == [1, 8, 8]
    dataset = stream_dataset(f"stream:{tmp_path / 'shards'}", shuffle=False, drop_last=False)
    items = [dataset[i] for i in range(len(dataset))]
    stored = torch.stack([item["inputs"] for item in items]).numpy()
    assert [item["index"] for item in items] == list(range(len(source)))
    # the stored order is the seeded permutation of the source, not the source order
    order = np.random.default_rng(3).permutation(len(source))
    assert np.array_equal(stored, source.samples[order])
    assert [item["label"] for item in items] == source.labels[order].tolist()
    assert header["meta"]["class_names"] == source.meta["class_names"]
    np.testing.assert_allclose(header["meta"]["mean"], source.meta["mean"], atol=1e-9)


def test_hashes_are_the_sha256_of_the_stored_pixels(tmp_path):
    from litdata import StreamingDataset

    api.convert("digits", tmp_path / "shards", chunk_size=500)
    raw = StreamingDataset(str(tmp_path / "shards"))
    first = raw[0]
    pixels = np.asarray(first["inputs"])
    assert first["hash"] == hashlib.sha256(np.ascontiguousarray(pixels).tobytes()).hexdigest()
    assert len({raw[i]["hash"] for i in range(50)}) == 50


def test_a_folder_is_decoded_at_the_load_size_and_corrupt_files_are_counted(tmp_path):
    folder = _class_folder(tmp_path / "images", classes=2, per_class=10, corrupt=3)
    header = api.convert(str(folder), tmp_path / "shards", load_size=8, chunk_size=4)
    assert header["count"] == 20 and header["skipped"] == 3
    assert header["shape"] == [3, 8, 8] and header["meta"]["class_names"] == ["class0", "class1"]
    splits = read_stream(f"stream:{tmp_path / 'shards'}")
    assert splits.train.samples.shape == (20, 3, 8, 8)
    assert sorted(splits.train.labels.tolist()) == [0] * 10 + [1] * 10


def test_batches_from_a_class_sorted_folder_mix_classes(tmp_path):
    """litdata shuffles chunks, then samples within a window of chunks: stored in source order,
    a batch would come from one or two single-class chunks. Converted in a global order, a
    batch of 32 from 16-sample chunks holds every class."""
    folder = _class_folder(tmp_path / "images", classes=4, per_class=48)
    api.convert(str(folder), tmp_path / "shards", load_size=8, chunk_size=16)
    loader = stream_loader(f"stream:{tmp_path / 'shards'}", 32, seed=1)
    batches = list(loader)
    assert len(batches) == 6
    for batch in batches:
        assert len(set(batch["label"].tolist())) == 4
        chunks = set((batch["index"] // 16).tolist())
        assert len(chunks) <= 4  # a batch reads few chunks: the mixing came from the conversion


def test_each_epoch_is_a_new_order_of_every_sample(tmp_path):
    api.convert("digits", tmp_path / "shards", chunk_size=64)
    loader = stream_loader(f"stream:{tmp_path / 'shards'}", 100, seed=0)
    first, second = torch.cat(_epoch(loader)), torch.cat(_epoch(loader))
    assert len(first) == len(second) == 1400  # 1437 samples, whole batches of 100
    assert first.unique().numel() == second.unique().numel() == 1400
    assert not torch.equal(first, second)
    again = torch.cat(_epoch(stream_loader(f"stream:{tmp_path / 'shards'}", 100, seed=0)))
    assert torch.equal(first, again)  # the order is a function of the seed


def test_a_restored_loader_continues_the_epoch_sample_for_sample(tmp_path):
    api.convert("digits", tmp_path / "shards", chunk_size=64)
    name = f"stream:{tmp_path / 'shards'}"
    full = _epoch(stream_loader(name, 100, seed=0))
    interrupted = stream_loader(name, 100, seed=0)
    seen = []
    for batch in interrupted:
        seen.append(batch["index"])
        if len(seen) == 5:
            state = interrupted.state_dict()
            break
    resumed = stream_loader(name, 100, seed=0)
    resumed.load_state_dict(state)
    rest = _epoch(resumed)
    assert len(seen) + len(rest) == len(full)
    for expected, got in zip(full, seen + rest, strict=True):
        assert torch.equal(expected, got)


def test_jpeg_shards_decode_close_to_the_pixels(tmp_path):
    header = api.convert("digits", tmp_path / "shards", encoding="jpeg", chunk_size=500)
    exact = read_stream("stream:" + str(tmp_path / "shards")).train.samples.astype(np.float32)
    source = load_dataset("digits").train.samples
    order = np.random.default_rng(0).permutation(len(source))
    error = np.abs(exact - source[order].astype(np.float32)).mean()
    assert header["encoding"] == "jpeg" and error < 8.0, error


def test_parts_merge_into_the_whole_conversion(tmp_path):
    whole = api.convert("digits", tmp_path / "whole", chunk_size=100)
    parts = [
        api.convert("digits", tmp_path / f"part{i}", chunk_size=100, part=f"{i}/2") for i in (0, 1)
    ]
    assert sum(p["count"] for p in parts) == whole["count"]
    merged = api.merge_shards([tmp_path / "part0", tmp_path / "part1"], tmp_path / "merged")
    assert merged["count"] == whole["count"] and merged["part"] == [0, 1]
    np.testing.assert_allclose(merged["meta"]["mean"], whole["meta"]["mean"], atol=1e-9)
    np.testing.assert_allclose(merged["meta"]["std"], whole["meta"]["std"], atol=1e-9)
    a = read_stream(f"stream:{tmp_path / 'whole'}").train.samples
    b = read_stream(f"stream:{tmp_path / 'merged'}").train.samples
    assert sorted(map(bytes, a)) == sorted(map(bytes, b))
    with pytest.raises(DataError, match="every part"):
        api.merge_shards([tmp_path / "part0", tmp_path / "whole"], tmp_path / "bad")


def test_an_existing_folder_is_never_overwritten(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "keep.txt").write_text("user data")
    with pytest.raises(DataError, match="already exists"):
        api.convert("digits", out)
    assert (out / "keep.txt").read_text() == "user data"


def test_a_failed_conversion_leaves_nothing_that_looks_complete(tmp_path, monkeypatch):
    import labelless.data.shards as shards

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(shards, "_encode_jpeg", broken)
    with pytest.raises(OSError, match="disk full"):
        api.convert("digits", tmp_path / "shards", encoding="jpeg")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"encoding": "png"}, ConfigError, "encoding"),
        ({"chunk_size": 0}, ConfigError, "chunk size"),
        ({"part": "2/2"}, ConfigError, "0 <= I < N"),
        ({"part": "half"}, ConfigError, "I/N"),
    ],
)
def test_bad_options_are_named(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        api.convert("digits", tmp_path / "shards", **kwargs)
    assert not (tmp_path / "shards").exists()


def test_a_folder_that_is_not_a_shard_set_is_named(tmp_path):
    with pytest.raises(DataError, match="labelless convert"):
        load_dataset(f"stream:{tmp_path}")


def test_the_epoch_after_a_restored_one_is_whole(tmp_path):
    """Lightning stops a sized loader after its last batch, without reading to StopIteration:
    the epoch after a resumed one must still be a full epoch, not a replay of the restored
    position (litdata alone yields nothing there)."""
    api.convert("digits", tmp_path / "shards", chunk_size=64)
    name = f"stream:{tmp_path / 'shards'}"
    full = _epoch(stream_loader(name, 100, seed=0))
    interrupted = stream_loader(name, 100, seed=0)
    for done, _ in enumerate(interrupted, start=1):
        if done == 5:
            state = interrupted.state_dict()
            break
    resumed = stream_loader(name, 100, seed=0)
    resumed.load_state_dict(state)
    batches = iter(resumed)
    for _ in range(len(full) - 5):  # the rest of the epoch, read to its length only
        next(batches)
    assert len(_epoch(resumed)) == len(full)
