"""Replacing files atomically with ordinary permissions: the one writer every output goes through.

A file is written to a temporary name in its own folder and renamed over the target, so a reader
(or a run killed half-way) never sees half a file. ``tempfile.mkstemp`` creates files readable by
their owner only; outputs are meant to be shared (teammates on a cluster read each other's runs),
so the file gets the mode an ordinary ``open(path, "w")`` would give: 0666 minus the umask.
A folder (a sharded checkpoint) cannot be renamed over a folder; ``move_into_place`` puts it in
place through a symbolic link instead. Importable from every layer.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def check_can_create(path: str | Path, flag: str = "--out") -> None:
    """``path`` (a file or folder to be written) can be created by this process: it is not below
    a regular file, not on a kernel pseudo file system (``/proc``, ``/sys``, ``/dev``, which
    root passes ``os.access`` on) and its nearest existing folder is writable. Read-only: nothing
    is created. A ConfigError naming ``flag`` otherwise."""
    from labelless.errors import ConfigError

    path = Path(path)
    ancestor = path
    while not ancestor.exists() and ancestor.parent != ancestor:
        ancestor = ancestor.parent
    if ancestor != path and not ancestor.is_dir():
        raise ConfigError(
            f"{flag} {str(path)!r} cannot be created: {str(ancestor)!r} is a file, not a folder; "
            f"choose another {flag}"
        )
    resolved = ancestor.resolve()
    pseudo = any(resolved == Path(root) or Path(root) in resolved.parents for root in _PSEUDO)
    if pseudo or not os.access(ancestor if ancestor.is_dir() else ancestor.parent, os.W_OK):
        raise ConfigError(
            f"{flag} {str(path)!r} is not writable (in {str(ancestor)!r}): choose a place you "
            "can write to"
        )


_PSEUDO = ("/proc", "/sys", "/dev")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def default_file_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file here: 0666 minus the process umask."""
    return 0o666 & ~_umask()


def write_atomic(path: str | Path, write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write(stream)`` on a temporary binary file beside ``path`` (flushed to disk), give
    it the ordinary mode, and rename it to ``path``; on any failure the temporary file is
    removed and ``path`` is left as it was. Creates the parent folder. Returns ``path``."""

    def through_stream(temporary: Path) -> None:
        with temporary.open("wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())

    return write_path_atomic(path, through_stream)


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Replace ``path`` with ``data`` atomically (see ``write_atomic``)."""
    return write_atomic(path, lambda stream: stream.write(data))


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Replace ``path`` with ``text`` (UTF-8) atomically (see ``write_atomic``)."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_path_atomic(path: str | Path, write: Callable[[Path], object]) -> Path:
    """For writers that take a file name (``safetensors.save_file``, ``torch.save``): call
    ``write(temp_path)`` then rename, with the ordinary mode."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write(Path(temporary))
        os.chmod(temporary, default_file_mode())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def move_into_place(source: str | Path, target: str | Path) -> Path:
    """Replace ``target`` with ``source``, a finished file or folder written beside it under a
    hidden name, so that ``target`` always names a complete one (a run killed at any moment
    leaves the old or the new, never a mix).

    A file gets the ordinary mode and is renamed over ``target``. A folder (a sharded checkpoint:
    one file per process and an index) cannot be renamed over a folder, so it is renamed to a
    hidden unique sibling ``.NAME.<id>`` and ``target`` becomes a relative symbolic link to it:
    the link is made beside ``target`` and renamed over it, which POSIX does atomically. Then
    the siblings ``.NAME.*`` that no longer serve (the folder linked before, leftovers of a
    killed write) are removed. Returns ``target``."""
    source, target = Path(source), Path(target)
    if not source.is_dir():
        os.chmod(source, default_file_mode())
        os.replace(source, target)
        _remove_stale_siblings(target)
        return target
    kept = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}")
    os.replace(source, kept)
    link = target.with_name(f".{target.name}.link")
    link.unlink(missing_ok=True)
    os.symlink(kept.name, link)
    if target.is_dir() and not target.is_symlink():  # a folder copied without its link
        os.replace(target, target.with_name(f".{target.name}.old"))
    os.replace(link, target)
    _remove_stale_siblings(target)
    return target


def _remove_stale_siblings(target: Path) -> None:
    """Remove ``.NAME.*`` beside ``target`` but the folder ``target`` links to."""
    current = os.readlink(target) if target.is_symlink() else None
    for entry in target.parent.glob(f".{target.name}.*"):
        if entry.name == current:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
