"""The Dataset container, built-ins, arrays and image folders."""

from __future__ import annotations

import numpy as np
import pytest

from labelless.data import BUILTINS, Dataset, from_arrays, image_folder, load_dataset
from labelless.errors import ConfigError, DataError


def test_digits_split_is_fixed_stratified_and_uint8(digits):
    train, test = digits.train, digits.test
    assert train.samples.shape == (1437, 1, 8, 8) and test.samples.shape == (360, 1, 8, 8)
    assert train.samples.dtype == np.uint8 and train.samples.max() == 255
    assert np.bincount(test.labels).min() >= 35  # stratified: ~36 per class
    assert train.num_classes == 10 and train.has_labels
    again = load_dataset("digits")
    assert np.array_equal(again.test.samples, test.samples)
    # channel statistics on the 0..1 scale, shared by the test split
    pixels = train.samples / 255.0
    assert train.meta["mean"][0] == pytest.approx(pixels.mean(), abs=1e-6)
    assert test.meta["mean"] == train.meta["mean"]


def test_from_arrays_layouts_and_unlabelled():
    hwc = np.random.default_rng(0).integers(0, 256, (6, 5, 7, 3), dtype=np.uint8)
    d = from_arrays(hwc)
    assert d.samples.shape == (6, 3, 5, 7)
    assert np.array_equal(d.samples[2, 1], hwc[2, :, :, 1])
    assert d.labels is None and not d.has_labels and d.num_classes == 0
    chw = from_arrays(np.zeros((4, 1, 9, 9), dtype=np.float32), y=[-1, -1, -1, -1])
    assert chw.samples.shape == (4, 1, 9, 9) and not chw.has_labels


def test_from_arrays_rejects_bad_input():
    with pytest.raises(DataError, match=r"0\.\.1 scale"):
        from_arrays(np.full((2, 4, 4), 3.0))
    with pytest.raises(DataError, match="NaN"):
        from_arrays(np.full((2, 4, 4), np.nan))
    with pytest.raises(DataError, match="one label per sample"):
        from_arrays(np.zeros((3, 4, 4), np.uint8), y=[0, 1])
    with pytest.raises(DataError, match="empty"):
        Dataset(np.zeros((0, 1, 4, 4), np.uint8))


def _write_images(folder, count, size=(12, 10), start=0):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(start)
    for i in range(count):
        array = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(array).save(folder / f"img{start + i}.png")


def test_image_folder_flat_mixed_sizes_and_corrupt_files(tmp_path):
    _write_images(tmp_path, 3, size=(12, 10))
    _write_images(tmp_path, 2, size=(30, 40), start=3)
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "notes.txt").write_text("ignored")
    d = image_folder(tmp_path, load_size=16)
    assert d.samples.shape == (5, 3, 16, 16)
    assert d.labels is None and d.meta["skipped"] == 1


def test_image_folder_class_subfolders(tmp_path):
    _write_images(tmp_path / "cat", 2)
    _write_images(tmp_path / "dog", 3, start=5)
    d = image_folder(tmp_path, load_size=8)
    assert d.meta["class_names"] == ["cat", "dog"]
    assert d.labels.tolist() == [0, 0, 1, 1, 1]


def test_image_folder_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        image_folder(tmp_path / "missing")
    with pytest.raises(DataError, match="no image files"):
        image_folder(tmp_path)
    with pytest.raises(ConfigError, match="unknown dataset"):
        load_dataset("not_a_dataset")


def test_builtins_report_availability(monkeypatch, tmp_path):
    monkeypatch.setenv("LABELLESS_DATA", str(tmp_path))
    assert BUILTINS["digits"].available()
    assert not BUILTINS["mnist"].available()


@pytest.mark.data
def test_real_mnist_and_cifar10(data_root, monkeypatch, tmp_path):
    monkeypatch.setenv("LABELLESS_CACHE", str(tmp_path))
    mnist = load_dataset("mnist")
    assert mnist.train.samples.shape == (60000, 1, 28, 28) and len(mnist.test) == 10000
    assert np.bincount(mnist.test.labels)[0] == 980
    cifar = load_dataset("cifar10")
    assert cifar.train.samples.shape == (50000, 3, 32, 32)
    mean = cifar.train.samples.reshape(50000, 3, -1).mean(axis=(0, 2))
    assert np.allclose(mean, [125.27, 122.93, 113.86], atol=0.05)  # PROVENANCE.md sanity check
    assert (tmp_path / "decoded" / "cifar10_train_uint8.npy").exists()
    cached = load_dataset("cifar10")  # second load reads the cache
    assert np.array_equal(cached.train.samples[:10], cifar.train.samples[:10])


def test_subset_carries_labels_targets_and_per_sample_meta():
    from labelless.data.timeseries import from_series

    series = [np.arange(n, dtype=np.float32) for n in (3, 5, 4, 2)]
    data = from_series(series, targets=np.array([0.5, 1.5, 2.5, 3.5]))
    part = data.subset(np.array([3, 1]))
    assert part.meta["lengths"].tolist() == [2, 5]  # per-sample meta follows the index
    assert part.targets.tolist() == [3.5, 1.5]
    assert np.isnan(part.samples[0, 0, 2:]).all() and part.samples[1, 0, 4] == 4
    assert part.meta["channels"] == data.meta["channels"]  # the rest is shared as it is
