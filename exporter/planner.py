"""Which API calls refresh every watched job that is not final, for the fewest credits.

Two kinds of call refresh a job. `GET /jobs/{id}` costs one credit per job. `GET /jobs?status=S` costs one
credit per page of up to 100 jobs and refreshes every watched job in status S at once — far cheaper when many
watched jobs share a status, dearer when the account has many jobs in S that nobody watches. The planner picks,
per status, whichever is cheaper, using how many pages that status took last time (`ListCosts`).

A job that was expected in a list but is not on it has changed status (finished, stopped, deleted) or moved
between pages while we read them; it gets a confirming GET in the same cycle (`confirmations(plan, found)`), so
its final state is never missed. A status the documentation does not list (UNKNOWN) cannot be asked for by name: such jobs are found on the
`status=all` pages when those cost fewer credits than a GET each (`ListCosts` learns their pages under UNKNOWN).
Jobs never seen yet have no known status: when there are more of them than
there are non-final statuses, listing every non-final status finds all the unfinished ones in a few credits,
and only the final ones then need a GET of their own.

When list items come without outputs (`exporter.list_items`), a list still refreshes status, progress and
runtime, but records counts only come with a single GET: `outputs_refreshes` picks which jobs get one this cycle,
at the configured cadence stretched to what the budget allows, and `plan_cycle` takes those off the lists.

Pure functions of their inputs: the poller executes the plan, tests check it directly.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from exporter.model import FINAL_STATUSES, LISTABLE_STATUSES, JobStatus

PAGE_SIZE = 100
NON_FINAL_STATUSES = tuple(status for status in LISTABLE_STATUSES if status not in FINAL_STATUSES)
# GETs for outputs that lean lists left out take at most this share of the budget's pace: the rest stays for
# status lists, confirmations and jobs nobody can list.
OUTPUTS_SHARE = 0.5


@dataclass
class ListCosts:
    """Pages each status list took when last read; a status never read is assumed to fit one page."""

    pages: dict[JobStatus, int] = field(default_factory=dict)

    def estimate(self, status: JobStatus) -> int:
        return self.pages.get(status, 1)

    def learn(self, status: JobStatus, pages: int) -> None:
        self.pages[status] = max(1, pages)


@dataclass(frozen=True)
class Plan:
    """One cycle's calls: status lists to read (all pages), then single GETs.

    `expected` maps each listed status to the watched jobs that should appear on it; any that do not get a
    confirming GET after the lists have been read.
    """

    list_statuses: tuple[JobStatus, ...]
    expected: Mapping[JobStatus, frozenset[int]]
    gets: tuple[int, ...]

    @property
    def jobs(self) -> int:
        """How many jobs the plan refreshes."""
        return len(set(self.gets).union(*self.expected.values()))

    @property
    def estimated_credits(self) -> int:
        """Credits the plan costs before confirmations and extra pages: one per listed status, one per GET."""
        return len(self.list_statuses) + len(self.gets)


def plan_cycle(
    known: Mapping[int, JobStatus | None], costs: ListCosts, outputs: Collection[int] = ()
) -> Plan:
    """Plan the refresh of `known` (watched, not final, not missing; None = status never seen). Jobs in
    `outputs` (from `outputs_refreshes`) get a single GET, which refreshes them whole, and are kept off lists."""
    unseen = sorted(job_id for job_id, status in known.items() if status is None and job_id not in outputs)
    by_status: dict[JobStatus, list[int]] = {}
    for job_id, status in known.items():
        if status is not None and job_id not in outputs:
            by_status.setdefault(status, []).append(job_id)

    listed: dict[JobStatus, set[int]] = {}
    if len(unseen) > _cold_list_cost(costs):
        for status in NON_FINAL_STATUSES:
            listed[status] = set(unseen)
        unseen = []

    gets: list[int] = [*unseen, *outputs]
    for status, job_ids in sorted(by_status.items(), key=lambda item: item[0].value):
        if status in listed:
            listed[status].update(job_ids)
        elif costs.estimate(status) < len(job_ids):
            listed[status] = set(job_ids)
        else:
            gets.extend(job_ids)
    order = [status for status in (*NON_FINAL_STATUSES, JobStatus.UNKNOWN) if status in listed]
    return Plan(
        list_statuses=tuple(order),
        expected={status: frozenset(listed[status]) for status in order},
        gets=tuple(sorted(gets)),
    )


def outputs_refreshes(
    ages: Mapping[int, float], every: float, credits_per_second: float, since: float
) -> list[int]:
    """Which jobs get a GET for their outputs this cycle, given the age of each one's outputs (lean lists).

    A job is due once its outputs are `every` seconds old — stretched so that these GETs take at most
    `OUTPUTS_SHARE` of `credits_per_second` — and at most the even share of them for the `since` seconds since
    the last cycle (jobs × since / cadence) go now, oldest first: they spread over the cycles instead of all
    falling due together.
    """
    if not ages:
        return []
    cadence = max(every, len(ages) / (credits_per_second * OUTPUTS_SHARE))
    quota = math.ceil(len(ages) * since / cadence)
    due = sorted((-age, job_id) for job_id, age in ages.items() if age >= cadence)
    return [job_id for _, job_id in due[:quota]]


def _cold_list_cost(costs: ListCosts) -> int:
    """Credits to list every non-final status: worth it only for more unseen jobs than that."""
    return sum(costs.estimate(status) for status in NON_FINAL_STATUSES)


def confirmations(plan: Plan, found: Iterable[int]) -> list[int]:
    """Jobs expected on a list they were not on: each needs a GET to learn where it went."""
    seen = set(found)
    missing: set[int] = set()
    for job_ids in plan.expected.values():
        missing.update(job_id for job_id in job_ids if job_id not in seen)
    return sorted(missing)


LISTED_SHARE = 0.25
"""At most this share of the budget goes to each listed resource (schedules, clusters): jobs keep the rest."""


def listed_interval(pages: int, target: float, limit: int, window_seconds: float) -> float:
    """How often a listed resource of `pages` pages can be read: every `target` seconds, or less often when
    that would cost more than `LISTED_SHARE` of the `limit` credits per window."""
    return max(target, pages * window_seconds / (limit * LISTED_SHARE))


def cycle_interval(
    cycle_credits: int, listed_per_window: float, target: float, limit: float, window_seconds: float
) -> float:
    """The refresh interval of the jobs: `target`, stretched so that a cycle's credits, beside what the
    listed resources take per window (`listed_per_window`), fit the `limit` credits per window."""
    available = max(limit - listed_per_window, limit * (1.0 - 2 * LISTED_SHARE), 1.0)
    return max(target, cycle_credits * window_seconds / available)
