"""The cycle runner: refreshes one account's watched resources in cycles, within the credit budget, into the cache.

A `schedule.Scheduler` of its own drives two things: a short tick that starts a refresh cycle when one is due,
and the regular publication of the budget's state to the cache. Cycle start times are kept here
(`start + interval`), not by `schedule`, which would count the interval from the end of the last run and drift.

A cycle calls each task in turn (`exporter.tasks`: discovery, then jobs), saves the state file, and stretches
the interval when the tasks' next runs would cost more than the budget allows. The parts, in the order data
flows (the way gitlab-ci-pipelines-exporter splits scheduler tasks → store → collector):

    Poller (loop, reload, interval, health) ─▶ tasks ─▶ fetcher (budget) ─▶ paging ─▶ recorder ─▶ cache
                                                  └─▶ retry book (backoff, 404 rechecks)      StateStore ◀─┘

A 429 or a refused key pauses everything (the budget decides for how long); when other clients of the key have
used all but the reserve, the fetcher waits, reading the free `rate_limit_status` endpoint until the key has
recovered. Before it comes to that, the interval follows the budget's *share* of the key (its budget less what the
key's other clients spend, `exporter.sharing`), re-timed as soon as the share changes, so refreshes slow down
evenly rather than stop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import schedule

from exporter.budget import CreditBudget
from exporter.cache import JobCache
from exporter.client import ApiClient
from exporter.config import ClustersConfig, Config, SchedulesConfig
from exporter.fetcher import Fetcher, Stopping
from exporter.list_items import ListItems
from exporter.planner import cycle_interval
from exporter.recorder import Recorder
from exporter.retries import RetryBook
from exporter.state import StateStore
from exporter.tasks import Cycle, Task
from exporter.tasks.clusters import ClustersTask
from exporter.tasks.discovery import DiscoveryTask
from exporter.tasks.jobs import JobsTask
from exporter.tasks.schedules import SchedulesTask

log = logging.getLogger(__name__)

L = TypeVar("L", SchedulesTask, ClustersTask)
ListedSection = SchedulesConfig | ClustersConfig

# /healthz fails when no cycle completed (and no request waited for a credit) for this many intervals, or the
# health grace when longer: a loop that ticks while every cycle dies is as stuck as one that hangs.
STUCK_INTERVALS = 3


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
        self._rung = threading.Event()  # set by the web hook doorbell: start the next cycle now
        list_items = ListItems(cache, wall_clock)
        self._fetch = Fetcher(
            client, budget, cache, self._interrupt, list_items, on_wait=self._waiting, clock=clock
        )
        self._lock = threading.Lock()
        self._pending: tuple[Config, ApiClient] | None = None
        self._scheduler = schedule.Scheduler()
        self._retries = RetryBook(cache, clock)
        self._recorder = Recorder(cache, self._retries, wall_clock, list_items)
        self._jobs = JobsTask(config.polling, self._fetch, cache, self._recorder, self._retries, list_items)
        self._discovery = self._discovery_task(config)
        self._schedules: SchedulesTask | None = None
        self._clusters: ClustersTask | None = None
        self._listed_tasks(config)
        self._next_cycle = 0.0
        self._cycle = 0
        self._stretched_to: float | None = None
        self._cycle_credits = 1
        self._sharing = False  # the key's other clients leave us less than our budget
        # The last cycle's pacing: when it was due, when it ended, what the next one costs, and the share the
        # interval was set for; a new share re-times the next cycle at once (see _repace).
        self._last_due = self._cycle_end = 0.0
        self._next_cost: tuple[int, int, float] | None = None
        self._paced_share: int | None = None
        self._spent_per_cycle: float | None = None  # credits a cycle really cost, smoothed (see _run_cycle)
        self._heartbeat = self._progress = clock()
        self._interval = config.polling.interval_seconds
        self._state = self._state_store(config, None)
        self._restore()
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
        self._jobs.close(wait=False)

    def stop(self) -> None:
        self._stop.set()
        self._interrupt.set()

    def reload(self, config: Config, client: ApiClient) -> None:
        """Take a new config (SIGHUP); applied at the next tick, so a cycle never mixes two configs."""
        with self._lock:
            self._pending = (config, client)
        self._interrupt.set()

    def alive(self, max_silence: float) -> bool:
        """For /healthz: the loop ticked (or a request waited for a credit) within `max_silence` seconds, and a
        cycle completed within `STUCK_INTERVALS` intervals (at least `max_silence`)."""
        now = self._clock()
        stuck_after = max(max_silence, STUCK_INTERVALS * self._interval)
        return now - self._heartbeat <= max_silence and now - self._progress <= stuck_after

    # --- the web hook doorbell (`exporter.webhook`), from its own thread ------------------------------------

    def refresh_job(self, job_id: int) -> None:
        """One GET for the job now, through the budget, recorded like any other answer."""
        self._jobs.refresh(job_id)

    def cycle_now(self) -> None:
        """Start the next cycle at the next tick; the one after it is an interval later."""
        self._rung.set()

    def cycle_credits(self) -> int:
        """What the next cycle is planned to cost."""
        return self._cycle_credits

    # --- the cycle -------------------------------------------------------------------------------------------

    def _tick(self) -> None:
        self._heartbeat = self._clock()
        self._apply_pending()
        self._repace()
        if self._stop.is_set() or (self._clock() < self._next_cycle and not self._rung.is_set()):
            return
        self._rung.clear()
        due = min(self._next_cycle, self._clock()) or self._clock()
        try:
            self._run_cycle()
        except Stopping:
            return  # stop or reload: the next tick starts over with the current config
        except Exception:  # a bug must not kill polling: log it with its traceback and go on next cycle
            log.exception("refresh cycle failed")
        else:
            self._progress = self._clock()
        # Counted from when the cycle was due, not from when a tick noticed: ticks come late by up to a tick,
        # and that must not add up cycle after cycle. A cycle that overran starts the next one now.
        self._last_due, self._cycle_end = due, self._clock()
        self._next_cycle = max(due + self._interval, self._cycle_end)

    def _repace(self) -> None:
        """When our share of the key has changed since the interval was set (a neighbour started or stopped
        spending), stretch or shrink the wait for the next cycle now, not a whole (possibly long) interval later."""
        if self._next_cost is None or self._next_cycle == 0.0 or self._budget.share == self._paced_share:
            return
        self._set_interval(*self._next_cost)
        self._next_cycle = max(self._last_due + self._interval, self._cycle_end)

    def _tasks(self) -> list[Task]:
        """The tasks of a cycle, in order: discovery's pages refresh the runs on them, which jobs then skips;
        schedules and clusters, when on, each read on their own interval."""
        tasks: list[Task | None] = [self._discovery, self._jobs, self._schedules, self._clusters]
        return [task for task in tasks if task is not None]

    def _run_cycle(self) -> None:
        self._cycle += 1
        self._retries.cycle = self._cycle
        cycle = Cycle(self._cycle)
        tasks = self._tasks()
        sent_by_task = []
        for task in tasks:
            before = self._budget.sent_total
            task.run(cycle)
            sent_by_task.append(self._budget.sent_total - before)
        self._cache.update_exporter(last_full_refresh=self._wall_clock(), ready=True)
        if self._state is not None:
            self._state.save(self._cache, self._discovery.followed if self._discovery is not None else {})
        costs = [task.next_cost(cycle) for task in tasks]
        per_cycle = [cost for cost in costs if cost.every_seconds is None]
        listed = sum(
            cost.credits * self._budget.window_seconds / cost.every_seconds
            for cost in costs
            if cost.every_seconds is not None
        )
        # The tasks' estimate leaves out what no plan knows ahead: confirming GETs, a list grown by a page. While
        # the interval is stretched to a share those would overrun every cycle, so pace by what the cycle's own
        # tasks really cost when that is more (smoothed; the first cycle, a cold start, does not count).
        estimate = sum(cost.credits for cost in per_cycle)
        if self._cycle > 1:
            spent = float(
                sum(
                    sent for sent, cost in zip(sent_by_task, costs, strict=True) if cost.every_seconds is None
                )
            )
            last = self._spent_per_cycle
            self._spent_per_cycle = spent if last is None else 0.7 * last + 0.3 * spent
            estimate = max(estimate, round(self._spent_per_cycle))
        self._next_cost = (estimate, sum(cost.jobs for cost in per_cycle), listed)
        self._set_interval(*self._next_cost)
        self._publish()

    def _discovery_task(self, config: Config) -> DiscoveryTask | None:
        if config.discover is None:
            return None
        return DiscoveryTask(
            config, config.discover, self._fetch, self._cache, self._recorder, self._wall_clock
        )

    def _listed_tasks(self, config: Config) -> None:
        """Create, reconfigure or withdraw the schedules and clusters tasks as `config` turns them on or off;
        a task that stays keeps its last good values and its error counts across a reload."""
        self._schedules = self._listed(self._schedules, SchedulesTask, config.schedules)
        self._clusters = self._listed(self._clusters, ClustersTask, config.clusters)

    def _listed(self, task: L | None, kind: Callable[..., L], section: ListedSection) -> L | None:
        if not section.enabled:
            if task is not None:
                task.withdraw()
            return None
        if task is None:
            return kind(
                section,
                self._fetch,
                self._cache,
                self._budget,
                clock=self._clock,
                wall_clock=self._wall_clock,
            )
        task.configure(section)  # type: ignore[arg-type]  # each task gets its own section type
        return task

    def _watched(self) -> list[int]:
        """The jobs to keep in the cache: the configured ones, and the runs discovery follows."""
        return self._discovery.watched() if self._discovery is not None else list(self._config.jobs)

    def _restore(self) -> None:
        """Before the first API call: the state file's followed runs are followed again, its jobs and packages go
        back into the cache, and its schedules and clusters into their tasks (when their sections are on), so
        /metrics serves the same package, schedule and cluster series from the start."""
        if self._state is None:
            self._cache.set_watched(self._watched())
            return
        saved = self._state.load()
        if self._discovery is not None:
            self._discovery.adopt(saved.followed, saved.package_of)
        self._cache.set_watched(self._watched())
        discovered = self._config.discover.package_ids if self._config.discover is not None else ()
        self._state.restore(self._cache, saved, discovered)
        if self._schedules is not None and saved.schedules is not None:
            self._schedules.restore(saved.schedules.items, saved.schedules.last_success)
        if self._clusters is not None and saved.clusters is not None:
            self._clusters.restore(saved.clusters.items, saved.clusters.last_success)

    @staticmethod
    def _state_store(config: Config, current: StateStore | None) -> StateStore | None:
        """The store for `config`: the current one while path and account stay, else a new one (or none)."""
        if config.state_file is None:
            return None
        if current is not None and (current.path, current.account_id) == (
            config.state_file,
            config.api.account_id,
        ):
            return current
        return StateStore(config.state_file, config.api.account_id)

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
        self._jobs.configure(config.polling)
        self._budget.configure(config.rate_limit)
        previous, self._discovery = self._discovery, self._discovery_task(config)
        if previous is not None and self._discovery is not None:
            self._discovery.take_over(previous)  # a reload must not forget the runs it follows
        self._state = self._state_store(config, self._state)
        self._listed_tasks(config)
        self._cache.set_watched(self._watched())
        self._next_cycle = 0.0  # new jobs are fetched now, not one interval later
        log.info(
            "configuration reloaded: %d jobs, budget %d credits per %gs",
            len(config.jobs),
            config.rate_limit.allowed,
            config.rate_limit.window_seconds,
        )

    def _set_interval(self, credits_per_cycle: int, jobs: int, listed_per_window: float = 0.0) -> None:
        """Stretch the interval when a cycle's credits at the target interval, beside the credits the schedules
        and clusters take per window, would exceed our share of the key (the budget, less what the key's other
        clients spend): refreshes come evenly later, not in bursts."""
        target = self._config.polling.interval_seconds
        self._cycle_credits = credits_per_cycle
        share = self._paced_share = self._budget.share
        # With the doorbell on, polling plans with what is left after the doorbell's share: hooks never starve it.
        hooks = self._config.webhook
        hook_share = hooks.budget_share if hooks.enabled else 0.0
        interval = cycle_interval(
            credits_per_cycle,
            listed_per_window,
            target,
            share * (1.0 - hook_share),
            self._budget.window_seconds,
        )
        self._say_sharing(share)
        if interval > target and (
            self._stretched_to is None or abs(interval - self._stretched_to) > 0.1 * interval
        ):
            log.log(
                logging.WARNING if self._stretched_to is None else logging.INFO,
                "refresh interval stretched from %gs to %.1fs: %d jobs need about %d credits per cycle and the "
                "budget allows %d per %gs",
                target,
                interval,
                jobs,
                credits_per_cycle,
                share,
                self._budget.window_seconds,
            )
            self._stretched_to = interval
        elif interval == target and self._stretched_to is not None:
            log.info("refresh interval back to %gs", target)
            self._stretched_to = None
        self._interval = interval

    def _say_sharing(self, share: int) -> None:
        """Say once that the key's other clients leave us less than our budget, and once that they no longer do;
        the steps in between show on /metrics (`integrateio_api_foreign_spend_credits`)."""
        shared = share < self._budget.limit
        if shared and not self._sharing:
            log.warning(
                "other clients of the API key spend about %.0f credits per %gs: pacing to %d of our %d credits "
                "so that the key keeps its reserve (refreshes slow down evenly)",
                self._budget.foreign_spend or 0.0,
                self._budget.window_seconds,
                share,
                self._budget.limit,
            )
        elif self._sharing and not shared:
            log.info("other clients of the API key leave our whole budget again: pacing to %d credits", share)
        self._sharing = shared

    def _waiting(self) -> None:
        """Called while a request waits for a credit: the loop is alive and not stuck (the budget decides), and
        the budget's state is news."""
        self._heartbeat = self._progress = self._clock()
        self._publish()

    def _publish(self) -> None:
        self._cache.update_exporter(
            budget=self._budget.snapshot(),
            interval_seconds=self._interval,
            target_interval_seconds=self._config.polling.interval_seconds,
        )
