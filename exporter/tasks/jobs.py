"""The jobs task: every watched job that is not final, brought up to date with the cheapest calls.

Executes the planner's plan: status lists first (each read until every expected job was seen), then a
confirming GET for each job missing from the list it was expected on, then the single GETs. Many jobs missing
at once (a cold start over finished jobs, a batch that just ended) are first looked for on the final statuses'
lists and then on all jobs' pages, 100 a credit. Jobs seen final are never asked again; jobs backing off after failures, or missing (404)
and not due for their recheck, are left out of the plan.

With `polling.change_feed`, a cycle first reads the change feed, `GET /jobs?status=all&sort=updated&since=T`:
every job whose `updated_at` moved since the last read, one credit a page (T is the newest `updated_at` the
feed showed, the API's own clock, so the two clocks never have to agree). Watched jobs on it are stored and
count as refreshed, so a job that left the running list needs no confirming GET. It replaces nothing else:
`updated_at` moves "when package tasks are completed" (sections/list-jobs.md of the API documentation), not
on progress ticks, so running jobs still need their list every cycle. Off by default: the benchmark found
it does not pay for itself (see the README, "How polling works").
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from exporter.cache import JobCache
from exporter.client import ApiError, InvalidResponse, NotFound
from exporter.config import PollingConfig
from exporter.fetcher import Fetcher
from exporter.list_items import ListItems
from exporter.model import FINAL_STATUSES, LISTABLE_STATUSES, Job, JobStatus
from exporter.paging import read_pages
from exporter.planner import ListCosts, Plan, confirmations, outputs_refreshes, plan_cycle
from exporter.recorder import Recorder
from exporter.retries import RetryBook
from exporter.tasks import Cost, Cycle

FINAL_LIST_THRESHOLD = 10  # more confirmations than this are first looked for on the final statuses' lists
FINAL_LISTS = tuple(status for status in LISTABLE_STATUSES if status in FINAL_STATUSES)


class JobsTask:
    """Refreshes the watched jobs that are not final; `configure()` takes new polling settings on reload."""

    def __init__(
        self,
        polling: PollingConfig,
        fetch: Fetcher,
        cache: JobCache,
        recorder: Recorder,
        retries: RetryBook,
        list_items: ListItems,
    ) -> None:
        self._polling = polling
        self._list_items = list_items
        self._fetch = fetch
        self._cache = cache
        self._recorder = recorder
        self._retries = retries
        self._costs = ListCosts()
        self._pool: ThreadPoolExecutor | None = None
        self._last_run: float | None = None
        self._feed_since: float | None = None  # the newest updated_at the change feed showed

    def configure(self, polling: PollingConfig) -> None:
        self._polling = polling
        self.close(wait=True)  # the pool is sized by polling.concurrency, which may have changed

    def close(self, *, wait: bool) -> None:
        """Shut the GET pool down; `wait=False` when stopping, so a request in flight does not hold the exit."""
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=not wait)
            self._pool = None

    def run(self, cycle: Cycle) -> None:
        now = time.monotonic()
        # Outputs GETs are spread by the time that really passed: a late or stretched cycle takes its due share.
        since = self._polling.interval_seconds if self._last_run is None else now - self._last_run
        self._last_run = now
        if self._polling.change_feed:
            self._read_feed(cycle)
        plan, missing = self._plan(cycle.number, skip=cycle.refreshed, since=since)
        found: set[int] = set()
        if plan.list_statuses:
            self._fetch.gather(sum(self._costs.estimate(status) for status in plan.list_statuses))
        for status in plan.list_statuses:
            found |= self._read_list(status, plan.expected[status])
        leftover = confirmations(plan, found)
        if len(leftover) > FINAL_LIST_THRESHOLD:
            leftover = self._find_finished(leftover)
        self._refresh_each([*plan.gets, *leftover, *missing])

    def next_cost(self, cycle: Cycle) -> Cost:
        # The first cycle, with every job still unseen, costs more once: pace by the next one.
        upcoming, _ = self._plan(cycle.number + 1, skip=cycle.refreshed, since=self._polling.interval_seconds)
        feed = 1 if self._polling.change_feed else 0
        return Cost(upcoming.estimated_credits + feed, upcoming.jobs)

    def _read_feed(self, cycle: Cycle) -> None:
        """Store the watched jobs updated since the last read and mark them refreshed in `cycle`. The first
        cycle only starts the feed (it refreshes everything anyway); a failed read is retried next cycle,
        from the same point, while the lists and GETs that follow refresh every job as without the feed."""
        if self._feed_since is None:
            self._feed_since = float(int(time.time()))
            return
        newest = self._feed_since
        watched = {state.job_id for state in self._cache.states()}

        def take(jobs: list[Job]) -> bool:
            nonlocal newest
            mine = [job for job in jobs if job.id in watched]
            self._recorder.store(mine)
            cycle.refreshed.update(job.id for job in mine)
            newest = max([newest, *(job.updated_at for job in jobs if job.updated_at is not None)])
            return False

        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self._feed_since))
        try:
            read_pages(self._fetch.pages(status="all", sort="updated", since=since), take)
        except ApiError:
            return
        self._feed_since = newest

    def _plan(self, cycle: int, skip: set[int], since: float) -> tuple[Plan, list[int]]:
        """The calls that refresh every job due in `cycle` (but those in `skip`, already refreshed, unless their
        outputs are due: lean lists, `since` seconds after the last cycle), and the missing jobs due for their
        rare recheck."""
        every = self._cache.states()
        states = [state for state in every if self._retries.due(state.job_id, cycle)]
        refresh: dict[int, JobStatus | None] = {}
        for state in states:
            if not (state.is_final or state.missing or state.job_id in skip):
                refresh[state.job_id] = state.job.status if state.job else None
        finals, ages = self._list_items.lacking(states)
        outputs = outputs_refreshes(ages, self._polling.outputs_refresh_seconds, self._fetch.pace, since)
        missing = [s.job_id for s in every if s.missing and self._retries.missing_due(s.job_id)]
        return plan_cycle(refresh, self._costs, [*finals, *outputs]), missing

    def _read_list(self, status: JobStatus, expected: frozenset[int]) -> set[int]:
        """Read one status list until every expected job was seen (or the list ends). Jobs in a status the
        documentation does not list are looked for on the `status=all` pages, at most one page per job (what
        their GETs would cost); those not reached get confirming GETs."""
        watched = {state.job_id for state in self._cache.states()}
        found: set[int] = set()

        def take(jobs: list[Job]) -> bool:
            mine = [job for job in jobs if job.id in watched]
            self._recorder.store(mine)
            found.update(job.id for job in mine)
            return expected <= found

        try:
            if status is JobStatus.UNKNOWN:
                pages = read_pages(self._fetch.pages(status="all"), take, max_pages=len(expected))
            else:
                pages = read_pages(self._fetch.pages(status=status.value), take)
        except ApiError as error:
            for job_id in expected - found:
                self._retries.fail(job_id, error.outcome)
            return found | expected  # not confirmed one by one: a failed list is retried next cycle
        self._costs.learn(status, pages)
        return found

    def _find_finished(self, job_ids: list[int]) -> list[int]:
        """Look for many jobs on the final statuses' lists, then on the `status=all` pages (where jobs in a status
        the documentation does not list are), 100 a credit, before one GET each. Stops once all are found, or
        once it has cost half the GETs it was meant to save. Returns those not found."""
        remaining = set(job_ids)
        allowance = len(job_ids) // 2

        def take(jobs: list[Job]) -> bool:
            mine = [job for job in jobs if job.id in remaining]
            self._recorder.store(mine)
            remaining.difference_update(job.id for job in mine)
            return not remaining

        for status in (*(status.value for status in FINAL_LISTS), "all"):
            if not remaining or allowance <= 0:
                break
            try:
                allowance -= read_pages(self._fetch.pages(status=status), take, max_pages=allowance)
            except ApiError:
                break  # counted by the fetcher; the GETs that follow still find every job
        return sorted(remaining)

    def _refresh_each(self, job_ids: list[int]) -> None:
        """Single GETs, up to `polling.concurrency` at a time: a cold start of thousands of final jobs, or an
        API 300 ms away, would otherwise take one round trip per job. The budget still gates every request."""
        if len(job_ids) <= 1 or self._polling.concurrency == 1:
            for job_id in job_ids:
                self._refresh_one(job_id)
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._polling.concurrency, thread_name_prefix="get")
        for future in [self._pool.submit(self._refresh_one, job_id) for job_id in job_ids]:
            future.result()  # re-raises Stopping (or a bug) from the worker

    def refresh(self, job_id: int) -> None:
        """One job now, outside a cycle (the web hook doorbell asks): a GET through the budget."""
        self._refresh_one(job_id)

    def _refresh_one(self, job_id: int) -> None:
        try:
            job = self._fetch.get_job(job_id)
        except NotFound:
            self._retries.missing(job_id, self._polling.missing_recheck_seconds)
            return
        except ApiError as error:
            self._retries.fail(job_id, error.outcome, str(error))
            return
        if job.id != job_id:
            self._retries.fail(job_id, InvalidResponse.outcome)
            return
        self._recorder.store([job])
