"""Helpers shared by several test folders (fixtures live in ``tests/conftest.py``; running the
command line lives in ``tests/e2e/cli.py``)."""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path

import torch


def gen(seed: int = 0) -> torch.Generator:
    """A CPU generator seeded with ``seed``."""
    return torch.Generator().manual_seed(seed)


def rand_images(n: int = 8, c: int = 3, h: int = 20, w: int = 24, seed: int = 0) -> torch.Tensor:
    """Float images ``[n, c, h, w]`` uniform in 0..1, the same for the same ``seed``."""
    return torch.rand(n, c, h, w, generator=gen(seed))


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under ``root`` (``root`` itself as ``"."``): mode bits, size, mtime and, for
    files, a hash of the bytes. Equal snapshots: nothing was written, rewritten, chmod-ed,
    created or removed (an entry created and removed again changes its folder's mtime)."""
    state = {}
    for folder, dirs, files in os.walk(root):
        for name in [".", *dirs, *files]:
            path = Path(folder, name)
            info = path.lstat()
            digest = None
            if path.is_file() and not path.is_symlink():
                digest = hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest()
            key = str(path.relative_to(root))
            state[key] = (info.st_mode, info.st_size, info.st_mtime_ns, digest)
    return state


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for a gloo / torchrun rendezvous)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
