"""Answers into the cache: the newer one kept, fresh values stored, gaps filled from the last good ones, changes logged.

Every task hands the jobs it read here, whichever call brought them (a status list, a package's runs, a single
GET), before the next task asks anything. Which answer is newer is decided by `exporter.ordering` from the cycle and the
order they arrived in, not by the API's clock. A garbled number keeps its previous value and the refresh counts
as failed with `invalid_field`; a field a list item left out keeps its previous value and counts as nothing
(`Job.absent`). A status outside the documented list shows as `unknown` and counts as `unknown_status`; such a job
backs off like a failing one (a status the API adds tomorrow must not cost a credit per job per cycle), and it is
logged once per status, not once per job. An answer dated in the future is stored all the same and counted as
`future_timestamp`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from exporter.cache import JobCache, JobState
from exporter.list_items import ListItems
from exporter.model import Job, JobStatus
from exporter.ordering import (
    FUTURE_TIMESTAMP,
    FUTURE_TOLERANCE_SECONDS,
    Answer,
    believable,
    future_fields,
    supersedes,
)
from exporter.retries import MAX_SKIPPED_CYCLES, RetryBook

log = logging.getLogger(__name__)

MAX_TOLD_STATUSES = 10  # unknown statuses logged by name; an API that invents more is logged at debug


class Recorder:
    """Stores answers for one account's cache, and tells the retry book which jobs answered well.

    The refresh cycle an answer belongs to is the retry book's: the cycle runner sets it there, once a cycle.
    """

    def __init__(
        self,
        cache: JobCache,
        retries: RetryBook,
        wall_clock: Callable[[], float],
        list_items: ListItems,
    ) -> None:
        self._cache = cache
        self._list_items = list_items
        self._retries = retries
        self._wall_clock = wall_clock
        self._told_future = False
        self._told_statuses: set[str] = set()

    def store(self, jobs: list[Job]) -> None:
        """Record the answers that are newer than what we have (see `exporter.ordering`), in the order given."""
        seen_at = self._wall_clock()
        cycle = self._retries.cycle
        kept: dict[int, Answer] = {}
        ahead: list[tuple[Job, tuple[str, ...]]] = []
        for job in jobs:
            fields = future_fields(job, seen_at)
            if fields:
                ahead.append((job, fields))
            answer = Answer(job, cycle, seen_at)
            if not supersedes(answer, kept.get(job.id) or _stored(self._cache.get(job.id))):
                continue
            kept[job.id] = answer
            if job.status is not JobStatus.UNKNOWN:
                self._retries.succeeded(job.id)
        fresh = []
        for answer in kept.values():
            state = self._cache.get(answer.job.id)
            have = state.job if state else None
            job = believable(answer.job, seen_at, have)
            fresh.append(job.filled_from(have) if have else job)
            self._list_items.saw(job, was_final=have is not None and have.status.is_final)
        for before, after in self._cache.record_jobs(fresh, seen_at, cycle):
            _log_change(before, after)
        for job in fresh:
            if job.status is JobStatus.UNKNOWN:
                self._tell_unknown(job.raw_status)
                self._retries.fail(job.id, "unknown_status", quiet=True)
            elif job.unusable:
                self._retries.fail(job.id, "invalid_field")
        for job, fields in ahead:
            self._count_future(job, fields, seen_at)

    def _count_future(self, job: Job, fields: tuple[str, ...], seen_at: float) -> None:
        """Count an answer dated in the future; say so once at warning level, since with a skewed API clock
        every answer is, and the counter carries the repetitions."""
        if self._cache.count_error(job.id, FUTURE_TIMESTAMP) is None:
            return  # a job on a list page that nobody watches
        lead = max(getattr(job, name) for name in fields) - seen_at
        log.log(
            logging.DEBUG if self._told_future else logging.WARNING,
            "job %d: the API dates its answer %.0fs ahead of our clock (%s), beyond the %gs tolerance: stored, "
            "ordered by when it arrived, counted as %s",
            job.id,
            lead,
            ", ".join(fields),
            FUTURE_TOLERANCE_SECONDS,
            FUTURE_TIMESTAMP,
        )
        self._told_future = True

    def _tell_unknown(self, raw_status: str) -> None:
        """One line per undocumented status (the first `MAX_TOLD_STATUSES` of them), however many jobs are in it."""
        if raw_status in self._told_statuses:
            return
        level = logging.WARNING if len(self._told_statuses) < MAX_TOLD_STATUSES else logging.DEBUG
        self._told_statuses.add(raw_status)
        log.log(
            level,
            "status %r is not one the API documentation lists: its jobs show as unknown, count as "
            "unknown_status and are refreshed less and less often (down to once every %d cycles) while in it",
            raw_status[:60],
            MAX_SKIPPED_CYCLES + 1,
        )


def _stored(state: JobState | None) -> Answer | None:
    """What the cache holds for a job, as an answer to weigh a new one against."""
    if state is None or state.job is None or state.last_success is None:
        return None
    return Answer(state.job, state.cycle, state.last_success)


def _log_change(before: JobState, after: JobState) -> None:
    job = after.job
    if job is None:
        return
    old = before.job.status.value if before.job else None
    if old == job.status.value:
        return
    package = f" (package {job.package_name})" if job.package_name else ""
    if job.status is JobStatus.UNKNOWN:  # said once per status by `Recorder._tell_unknown`
        log.debug("job %d%s: %s -> %r", job.id, package, old, job.raw_status[:60])
    elif old is None:
        log.info("job %d%s: %s", job.id, package, job.raw_status)
    else:
        level = logging.WARNING if job.status is JobStatus.FAILED else logging.INFO
        log.log(level, "job %d%s: %s -> %s", job.id, package, old, job.raw_status)
