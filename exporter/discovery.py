"""Which runs of the watched packages to follow: new ones join, old final ones age out, a hard cap holds.

On Integrate.io every run of a package is a new job with a new id, so a fixed list of ids goes stale with the
next scheduled run. Discovery reads each package's newest jobs (the poller does the I/O, one list page per
package per cycle in the common case) and decides here, without I/O, what to watch:

- a job joins when it belongs to this shard, is in one of `statuses` (when given), and is not final or
  finished less than `max_age_seconds` ago — once joined it is followed to its final state, whatever its status;
- a final job leaves when it finished more than `max_age_seconds` ago, so series do not grow forever;
- never more than `max_jobs`: to make room for a new run the oldest final job leaves early; when every
  watched run is still going, the new run is refused. Either way it is counted and logged, never silent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping

from exporter.config import DiscoverConfig, Shard
from exporter.model import Job

log = logging.getLogger(__name__)


class Discovery:
    """The discovered jobs of one account: id → creation time (for age and eviction order)."""

    def __init__(self, config: DiscoverConfig, shard: Shard) -> None:
        self.config = config
        self._shard = shard
        self._known: dict[int, float] = {}
        self._turned_away: dict[int, float] = {}  # refused or evicted ids, so each is counted once
        self.dropped_total = 0

    @property
    def job_ids(self) -> list[int]:
        return sorted(self._known)

    @property
    def followed(self) -> dict[int, float]:
        """The runs followed now, id → creation time: what the state file keeps and a reload hands over."""
        return dict(self._known)

    def adopt(self, runs: Mapping[int, float], package_of: Callable[[int], int | None]) -> None:
        """Follow again runs an earlier process (restart) or configuration (reload) followed, so a run that is
        off the packages' newest pages by now is still followed to its end. Runs of packages no longer
        discovered (`package_of` gives a run's package, None when unknown) or of another shard are left; over
        `max_jobs`, the newest are kept."""
        wanted = self.config.package_ids
        kept = [
            (created, job_id)
            for job_id, created in runs.items()
            if self._shard.owns(job_id) and package_of(job_id) in (None, *wanted)
        ]
        for created, job_id in sorted(kept, reverse=True)[: max(0, self.config.max_jobs - len(self._known))]:
            self._known[job_id] = created

    def horizon(self, now: float) -> float:
        return now - self.config.max_age_seconds

    def offer(self, jobs: Iterable[Job], now: float, final_since: Callable[[int], float | None]) -> list[Job]:
        """Consider the jobs one package list returned; return those watched now (new and already known).

        `final_since(job_id)` gives when a watched job finished (None while it runs): the eviction order.
        """
        watched = []
        for job in jobs:
            if job.id in self._known:
                watched.append(job)
            elif self._wanted(job, now) and self._make_room(job, now, final_since):
                self._known[job.id] = job.created_at or now
                watched.append(job)
        return watched

    def age_out(self, now: float, final_since: Callable[[int], float | None]) -> list[int]:
        """Forget final jobs that finished before the horizon; return their ids."""
        horizon = self.horizon(now)
        gone = [job_id for job_id in self._known if (final_since(job_id) or now) < horizon]
        for job_id in gone:
            del self._known[job_id]
        for job_id, created in list(self._turned_away.items()):
            if created < horizon:
                del self._turned_away[job_id]
        return gone

    def _wanted(self, job: Job, now: float) -> bool:
        if job.id in self._turned_away or not self._shard.owns(job.id):
            return False
        if self.config.statuses is not None and job.status not in self.config.statuses:
            return False
        if not job.status.is_final:
            return True  # however long ago it started, a run still going is news
        return (job.finished_at or job.created_at or now) >= self.horizon(now)

    def _make_room(self, job: Job, now: float, final_since: Callable[[int], float | None]) -> bool:
        if len(self._known) < self.config.max_jobs:
            return True
        finished = [(final_since(job_id), job_id) for job_id in self._known]
        evictable = sorted((when, job_id) for when, job_id in finished if when is not None)
        if not evictable:
            self._turn_away(job.id, job.created_at or now, f"job {job.id} not watched")
            return False
        _, oldest = evictable[0]
        self._turn_away(oldest, self._known.pop(oldest), f"finished job {oldest} stops being watched early")
        return True

    def _turn_away(self, job_id: int, created: float, what: str) -> None:
        self._turned_away[job_id] = created
        self.dropped_total += 1
        log.warning(
            "discovery: %s: discover.max_jobs (%d) reached; raise it, or narrow discover.statuses",
            what,
            self.config.max_jobs,
        )
