"""The retry book: when a job whose last refresh went wrong may be asked again.

A job whose refresh fails is retried after 1, 2, 4, 8… cycles (at most `MAX_SKIPPED_CYCLES` skipped), so a job
the API keeps failing on does not spend a credit every cycle while the healthy ones stay fresh. A job the API
answers 404 for is asked again only every `missing_recheck_seconds`. One good answer clears both. Failures are
counted per job and class in the cache (values are never wiped) and logged once per change of class.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from exporter.cache import JobCache

log = logging.getLogger(__name__)

MAX_SKIPPED_CYCLES = 16


@dataclass
class _Retry:
    """Consecutive failures of one job, and the first cycle that may ask it again."""

    failures: int = 0
    next_cycle: int = 0


class RetryBook:
    """Backoff per failing job and recheck times per missing job; the cycle runner says which cycle it is."""

    def __init__(self, cache: JobCache, clock: Callable[[], float]) -> None:
        self._cache = cache
        self._clock = clock
        self._lock = threading.Lock()  # single GETs run in a pool and fail concurrently
        self._retries: dict[int, _Retry] = {}
        self._missing_until: dict[int, float] = {}
        self.cycle = 0

    def due(self, job_id: int, cycle: int) -> bool:
        """May the job be asked in `cycle`? False while it is backing off after failures."""
        with self._lock:
            retry = self._retries.get(job_id)
        return retry is None or retry.next_cycle <= cycle

    def missing_due(self, job_id: int) -> bool:
        """Is a job the API answered 404 for due for its rare recheck?"""
        with self._lock:
            return self._missing_until.get(job_id, 0.0) <= self._clock()

    def fail(self, job_id: int, outcome: str, detail: str = "", *, quiet: bool = False) -> None:
        """Count a failed refresh, keep the job's values, and skip it for 0, 1, 3, 7… cycles. `quiet`: the
        caller has said it already, for many jobs at once, so the per-job line goes to debug."""
        with self._lock:
            retry = self._retries.setdefault(job_id, _Retry())
            retry.failures += 1
            failures = retry.failures
            skipped = min(MAX_SKIPPED_CYCLES, 2 ** (failures - 1) - 1)
            retry.next_cycle = self.cycle + skipped + 1
        before = self._cache.get(job_id)
        self._cache.record_failure(job_id, outcome)
        if before is not None and before.last_error != outcome and not quiet:
            reason = f" ({detail})" if detail else ""
            log.warning("job %d: refresh failed: %s%s; keeping its last values", job_id, outcome, reason)
        else:
            log.debug("job %d: refresh failed again: %s (%d in a row)", job_id, outcome, failures)

    def missing(self, job_id: int, recheck_seconds: float) -> None:
        """The API answered 404: shown as missing, asked again after `recheck_seconds`."""
        with self._lock:
            self._missing_until[job_id] = self._clock() + recheck_seconds
        before = self._cache.get(job_id)
        self._cache.record_missing(job_id)
        if before is not None and not before.missing:
            log.warning(
                "job %d: the API answers 404; shown as missing, rechecked every %gs", job_id, recheck_seconds
            )

    def succeeded(self, job_id: int) -> None:
        """A good answer: the job is asked at the normal cadence again."""
        with self._lock:
            self._retries.pop(job_id, None)
            self._missing_until.pop(job_id, None)
