"""A wall-time training budget: when to stop, and how many steps the schedule should plan for.

The step count is estimated from the speed of the steps run so far in this process (the
first `WARMUP_STEPS` are not timed: they include tracing), and re-estimated after every step,
so the learning-rate schedule ends near 0 when the budget does, whatever the CPU. Time spent
before a resume is carried in `spent_seconds` (the checkpoint stores it).
"""

import time
from typing import Callable, Optional

WARMUP_STEPS = 2


class TimeBudget:
    def __init__(self, max_minutes: Optional[float], total_steps: int, spent_seconds: float = 0.0,
                 clock: Optional[Callable[[], float]] = None):
        self.limit = None if max_minutes is None else 60.0 * max_minutes
        self.total_steps = total_steps
        self.clock = clock or time.monotonic
        self._spent_before = spent_seconds
        self._started = self.clock()
        self._timed_from = None  # (step, time) once the warm-up steps are done

    @property
    def seconds(self) -> float:
        """Training seconds so far, including those before a resume."""
        return self._spent_before + self.clock() - self._started

    @property
    def exhausted(self) -> bool:
        return self.limit is not None and self.seconds >= self.limit

    def planned_steps(self, step: int, first_step: int) -> int:
        """The step count to lay the schedule over, after `step` (this process began at `first_step`)."""
        if self.limit is None:
            return self.total_steps
        if step - first_step == WARMUP_STEPS:
            self._timed_from = (step, self.clock())
        if self._timed_from is None or step == self._timed_from[0]:
            return self.total_steps
        timed_step, timed_at = self._timed_from
        seconds_per_step = (self.clock() - timed_at) / (step - timed_step)
        remaining = max(self.limit - self.seconds, 0.0)
        return int(min(self.total_steps, max(step + 1, step + remaining / seconds_per_step)))
