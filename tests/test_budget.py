"""The wall-time budget: stop time, and the step count the schedule is laid over."""

import pytest

from spd_tf.training.budget import WARMUP_STEPS, TimeBudget


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def run_steps(budget, clock, seconds_per_step, steps, first_step=0, warmup_seconds=0.0):
    planned = []
    for step in range(first_step + 1, first_step + steps + 1):
        clock.now += warmup_seconds if step - first_step <= WARMUP_STEPS else seconds_per_step
        planned.append(budget.planned_steps(step, first_step))
    return planned


def test_plan_follows_the_measured_speed_not_the_warm_up():
    clock = FakeClock()
    budget = TimeBudget(max_minutes=1.0, total_steps=10_000, clock=clock)
    # Two slow tracing steps (10 s each), then 0.5 s a step: 40 s are left at the warm-up's end.
    planned = run_steps(budget, clock, 0.5, 10, warmup_seconds=10.0)
    assert planned[:WARMUP_STEPS] == [10_000] * WARMUP_STEPS  # nothing timed yet
    assert planned[WARMUP_STEPS] == 82  # one timed step: 39.5 s left at 0.5 s a step
    # After step 10 the rate is 0.5 s/step and 60 - 24 = 36 s remain -> 72 more steps.
    assert planned[-1] == 10 + 72
    assert not budget.exhausted
    clock.now += 36.0
    assert budget.exhausted


def test_fast_and_slow_cpus_both_plan_to_the_end_of_the_budget():
    for seconds_per_step in (0.2, 0.6):
        clock = FakeClock()
        budget = TimeBudget(max_minutes=2.0, total_steps=10**6, clock=clock)
        planned = run_steps(budget, clock, seconds_per_step, 20)
        assert planned[-1] == pytest.approx(120 / seconds_per_step, rel=0.01)


def test_plan_is_capped_by_total_steps_and_never_behind_the_step():
    clock = FakeClock()
    budget = TimeBudget(max_minutes=10.0, total_steps=50, clock=clock)
    assert run_steps(budget, clock, 0.1, 8)[-1] == 50
    late = TimeBudget(max_minutes=0.01, total_steps=10**6, clock=clock)
    assert run_steps(late, clock, 1.0, 8)[-1] == 9  # over budget: the current step + 1


def test_time_before_a_resume_counts():
    clock = FakeClock()
    budget = TimeBudget(max_minutes=1.0, total_steps=100, spent_seconds=59.0, clock=clock)
    assert not budget.exhausted
    clock.now += 1.0
    assert budget.exhausted and budget.seconds == pytest.approx(60.0)


def test_no_budget_plans_total_steps_and_never_runs_out():
    clock = FakeClock()
    budget = TimeBudget(max_minutes=None, total_steps=300, clock=clock)
    assert run_steps(budget, clock, 5.0, 10) == [300] * 10
    clock.now += 1e9
    assert not budget.exhausted
