"""The background poller: refreshes watched jobs in cycles, within the credit budget, into the cache.

A `schedule.Scheduler` of its own drives two things: a short tick that starts a refresh cycle when one is due,
and the regular publication of the budget's state to the cache. Cycle start times are kept by the poller
(`start + interval`), not by `schedule`, which would count the interval from the end of the last run and drift.

Each cycle refreshes every watched job that is not final, using the calls the planner chose; a job seen in a
final state is never asked again. A job the API answers 404 for is rechecked only every
`missing_recheck_seconds`. Failures never reach the cache as values: they are counted per job and class, and a
job that keeps failing is retried after 1, 2, 4... cycles. A 429 or a refused key pauses everything (the budget
decides for how long); when other clients of the key have used all but the reserve, the poller waits, reading
the free `rate_limit_status` endpoint until the key has recovered. The requests themselves, and their
book-keeping, are the fetcher's (`fetcher.py`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import schedule

from exporter.budget import CreditBudget
from exporter.cache import JobCache, JobState
from exporter.client import ApiClient, ApiError, InvalidResponse, NotFound
from exporter.config import Config
from exporter.discovery import Discovery
from exporter.fetcher import Fetcher, Stopping
from exporter.model import Job, JobStatus
from exporter.planner import ListCosts, Plan, confirmations, plan_cycle
from exporter.state import load_final_jobs, save_final_jobs

log = logging.getLogger(__name__)


MAX_SKIPPED_CYCLES = 16
FINAL_LIST_THRESHOLD = 10  # more confirmations than this are first looked for on the final statuses' lists
FINAL_STATUSES = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.STOPPED)
MAX_DISCOVERY_PAGES = 10  # per package and cycle: 1,000 runs younger than max_age_seconds is plenty


@dataclass
class _Retry:
    """Consecutive failures of one job, and the first cycle that may ask it again."""

    failures: int = 0
    next_cycle: int = 0


class Poller:
    """Owns the refresh loop; `run()` blocks until `stop()`; `reload()` swaps the config between cycles."""

    def __init__(
        self,
        config: Config,
        client: ApiClient,
        budget: CreditBudget,
        cache: JobCache,
        *,
        wall_clock: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._budget = budget
        self._cache = cache
        self._wall_clock = wall_clock
        self._clock = clock
        self._stop = threading.Event()
        self._interrupt = threading.Event()  # set by stop() and reload(): leave any wait now
        self._fetch = Fetcher(client, budget, cache, self._interrupt, on_wait=self._waiting, clock=clock)
        self._lock = threading.Lock()
        self._pending: tuple[Config, ApiClient] | None = None
        self._scheduler = schedule.Scheduler()
        self._costs = ListCosts()
        self._retries: dict[int, _Retry] = {}
        self._missing_recheck: dict[int, float] = {}
        self._next_cycle = 0.0
        self._cycle = 0
        self._stretched_to: float | None = None
        self._heartbeat = clock()
        self._interval = config.polling.interval_seconds
        self._pool: ThreadPoolExecutor | None = None
        self._saved_final: frozenset[int] = frozenset()
        self._static = frozenset(config.jobs)
        self._discovery = Discovery(config.discover, config.shard) if config.discover else None
        cache.set_watched(config.jobs)
        self._restore_state()
        self._publish()

    # --- lifecycle -------------------------------------------------------------------------------------------

    def run(self) -> None:
        """Poll until stop(); every exception inside a cycle is logged and counted, never fatal."""
        tick = min(1.0, max(0.05, self._config.polling.interval_seconds / 20.0))
        # schedule types `every` as int but builds timedelta(seconds=interval), so sub-second ticks work.
        self._scheduler.every(tick).seconds.do(self._tick)  # type: ignore[arg-type]
        self._scheduler.every(1).seconds.do(self._publish)
        self._fetch.refresh_rate_limit_status()
        self._tick()
        while not self._stop.is_set():
            self._heartbeat = self._clock()
            self._scheduler.run_pending()
            idle = self._scheduler.idle_seconds
            self._stop.wait(tick if idle is None else min(tick, max(0.0, idle)))
        self._scheduler.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def stop(self) -> None:
        self._stop.set()
        self._interrupt.set()

    def reload(self, config: Config, client: ApiClient) -> None:
        """Take a new config (SIGHUP); applied at the next tick, so a cycle never mixes two configs."""
        with self._lock:
            self._pending = (config, client)
        self._interrupt.set()

    def alive(self, max_silence: float) -> bool:
        """True while the loop has ticked within `max_silence` seconds (for /healthz)."""
        return self._clock() - self._heartbeat <= max_silence

    # --- the cycle -------------------------------------------------------------------------------------------

    def _tick(self) -> None:
        self._heartbeat = self._clock()
        self._apply_pending()
        if self._stop.is_set() or self._clock() < self._next_cycle:
            return
        due = self._next_cycle or self._clock()
        try:
            self._run_cycle()
        except Stopping:
            return  # stop or reload: the next tick starts over with the current config
        except Exception:  # a bug must not kill polling: log it with its traceback and go on next cycle
            log.exception("refresh cycle failed")
        # Counted from when the cycle was due, not from when a tick noticed: ticks come late by up to a tick,
        # and that must not add up cycle after cycle. A cycle that overran starts the next one now.
        self._next_cycle = max(due + self._interval, self._clock())

    def _run_cycle(self) -> None:
        fresh = self._discover(self._discovery) if self._discovery is not None else set()
        self._cycle += 1
        plan, missing = self._plan(self._cycle, skip=fresh)
        found: set[int] = set()
        for status in plan.list_statuses:
            found |= self._read_list(status, plan.expected[status])
        leftover = confirmations(plan, found)
        if len(leftover) > FINAL_LIST_THRESHOLD:
            leftover = self._find_finished(leftover)
        self._refresh_each([*plan.gets, *leftover, *missing])
        self._cache.update_exporter(last_full_refresh=self._wall_clock(), ready=True)
        self._save_state()
        # Pace by what the next cycle will cost: the first one, with every job still unseen, costs more once.
        upcoming, _ = self._plan(self._cycle + 1, skip=fresh)
        discovering = len(self._discovery.config.package_ids) if self._discovery is not None else 0
        self._set_interval(upcoming.estimated_credits + discovering, upcoming.jobs + len(fresh))
        self._publish()

    def _plan(self, cycle: int, skip: set[int]) -> tuple[Plan, list[int]]:
        """The calls that refresh every job due now (but those in `skip`, just refreshed by discovery), and the
        missing jobs due for their rare recheck."""
        now = self._clock()
        states = self._cache.states()
        refresh: dict[int, JobStatus | None] = {}
        for state in states:
            if state.is_final or state.missing or state.job_id in skip:
                continue
            if self._retries.get(state.job_id, _Retry()).next_cycle > cycle:
                continue
            refresh[state.job_id] = state.job.status if state.job else None
        missing = [s.job_id for s in states if s.missing and self._missing_recheck.get(s.job_id, 0.0) <= now]
        return plan_cycle(refresh, self._costs), missing

    def _read_list(self, status: JobStatus, expected: frozenset[int]) -> set[int]:
        """Read the pages of one status list until every expected job was seen (or the list ends)."""
        watched = {state.job_id for state in self._cache.states()}
        found: set[int] = set()
        pages = 0
        try:
            for jobs in self._fetch.pages(status=status.value):
                pages += 1
                mine = [job for job in jobs if job.id in watched]
                self._store(mine)
                found.update(job.id for job in mine)
                if expected <= found:
                    break
        except ApiError as error:
            for job_id in expected - found:
                self._fail(job_id, error.outcome)
            return found | expected  # not confirmed one by one: a failed list is retried next cycle
        self._costs.learn(status, pages)
        return found

    # --- discovery --------------------------------------------------------------------------------------------

    def _discover(self, discovery: Discovery) -> set[int]:
        """Read each package's newest runs; new ones join, old final ones leave. Returns the jobs refreshed."""
        now = self._wall_clock()
        horizon = discovery.horizon(now)
        refreshed: list[Job] = []
        for package_id in discovery.config.package_ids:
            try:
                for pages, jobs in enumerate(self._fetch.pages(package_id=package_id), start=1):
                    refreshed += discovery.offer(jobs, now, self._final_since)
                    oldest = min((job.created_at for job in jobs if job.created_at is not None), default=None)
                    if not jobs or (oldest is not None and oldest < horizon) or pages >= MAX_DISCOVERY_PAGES:
                        break
            except ApiError:
                continue  # counted by _call; the package is read again next cycle
        gone = discovery.age_out(now, self._final_since)
        if gone:
            log.info(
                "discovery: %d finished jobs older than %gs leave /metrics",
                len(gone),
                discovery.config.max_age_seconds,
            )
        self._cache.set_watched(
            [*self._config.jobs, *(i for i in discovery.job_ids if i not in self._static)]
        )
        self._store(refreshed)
        self._cache.update_exporter(
            discovered_jobs=len(discovery.job_ids), discovery_dropped=discovery.dropped_total
        )
        return {job.id for job in refreshed}

    def _final_since(self, job_id: int) -> float | None:
        """When a watched job finished (its finish time, else when we saw it final); None while it is not final."""
        state = self._cache.get(job_id)
        if state is None or not state.is_final or state.job is None:
            return None
        return state.job.finished_at or state.last_success

    def _find_finished(self, job_ids: list[int]) -> list[int]:
        """Many jobs on no list they were expected on — a cold start over finished jobs, or a batch that just
        ended — are looked for on the final statuses' lists, 100 a credit, before one GET each. Paging stops
        once all are found, or once it has cost half the GETs it was meant to save. Returns those not found."""
        remaining = set(job_ids)
        pages = 0
        for status in FINAL_STATUSES:
            try:
                for jobs in self._fetch.pages(status=status.value):
                    pages += 1
                    mine = [job for job in jobs if job.id in remaining]
                    self._store(mine)
                    remaining.difference_update(job.id for job in mine)
                    if not remaining or pages >= len(job_ids) // 2:
                        break
            except ApiError:
                break  # counted by the fetcher; the GETs below still find every job
            if not remaining or pages >= len(job_ids) // 2:
                break
        return sorted(remaining)

    def _refresh_each(self, job_ids: list[int]) -> None:
        """Single GETs, up to `polling.concurrency` at a time: a cold start of thousands of final jobs, or an
        API 300 ms away, would otherwise take one round trip per job. The budget still gates every request."""
        if len(job_ids) <= 1 or self._config.polling.concurrency == 1:
            for job_id in job_ids:
                self._refresh_one(job_id)
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._config.polling.concurrency, thread_name_prefix="get")
        for future in [self._pool.submit(self._refresh_one, job_id) for job_id in job_ids]:
            future.result()  # re-raises Stopping (or a bug) from the worker

    def _refresh_one(self, job_id: int) -> None:
        try:
            job = self._fetch.get_job(job_id)
        except NotFound:
            self._missing_recheck[job_id] = self._clock() + self._config.polling.missing_recheck_seconds
            before = self._cache.get(job_id)
            self._cache.record_missing(job_id)
            if before is not None and not before.missing:
                log.warning(
                    "job %d: the API answers 404; shown as missing, rechecked every %gs",
                    job_id,
                    self._config.polling.missing_recheck_seconds,
                )
            return
        except ApiError as error:
            self._fail(job_id, error.outcome, str(error))
            return
        if job.id != job_id:
            self._fail(job_id, InvalidResponse.outcome)
            return
        self._store([job])

    def _store(self, jobs: list[Job]) -> None:
        """Record fresh values, skipping any older than what we have (a list read before a later GET).

        Numbers the answer garbled keep their previous values, and the job's refresh counts as failed with
        `invalid_field`; a status outside the documented list shows as `unknown` and counts as
        `unknown_status`.
        """
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
            self._retries.pop(job.id, None)
            self._missing_recheck.pop(job.id, None)
        for before, after in self._cache.record_jobs(fresh, self._wall_clock()):
            self._log_change(before, after)
        for job in partial_answers:
            if job.status is JobStatus.UNKNOWN:
                self._fail(job.id, "unknown_status")
            else:
                self._fail(job.id, "invalid_field")

    def _fail(self, job_id: int, outcome: str, detail: str = "") -> None:
        retry = self._retries.setdefault(job_id, _Retry())
        retry.failures += 1
        skipped = min(MAX_SKIPPED_CYCLES, 2 ** (retry.failures - 1) - 1)
        retry.next_cycle = self._cycle + skipped + 1
        before = self._cache.get(job_id)
        self._cache.record_failure(job_id, outcome)
        if before is not None and before.last_error != outcome:
            reason = f" ({detail})" if detail else ""
            log.warning("job %d: refresh failed: %s%s; keeping its last values", job_id, outcome, reason)
        else:
            log.debug("job %d: refresh failed again: %s (%d in a row)", job_id, outcome, retry.failures)

    # --- the state file ---------------------------------------------------------------------------------------

    def _restore_state(self) -> None:
        """Final jobs from the state file go straight into the cache: they cost no credit after a restart."""
        if self._config.state_file is None:
            return
        watched = set(self._config.jobs)
        restored = {
            job_id: entry
            for job_id, entry in load_final_jobs(self._config.state_file, self._config.api.account_id).items()
            if job_id in watched
        }
        for job, when in restored.values():
            self._cache.record_jobs([job], when)
        self._saved_final = frozenset(restored)
        if restored:
            log.info("state file: %d final jobs restored; they will not be fetched again", len(restored))

    def _save_state(self) -> None:
        if self._config.state_file is None:
            return
        final = {
            state.job_id: (state.job, state.last_success)
            for state in self._cache.states()
            if state.job is not None and state.is_final and state.last_success is not None
        }
        if frozenset(final) != self._saved_final:
            save_final_jobs(self._config.state_file, self._config.api.account_id, final)
            self._saved_final = frozenset(final)

    # --- configuration, interval, publication ----------------------------------------------------------------

    def _apply_pending(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, None
            self._interrupt.clear()
            if self._stop.is_set():
                self._interrupt.set()
        if pending is None:
            return
        config, client = pending
        old_client, self._fetch.client, self._config = self._fetch.client, client, config
        old_client.close()
        if self._pool is not None:  # the pool is sized by polling.concurrency, which may have changed
            self._pool.shutdown(wait=True)
            self._pool = None
        self._budget.configure(config.rate_limit)
        self._static = frozenset(config.jobs)
        self._discovery = Discovery(config.discover, config.shard) if config.discover else None
        self._cache.set_watched(config.jobs)
        self._next_cycle = 0.0  # new jobs are fetched now, not one interval later
        log.info(
            "configuration reloaded: %d jobs, budget %d credits per %gs",
            len(config.jobs),
            config.rate_limit.allowed,
            config.rate_limit.window_seconds,
        )

    def _set_interval(self, credits_per_cycle: int, jobs: int) -> None:
        """Stretch the interval when a cycle's credits at the target interval would exceed the budget."""
        target = self._config.polling.interval_seconds
        needed = credits_per_cycle * self._budget.window_seconds / self._budget.limit
        interval = max(target, needed)
        if interval > target and (
            self._stretched_to is None or abs(interval - self._stretched_to) > 0.1 * interval
        ):
            log.warning(
                "refresh interval stretched from %gs to %.1fs: %d jobs need about %d credits per cycle and the "
                "budget allows %d per %gs",
                target,
                interval,
                jobs,
                credits_per_cycle,
                self._budget.limit,
                self._budget.window_seconds,
            )
            self._stretched_to = interval
        elif interval == target and self._stretched_to is not None:
            log.info("refresh interval back to %gs", target)
            self._stretched_to = None
        self._interval = interval

    def _waiting(self) -> None:
        """Called while a request waits for a credit: the loop is alive, and the budget's state is news."""
        self._heartbeat = self._clock()
        self._publish()

    def _publish(self) -> None:
        self._cache.update_exporter(
            budget=self._budget.snapshot(),
            interval_seconds=self._interval,
            target_interval_seconds=self._config.polling.interval_seconds,
        )

    def _log_change(self, before: JobState, after: JobState) -> None:
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
