"""One run lifecycle for every run kind (``pretrain``, ``semi``, and later ones).

plan (checks only) -> build (model, loader, trainer) -> begin (validate the checkpoint, then lock
and write the run directory) -> fit (interrupts become a resume hint, exit 130) -> finish.

Only global rank 0 plans, opens and writes the run directory; the other processes of a
multi-process run (started by Lightning's launcher or torchrun) build the same model, meet
rank 0 in the process group and read the checkpoint it names. Nothing in a run directory changes
before ``begin``, which runs after every input was validated and the checkpoint was read.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labelless.atomic import write_text_atomic
from labelless.config import flags_to_keys, layered, load_yaml, resolve
from labelless.errors import CheckpointError, ConfigError, LabellessError, TrainingError
from labelless.rundir import (
    RunDir,
    check_checkpoint_fits,
    check_resume_config,
    check_run_kind,
    is_global_zero,
    read_checkpoint,
    run_kind,
)
from labelless.runfiles import RunFiles


@dataclass(frozen=True)
class RunKind:
    """A kind of run (``pretrain``, ``semi``, ...): its command, its config schema, the flags
    it takes (name -> dotted key), its default run directory and what ``--init RUN_DIR``
    carries from that run's config (section -> the key that, set to another value, drops it)."""

    command: str
    schema: type
    flag_keys: dict[str, str]
    default_out: Callable[[Any], str]
    init_carries: dict[str, str] = field(default_factory=dict)


# Never carried by --init: where the earlier run started from, and the view side (the new data's).
NOT_CARRIED = {"backbone": ("init", "weights"), "views": ("size",)}


def resolve_run_config(
    kind: RunKind, config: Any, overrides: list[str] | None, resume: bool, flags: dict[str, Any]
) -> Any:
    """The run's config, for every run kind the same way (``config.resolve``): defaults <
    what ``--init RUN_DIR`` carries (``carried_by_init``) < ``config`` < ``overrides`` <
    ``flags``. With ``resume`` the run's own ``config.yaml`` is the base (``config`` is
    refused) and every flag that would change the run is listed (``rundir.check_resume_config``)."""
    keys = flags_to_keys(flags, kind.flag_keys)
    if not resume:
        run_config = resolve(kind.schema, config, overrides, keys)
        init = getattr(getattr(run_config, "backbone", None), "init", None)
        carried = carried_by_init(kind, init, layered(config, overrides, keys))
        if carried:
            run_config = resolve(kind.schema, config, overrides, keys, base=carried)
    else:
        if config is not None:
            raise ConfigError("--resume continues a run with its own config.yaml: drop --config")
        out = keys.get("out")
        if not out:
            raise ConfigError("--resume needs --out RUN_DIR naming the run to continue")
        check_run_kind(out, kind.command)
        path = RunDir(Path(out)).config_file
        if not path.is_file():
            raise CheckpointError(
                f"cannot resume: {str(path)!r} is missing; is {out!r} a run directory?"
            )
        base = load_yaml(path)
        run_config = resolve(kind.schema, None, overrides, keys, base=base)
        original = resolve(kind.schema, None, None, {}, base=base)
        check_resume_config(
            Path(out), original.model_dump(mode="json"), run_config.model_dump(mode="json")
        )
    if run_config.out is None:
        run_config.out = kind.default_out(run_config)
    return run_config


def carried_by_init(kind: RunKind, init: str | None, given: dict[str, Any]) -> dict[str, Any]:
    """What ``--init SOURCE`` carries into a new run's config, below ``--config``, ``--set`` and
    the flags (``given``, what they set): from a run directory of the same kind, the sections
    ``kind.init_carries`` of its ``config.yaml`` (pretrain: the method and its kwargs, the
    backbone, the views but their size, the optimiser); from another kind of run or an encoder
    file or folder, the backbone (``encoder.json``: architecture and options). Never the data,
    the output folder, the training length or the seed. A section whose key ``given`` sets to
    another value is left out: ``--method byol`` takes no SimCLR recipe."""
    if not init or not kind.init_carries:
        return {}
    path = Path(init)
    files = RunFiles(path)
    if path.is_dir() and files.config_file.is_file():
        theirs = load_yaml(files.config_file)
        sections = kind.init_carries if run_kind(path) == kind.command else ["backbone"]
    else:
        theirs, sections = _encoder_architecture(path), ["backbone"]
    carried: dict[str, Any] = {}
    for section in sections:
        values, key = theirs.get(section), kind.init_carries.get(section)
        if not isinstance(values, dict) or key is None:
            continue
        chosen, own = _dotted(given, key), _dotted(theirs, key)
        if chosen is not None and chosen != own:
            continue
        dropped = NOT_CARRIED.get(section, ())
        carried[section] = {name: value for name, value in values.items() if name not in dropped}
    return carried


def _dotted(data: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        data = data.get(part) if isinstance(data, dict) else None
    return data


def _encoder_architecture(path: Path) -> dict[str, Any]:
    """``{"backbone": {name, width, kwargs}}`` from the ``encoder.json`` of an encoder file or
    folder; {} when there is none (``start_from_encoder`` then names the problem)."""
    meta_file = RunFiles(path if path.is_dir() else path.parent).encoder_meta
    try:
        meta = json.loads(meta_file.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(meta, dict) or not isinstance(meta.get("architecture"), str):
        return {}
    options = dict(meta.get("kwargs") or {})
    backbone = {"name": meta["architecture"], "kwargs": options}
    if "width" in options:
        backbone["width"] = options.pop("width")
    return {"backbone": backbone}


class RunInterrupted(LabellessError):
    """The user stopped the run (Ctrl-C); the message says how to continue it."""

    exit_code = 130
    prefix = "interrupted"


@dataclass
class RunSession:
    """A run being started in ``run.path``; ``primary`` is global rank 0."""

    run: RunDir
    command: str
    resume: bool
    primary: bool = field(default_factory=is_global_zero)
    checkpoint_step: int | None = None
    callbacks: list = field(default_factory=list)  # run_callbacks: [checkpoint, rank agreement]
    trackers: list[str] = field(default_factory=list)  # experiment loggers beside the CSV log
    owns_process_group: bool = False  # the process group was made by this run's fit

    @property
    def path(self) -> Path:
        return self.run.path


def plan_run(config: Any, *, command: str, resume: bool, overwrite: bool, in_memory: bool):
    """Check the launch (``check_launch``), the experiment loggers asked for (installed:
    ``train.loggers.check_loggers``) and ``config.out`` for the run (rank 0: ``RunDir.plan``;
    other ranks: nothing) without touching it. The data named in ``config.data`` (unless
    ``in_memory``) is protected from being the run directory."""
    from labelless.train.loggers import check_loggers

    check_launch(config.trainer)
    trackers = check_loggers(config.trainer.loggers)
    from labelless.data.stream import is_stream, local_folder

    named = () if in_memory else (config.data.name, config.data.eval)
    named = tuple(local_folder(name) if is_stream(name) else name for name in named)
    paths = tuple(Path(path) for path in named if path and Path(path).exists())
    primary = is_global_zero()
    out = config.out
    run = (
        RunDir.plan(out, kind=command, resume=resume, overwrite=overwrite, data_paths=paths)
        if primary
        else RunDir(Path(out), kind=command, action="resume" if resume else "create")
    )
    return RunSession(run, command, resume, primary, trackers=trackers)


def begin(
    session: RunSession,
    module: Any,
    config_yaml: str,
    *,
    trainer: Any = None,
    batch_size: int | None = None,
) -> str | None:
    """Validate the checkpoint to resume from (readable, same model; with ``trainer`` and
    ``batch_size``, the same global batch: ``check_step_shape``), then on rank 0 lock and
    open the run directory, write ``config.yaml`` and drop log rows past the checkpoint.
    Returns the checkpoint path for ``Trainer.fit`` (None for a new run)."""
    from labelless.train.logs import truncate_log

    run = session.run
    check = getattr(module, "check_start", None)  # what needs the trainer (fsdp2's model)
    if check is not None and trainer is not None:
        check(trainer, run.last_checkpoint if session.resume else None)
    if session.resume:
        checkpoint = read_checkpoint(run.last_checkpoint)
        check_checkpoint_fits(run.last_checkpoint, checkpoint, module)
        processes = _expected_world_size(trainer) if trainer is not None else None
        if processes is not None and batch_size is not None:
            check_step_shape(checkpoint.get("step_shape"), processes, batch_size)
        session.checkpoint_step = int(checkpoint.get("global_step", 0))
        del checkpoint
    if session.primary:
        run.open()
        write_text_atomic(run.config_file, config_yaml)
        if session.resume:
            truncate_log(run.metrics_csv, session.checkpoint_step or 0)
    return str(run.last_checkpoint) if session.resume else None


def check_step_shape(saved: dict | None, processes: int, batch_size: int) -> None:
    """A resume may run on another number of processes (``--devices``, ``--num-nodes``) only at
    the same global batch: the loader's step ``s`` reads rows ``s*W*B ..`` of each epoch's order
    (``train.loader.EpochLoader``), so with ``W*B`` kept the resumed run reads exactly the rows
    the uninterrupted run would have read, and with it changed it would repeat or skip some.
    ``saved``: the checkpoint's ``step_shape`` (absent in checkpoints of older versions)."""
    if not saved:
        return
    was_world, was_batch = int(saved["processes"]), int(saved["batch_size"])
    if was_world * was_batch == processes * batch_size:
        return
    total = was_world * was_batch
    fits = f"--batch-size {total // processes}" if total % processes == 0 else None
    advice = (
        f"on {processes} process{'es' if processes > 1 else ''} use {fits}"
        if fits
        else f"choose --devices / --num-nodes and --batch-size whose product is {total}"
    )
    raise ConfigError(
        f"cannot resume: the run took {total} samples a step ({was_world} process"
        f"{'es' if was_world > 1 else ''} x --batch-size {was_batch}), this resume would take "
        f"{processes * batch_size} ({processes} x {batch_size}) and so repeat or skip samples; "
        f"keep the global batch: {advice}"
    )


def run_callbacks(session: RunSession, trainer_config: Any, batch_size: int | None = None) -> list:
    """The callbacks every run kind has: the atomic checkpoint (every N steps / minutes, epoch
    end, train end; it records the step's shape when given ``batch_size``, the rows per step
    and process) and the check that all processes end with the same weights."""
    from labelless.train.callbacks import AtomicLastCheckpoint, RankAgreement

    checkpoint = AtomicLastCheckpoint(
        session.run.checkpoints,
        every_n_steps=trainer_config.checkpoint_every_n_steps,
        every_minutes=trainer_config.checkpoint_every_minutes,
        batch_size=batch_size,
    )
    session.callbacks = [checkpoint, RankAgreement()]
    return session.callbacks


def check_launch(trainer_config: Any) -> None:
    """Several nodes need a launcher on each node (torchrun, SLURM, or MASTER_ADDR /
    NODE_RANK set by hand); without one the first process would wait for the others forever."""
    import os

    if trainer_config.num_nodes <= 1:
        return
    launched = any(
        name in os.environ
        for name in ("TORCHELASTIC_RUN_ID", "SLURM_NTASKS", "NODE_RANK", "GROUP_RANK", "RANK")
    )
    if not launched:
        raise ConfigError(
            f"--num-nodes {trainer_config.num_nodes} needs a launcher on every node: start the "
            "same command with torchrun (--nnodes, --node-rank, --master-addr) or under SLURM, "
            "or set MASTER_ADDR, MASTER_PORT and NODE_RANK on each node"
        )


def ranks_agree(session: RunSession) -> bool | None:
    """Whether every process ended with the same weights (None on one process)."""
    return session.callbacks[1].agree if session.callbacks else None


def fit(session: RunSession, trainer: Any, module: Any, loader: Any, ckpt_path: str | None):
    """``trainer.fit`` with the run's guarantees: a Ctrl-C ends with a ``RunInterrupted`` that
    says how to resume (Lightning turns it into ``sys.exit(1)``); a distributed set-up that
    came up with fewer processes than asked for is an error, never a silent single process.
    Rank 0 then says what ended training (``closing_line``). Lightning draws the training bar:
    the monitors' own progress bars are hidden meanwhile. Rank 0 adds the experiment loggers
    of ``session.trackers`` here, once the run directory is open: some (MLflow's store) write
    when they are made."""
    from labelless.progress import hidden, note

    if session.primary and session.trackers:
        from labelless.train.loggers import build_trackers

        trainer.loggers = [*trainer.loggers, *build_trackers(session.trackers, session.path)]
    import torch.distributed as dist

    existed = dist.is_available() and dist.is_initialized()
    try:
        with hidden():
            trainer.fit(module, loader, ckpt_path=ckpt_path, weights_only=True)
        session.owns_process_group = not existed and dist.is_available() and dist.is_initialized()
    except (SystemExit, KeyboardInterrupt):
        if not getattr(trainer, "interrupted", False):
            raise
        raise RunInterrupted(_resume_hint(session, trainer)) from None
    expected = _expected_world_size(trainer)
    if expected is not None and trainer.world_size != expected:
        raise TrainingError(
            f"asked for {expected} processes but training ran in {trainer.world_size}: check "
            "--devices / --num-nodes and the launcher's environment (torchrun, MASTER_ADDR)"
        )
    if session.primary:
        note(closing_line(trainer, module))


def _expected_world_size(trainer: Any) -> int | None:
    devices = trainer.num_devices
    return devices * trainer.num_nodes if isinstance(devices, int) else None


def _resume_hint(session: RunSession, trainer: Any) -> str:
    saved = session.callbacks[0].saved_step if session.callbacks else None
    epoch = f"epoch {trainer.current_epoch + 1} of {trainer.max_epochs}"
    stopped = f"stopped at step {trainer.global_step} ({epoch})"
    if saved is None and not session.run.last_checkpoint.exists():  # a file or a folder
        return (
            f"{stopped}; no checkpoint was written yet; continue with: the same command again "
            f"(the unfinished start in {session.path} is replaced)"
        )
    state = f"from step {saved}" if saved is not None else "the one it resumed from"
    command = f"labelless {session.command} --out {session.path} --resume"
    return f"{stopped}; its last checkpoint is {state}; continue with: {command}"


def stop_reason(module: Any, trainer: Any, max_epochs: int) -> str:
    """Why training ended: ``max_epochs``, ``time budget`` or ``early stop``."""
    clock = getattr(module, "clock", None)
    if clock is not None and getattr(clock, "ended_by", None) == "budget":
        return "time budget"
    if trainer.current_epoch >= max_epochs:
        return "max_epochs"
    return "early stop"


def closing_line(trainer: Any, module: Any) -> str:
    """What ended training, said as it ends (before the final evaluation): the time budget, an
    early stop (the first callback whose ``describe_stop()`` says why) or the last epoch, with
    the steps, the epoch and the training seconds."""
    clock = getattr(module, "clock", None)
    steps, epoch, epochs = int(trainer.global_step), int(trainer.current_epoch), trainer.max_epochs
    seconds = f", {clock.elapsed():.1f} s" if clock is not None else ""
    where = f"after {steps} steps (epoch {epoch} of {epochs}{seconds})"
    budget = getattr(clock, "budget_seconds", None)
    after = "the final evaluation follows" + (", outside the budget" if budget else "")
    reason = stop_reason(module, trainer, epochs)
    if reason == "time budget" and clock.progress >= 1.0:
        return (
            f"stopped: the {budget:g} s budget was spent {where}; the schedules were fitted to "
            f"it, so the run ended annealed; {after}"
        )
    if reason == "time budget":  # a step took far longer than forecast
        return (
            f"stopped: the {budget:g} s budget ran out {where}, before the schedules reached "
            f"their end (progress {clock.progress:.2f}): a step took longer than the budget "
            f"left; {after}"
        )
    if reason == "early stop":
        said = (getattr(c, "describe_stop", lambda: None)() for c in trainer.callbacks)
        why = next((text for text in said if text), "a callback stopped training")
        return f"stopped early: {why}, {where}; {after}"
    plural = "" if epoch == 1 else "s"
    return f"trained {epoch} epoch{plural} ({steps} steps{seconds}); {after}"


def finish(session: RunSession) -> None:
    """Release the run directory's lock (rank 0), and end the process group that this run's
    training made (Lightning's strategy, never one the caller made): left to the interpreter's
    exit, gloo's threads can abort a process ("terminate called without an active
    exception") after its work is done, which torchrun reports as a failed run."""
    session.run.close()
    if session.owns_process_group:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
        session.owns_process_group = False


def training_record(
    session: RunSession, trainer: Any, module: Any, throughput: Any, config: Any, skipped: int
) -> dict[str, Any]:
    """The ``training`` record of ``metrics.json``, the same for every run kind (a kind adds its
    own keys to it): how far training went, how fast, why it stopped, on how many processes."""
    return {
        "epochs_done": int(trainer.current_epoch),
        "steps": int(trainer.global_step),
        "steps_this_session": throughput.steps,
        "wall_seconds": round(throughput.seconds, 2),
        "samples_per_second": round(throughput.samples_per_second, 1),
        "skipped_samples": max(int(skipped), throughput.skipped),
        "final_not_best": True,
        "stopped_by": stop_reason(module, trainer, config.trainer.max_epochs),
        "world_size": int(trainer.world_size),
        "ranks_agree": ranks_agree(session),
        "resumed_from_step": session.checkpoint_step,
        "schedule": {
            "name": config.optim.schedule,
            **(module.clock.summary() if module.clock is not None else {}),
        },
        "init": config.backbone.init,
        "lr": module.lr_record() if hasattr(module, "lr_record") else None,
    }


def write_metrics(session: RunSession, metrics: dict[str, Any]) -> None:
    """The run's ``metrics.json`` (rank 0, atomic)."""
    write_text_atomic(session.run.metrics_json, json.dumps(metrics, indent=2, default=float))


def previous_metrics(session: RunSession) -> dict[str, Any]:
    """The ``metrics.json`` a resumed run wrote before ({} when none)."""
    path = session.run.metrics_json
    return json.loads(path.read_text()) if session.resume and path.is_file() else {}
