"""The discovery task: each watched package's newest runs, read once a cycle; new runs join, old ones leave.

What joins and what leaves is decided by `exporter.discovery` (pure); this task does the reading: one page per
package in the common case, more only while pages hold runs younger than `max_age_seconds`. The runs on those
pages are refreshed by them for free, so the jobs task skips them in the same cycle (`Cycle.refreshed`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from exporter.cache import JobCache
from exporter.client import ApiError
from exporter.config import Config, DiscoverConfig
from exporter.discovery import Discovery
from exporter.fetcher import Fetcher
from exporter.model import Job
from exporter.paging import read_pages
from exporter.recorder import Recorder
from exporter.tasks import Cost, Cycle

log = logging.getLogger(__name__)

MAX_DISCOVERY_PAGES = 10  # per package and cycle: 1,000 runs younger than max_age_seconds is plenty


class DiscoveryTask:
    """Follows the runs of `discover.package_ids` beside the configured `jobs` of one account."""

    def __init__(
        self,
        config: Config,
        discover: DiscoverConfig,
        fetch: Fetcher,
        cache: JobCache,
        recorder: Recorder,
        wall_clock: Callable[[], float],
    ) -> None:
        self._static = config.jobs
        self._discovery = Discovery(discover, config.shard)
        self._fetch = fetch
        self._cache = cache
        self._recorder = recorder
        self._wall_clock = wall_clock

    def run(self, cycle: Cycle) -> None:
        discovery = self._discovery
        now = self._wall_clock()
        horizon = discovery.horizon(now)
        refreshed: list[Job] = []

        def take(jobs: list[Job]) -> bool:
            refreshed.extend(discovery.offer(jobs, now, self._final_since))
            oldest = min((job.created_at for job in jobs if job.created_at is not None), default=None)
            return oldest is not None and oldest < horizon

        for package_id in discovery.config.package_ids:
            try:
                read_pages(self._fetch.pages(package_id=package_id), take, max_pages=MAX_DISCOVERY_PAGES)
            except ApiError:
                continue  # counted by the fetcher; the package is read again next cycle
        gone = discovery.age_out(now, self._final_since)
        if gone:
            log.info(
                "discovery: %d finished jobs older than %gs leave /metrics",
                len(gone),
                discovery.config.max_age_seconds,
            )
        self._cache.set_watched(self.watched())
        self._recorder.store(refreshed)
        self._cache.update_exporter(
            discovered_jobs=len(discovery.job_ids), discovery_dropped=discovery.dropped_total
        )
        cycle.refreshed.update(job.id for job in refreshed)

    def watched(self) -> list[int]:
        """The configured jobs, then the followed runs that are not among them."""
        static = set(self._static)
        return [*self._static, *(i for i in self._discovery.job_ids if i not in static)]

    @property
    def followed(self) -> dict[int, float]:
        """The runs followed now, id → creation time (for the state file)."""
        return self._discovery.followed

    def adopt(self, runs: Mapping[int, float], package_of: Callable[[int], int | None]) -> None:
        """Follow runs a restart (the state file) or a reload (the previous task) hands over; `package_of` says
        which package a run belongs to, as far as known. See `Discovery.adopt`."""
        self._discovery.adopt(runs, package_of)
        self._cache.update_exporter(discovered_jobs=len(self._discovery.job_ids))

    def take_over(self, previous: DiscoveryTask) -> None:
        """Continue where the task of the previous configuration stopped (SIGHUP): its followed runs, and its
        count of turned-away runs, which is a counter and must not go back to zero."""
        self._discovery.dropped_total = previous._discovery.dropped_total
        self.adopt(previous.followed, self._package_of)

    def next_cost(self, cycle: Cycle) -> Cost:
        return Cost(credits=len(self._discovery.config.package_ids), jobs=len(cycle.refreshed))

    def _package_of(self, job_id: int) -> int | None:
        """The package of a watched run, from its last values."""
        state = self._cache.get(job_id)
        return None if state is None or state.job is None else state.job.package_id

    def _final_since(self, job_id: int) -> float | None:
        """When a watched job finished (its finish time, else when we saw it final); None while it is not final."""
        state = self._cache.get(job_id)
        if state is None or not state.is_final or state.job is None:
            return None
        return state.job.finished_at or state.last_success
