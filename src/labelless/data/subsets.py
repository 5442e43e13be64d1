"""Subset files: which samples of a dataset to use (``labelless curate`` writes them, ``pretrain
--subset FILE`` / ``data.subset`` reads them).

A subset file is text, one sample a line: its 0-based index in the training split as
``load_dataset`` loads the data (a built-in's train split, an image folder's decoded files in
``scan_folder`` order, a table's rows), optionally followed by a tab and the sample's file path
relative to the image folder. Lines starting with ``#`` are comments (the writer records the
data, the pool size and how the subset was made). For an image folder a line may hold only a
path; a path, when present, decides the sample (the folder may have gained files since), and a
path that is not among the folder's images is an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labelless.atomic import write_text_atomic
from labelless.data.dataset import Dataset
from labelless.errors import DataError

FILES_KEY = "files"  # Dataset.meta key of an image folder's file paths (relative to the folder)


@dataclass
class SubsetFile:
    """A parsed subset file: per line the index (-1 when absent) and the path (or "")."""

    path: Path
    indices: np.ndarray
    paths: list[str]


def write_subset(path: str | Path, indices, *, files=None, comments: list[str] = ()) -> Path:
    """Write ``indices`` (sorted ascending) as a subset file, with ``files[i]`` after a tab when
    the data has file paths, atomically."""
    indices = np.sort(np.asarray(indices, dtype=np.int64))
    if files is not None:
        files = np.asarray(files)[indices]
        rows = [f"{i}\t{name}" for i, name in zip(indices.tolist(), files.tolist(), strict=True)]
    else:
        rows = [str(i) for i in indices.tolist()]
    header = [f"# {line}" for line in comments]
    return write_text_atomic(path, "\n".join([*header, *rows]) + "\n")


def read_subset(path: str | Path) -> SubsetFile:
    """Parse a subset file; a missing, empty or malformed file is a DataError naming the line."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(
            f"subset file {str(path)!r} not found: pass the subset.txt that `labelless curate` "
            "wrote (or a file of sample indices, one a line)"
        )
    indices, paths = [], []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        first, _, rest = text.partition("\t")
        if first.lstrip("-").isdigit():
            indices.append(int(first))
            paths.append(rest.strip())
        else:
            indices.append(-1)
            paths.append(text)
        if indices[-1] < -1 or (indices[-1] == -1 and first.lstrip("-").isdigit()):
            raise DataError(f"{str(path)!r} line {number}: a negative sample index ({first})")
    if not indices:
        raise DataError(f"subset file {str(path)!r} lists no samples: it needs one index a line")
    return SubsetFile(path, np.asarray(indices, dtype=np.int64), paths)


def _by_path(subset: SubsetFile, dataset: Dataset, data: str) -> np.ndarray:
    """Indices of the listed paths among the dataset's files (an image folder's)."""
    files = dataset.meta.get(FILES_KEY)
    if files is None:
        raise DataError(
            f"{str(subset.path)!r} lists file paths but {data!r} is not an image folder: "
            "list sample indices instead (what `labelless curate` writes for it)"
        )
    position = {name: i for i, name in enumerate(np.asarray(files).tolist())}
    listed = [name for name in subset.paths if name]
    missing = [name for name in listed if name not in position]
    if missing:
        root = Path(str(dataset.meta.get("source", data)))
        absent = [name for name in missing if not (root / name).is_file()]
        what = "missing from" if absent else "not decodable in"
        raise DataError(
            f"{str(subset.path)!r} lists {len(missing)} path(s) {what} {data!r}, e.g. "
            f"{missing[0]!r}: run `labelless curate` again on the folder as it is now"
        )
    found = subset.indices.copy()
    rows = [i for i, name in enumerate(subset.paths) if name]
    found[rows] = [position[name] for name in listed]
    return found


def apply_subset(dataset: Dataset, subset_path: str | Path, data: str) -> Dataset:
    """The samples of ``dataset`` that the subset file lists (in the file's order, duplicates
    removed); an index past the end, or a path not in the folder, is a DataError."""
    subset = read_subset(subset_path)
    indices = subset.indices
    if any(subset.paths):
        indices = _by_path(subset, dataset, data)
    outside = indices[indices >= len(dataset)]
    if len(outside):
        raise DataError(
            f"{str(subset.path)!r} lists sample {int(outside[0])} but {data!r} has "
            f"{len(dataset)} training samples: the subset was made for other data; run "
            f"`labelless curate {data} ...` to make one for it"
        )
    _, first = np.unique(indices, return_index=True)
    return dataset.subset(indices[np.sort(first)])
