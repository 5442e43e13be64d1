"""The run directory's rules: user folders are never written or deleted, stubs are recognised,
one process at a time, resume checks, atomic files with ordinary permissions."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import torch

from labelless.atomic import write_text_atomic
from labelless.errors import CheckpointError, ConfigError
from labelless.rundir import (
    LOCK,
    MARKER,
    RunDir,
    check_checkpoint_fits,
    inspect_folder,
    read_checkpoint,
    resume_differences,
)

from ..helpers import snapshot


@pytest.fixture
def documents(tmp_path) -> Path:
    folder = tmp_path / "documents"
    (folder / "taxes").mkdir(parents=True)
    (folder / "letter.txt").write_text("dear user")
    (folder / "taxes" / "2025.csv").write_text("a,b\n1,2\n")
    return folder


def make_stub(path: Path) -> Path:
    """What a run killed before its first checkpoint leaves: marker, config, empty checkpoints."""
    (path / "checkpoints").mkdir(parents=True)
    (path / MARKER).write_text("{}")
    (path / "config.yaml").write_text("seed: 0\n")
    return path


def make_run(path: Path) -> Path:
    make_stub(path)
    (path / "checkpoints" / "last.ckpt").write_bytes(b"x")
    return path


def test_overwrite_never_touches_a_folder_that_is_not_a_run(documents):
    before = snapshot(documents.parent)
    for overwrite in (False, True):
        with pytest.raises(ConfigError, match=r"not a labelless run.*never writes into or deletes"):
            RunDir.plan(documents, overwrite=overwrite)
    assert snapshot(documents.parent) == before


@pytest.mark.parametrize("overwrite", [False, True])
def test_the_data_folder_the_working_directory_and_its_parents_are_refused(
    tmp_path, monkeypatch, overwrite
):
    data = make_run(tmp_path / "data" / "images")  # even a folder that looks like a run
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    before = snapshot(tmp_path)
    with pytest.raises(ConfigError, match="training data"):
        RunDir.plan(data, overwrite=overwrite, data_paths=(data,))
    with pytest.raises(ConfigError, match=r"holds\) the training data"):
        RunDir.plan(tmp_path / "data", overwrite=overwrite, data_paths=(data,))
    with pytest.raises(ConfigError, match="inside the data folder"):
        RunDir.plan(data / "run", overwrite=overwrite, data_paths=(data,))
    for path in (".", "..", str(tmp_path)):
        with pytest.raises(ConfigError, match="working directory or one of its parents"):
            RunDir.plan(path, overwrite=overwrite)
    assert snapshot(tmp_path) == before


def test_unwritable_and_impossible_paths_are_config_errors(tmp_path):
    regular = tmp_path / "notes.txt"
    regular.write_text("x")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        RunDir.plan(regular)
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        RunDir.plan(regular / "run")
    with pytest.raises(ConfigError, match="not writable"):
        RunDir.plan("/proc/labelless-run")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_stub_is_replaced_without_overwrite_and_cannot_be_resumed(tmp_path):
    stub = make_stub(tmp_path / "run")
    assert inspect_folder(stub).kind == "stub"
    with pytest.raises(CheckpointError, match="stopped before its first checkpoint"):
        RunDir.plan(stub, resume=True)
    run = RunDir.plan(stub)
    assert run.action == "replace"
    with run.open():
        assert not (stub / "config.yaml").exists()  # the stub's files are gone
        assert (stub / MARKER).is_file() and (stub / "checkpoints").is_dir()


def test_a_finished_run_needs_resume_or_overwrite(tmp_path):
    run_dir = make_run(tmp_path / "run")
    with pytest.raises(ConfigError, match="already holds a labelless run: pass --resume"):
        RunDir.plan(run_dir)
    assert RunDir.plan(run_dir, resume=True).action == "resume"
    replaced = RunDir.plan(run_dir, overwrite=True)
    with replaced.open():
        assert not (run_dir / "checkpoints" / "last.ckpt").exists()


def test_an_empty_folder_is_adopted_and_a_missing_one_created(tmp_path):
    (tmp_path / "empty").mkdir()
    assert RunDir.plan(tmp_path / "empty").action == "adopt"
    run = RunDir.plan(tmp_path / "a" / "b")
    assert run.action == "create" and not (tmp_path / "a").exists()  # planning writes nothing
    with run.open():
        assert (tmp_path / "a" / "b" / MARKER).is_file()


def test_one_process_at_a_time_and_stale_locks_are_free(tmp_path):
    run_dir = make_run(tmp_path / "run")
    holder = RunDir.plan(run_dir, resume=True).open()
    try:
        with pytest.raises(
            ConfigError, match=rf"in use by another labelless process .*pid {os.getpid()}"
        ):
            RunDir.plan(run_dir, resume=True)
        with pytest.raises(ConfigError, match="in use"):
            RunDir(run_dir, action="resume").open()
    finally:
        holder.close()
    # a lock file left by a dead process (its flock died with it) does not block
    (run_dir / LOCK).write_text("pid 999999 on elsewhere\n")
    with RunDir.plan(run_dir, resume=True).open():
        pass


def test_atomic_files_get_ordinary_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = write_text_atomic(tmp_path / "config.yaml", "a: 1\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["config.yaml"]  # no temporary left


def test_resume_differences_name_each_changed_setting():
    base = {"data": {"name": "digits"}, "method": {"name": "simclr"}, "trainer": {"max_epochs": 2}}
    new = {"data": {"name": "cifar10"}, "method": {"name": "simclr"}, "trainer": {"max_epochs": 9}}
    assert resume_differences(base, new) == ["data.name ('digits' -> 'cifar10')"]
    new["monitor"] = {"every_n_epochs": 1}
    assert len(resume_differences(base, new)) == 1  # monitors may change on resume


def test_truncated_and_foreign_checkpoints_are_checkpoint_errors(tmp_path):
    model = torch.nn.Linear(3, 2)
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": model.state_dict(), "global_step": 4}, path)
    check_checkpoint_fits(path, read_checkpoint(path), model)
    with pytest.raises(CheckpointError, match="holds a different model"):
        check_checkpoint_fits(path, read_checkpoint(path), torch.nn.Linear(3, 4))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=r"not a readable checkpoint.*left as it was"):
        read_checkpoint(path)
    torch.save({"weights": 1}, path)
    with pytest.raises(CheckpointError, match="not a labelless run checkpoint"):
        read_checkpoint(path)
