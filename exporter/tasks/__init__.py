"""Per-resource tasks the cycle runner (`exporter.poller`) calls, in order, once per refresh cycle.

A task reads one kind of resource through the fetcher (so within the budget) and hands what it read to the
recorder; it says what its next run will cost, so the runner can stretch the interval to fit the budget. To poll
a new resource (schedules, clusters), write a task and add it to the runner's list: nothing else changes.

    discovery ─▶ jobs          (discovery's list pages also refresh the runs on them: `Cycle.refreshed`)
    ─▶ schedules ─▶ clusters  (each read on its own interval, in the cycle that is due; `tasks.listed`)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass
class Cycle:
    """One refresh cycle, shared by its tasks: its number, and the jobs a task already refreshed in it."""

    number: int
    refreshed: set[int] = field(default_factory=set)


@dataclass(frozen=True)
class Cost:
    """What a task's next run will cost in credits, and how many jobs it will refresh for them.

    `every_seconds` is set by tasks that run on an interval of their own rather than every cycle (schedules,
    clusters): their credits recur once per `every_seconds`, whatever the cycle interval is.
    """

    credits: int
    jobs: int
    every_seconds: float | None = None


class Task(Protocol):
    def run(self, cycle: Cycle) -> None:
        """Refresh this task's resources; an `ApiError` is handled inside, `Stopping` propagates."""

    def next_cost(self, cycle: Cycle) -> Cost:
        """The cost of the run in the cycle after `cycle`, as planned now."""
