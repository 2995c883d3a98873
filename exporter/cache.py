"""The latest good state of every watched job, and of the exporter itself.

The poller writes, scrapes read; nothing here does I/O. A failed refresh never replaces a job's last good values:
it only marks the attempt failed and counts the error class, so a dashboard keeps showing the last known truth
and an alert can tell "stale" from "changed". Readers take a `CacheSnapshot`, a consistent copy made under the
lock, and a version number that moves on every write, so the exposition renders only when something changed.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, TypedDict, Unpack

from exporter.budget import BudgetSnapshot
from exporter.history import Run, RunTotals, typical_duration, with_counted_run
from exporter.model import Job, JobStatus
from exporter.pipelines import Cluster, Schedule


@dataclass(frozen=True)
class ListingHealth:
    """How reading one listed resource (`schedules`, `clusters`) went: errors by class, and when it last
    succeeded. A failed read keeps the resource's last good values; only this changes."""

    errors: MappingProxyType[str, int] = field(default_factory=lambda: MappingProxyType({}))
    last_success: float | None = None


@dataclass(frozen=True)
class JobState:
    """What we know about one watched job. `job` is None until the first successful refresh.

    `cycle` is the refresh cycle whose answer `job` is (0: restored from the state file), and `last_success` when
    it arrived: what `exporter.ordering` weighs a later answer against.
    """

    job_id: int
    account: str | None = None
    job: Job | None = None
    last_success: float | None = None
    cycle: int = 0
    last_attempt_ok: bool | None = None
    missing: bool = False
    errors: MappingProxyType[str, int] = field(default_factory=lambda: MappingProxyType({}))
    last_error: str | None = None

    @property
    def is_final(self) -> bool:
        return self.job is not None and self.job.status.is_final


@dataclass(frozen=True)
class PackageState:
    """A package across its runs: kept when its jobs age out, so "no success in 26 hours" stays answerable."""

    package_id: int
    account: str | None = None
    name: str | None = None
    url: str | None = None  # the package's page in the web UI, as its jobs' `package.html_url` last named it
    last_finished: Job | None = None
    last_success: float | None = None
    last_failure: float | None = None
    history: tuple[Run, ...] = ()  # the last finished runs, oldest first (`exporter.history`)
    # Every finished run counted once, kept across restarts (`exporter.history`).
    totals: RunTotals = field(default_factory=RunTotals)

    @property
    def typical_duration(self) -> float | None:
        """How long a completed run of this package usually takes, from its history; None until known."""
        return typical_duration(self.history)

    def seen(self, job: Job) -> PackageState:
        """This package after seeing `job` (any status: its name or web page may be new; a final one may be its
        latest). A job that does not say keeps the package's last known name and page."""
        state = replace(self, name=job.package_name or self.name, url=job.package_url or self.url)
        finished = job.finished_at
        if not job.status.is_final or finished is None:
            return state
        history, totals = with_counted_run(self.history, self.totals, job)
        state = replace(state, history=history, totals=totals)
        latest = self.last_finished
        if latest is None or latest.finished_at is None or finished >= latest.finished_at:
            state = replace(state, last_finished=job)
        if job.status is JobStatus.COMPLETED:
            state = replace(state, last_success=max(finished, self.last_success or finished))
        elif job.status is JobStatus.FAILED:
            state = replace(state, last_failure=max(finished, self.last_failure or finished))
        return state


@dataclass(frozen=True)
class ExporterState:
    """The exporter's own health, as the poller last published it."""

    account: str | None = None
    watched_jobs: int = 0
    requests: MappingProxyType[tuple[str, str], int] = field(default_factory=lambda: MappingProxyType({}))
    budget: BudgetSnapshot | None = None
    api_up: bool | None = None
    interval_seconds: float = 0.0
    target_interval_seconds: float = 0.0
    last_full_refresh: float | None = None
    ready: bool = False
    config_reload_ok: bool = True
    config_reload_time: float | None = None
    discovered_jobs: int | None = None
    discovery_dropped: int = 0
    list_items: str | None = None
    webhook_requests: MappingProxyType[str, int] | None = None  # None while the doorbell is off
    webhook_last_accepted: float | None = None
    schedules: tuple[Schedule, ...] | None = None  # None: the schedules section is off
    clusters: tuple[Cluster, ...] | None = None  # None: the clusters section is off
    listing: MappingProxyType[str, ListingHealth] = field(default_factory=lambda: MappingProxyType({}))


class ExporterFields(TypedDict, total=False):
    """The ExporterState fields the poller, fetcher and app publish through `JobCache.update_exporter`.

    `account`, `watched_jobs` and `requests` are left out: the cache itself keeps them (constructor,
    `set_watched`, `record_request`), so nobody can publish a count that disagrees with its jobs.
    """

    budget: BudgetSnapshot | None
    api_up: bool | None
    interval_seconds: float
    target_interval_seconds: float
    last_full_refresh: float | None
    ready: bool
    config_reload_ok: bool
    config_reload_time: float | None
    discovered_jobs: int | None
    discovery_dropped: int
    list_items: str | None
    schedules: tuple[Schedule, ...] | None
    clusters: tuple[Cluster, ...] | None


@dataclass(frozen=True)
class CacheSnapshot:
    """A consistent view for one render: jobs in configuration order, packages, and the exporter's own state
    (one `ExporterState` per account; a single-account exporter has exactly one)."""

    version: int
    jobs: tuple[JobState, ...]
    exporters: tuple[ExporterState, ...]
    packages: tuple[PackageState, ...] = ()

    @property
    def exporter(self) -> ExporterState:
        """The first account's state: the only one unless `accounts:` is configured."""
        return self.exporters[0]

    @property
    def ready(self) -> bool:
        return all(state.ready for state in self.exporters)


class JobCache:
    """Thread-safe store of one account's JobState per watched job, PackageState, and ExporterState.

    `account` is the value of the `account` label when several accounts are configured, else None.
    """

    def __init__(self, account: str | None = None) -> None:
        self._account = account
        self._lock = threading.Lock()
        self._jobs: dict[int, JobState] = {}
        self._packages: dict[int, PackageState] = {}
        self._exporter = ExporterState(account=account)
        self._requests: Counter[tuple[str, str]] = Counter()
        self._version = 0

    @property
    def version(self) -> int:
        return self._version

    def set_watched(self, job_ids: Iterable[int]) -> None:
        """Follow a (re)loaded job list: known jobs keep their state, unwatched ones leave /metrics."""
        with self._lock:
            self._jobs = {
                job_id: self._jobs.get(job_id) or JobState(job_id, self._account) for job_id in job_ids
            }
            self._exporter = replace(self._exporter, watched_jobs=len(self._jobs))
            self._version += 1

    def get(self, job_id: int) -> JobState | None:
        with self._lock:
            return self._jobs.get(job_id)

    def states(self) -> list[JobState]:
        with self._lock:
            return list(self._jobs.values())

    def record_jobs(self, jobs: Iterable[Job], now: float, cycle: int = 0) -> list[tuple[JobState, JobState]]:
        """Store fresh values of watched jobs, answers of refresh `cycle` that arrived at `now`; returns
        (before, after) pairs so the caller can log changes."""
        changes = []
        with self._lock:
            # Finished runs oldest first, so that a package's history and run totals take a batch of runs the
            # way they would have taken the runs one by one (`exporter.history`); the rest keep their order.
            for job in sorted(jobs, key=_finish_order):
                before = self._jobs.get(job.id)
                if before is None:
                    continue  # a list page also carries jobs nobody watches
                after = replace(
                    before, job=job, last_success=now, cycle=cycle, last_attempt_ok=True, missing=False
                )
                self._jobs[job.id] = after
                if job.package_id is not None:
                    package = self._packages.get(job.package_id) or PackageState(
                        job.package_id, self._account
                    )
                    self._packages[job.package_id] = package.seen(job)
                changes.append((before, after))
            self._version += 1
        return changes

    def record_missing(self, job_id: int) -> JobState | None:
        """The API answered 404: the job is shown as missing and keeps whatever values it had."""
        return self._update(job_id, missing=True, last_attempt_ok=True)

    def record_failure(self, job_id: int, error: str) -> JobState | None:
        """A refresh failed: count it by class, keep the last good values."""
        return self._count(job_id, error, last_attempt_ok=False)

    def count_error(self, job_id: int, error: str) -> JobState | None:
        """Count an error class for an answer that was stored all the same (its timestamps were in the future):
        the refresh did bring true values, so the attempt stays good and nothing backs off."""
        return self._count(job_id, error)

    def record_request(self, endpoint: str, outcome: str) -> None:
        with self._lock:
            self._requests[(endpoint, outcome)] += 1
            self._exporter = replace(self._exporter, requests=MappingProxyType(dict(self._requests)))
            self._version += 1

    def enable_webhook(self, outcomes: Iterable[str], now: float) -> None:
        """The doorbell is on: its `outcomes` start at 0, and its last accepted hook at `now` (so an alert on
        hooks that stopped arriving counts from the time they were expected, not from 1970)."""
        with self._lock:
            counts = dict(self._exporter.webhook_requests or {})
            counts = {outcome: counts.get(outcome, 0) for outcome in outcomes}
            last = self._exporter.webhook_last_accepted or now
            self._exporter = replace(
                self._exporter, webhook_requests=MappingProxyType(counts), webhook_last_accepted=last
            )
            self._version += 1

    def record_webhook(self, outcome: str, now: float, *, accepted: bool) -> None:
        """Count one hook by outcome; an accepted one (answered 2xx) also moves the last accepted time."""
        with self._lock:
            counts = dict(self._exporter.webhook_requests or {})
            counts[outcome] = counts.get(outcome, 0) + 1
            last = now if accepted else self._exporter.webhook_last_accepted
            self._exporter = replace(
                self._exporter, webhook_requests=MappingProxyType(counts), webhook_last_accepted=last
            )
            self._version += 1

    def update_exporter(self, **fields: Unpack[ExporterFields]) -> None:
        """Publish exporter-level values (budget, interval, readiness...); a misspelt field fails mypy."""
        with self._lock:
            self._exporter = replace(self._exporter, **fields)
            self._version += 1

    def publish_listing(self, resource: str, health: ListingHealth | None, fields: ExporterFields) -> None:
        """Publish a listed resource (schedules, clusters): its items in `fields`, and how reading it went
        (None: the resource is no longer read)."""
        with self._lock:
            listing = {key: value for key, value in self._exporter.listing.items() if key != resource}
            if health is not None:
                listing[resource] = health
            self._exporter = replace(self._exporter, listing=MappingProxyType(listing), **fields)
            self._version += 1

    def snapshot(self) -> CacheSnapshot:
        with self._lock:
            return CacheSnapshot(
                version=self._version,
                jobs=tuple(self._jobs.values()),
                exporters=(self._exporter,),
                packages=tuple(self._packages[key] for key in sorted(self._packages)),
            )

    def _count(self, job_id: int, error: str, **fields: Any) -> JobState | None:
        with self._lock:
            before = self._jobs.get(job_id)
            if before is None:
                return None
            errors = dict(before.errors)
            errors[error] = errors.get(error, 0) + 1
            after = replace(before, errors=MappingProxyType(errors), last_error=error, **fields)
            self._jobs[job_id] = after
            self._version += 1
            return after

    # --- restored from the state file (`exporter.state`) -------------------------------------------------------

    def restore(self, jobs: Iterable[tuple[Job, float]], packages: Iterable[PackageState]) -> None:
        """Put back what the state file kept, before the first API call: each watched job's last values (and
        when they were fetched), and the packages as they were, history included, so a restart serves the same
        package series. Packages are taken whole rather than rebuilt from the jobs, which may have aged out."""
        with self._lock:
            for job, fetched in jobs:
                before = self._jobs.get(job.id)
                if before is not None:
                    self._jobs[job.id] = replace(
                        before, job=job, last_success=fetched, last_attempt_ok=True, missing=False
                    )
            for package in packages:
                self._packages[package.package_id] = replace(package, account=self._account)
            self._version += 1

    def _update(self, job_id: int, **fields: Any) -> JobState | None:
        with self._lock:
            before = self._jobs.get(job_id)
            if before is None:
                return None
            after = replace(before, **fields)
            self._jobs[job_id] = after
            self._version += 1
            return after


def _finish_order(job: Job) -> float:
    return math.inf if job.finished_at is None else job.finished_at


class CacheGroup:
    """Several accounts' caches read as one, for the exposition and the status page.

    Each account's cache only ever counts its version up, so the sum of the versions moves whenever any
    account changes; the snapshot takes each cache's own consistent snapshot in turn.
    """

    def __init__(self, caches: list[JobCache]) -> None:
        self._caches = caches

    @property
    def version(self) -> int:
        return sum(cache.version for cache in self._caches)

    def snapshot(self) -> CacheSnapshot:
        parts = [cache.snapshot() for cache in self._caches]
        return CacheSnapshot(
            version=sum(part.version for part in parts),
            jobs=tuple(state for part in parts for state in part.jobs),
            exporters=tuple(state for part in parts for state in part.exporters),
            packages=tuple(state for part in parts for state in part.packages),
        )
