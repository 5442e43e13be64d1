"""Built-in datasets: ``digits`` (always available) and image sets read from the data root.

The data root is ``$LABELLESS_DATA`` (else ``~/.cache/labelless``) in the layout of the shared
offline data: ``mnist/mnist.npz``, ``fashion_mnist/fashion_mnist.npz`` and
``cifar10_jpeg/cifar10_jpeg.npz`` (train as JPEG bytes, decoded once and cached as uint8). When the
files are absent, torchvision's official download into the cache is the fallback.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labelless.data.arrays import to_uint8_nchw
from labelless.data.dataset import Dataset, DataSplits
from labelless.data.paths import cache_dir, data_root, save_npy_atomic
from labelless.errors import DataError

CIFAR10_CLASSES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]
FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]


@dataclass(frozen=True)
class BuiltinDataset:
    name: str
    description: str
    loader: Callable[[], DataSplits]
    files: tuple[str, ...] = ()
    downloads: bool = False  # True: the loader falls back to the official download when offline
    modality: str = "image"
    options: tuple[str, ...] = ()  # loader options it takes (data.options), e.g. a graph's split

    def local_files(self) -> list[Path]:
        return [data_root() / f for f in self.files]

    def available(self) -> bool:
        """True when the dataset can be loaded without a download."""
        return all(p.exists() for p in self.local_files())


def _splits(name, x_train, y_train, x_test, y_test, class_names) -> DataSplits:
    meta = {"class_names": list(class_names)}
    train = Dataset(to_uint8_nchw(x_train), y_train, "image", f"{name}/train", dict(meta))
    test_meta = dict(meta, mean=train.meta["mean"], std=train.meta["std"])
    test = Dataset(to_uint8_nchw(x_test), y_test, "image", f"{name}/test", test_meta)
    return DataSplits(train, test)


def load_digits_splits() -> DataSplits:
    """scikit-learn's 8x8 digits (1,797 images), a fixed stratified 80/20 split (seed 0)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    x_train, x_test, y_train, y_test = train_test_split(
        images, bunch.target, test_size=0.2, stratify=bunch.target, random_state=0
    )
    return _splits("digits", x_train, y_train, x_test, y_test, [str(i) for i in range(10)])


def _torchvision_fallback(name: str) -> DataSplits:
    import torchvision.datasets as tvd

    cls = {"mnist": tvd.MNIST, "fashion_mnist": tvd.FashionMNIST, "cifar10": tvd.CIFAR10}[name]
    root = cache_dir() / "torchvision"
    try:
        train = cls(str(root), train=True, download=True)
        test = cls(str(root), train=False, download=True)
    except Exception as exc:  # no network, broken mirror, partial file
        raise DataError(
            f"dataset {name!r} is not under the data root {str(data_root())!r} and the official "
            f"download failed ({type(exc).__name__}): set LABELLESS_DATA to the folder that holds "
            f"the offline copies, or connect to the internet once"
        ) from exc
    names = CIFAR10_CLASSES if name == "cifar10" else list(train.classes)
    return _splits(
        name,
        np.asarray(train.data),
        np.asarray(train.targets),
        np.asarray(test.data),
        np.asarray(test.targets),
        names,
    )


def load_mnist_like(name: str) -> DataSplits:
    path = data_root() / name / f"{name}.npz"
    if not path.exists():
        return _torchvision_fallback(name)
    d = np.load(path)
    x_train, y_train = d["x_train"], d["y_train"]
    if "x_val" in d.files:  # the offline MNIST keeps 10k of the official train set as val
        x_train = np.concatenate([x_train, d["x_val"]])
        y_train = np.concatenate([y_train, d["y_val"]])
    names = [str(c) for c in d["class_names"]] if "class_names" in d.files else None
    if names is None:
        names = FASHION_CLASSES if name == "fashion_mnist" else [str(i) for i in range(10)]
    return _splits(name, x_train, y_train, d["x_test"], d["y_test"], names)


def _decode_jpegs(blob: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    import io
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image

    def one(i: int) -> np.ndarray:
        with Image.open(io.BytesIO(blob[offsets[i] : offsets[i + 1]].tobytes())) as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return np.stack(list(pool.map(one, range(len(offsets) - 1))))


def load_cifar10() -> DataSplits:
    """CIFAR-10 from the offline JPEG pack; the train split is decoded once and cached."""
    folder = data_root() / "cifar10_jpeg"
    pack = folder / "cifar10_jpeg.npz"
    if not pack.exists():
        return _torchvision_fallback("cifar10")
    cached = cache_dir() / "decoded" / "cifar10_train_uint8.npy"
    d = np.load(pack)
    if cached.exists():
        x_train = np.load(cached)
    else:
        x_train = _decode_jpegs(d["train_jpeg"], d["train_offs"])
        save_npy_atomic(cached, x_train)
    test_file = folder / "cifar10_test_uint8.npz"
    if test_file.exists():
        t = np.load(test_file)
        x_test, y_test = t["x_test"], t["y_test"]
    else:
        x_test, y_test = _decode_jpegs(d["test_jpeg"], d["test_offs"]), d["test_labels"]
    names = [str(c) for c in d["class_names"]]
    return _splits("cifar10", x_train, d["train_labels"], x_test, y_test, names)


BUILTINS: dict[str, BuiltinDataset] = {
    b.name: b
    for b in [
        BuiltinDataset(
            "digits",
            "scikit-learn 8x8 handwritten digits, 1,797 images, 10 classes",
            load_digits_splits,
        ),
        BuiltinDataset(
            "mnist",
            "MNIST 28x28 digits, 60,000 train + 10,000 test, 10 classes",
            lambda: load_mnist_like("mnist"),
            ("mnist/mnist.npz",),
            downloads=True,
        ),
        BuiltinDataset(
            "fashion_mnist",
            "Fashion-MNIST 28x28, 60,000 train + 10,000 test",
            lambda: load_mnist_like("fashion_mnist"),
            ("fashion_mnist/fashion_mnist.npz",),
            downloads=True,
        ),
        BuiltinDataset(
            "cifar10",
            "CIFAR-10 32x32 RGB, 50,000 train + 10,000 test (JPEG q75)",
            load_cifar10,
            ("cifar10_jpeg/cifar10_jpeg.npz",),
            downloads=True,
        ),
    ]
}


def register_builtin(dataset: BuiltinDataset) -> BuiltinDataset:
    """Add a built-in dataset (other modalities register theirs from their own loader modules)."""
    if dataset.name in BUILTINS:
        raise ValueError(f"built-in dataset {dataset.name!r} is registered twice")
    BUILTINS[dataset.name] = dataset
    return dataset
