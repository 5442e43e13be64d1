"""The run directory: what a labelless run owns on disk, and the rules that keep user files safe.

Every run kind (``pretrain``, ``semi``, and later ones) goes through one ``RunDir``:

- ``RunDir.plan(path, ...)`` decides what starting the run will do (create, adopt an empty
  folder, replace a stub or, with ``--overwrite``, a finished run, or resume) and raises a
  ``labelless.errors`` exception for anything unsafe, *without changing anything on disk*:
  a folder that is not a labelless run (no marker file) is never written into or deleted; the
  data folder, the working directory and its parents are never run directories; the path must
  be creatable and writable.
- ``RunDir.open()`` (global rank 0 only, after the inputs and the checkpoint were validated)
  takes an exclusive lock on the folder for the life of the run, then applies the plan and
  writes the marker. Other processes of a multi-process run never touch the folder.
- Every file in it is replaced atomically with ordinary permissions (``labelless.atomic``).

A *stub* is a run that stopped before its first checkpoint (a failed start, kill -9 or out of
memory in epoch 1): marker present, no checkpoint, no final metrics, not locked. Starting the
run again replaces it without ``--overwrite``.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labelless.atomic import check_can_create, default_file_mode, write_text_atomic
from labelless.errors import CheckpointError, ConfigError
from labelless.runfiles import LOCK, MARKER, RunFiles

FORMAT = "labelless-run/1"

# Settings a resumed run may change; every other key must equal the run's config.yaml.
RESUMABLE_KEYS = (
    "trainer.max_epochs",
    "trainer.max_time",
    "trainer.accelerator",
    "trainer.devices",
    "trainer.strategy",
    "trainer.num_nodes",
    "trainer.threads",
    "trainer.progress_bar",
    "trainer.checkpoint_every_n_steps",
    "trainer.checkpoint_every_minutes",
    "optim.batch_size",  # kept x processes: lifecycle.check_step_shape reads the checkpoint
    "monitor.",
    "data.workers",
    "report",
    "out",
)


def is_global_zero() -> bool:
    """Whether this process is global rank 0, read from the launcher's environment before any
    process group exists: ``RANK`` (torchrun), ``SLURM_PROCID`` (tasks started by ``srun``,
    which Lightning's SLURM environment reads; not in an interactive ``bash`` job), else
    ``NODE_RANK`` / ``GROUP_RANK`` and ``LOCAL_RANK`` (Lightning's own launcher starts ranks
    > 0 with them)."""
    if "RANK" in os.environ:
        return int(os.environ["RANK"]) == 0
    interactive = os.environ.get("SLURM_JOB_NAME") in ("bash", "interactive")
    if "SLURM_NTASKS" in os.environ and "SLURM_PROCID" in os.environ and not interactive:
        return int(os.environ["SLURM_PROCID"]) == 0
    node = int(os.environ.get("NODE_RANK", os.environ.get("GROUP_RANK", "0")) or 0)
    local = int(os.environ.get("LOCAL_RANK", "0") or 0)
    return node == 0 and local == 0


@dataclass
class RunDir(RunFiles):
    """A labelless run directory and the plan for starting a run in it."""

    path: Path
    kind: str = "pretrain"
    action: str = "create"  # create | adopt | replace | resume
    _lock_fd: int | None = field(default=None, repr=False)

    # ---- planning: checks only, nothing on disk changes --------------------------------------
    @classmethod
    def plan(
        cls,
        path: str | Path,
        *,
        kind: str = "pretrain",
        resume: bool = False,
        overwrite: bool = False,
        data_paths: tuple[str | Path, ...] = (),
    ) -> RunDir:
        """Check that a run may start in ``path`` and decide how; raise a ConfigError (or a
        CheckpointError for resume) naming the problem and the fix otherwise."""
        run = cls(Path(path), kind=kind)
        where = repr(str(path))
        _check_not_precious(run.path, data_paths)
        _check_creatable(run.path)
        state = inspect_folder(run.path)
        if state.locked_by is not None:
            raise ConfigError(
                f"run directory {where} is in use by another labelless process "
                f"({state.locked_by}): wait for it to finish, or choose another --out"
            )
        if resume:
            run.action = "resume"
            if state.kind == "missing" or state.kind == "empty":
                raise CheckpointError(
                    f"cannot resume: {where} holds no run; start the run without --resume, or "
                    "point --out at the run to continue"
                )
            if state.kind == "foreign":
                raise CheckpointError(
                    f"cannot resume: {where} is not a labelless run directory (no {MARKER}); "
                    "point --out at a run directory"
                )
            if state.kind == "stub":
                raise CheckpointError(
                    f"cannot resume: the run in {where} stopped before its first checkpoint, so "
                    "there is nothing to continue; start it again without --resume (the "
                    "unfinished start is replaced)"
                )
            return run
        if state.kind == "missing":
            run.action = "create"
        elif state.kind == "empty":
            run.action = "adopt"
        elif state.kind == "foreign":
            raise ConfigError(
                f"--out {where} already exists and holds files that are not a labelless run "
                f"({state.example}); labelless never writes into or deletes such a folder, "
                "--overwrite included: choose a new or empty folder for --out"
            )
        elif state.kind == "stub" or overwrite:
            run.action = "replace"
        else:
            raise ConfigError(
                f"run directory {where} already holds a labelless run: pass --resume to "
                "continue it, --overwrite to replace it, or choose another --out"
            )
        return run

    # ---- opening: rank 0 only ----------------------------------------------------------------
    def open(self) -> RunDir:
        """Lock the folder for this process and apply the plan (create the folder, clear a
        replaced run, write the marker). Call after the inputs and checkpoint were validated."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ConfigError(
                f"cannot create the run directory {str(self.path)!r} "
                f"({error.strerror or error}): choose a folder you can write to"
            ) from None
        self._lock()
        try:
            state = inspect_folder(self.path, ignore_lock=True)
            expected = {
                "create": ("empty",),
                "adopt": ("empty",),
                "replace": ("stub", "run"),
                "resume": ("run",),
            }[self.action]
            if state.kind not in expected:  # another process changed it since plan()
                raise ConfigError(
                    f"run directory {str(self.path)!r} changed while this run was starting; "
                    "check what else writes there and start again"
                )
            if self.action == "replace":
                for entry in self.path.iterdir():
                    if entry.name == LOCK:
                        continue
                    if entry.is_dir() and not entry.is_symlink():
                        shutil.rmtree(entry)
                    else:
                        entry.unlink()
            if self.action != "resume" or not (self.path / MARKER).is_file():
                record = {"format": FORMAT, "kind": self.kind, "created": _now()}
                write_text_atomic(self.path / MARKER, json.dumps(record, indent=2) + "\n")
            self.checkpoints.mkdir(exist_ok=True)
        except BaseException:
            self.close()
            raise
        return self

    def _lock(self) -> None:
        fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, default_file_mode())
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _read_owner(self.path / LOCK)
            os.close(fd)
            raise ConfigError(
                f"run directory {str(self.path)!r} is in use by another labelless process "
                f"({owner}): wait for it to finish, or choose another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since {_now()}\n".encode())
        self._lock_fd = fd

    def close(self) -> None:
        """Release the lock (also released by the OS when the process dies)."""
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> RunDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class FolderState:
    kind: str  # missing | empty | foreign | stub | run
    locked_by: str | None = None
    example: str = ""


def is_run_directory(path: str | Path) -> bool:
    """A folder made by a labelless run: the marker, or (runs from before the marker) a
    ``config.yaml`` beside a checkpoints folder, an exported encoder or final metrics."""
    path = Path(path)
    if (path / MARKER).is_file():
        return True
    files = RunFiles(path)
    return files.config_file.is_file() and any(
        item.exists() for item in (files.checkpoints, files.encoder_meta, files.metrics_json)
    )


def inspect_folder(path: Path, *, ignore_lock: bool = False) -> FolderState:
    """What ``path`` holds, read-only: nothing, an empty folder, other files, a stub, a run."""
    if not path.exists():
        return FolderState("missing")
    entries = [entry for entry in path.iterdir() if entry.name != LOCK]
    locked = None if ignore_lock else _lock_owner(path / LOCK)
    if not entries:
        return FolderState("empty", locked)
    if not is_run_directory(path):
        names = sorted(entry.name for entry in entries)
        shown = ", ".join(repr(name) for name in names[:3]) + (", ..." if len(names) > 3 else "")
        return FolderState("foreign", locked, f"{len(names)} entries: {shown}")
    files = RunFiles(path)
    finished = files.last_checkpoint.exists() or files.metrics_json.is_file()
    return FolderState("run" if finished else "stub", locked)


def _lock_owner(lock: Path) -> str | None:
    """Who holds the lock on ``lock`` (its recorded pid), or None when nobody does: a lock
    left by a dead process is free, since the OS drops flock locks with their process."""
    if not lock.is_file():
        return None
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read_owner(lock)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _read_owner(lock: Path) -> str:
    try:
        return lock.read_text().strip() or "unknown process"
    except OSError:
        return "unknown process"


def _check_not_precious(path: Path, data_paths: tuple[str | Path, ...]) -> None:
    """The working directory, its parents, the home folder and the data never hold a run."""
    target = path.resolve()
    cwd = Path.cwd().resolve()
    if target == cwd or target in cwd.parents:
        raise ConfigError(
            f"--out {str(path)!r} is the working directory or one of its parents; a run "
            "directory must be a folder of its own: pass e.g. --out runs/NAME"
        )
    if target == Path.home().resolve():
        raise ConfigError(
            f"--out {str(path)!r} is the home folder; pass a folder of its own, e.g. runs/NAME"
        )
    for data in data_paths:
        if data is None or not Path(data).exists():
            continue
        source = Path(data).resolve()
        if target == source or target in source.parents:
            raise ConfigError(
                f"--out {str(path)!r} is (or holds) the training data {str(data)!r}; runs never "
                "write into their data: choose another --out"
            )
        if source.is_dir() and source in target.parents:
            raise ConfigError(
                f"--out {str(path)!r} is inside the data folder {str(data)!r}; its reports and "
                "figures would become part of the data: choose --out outside it"
            )


def _check_creatable(path: Path) -> None:
    """``path`` is a folder, or can become one, in a place this process may write to: read-only
    checks (nothing is created here); ``RunDir.open`` turns a refusal at creation into the
    same kind of error."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--out {str(path)!r} is a file, not a folder: choose a folder path")
    check_can_create(path, "--out")


def check_start_flags(resume: bool, overwrite: bool) -> None:
    """``--resume`` continues a run and ``--overwrite`` replaces it: never both."""
    if resume and overwrite:
        raise ConfigError(
            "--resume continues the run in --out and --overwrite replaces it: pass one of them"
        )


def run_kind(path: Path) -> str | None:
    """The run kind (``pretrain``, ``semi``, ...) that made ``path``: from the marker, else (runs
    from before the marker) from the sections of its ``config.yaml``; None if unknown."""
    marker = path / MARKER
    if marker.is_file():
        try:
            kind = json.loads(marker.read_text()).get("kind")
        except (OSError, ValueError, AttributeError):
            kind = None
        if isinstance(kind, str):
            return kind
    config = RunFiles(path).config_file
    if config.is_file():
        try:
            text = config.read_text()
        except OSError:
            return None
        return "semi" if "\nsemi:" in f"\n{text}" else "pretrain"
    return None


def check_run_kind(path: str | Path, command: str) -> None:
    """``labelless COMMAND --resume`` on a run another command made names the right command."""
    kind = run_kind(Path(path))
    if kind is not None and kind != command:
        raise ConfigError(
            f"{str(path)!r} is a {kind} run, not a {command} run: continue it with "
            f"`labelless {kind} --out {path} --resume`"
        )


def resume_differences(base: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Dotted keys whose values differ between the run's config (``base``) and the resumed
    config (``new``), except those a resumed run may change (``RESUMABLE_KEYS``)."""
    changed: list[str] = []

    def walk(a: Any, b: Any, prefix: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                walk(a.get(key), b.get(key), f"{prefix}{key}.")
            return
        key = prefix.rstrip(".")
        if a != b and not any(
            key in (allowed, allowed.rstrip("."))
            or (allowed.endswith(".") and key.startswith(allowed))
            for allowed in RESUMABLE_KEYS
        ):
            changed.append(f"{key} ({a!r} -> {b!r})")

    walk(base, new, "")
    return changed


def check_resume_config(run_dir: Path, base: dict[str, Any], new: dict[str, Any]) -> None:
    """A resumed run continues the run as configured: a flag that changes its data, method,
    model or optimisation is a ConfigError listing each difference."""
    changed = resume_differences(base, new)
    if changed:
        raise ConfigError(
            f"--resume continues {str(run_dir)!r} as its config.yaml says, but these settings "
            f"differ: {'; '.join(changed)}. Drop them to continue the run, or start a new run "
            "with another --out"
        )


def read_checkpoint(path: Path) -> dict[str, Any]:
    """Load a run checkpoint on the CPU (tensors only); a truncated or foreign file is a
    CheckpointError that leaves the run untouched. A sharded checkpoint (a folder, ``--strategy
    fsdp2``) gives its ``meta.pt`` (everything but weights and optimiser state) with a
    ``state_dict`` of meta-device tensors of the saved shapes, read from its index."""
    import torch

    try:
        if path.is_dir():
            return _read_sharded(path)
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises RuntimeError, EOFError, UnpicklingError, ...
        first = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
        raise CheckpointError(
            f"cannot resume: {str(path)!r} is not a readable checkpoint ({type(error).__name__}"
            f"{': ' + first if first else ''}); the run was left as it was: start it again "
            "with --overwrite, or restore the file"
        ) from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(
            f"cannot resume: {str(path)!r} is not a labelless run checkpoint (no state_dict); "
            "start the run again with --overwrite"
        )
    return checkpoint


def _read_sharded(path: Path) -> dict[str, Any]:
    """``meta.pt`` of Lightning's distributed checkpoint folder, and the names and full shapes
    of the model's tensors from the ``torch.distributed.checkpoint`` index (no shard is read)."""
    import torch
    from torch.distributed.checkpoint import FileSystemReader

    checkpoint = torch.load(path / "meta.pt", map_location="cpu", weights_only=True)
    index = FileSystemReader(str(path)).read_metadata().state_dict_metadata
    prefix = "state_dict."
    checkpoint["state_dict"] = {
        key[len(prefix) :]: torch.empty(item.size, device="meta")
        for key, item in index.items()
        if key.startswith(prefix) and hasattr(item, "size")
    }
    return checkpoint


def check_checkpoint_fits(path: Path, checkpoint: dict[str, Any], module: Any) -> None:
    """The checkpoint's weights have the names and shapes of ``module``'s, else the run's
    model was changed since it was written."""
    saved = checkpoint["state_dict"]
    expected = module.state_dict()
    missing = sorted(set(expected) - set(saved))
    unexpected = sorted(set(saved) - set(expected))
    reshaped = sorted(
        key
        for key in set(saved) & set(expected)
        if tuple(saved[key].shape) != tuple(expected[key].shape)
    )
    if missing or unexpected or reshaped:
        detail = (missing or unexpected or reshaped)[0]
        raise CheckpointError(
            f"cannot resume: {str(path)!r} holds a different model than this run builds "
            f"({len(missing)} missing, {len(unexpected)} unexpected, {len(reshaped)} reshaped "
            f"weights, e.g. {detail!r}); resume with the run's own settings, or start a new run"
        )


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
