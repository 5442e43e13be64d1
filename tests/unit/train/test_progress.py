"""The run clock: progress by steps, and fitted to a wall-clock budget with an injected clock."""

from __future__ import annotations

import itertools
import math

import pytest

from labelless.train.optim import warmup_cosine
from labelless.train.progress import RunClock


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def simulate(
    clock: RunClock,
    time: FakeTime,
    *,
    steps_per_epoch: int,
    step_seconds: float,
    slow_first: tuple[float, ...] = (),
    epoch_end_seconds=lambda epoch: 0.0,
    last_epoch_end: float = 0.0,
    first_step: int = 0,
    max_steps: int = 100_000,
) -> tuple[list[float], list[float], int]:
    """Drive ``clock`` like the training loop: advance before each step, the step takes its time,
    epoch ends take ``epoch_end_seconds(epoch)`` (monitors); stop after a step at progress 1, or
    before a step once the budget is spent (``SSLModule`` skips it), then the last epoch ends in
    ``last_epoch_end`` seconds (checkpoint; the monitors the final evaluation repeats skip it).
    Returns the progress and LR multiplier of every step and the steps done."""
    clock.start(first_step)
    progress, lrs = [], []
    step = first_step
    while step < max_steps:
        p = clock.advance(step, epoch_start=step % steps_per_epoch == 0)
        if clock.budget_spent:
            break
        progress.append(p)
        lrs.append(
            clock.ramp if clock.warmup_fraction is None else warmup_cosine(p, clock.warmup_fraction)
        )
        time.now += slow_first[step] if step < len(slow_first) else step_seconds
        step += 1
        if clock.finished:
            break
        if step % steps_per_epoch == 0:
            time.now += epoch_end_seconds(step // steps_per_epoch)
    time.now += last_epoch_end
    return progress, lrs, step


def test_without_budget_progress_is_step_over_last_step():
    time = FakeTime()
    clock = RunClock(total_steps=50, warmup_steps=5, time_fn=time)
    progress, lrs, steps = simulate(clock, time, steps_per_epoch=10, step_seconds=1.0)
    assert steps == 50
    assert progress == [pytest.approx(k / 49) for k in range(50)]
    assert lrs[:6] == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert clock.warmup_fraction == pytest.approx(5 / 49)
    assert lrs[-1] == 0.0 and clock.ended_by == "max_epochs"


def test_budget_ends_annealed_within_the_budget_despite_slow_start_and_monitors():
    time = FakeTime()
    budget = 200.0
    clock = RunClock(total_steps=10**6, budget_seconds=budget, warmup_steps=10, time_fn=time)
    progress, lrs, steps = simulate(
        clock,
        time,
        steps_per_epoch=10,
        step_seconds=1.0,
        slow_first=(6.0, 4.0, 3.0),  # start-up: allocator, first reads
        epoch_end_seconds=lambda epoch: 5.0 if epoch % 3 == 0 else 0.2,  # kNN every 3 epochs
        last_epoch_end=0.2,  # the checkpoint (the kNN monitor leaves a budget end to the final one)
    )
    assert progress[-1] == 1.0 and progress[-2] < 1.0  # only the last step runs at progress 1
    assert all(a <= b for a, b in itertools.pairwise(progress))  # never backwards
    assert lrs[-1] == 0.0
    assert all(a >= b for a, b in itertools.pairwise(lrs[10:]))
    # the budget is used up to less than one step plus one epoch end, and never overrun, the
    # last epoch's end included
    assert budget - 7.0 <= time.now <= budget, time.now
    assert clock.ended_by == "budget"
    assert clock.estimated_total_steps == pytest.approx(steps, abs=1.5)
    assert clock.seconds_per_step == pytest.approx(1.0)  # the slow first steps are left out
    assert clock.warmup_steps_used == 10


def test_budget_progress_tracks_time_with_a_steady_step():
    time = FakeTime()
    clock = RunClock(total_steps=None, budget_seconds=100.0, time_fn=time)
    progress, _, steps = simulate(clock, time, steps_per_epoch=1000, step_seconds=0.5)
    assert steps == 200 and progress[-1] == 1.0
    assert time.now == pytest.approx(100.0)  # ends exactly when the budget is spent
    # once measured, progress k / (N - 1) with the true total N = 200
    assert progress[100] == pytest.approx(100 / 199, abs=1e-9)


def test_max_epochs_before_the_budget_ends_the_run_annealed():
    time = FakeTime()
    clock = RunClock(total_steps=30, budget_seconds=1000.0, time_fn=time)
    progress, _, steps = simulate(clock, time, steps_per_epoch=10, step_seconds=1.0)
    assert steps == 30 and progress[-1] == 1.0 and clock.ended_by == "max_epochs"
    assert clock.estimated_total_steps == 30


def test_warmup_is_capped_at_half_of_a_short_budgeted_run():
    time = FakeTime()
    clock = RunClock(total_steps=10**6, budget_seconds=40.0, warmup_steps=100, time_fn=time)
    _, lrs, steps = simulate(clock, time, steps_per_epoch=10, step_seconds=1.0)
    assert steps < 45
    assert 0 < clock.warmup_steps_used <= steps / 2 + 1
    assert max(lrs) == pytest.approx(1.0) and lrs[-1] == 0.0
    assert all(a <= b for a, b in itertools.pairwise(lrs[: clock.warmup_steps_used + 1]))


def test_budget_runs_out_before_any_measurement():
    time = FakeTime()
    clock = RunClock(total_steps=10**6, budget_seconds=5.0, time_fn=time)
    progress, _, steps = simulate(clock, time, steps_per_epoch=10, step_seconds=10.0)
    # the first, unmeasured step overran the budget: no second step starts, and the run ends
    # within one step of the budget, not annealed
    assert steps == 1 and progress == [0.0] and time.now == 10.0
    assert clock.budget_spent and clock.finished and clock.ended_by == "budget"


@pytest.mark.parametrize("epoch_end", [0.0, 0.4, 3.0])
def test_budget_holds_to_one_step_with_the_last_epoch_end(epoch_end):
    """Steps of 1 s, 10 a epoch, every epoch end (checkpoint, monitors) ``epoch_end`` s, the
    last one too: the run takes the most steps that fit in the budget, or one fewer, and never
    ends more than one step past it."""
    time = FakeTime()
    budget = 100.0
    clock = RunClock(total_steps=10**6, budget_seconds=budget, time_fn=time)
    _, _, steps = simulate(
        clock,
        time,
        steps_per_epoch=10,
        step_seconds=1.0,
        epoch_end_seconds=lambda epoch: epoch_end,
        last_epoch_end=epoch_end,
    )
    fitting = max(n for n in range(1, 200) if n + epoch_end * math.ceil(n / 10) <= budget)
    assert fitting - 1 <= steps <= fitting, (steps, fitting)
    assert time.now <= budget + 1.0
    assert clock.end_reserve == pytest.approx(epoch_end)


def test_sync_uses_the_slowest_process():
    time = FakeTime()
    clock = RunClock(total_steps=None, budget_seconds=100.0, time_fn=time)
    clock.start()
    for step in range(10):
        clock.advance(step)
        time.now += 1.0
    alone = RunClock(total_steps=None, budget_seconds=100.0, time_fn=time)
    alone.__dict__.update({k: v for k, v in clock.__dict__.items() if k != "progress"})
    p = clock.advance(10)
    p_slow = alone.advance(10, sync=lambda steps_left: steps_left / 2)
    assert p_slow > p
    assert alone.estimated_total_steps < clock.estimated_total_steps


def test_resume_continues_the_budget_and_never_goes_back():
    time = FakeTime()
    first = RunClock(total_steps=10**6, budget_seconds=100.0, warmup_steps=5, time_fn=time)
    first.start(0)
    for step in range(40):
        first.advance(step, epoch_start=step % 10 == 0)
        time.now += 1.0
    state = first.state_dict()
    assert set(state) >= {"elapsed", "progress", "warmup_fraction"}
    assert all(isinstance(v, (int, float)) for v in state.values())  # weights_only loadable

    time.now += 1000.0  # time between the sessions does not count
    second = RunClock(total_steps=10**6, budget_seconds=100.0, warmup_steps=5, time_fn=time)
    second.load_state_dict(state)
    assert second.progress == first.progress and second.elapsed() == pytest.approx(40.0)
    start = time.now
    progress, _, steps = simulate(second, time, steps_per_epoch=10, step_seconds=1.0, first_step=40)
    assert progress[0] >= first.progress and progress[-1] == 1.0
    assert all(a <= b for a, b in itertools.pairwise(progress))
    assert second.warmup_fraction == first.warmup_fraction  # no second warm-up
    assert 99.0 <= 40.0 + time.now - start <= 100.0
    assert steps == pytest.approx(100, abs=1)

    # a new plan (here: a larger budget) re-fits the schedule instead of holding progress
    third = RunClock(total_steps=10**6, budget_seconds=500.0, warmup_steps=5, time_fn=time)
    third.load_state_dict(second.state_dict())
    assert third.progress == 0.0 and third.elapsed() == pytest.approx(second.elapsed())
