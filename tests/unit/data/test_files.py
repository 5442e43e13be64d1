"""Lazily decoded image files: scan, decode, collate and the worker loader."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from labelless.data.files import (
    ImageFiles,
    collate_images,
    decode_image,
    file_loader,
    scan_folder,
)
from labelless.errors import DataError


def _save(path, mode: str, size: tuple[int, int], seed: int) -> np.ndarray:
    """Write a random image (``size`` = width, height) in ``mode``; return its RGB pixels."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(rgb)
    if mode == "L":
        image = image.convert("L")
    elif mode == "RGBA":
        alpha = rng.integers(0, 256, (size[1], size[0]), dtype=np.uint8)
        image = Image.fromarray(np.dstack([rgb, alpha]), mode="RGBA")
    elif mode == "P":
        image = image.quantize(colors=16)
        image.info["transparency"] = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **({"transparency": 0} if mode == "P" else {}))
    return np.asarray(image.convert("RGB"))


@pytest.fixture
def mixed_folder(tmp_path):
    """Two classes of JPEG/PNG files in RGB, L, RGBA and P, of mixed sizes, plus a corrupt file."""
    specs = [
        ("cat/a.jpg", "RGB", (40, 30)),
        ("cat/b.png", "L", (17, 23)),
        ("cat/c.png", "RGBA", (16, 16)),
        ("dog/d.png", "P", (50, 20)),
        ("dog/e.jpg", "L", (12, 33)),
        ("dog/nested/f.png", "RGB", (64, 48)),
    ]
    for i, (name, mode, size) in enumerate(specs):
        _save(tmp_path / name, mode, size, seed=i)
    (tmp_path / "dog" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    (tmp_path / "dog" / "notes.txt").write_text("not an image")
    return tmp_path


def test_scan_folder_labels_follow_subfolders(mixed_folder, tmp_path_factory):
    files, labels, class_names = scan_folder(mixed_folder)
    names = [p.relative_to(mixed_folder).as_posix() for p in files]
    assert names == [
        "cat/a.jpg",
        "cat/b.png",
        "cat/c.png",
        "dog/broken.jpg",
        "dog/d.png",
        "dog/e.jpg",
        "dog/nested/f.png",
    ]
    assert labels == [0, 0, 0, 1, 1, 1, 1] and class_names == ["cat", "dog"]
    flat = tmp_path_factory.mktemp("flat")
    _save(flat / "x.png", "RGB", (8, 8), 0)
    assert scan_folder(flat) == ([flat / "x.png"], None, None)
    with pytest.raises(DataError, match="does not exist"):
        scan_folder(flat / "missing")
    with pytest.raises(DataError, match="no image files"):
        scan_folder(tmp_path_factory.mktemp("empty"))


def test_decode_resizes_shorter_side_and_centre_crops(tmp_path):
    pixels = np.zeros((20, 40, 3), np.uint8)  # 40 wide, 20 high
    pixels[:, :4] = 255  # a white strip at the left: cropped away by the centre crop
    pixels[:, 4:36, 1] = 200  # green around the centre 20x20 (and the resize filter's reach)
    from PIL import Image

    Image.fromarray(pixels).save(tmp_path / "wide.png")
    out = decode_image(tmp_path / "wide.png", 10)
    assert out.shape == (3, 10, 10) and out.dtype == np.uint8
    assert np.all(out[1] == 200) and np.all(out[0] == 0) and np.all(out[2] == 0)
    grey = decode_image(tmp_path / "wide.png", 10, mode="L")
    assert grey.shape == (1, 10, 10)
    assert np.allclose(grey, round(0.587 * 200), atol=1)
    assert decode_image(tmp_path / "missing.png", 10) is None


def test_mixed_sizes_and_modes_give_uniform_batches_and_drop_corrupt(mixed_folder):
    files, labels, _ = scan_folder(mixed_folder)
    loader = file_loader(files, labels, load_size=24, batch_size=7, workers=0, shuffle=False)
    (batch,) = list(loader)
    assert batch["inputs"].shape == (6, 3, 24, 24) and batch["inputs"].dtype == torch.uint8
    assert batch["skipped"] == 1
    assert batch["index"].tolist() == [0, 1, 2, 4, 5, 6]  # index 3 is broken.jpg
    assert batch["label"].tolist() == [0, 0, 0, 1, 1, 1]
    # the grayscale files are grey in all three channels, the colour ones are not
    images = batch["inputs"].int()
    is_grey = [bool((im[0] == im[1]).all() and (im[1] == im[2]).all()) for im in images]
    assert is_grey == [False, True, False, False, True, False]
    # each image matches the eager folder decoder exactly
    for row, index in zip(images, batch["index"].tolist(), strict=True):
        assert np.array_equal(row.numpy(), decode_image(files[index], 24))
    grey = ImageFiles(files, labels, load_size=8, grayscale=True)
    assert grey[0].image.shape == (1, 8, 8) and grey[0].readable and not grey[3].readable


def test_collate_counts_unreadable_and_handles_an_all_bad_batch(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"nope")
    dataset = ImageFiles([tmp_path / "bad.png"] * 3, load_size=5)
    batch = collate_images([dataset[i] for i in range(3)])
    assert batch["inputs"].shape == (0, 3, 5, 5) and batch["skipped"] == 3
    assert batch["label"].shape == (0,)
    with pytest.raises(DataError, match="one label per file"):
        ImageFiles([tmp_path / "bad.png"], [0, 1], load_size=5)


def test_workers_and_in_process_give_the_same_batches(mixed_folder):
    files, labels, _ = scan_folder(mixed_folder)

    def epochs(workers: int) -> list[list[dict]]:
        loader = file_loader(files, labels, load_size=12, batch_size=3, workers=workers, seed=7)
        return [list(loader) for _ in range(2)]

    in_process, two_workers = epochs(0), epochs(2)
    orders = [torch.cat([b["index"] for b in epoch]).tolist() for epoch in in_process]
    assert orders[0] != orders[1]  # reshuffled each epoch (2 x 3 of 7 files, last one dropped)
    for epoch0, epoch2 in zip(in_process, two_workers, strict=True):
        assert len(epoch0) == len(epoch2) == 2
        for b0, b2 in zip(epoch0, epoch2, strict=True):
            assert torch.equal(b0["inputs"], b2["inputs"])
            assert torch.equal(b0["index"], b2["index"]) and b0["skipped"] == b2["skipped"]
            assert torch.equal(b0["label"], b2["label"])
    for epoch in in_process:  # 6 of the 7 files drawn per epoch; labels follow the files
        assert sum(b["skipped"] + len(b["index"]) for b in epoch) == 6
        assert all([labels[i] for i in b["index"].tolist()] == b["label"].tolist() for b in epoch)
    assert file_loader(files, labels, load_size=12, batch_size=3, seed=8).num_workers == 2


def _ramp16(height: int = 8, width: int = 8) -> np.ndarray:
    """A uint16 ramp over the full 16-bit range: 0, 1028, ..., 65535 (by 1028)."""
    return (
        (np.arange(height * width).reshape(height, width) * 1040).clip(0, 65535).astype(np.uint16)
    )


def test_16_bit_png_is_scaled_not_clipped_to_white(tmp_path):
    from PIL import Image

    values = _ramp16()
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode == "I;16"  # what PIL makes of a 16-bit greyscale PNG
    expected = np.rint(values / 257.0).astype(np.uint8)  # 65535 -> 255, 1040 -> 4
    grey = decode_image(path, 8, "L")
    np.testing.assert_array_equal(grey[0], expected)
    assert grey.min() == 0 and 240 < grey.max() <= 255  # PIL's own convert("L") gives 255s
    rgb = decode_image(path, 8, "RGB")
    for channel in rgb:
        np.testing.assert_array_equal(channel, expected)


def test_big_endian_16_bit_and_int_and_float_modes(tmp_path):
    from PIL import Image

    from labelless.data.files import to_uint8

    values = _ramp16()
    big = Image.frombytes("I;16B", (8, 8), values.astype(">u2").tobytes())
    np.testing.assert_array_equal(to_uint8(big), np.rint(values / 257.0))
    as_int = Image.fromarray(values.astype(np.int32))  # mode "I", values in 0..65535: 16-bit
    assert as_int.mode == "I"
    np.testing.assert_array_equal(to_uint8(as_int), np.rint(values / 257.0))
    signed = Image.fromarray(np.array([[-100, 0], [100, 300]], np.int32))  # min-max stretched
    np.testing.assert_array_equal(to_uint8(signed), [[0, 64], [128, 255]])
    fractions = Image.fromarray(np.array([[0.0, 0.5], [0.25, 1.0]], np.float32))
    np.testing.assert_array_equal(to_uint8(fractions), [[0, 128], [64, 255]])
    wide = Image.fromarray(np.array([[10.0, 20.0], [30.0, 50.0]], np.float32))
    np.testing.assert_array_equal(to_uint8(wide), [[0, 64], [128, 255]])
    path = tmp_path / "float.tif"
    fractions.save(path)
    np.testing.assert_array_equal(decode_image(path, 2, "L")[0], [[0, 128], [64, 255]])
