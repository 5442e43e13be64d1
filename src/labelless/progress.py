"""Progress bars on stderr for the work outside training that takes more than a few seconds:
embedding, kNN, the linear probe, few-shot draws, k-means, pruning levels, fine-tuning epochs,
run selection.

Off unless asked: the ``labelless`` command turns it on (``shown()`` around every command), so
library users and tests stay quiet; ``with labelless.progress.shown(): ...`` turns it on in
Python. While it is off, ``task(...)`` hands out a handle whose methods do nothing, so the
library calls it unconditionally; callers advance it per batch, per fit, per draw or per level,
never per sample. During training Lightning draws its own bar, and ``hidden()`` (around
``Trainer.fit``) keeps the monitors' embeddings from drawing a second one.

The look is that of training's bar (Lightning's ``RichProgressBar``, also on stderr):
description, bar, ``done/total``, ``elapsed • remaining`` and speed. Nested tasks (the embedding
inside one pruning level) show under the outer one while they run and disappear when done; an
outer task's finished line stays on screen. On a stream that is not a terminal (a log file,
a captured stream) each outer task prints its finished line once, at its end.

Not to be confused with ``labelless.train.progress``, the run clock (progress in [0, 1] of a
training run's schedules).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

_shown = False
_hidden = 0
_display: Any = None  # the rich Progress of the outermost running task

BAR_STYLE = "#6206E0"  # Lightning's RichProgressBarTheme, so both bars look the same


class Task:
    """A running progress line: ``advance(amount)`` and ``update(completed=, total=,
    description=)``; the silent one (progress off) ignores both."""

    def __init__(self, display: Any = None, task_id: Any = None) -> None:
        self._display, self._id = display, task_id

    def advance(self, amount: float = 1.0) -> None:
        if self._display is not None:
            self._display.update(self._id, advance=amount)

    def update(self, **changes: Any) -> None:
        if self._display is not None:
            self._display.update(self._id, **changes)


SILENT = Task()


def is_shown() -> bool:
    """Whether ``task`` draws anything now."""
    return _shown and not _hidden


@contextlib.contextmanager
def shown(on: bool = True) -> Iterator[None]:
    """Progress bars on (or off) inside the block; the previous setting comes back after it."""
    global _shown
    before, _shown = _shown, on
    try:
        yield
    finally:
        _shown = before


@contextlib.contextmanager
def hidden() -> Iterator[None]:
    """No progress bars inside the block (training, whose bar is Lightning's)."""
    global _hidden
    _hidden += 1
    try:
        yield
    finally:
        _hidden -= 1


@contextlib.contextmanager
def task(description: str, total: float | None = None) -> Iterator[Task]:
    """A progress line for the block: ``total`` steps (batches, fits, draws, levels; None for
    work that cannot be counted, drawn as a pulsing bar). Yields a ``Task`` to advance."""
    global _display
    if not is_shown():
        yield SILENT
        return
    outer = _display is None
    if outer:
        _display = _new_display()
        _display.start()
    display = _display
    task_id = display.add_task(description, total=total, counted=total is not None)
    finished = False
    try:
        yield Task(display, task_id)
        finished = True
    finally:
        if finished:
            _complete(display, task_id)
        if not outer:
            display.remove_task(task_id)
        else:
            _display = None
            if finished:
                display.stop()
            else:  # a failed task leaves no line: the error's own line is the first to read
                display.live.transient = True
                display.live.stop()


def _complete(display: Any, task_id: Any) -> None:
    """The bar full at the end, whatever the count reached (an L-BFGS fit that converged early,
    a pulsing task)."""
    current = next(item for item in display.tasks if item.id == task_id)
    total = current.total if current.total is not None else 1.0
    display.update(task_id, total=total, completed=total)


def _new_display() -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, ProgressColumn, TextColumn
    from rich.text import Text

    class Count(ProgressColumn):
        def render(self, task) -> Text:
            if not task.fields.get("counted"):
                return Text("")
            return Text(f"{int(task.completed)}/{int(task.total)}")

    class Times(ProgressColumn):
        max_refresh = 0.5

        def render(self, task) -> Text:
            elapsed = _clock(task.finished_time if task.finished else task.elapsed)
            if not task.fields.get("counted"):  # no count, no time left to forecast
                return Text(elapsed, style="dim")
            return Text(f"{elapsed} • {_clock(task.time_remaining)}", style="dim")

    class Speed(ProgressColumn):
        def render(self, task) -> Text:
            speed = task.finished_speed or task.speed
            if speed is None or not task.fields.get("counted"):  # one step: no rate yet
                return Text("")
            return Text(f"{speed:.2f}it/s", style="dim underline")

    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(complete_style=BAR_STYLE, finished_style=BAR_STYLE, pulse_style=BAR_STYLE),
        Count(),
        Times(),
        Speed(),
        console=Console(stderr=True),
        refresh_per_second=4,
    )


def _clock(seconds: float | None) -> str:
    return "-:--:--" if seconds is None else str(timedelta(seconds=int(seconds)))


def note(text: str) -> None:
    """One line on stderr beside the progress bars (printed whether bars are shown or not)."""
    from rich.console import Console

    Console(stderr=True).print(text, highlight=False, soft_wrap=True)
