"""Answers into the cache: fresh values stored, gaps filled from the last good ones, changes logged.

Every task hands the jobs it read here, whichever call brought them (a status list, a package's runs, a single
GET). A garbled number keeps its previous value and the refresh counts as failed with `invalid_field`; a field
a list item left out keeps its previous value and counts as nothing (`Job.absent`). A status outside the
documented list shows as `unknown` and counts as `unknown_status`; such a job backs off like a failing one (a
status the API adds tomorrow must not cost a credit per job per cycle), and it is logged once per status, not
once per job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from exporter.cache import JobCache, JobState
from exporter.list_items import ListItems
from exporter.model import Job, JobStatus
from exporter.retries import MAX_SKIPPED_CYCLES, RetryBook

log = logging.getLogger(__name__)

MAX_TOLD_STATUSES = 10  # unknown statuses logged by name; an API that invents more is logged at debug


class Recorder:
    """Stores answers for one account's cache, and tells the retry book which jobs answered well."""

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
        self._told_statuses: set[str] = set()

    def store(self, jobs: list[Job]) -> None:
        """Record fresh values, skipping any older than what we have (a list read before a later GET)."""
        fresh = []
        partial_answers = []
        for job in jobs:
            state = self._cache.get(job.id)
            have = state.job if state else None
            if have and have.updated_at and job.updated_at and job.updated_at < have.updated_at:
                continue
            if job.unusable or job.status is JobStatus.UNKNOWN:
                partial_answers.append(job)
            fresh.append(job.filled_from(have) if have else job)
            self._list_items.saw(job, was_final=have is not None and have.status.is_final)
            if job.status is not JobStatus.UNKNOWN:
                self._retries.succeeded(job.id)
        for before, after in self._cache.record_jobs(fresh, self._wall_clock()):
            _log_change(before, after)
        for job in partial_answers:
            if job.status is JobStatus.UNKNOWN:
                self._tell_unknown(job.raw_status)
                self._retries.fail(job.id, "unknown_status", quiet=True)
            else:
                self._retries.fail(job.id, "invalid_field")

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
