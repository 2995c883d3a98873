"""Answers into the cache: fresh values stored, gaps filled from the last good ones, changes logged.

Every task hands the jobs it read here, whichever call brought them (a status list, a package's runs, a single
GET). A garbled number keeps its previous value and the refresh counts as failed with `invalid_field`; a status
outside the documented list shows as `unknown` and counts as `unknown_status`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from exporter.cache import JobCache, JobState
from exporter.list_items import ListItems
from exporter.model import Job, JobStatus
from exporter.retries import RetryBook

log = logging.getLogger(__name__)


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
            self._list_items.saw(job)
            self._retries.succeeded(job.id)
        for before, after in self._cache.record_jobs(fresh, self._wall_clock()):
            _log_change(before, after)
        for job in partial_answers:
            self._retries.fail(
                job.id, "unknown_status" if job.status is JobStatus.UNKNOWN else "invalid_field"
            )


def _log_change(before: JobState, after: JobState) -> None:
    job = after.job
    if job is None:
        return
    old = before.job.status.value if before.job else None
    if old == job.status.value:
        return
    package = f" (package {job.package_name})" if job.package_name else ""
    if old is None:
        log.info("job %d%s: %s", job.id, package, job.raw_status)
    else:
        level = logging.WARNING if job.status is JobStatus.FAILED else logging.INFO
        log.log(level, "job %d%s: %s -> %s", job.id, package, old, job.raw_status)
