"""Run progress in [0, 1]: the one clock that the learning-rate schedule, the EMA momentum and the
teacher temperature all read.

Without a time budget, progress is ``step / (total_steps - 1)``: 0 at the first step, 1 at the
last. With a budget of ``T`` seconds the total is not known in advance; it is re-estimated before
every step from the wall time left and a running measurement of the cost of one step, so that
the last step that fits in the budget runs at progress 1 (learning rate at its minimum, EMA
momentum at its end value) and the run stops after it. The forecast follows the "budgeted
training" idea of fitting the schedule to the resource rather than to an epoch count (Li, Yumer &
Ramanan 2020, "Budgeted Training: Rethinking Deep Neural Network Training Under Resource
Constraints").

Cost of one step = the median of recent batch-to-batch intervals inside an epoch (robust to the
slow first steps, which are skipped, and to stragglers) + the time spent between epochs (monitors,
checkpoints, loader restarts) spread over the steps taken so far. The end of the last epoch
(checkpoint, per-epoch monitors) comes after the last step: the forecast keeps back the median
cost of the epoch ends measured so far for it. Progress never goes backwards: it is the maximum
of the step-based and the budget-based values and of its previous value.

The budget holds to within one step: a step starts only while the budget is not spent. When a
step took far longer than forecast (the first, unmeasured one; a straggler), the budget can be
spent before the annealed last step; ``budget_spent`` then says the step about to start must not
run, and the run ends where it is (``progress`` below 1).
"""

from __future__ import annotations

import math
import statistics
import time
from collections import deque
from collections.abc import Callable
from typing import Any

#: Batch-to-batch intervals at the start of a session left out of the step-time estimate
#: (allocator and kernel warm-up, first data reads).
SKIP_INTERVALS = 3
#: Recent intervals whose median is the step time.
WINDOW = 64
#: The warm-up never takes more than this fraction of the (estimated) run.
MAX_WARMUP_FRACTION = 0.5


class RunClock:
    """Progress of a training run, fitted to ``total_steps`` and, if given, ``budget_seconds``.

    Call ``start()`` when training starts and ``advance(step, epoch_start=...)`` before every
    training step (``step`` = optimiser steps done so far); ``advance`` returns the progress of
    the step about to run. ``ramp`` is the learning-rate warm-up factor (linear over
    ``warmup_steps`` steps, capped at half the estimated run) and ``warmup_fraction`` the progress
    at which the warm-up ended; ``finished`` is true once progress reached 1: the caller stops
    training after that step. ``time_fn`` is injectable for tests.

    ``sync`` (optional, ``float -> float``) makes the forecast identical on every process of a
    distributed run: it receives this process's number of steps left in the budget and returns
    the minimum over processes, so that every process derives the same progress and warm-up.
    """

    def __init__(
        self,
        *,
        total_steps: float | None,
        budget_seconds: float | None = None,
        warmup_steps: float = 0.0,
        time_fn: Callable[[], float] = time.perf_counter,
    ) -> None:
        finite = total_steps is not None and math.isfinite(total_steps) and total_steps > 0
        self.total_steps = int(total_steps) if finite else None
        self.budget_seconds = float(budget_seconds) if budget_seconds else None
        self.warmup_steps = max(0.0, float(warmup_steps))
        self.time_fn = time_fn
        self.progress = 0.0
        self.ramp = 0.0 if self.warmup_steps > 0 else 1.0
        self.warmup_fraction: float | None = 0.0 if self.warmup_steps == 0 else None
        self.warmup_steps_used = 0
        self.estimated_total_steps: float | None = self.total_steps
        self.seconds_per_step: float | None = None
        self.overhead_per_step = 0.0
        self.ended_by: str | None = None
        self.budget_spent = False  # the budget ran out before the step about to start
        self.end_reserve = 0.0  # seconds kept back for the end of the last epoch
        self._elapsed_before = 0.0  # training seconds of earlier sessions (resume)
        self._session_start: float | None = None
        self._session_step = 0
        self._last_start: float | None = None
        self._intervals: deque[float] = deque(maxlen=WINDOW)
        self._measured = 0
        self._overhead = 0.0
        self._epoch_ends: deque[float] = deque(maxlen=WINDOW)

    # ----------------------------------------------------------------------------- measuring
    def start(self, step: int = 0) -> None:
        """Training (re)starts at optimiser step ``step``."""
        self._session_start = self.time_fn()
        self._session_step = step
        self._last_start = None

    def stop(self) -> None:
        """Training ended: freeze the elapsed time."""
        self._elapsed_before = self.elapsed()
        self._session_start = None

    def elapsed(self) -> float:
        """Training seconds so far, earlier sessions included."""
        if self._session_start is None:
            return self._elapsed_before
        return self._elapsed_before + self.time_fn() - self._session_start

    def _record(self, now: float, epoch_start: bool) -> None:
        if self._last_start is None:
            self._last_start = now
            return
        interval, self._last_start = now - self._last_start, now
        if epoch_start:  # the interval holds the previous epoch's end: monitors, checkpoint
            epoch_end = max(0.0, interval - (self.seconds_per_step or interval))
            self._overhead += epoch_end
            self._epoch_ends.append(epoch_end)
            self.end_reserve = statistics.median(self._epoch_ends)
            return
        self._measured += 1
        if self._measured == SKIP_INTERVALS + 1:
            self._intervals.clear()  # steady intervals from now on: drop the warm-up ones
        self._intervals.append(interval)
        self.seconds_per_step = statistics.median(self._intervals)

    # ----------------------------------------------------------------------------- progress
    def _steps_left(self, step: int) -> float:
        """Steps that fit in the budget from now, the one about to run included (continuous),
        the end of the last epoch kept back; infinite while no step has been measured, -1 once
        the budget is spent (no step may start)."""
        remaining = self.budget_seconds - self.elapsed()
        if remaining <= 0:
            return -1.0
        remaining -= self.end_reserve
        if remaining <= 0:
            return 0.0
        if self.seconds_per_step is None:
            return math.inf
        self.overhead_per_step = self._overhead / max(1, step - self._session_step)
        return remaining / (self.seconds_per_step + self.overhead_per_step)

    @staticmethod
    def _budget_progress(step: int, steps_left: float) -> float:
        """``step / (N - 1)`` with ``N = step + floor(steps_left)`` the steps the budget allows:
        the step about to run is the last one (progress 1) when the next would not fit."""
        if math.isinf(steps_left):
            return 0.0
        whole = math.floor(steps_left)
        if whole < 2:
            return 1.0
        return step / (step + whole - 1)

    def _step_progress(self, step: int) -> float:
        if self.total_steps is None:
            return 0.0
        return min(1.0, step / max(1, self.total_steps - 1))

    def advance(
        self, step: int, *, epoch_start: bool = False, sync: Callable[[float], float] | None = None
    ) -> float:
        """Progress of the step about to run (``step`` optimiser steps done so far)."""
        self._record(self.time_fn(), epoch_start)
        by_steps = self._step_progress(step)
        by_budget = 0.0
        if self.budget_seconds is not None:
            steps_left = self._steps_left(step)
            if sync is not None:
                steps_left = sync(steps_left)
            if steps_left < 0:  # spent: the step about to start does not run
                self.budget_spent = True
                self.ended_by = self.ended_by or "budget"
                return self.progress
            if math.isfinite(steps_left):
                estimate = step + math.floor(steps_left)
                if self.total_steps is not None:
                    estimate = min(estimate, self.total_steps)
                self.estimated_total_steps = estimate
            by_budget = self._budget_progress(step, steps_left)
        if self.progress < 1.0 and max(by_steps, by_budget) >= 1.0:
            self.ended_by = "budget" if by_budget >= 1.0 and by_steps < 1.0 else "max_epochs"
        self.progress = min(1.0, max(self.progress, by_steps, by_budget))
        self._advance_warmup(step)
        return self.progress

    def _advance_warmup(self, step: int) -> None:
        if self.warmup_fraction is not None:
            return
        warmup = self.warmup_steps
        if self.estimated_total_steps is not None:  # at most half of the run
            warmup = min(warmup, MAX_WARMUP_FRACTION * max(1.0, self.estimated_total_steps - 1))
        self.ramp = max(self.ramp, min(1.0, step / warmup)) if warmup > 0 else 1.0
        if self.ramp >= 1.0 or self.progress >= 1.0:
            self.warmup_fraction = self.progress
            self.warmup_steps_used = step

    @property
    def finished(self) -> bool:
        """Training ends after the step about to run (progress 1), or before it (the budget
        was spent)."""
        return self.progress >= 1.0 or self.budget_spent

    def summary(self) -> dict[str, Any]:
        """The fitted schedule, for metrics.json."""
        return {
            "budget_seconds": self.budget_seconds,
            "total_steps_from_epochs": self.total_steps,
            "estimated_total_steps": _rounded(self.estimated_total_steps, 1),
            "seconds_per_step": _rounded(self.seconds_per_step, 5),
            "overhead_seconds_per_step": _rounded(self.overhead_per_step, 5),
            "end_reserve_seconds": _rounded(self.end_reserve, 3),
            "warmup_steps": self.warmup_steps_used,
            "warmup_fraction": _rounded(self.warmup_fraction, 5),
            "final_progress": round(self.progress, 6),
            "ended_by": self.ended_by,
            "elapsed_seconds": round(self.elapsed(), 2),
        }

    # ----------------------------------------------------------------------------- checkpoint
    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs: the time already spent, the progress reached (so it never
        goes back under the same plan) and the warm-up state. Plain numbers only."""
        return {
            "elapsed": self.elapsed(),
            "progress": self.progress,
            "ramp": self.ramp,
            "warmup_fraction": -1.0 if self.warmup_fraction is None else self.warmup_fraction,
            "warmup_steps_used": self.warmup_steps_used,
            "budget_seconds": self.budget_seconds or 0.0,
            "total_steps": self.total_steps or 0,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state``. The progress floor is kept only when the plan (budget and
        step total) is unchanged: a resumed run given more epochs or time re-fits its schedule."""
        self._elapsed_before = float(state.get("elapsed", 0.0))
        self.ramp = float(state.get("ramp", self.ramp))
        fraction = float(state.get("warmup_fraction", -1.0))
        self.warmup_fraction = None if fraction < 0 else fraction
        self.warmup_steps_used = int(state.get("warmup_steps_used", 0))
        same_plan = float(state.get("budget_seconds", 0.0)) == (self.budget_seconds or 0.0) and int(
            state.get("total_steps", 0)
        ) == (self.total_steps or 0)
        if same_plan:
            self.progress = float(state.get("progress", 0.0))


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(float(value), digits)
