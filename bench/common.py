"""What every benchmark result line records about the machine and the code."""

from __future__ import annotations

import datetime
import json
import os
import platform
import resource
import subprocess
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def peak_rss_mb(children: bool = False) -> float:
    """Peak resident memory in MiB of this process (and, if asked, of its finished children)."""
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss / 1024.0


def environment() -> dict:
    return {
        "commit": git_commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


def matmul_ceiling_gflops(size: int = 2048, repeats: int = 10) -> float:
    """Float32 ``size x size`` matmul throughput on the current threads: the best of ``repeats``
    (GFLOP/s). The best, not the median, because the ceiling is what the hardware can reach; a
    busy moment only lowers a sample."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b  # warm-up
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        rates.append(2 * size**3 / (time.perf_counter() - start) / 1e9)
    return max(rates)


def append_result(track: str, record: dict) -> Path:
    """Append one JSON line to ``bench/results/<track>.jsonl``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{track}.jsonl"
    with path.open("a") as handle:
        handle.write(json.dumps(record, default=float) + "\n")
    return path


def data_available() -> bool:
    root = os.environ.get("LABELLESS_DATA")
    return bool(root) and Path(root, "cifar10_jpeg", "cifar10_jpeg.npz").is_file()


def set_view_grouping(method, group: bool | None) -> None:
    """Make ``method``'s ``forward_grouped`` (``labelless.methods.base``) group same-size views
    (``True``), call the backbone once per view (``False``) or follow the device (``None``, the
    library's default). A method that does not use ``forward_grouped`` is left alone."""
    import functools
    import importlib

    from labelless.methods.base import forward_grouped

    module = importlib.import_module(type(method).__module__)
    if hasattr(module, "forward_grouped"):
        module.forward_grouped = functools.partial(forward_grouped, group=group)
