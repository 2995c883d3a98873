"""The simulated account's jobs: the single source of truth every response is rendered from.

Tests describe jobs with the small public dataclasses (``SimJob``, ``SimOutput``, ``Step``); the world keeps its
own mutable copies so a test can never change what the API serves by mutating an object after handing it over.
One lock guards everything: rendering a page of 100 jobs under it takes well under a millisecond, and a single
lock makes "the payload a test compares against" and "the payload the server sent" the same snapshot.
"""

from __future__ import annotations

import copy
import enum
import heapq
import itertools
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from exporter.simulator.listing import ListQuery
from exporter.simulator.statuses import FINAL_STATUSES, NOT_STARTED, check_status
from exporter.simulator.timestamps import format_timestamp

_RUNNING_PROGRESS_CAP: Final = 0.99  # a running job never shows 100 %: only completion does


class Unset(enum.Enum):
    """Marker type for "leave this field alone" where ``None`` is itself a legal value (``errors``)."""

    UNSET = enum.auto()


UNSET: Final = Unset.UNSET


@dataclass
class SimOutput:
    """One output of a job as a test describes it; ``component_name`` defaults to ``name``."""

    id: int
    name: str = "output"
    records_count: int = 0
    component_name: str | None = None
    component_type: str = "destination"
    fields: tuple[str, ...] = ("id", "value")


@dataclass
class SimJob:
    """A job as a test describes it. Everything but ``id`` has a plausible default.

    Timestamps are epoch seconds; left as ``None`` they are derived from ``status`` and ``runtime_in_seconds``
    the way a real job would have produced them (a completed job started ``runtime`` seconds before it ended).
    ``progress`` ``None`` means 1.0 for completed jobs and 0.0 otherwise.
    """

    id: int
    status: str = "idle"
    progress: float | None = None
    runtime_in_seconds: int = 0
    package_id: int = 1
    package_name: str = "package"
    cluster_id: int = 1
    cluster_name: str = "sandbox"
    owner_id: int = 1
    creator_name: str = "Sim User"
    errors: str | None = ""
    outputs: list[SimOutput] = field(default_factory=list)
    variables: dict[str, Any] = field(default_factory=dict)
    dynamic_variables: dict[str, Any] = field(default_factory=dict)
    created_at: int | None = None
    started_at: int | None = None
    updated_at: int | None = None
    # Not in the API documentation (no version of resources/job.md, get-job-information.md or list-jobs.md lists
    # it; issue 12 names it): sent only when set, to test that the exporter reads it when it is there.
    attempts: int | None = None


@dataclass(frozen=True)
class Step:
    """One scripted change, applied once ``after_seconds`` simulated seconds have passed since ``add_job``.

    ``None`` fields are left alone. Status changes follow the same rules as ``update_job``.
    """

    after_seconds: float
    status: str | None = None
    progress: float | None = None
    errors: str | None = None


@dataclass(eq=False)
class _Output:
    id: int
    name: str
    records: float
    component_name: str
    component_type: str
    fields: tuple[str, ...]
    created_at: int
    updated_at: int


@dataclass(eq=False)
class _Job:
    id: int
    status: str
    progress: float
    runtime: float
    package_id: int
    package_name: str
    cluster_id: int
    cluster_name: str
    owner_id: int
    creator_name: str
    errors: str | None
    outputs: list[_Output]
    variables: dict[str, Any]
    dynamic_variables: dict[str, Any]
    created_at: int
    started_at: int | None
    failed_at: int | None
    completed_at: int | None
    updated_at: int
    attempts: int | None = None
    script: tuple[Step, ...] = ()
    next_step: int = 0
    sim_elapsed: float = 0.0
    progress_per_second: float = 0.0
    records_per_second: float = 0.0

    @property
    def animated(self) -> bool:
        """Whether the ticker has anything to do for this job (still-pending steps or growing counters)."""
        pending_steps = self.next_step < len(self.script)
        grows = self.progress_per_second > 0 or self.records_per_second > 0
        return pending_steps or (grows and self.status not in FINAL_STATUSES)


def _check_progress(progress: float) -> float:
    if not 0.0 <= progress <= 1.0:
        raise ValueError(f"progress must be within 0..1, got {progress}")
    return float(progress)


def _outputs_from(outputs: Iterable[SimOutput], now: int, previous: Sequence[_Output] = ()) -> list[_Output]:
    """Copy outputs in, keeping ``created_at`` of outputs that already existed (matched by id)."""
    born = {o.id: o.created_at for o in previous}
    return [
        _Output(
            id=o.id,
            name=o.name,
            records=float(o.records_count),
            component_name=o.component_name if o.component_name is not None else o.name,
            component_type=o.component_type,
            fields=tuple(o.fields),
            created_at=born.get(o.id, now),
            updated_at=now,
        )
        for o in outputs
    ]


def _job_from(job: SimJob, now: int) -> _Job:
    """Build the internal state, deriving the timestamps a real job in that status would carry."""
    status = check_status(job.status)
    runtime = int(job.runtime_in_seconds)
    created = job.created_at if job.created_at is not None else now - runtime
    started = job.started_at
    if started is None and status not in NOT_STARTED:
        started = created
    ended = (started if started is not None else created) + runtime if status in FINAL_STATUSES else None
    updated = job.updated_at
    if updated is None:
        updated = ended if ended is not None else started if started is not None else created
    progress = job.progress if job.progress is not None else (1.0 if status == "completed" else 0.0)
    return _Job(
        id=job.id,
        status=status,
        progress=_check_progress(progress),
        runtime=float(runtime),
        package_id=job.package_id,
        package_name=job.package_name,
        cluster_id=job.cluster_id,
        cluster_name=job.cluster_name,
        owner_id=job.owner_id,
        creator_name=job.creator_name,
        errors=job.errors,
        outputs=_outputs_from(job.outputs, created),
        variables=copy.deepcopy(job.variables),
        dynamic_variables=copy.deepcopy(job.dynamic_variables),
        created_at=created,
        started_at=started,
        failed_at=ended if status == "failed" else None,
        completed_at=ended if status == "completed" else None,
        updated_at=updated,
        attempts=job.attempts,
    )


def _render(job: _Job, root: str) -> dict[str, Any]:
    """The job object exactly as the API documents it; ``root`` is ``{base_url}/{account_id}``."""
    api = f"{root}/api"
    job_url = f"{api}/jobs/{job.id}"
    document = {
        "id": job.id,
        "status": job.status,
        "owner_id": job.owner_id,
        "progress": round(job.progress, 4),
        "outputs_count": len(job.outputs),
        "outputs": [
            {
                "id": o.id,
                "name": o.name,
                "records_count": int(o.records),
                "created_at": format_timestamp(o.created_at),
                "updated_at": format_timestamp(o.updated_at),
                "url": f"{job_url}/outputs/{o.id}",
                "component": {"name": o.component_name, "type": o.component_type, "fields": list(o.fields)},
            }
            for o in job.outputs
        ],
        "variables": copy.deepcopy(job.variables) if job.variables else {},
        "dynamic_variables": copy.deepcopy(job.dynamic_variables) if job.dynamic_variables else {},
        "started_at": format_timestamp(job.started_at) if job.started_at is not None else None,
        "created_at": format_timestamp(job.created_at),
        "failed_at": format_timestamp(job.failed_at) if job.failed_at is not None else None,
        "completed_at": format_timestamp(job.completed_at) if job.completed_at is not None else None,
        "updated_at": format_timestamp(job.updated_at),
        "cluster_id": job.cluster_id,
        "package_id": job.package_id,
        "errors": job.errors,
        "runtime_in_seconds": int(job.runtime),
        "url": job_url,
        "html_url": f"{root}/jobs/{job.id}",  # the run in the web UI: resources/job.md, "html_url"
        "log_url": f"{job_url}/log" if job.started_at is not None else None,
        "creator": {
            "type": "User",
            "display_name": job.creator_name,
            "id": job.owner_id,
            "url": f"{api}/members/{job.owner_id}",
        },
        "package": {
            "id": job.package_id,
            "name": job.package_name,
            "url": f"{api}/packages/{job.package_id}",
            # the package in the web UI: resources/package.md, "html_url" (resources/job.md: a job's `package`
            # "includes all attributes")
            "html_url": f"{root}/packages/{job.package_id}",
        },
        "cluster": {
            "id": job.cluster_id,
            "name": job.cluster_name,
            "url": f"{api}/clusters/{job.cluster_id}",
        },
    }
    if job.attempts is not None:
        document["attempts"] = job.attempts  # undocumented (see SimJob.attempts)
    return document


class World:
    """All jobs of the simulated account, their lifecycle, and the queries the API answers from them.

    ``speed`` multiplies wall-clock time for scripted jobs (a demo at speed 60 plays five minutes in five
    seconds); timestamps in payloads stay real wall-clock times.
    """

    def __init__(self, *, speed: float = 1.0, wall_clock: Callable[[], float] = time.time) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self._speed = speed
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._jobs: dict[int, _Job] = {}
        self._animated: set[int] = set()
        self._root = "http://127.0.0.1:0/account"
        self.on_transition: Callable[[int, str], None] | None = None
        """Told of every status change (job id, new status) under the world's lock: it must only queue."""

    def _now(self) -> int:
        return int(self._wall_clock())

    def set_url_root(self, root: str) -> None:
        """Where rendered ``url`` fields point (``{base_url}/{account_id}``); known once the server is bound."""
        with self._lock:
            self._root = root

    def add(
        self,
        job: SimJob,
        *,
        script: Sequence[Step] = (),
        progress_per_second: float = 0.0,
        records_per_second: float = 0.0,
    ) -> None:
        """Add one job; ``ValueError`` for a duplicate id, an unknown status or a step out of order."""
        for step in script:
            if step.status is not None:
                check_status(step.status)
        if any(b.after_seconds < a.after_seconds for a, b in itertools.pairwise(script)):
            raise ValueError("script steps must be ordered by after_seconds")
        state = _job_from(job, self._now())
        state.script = tuple(script)
        state.progress_per_second = progress_per_second
        state.records_per_second = records_per_second
        with self._lock:
            if job.id in self._jobs:
                raise ValueError(f"job {job.id} already exists")
            self._jobs[job.id] = state
            if state.animated:
                self._animated.add(job.id)

    def add_unrelated(self, count: int, status: str) -> list[int]:
        """Bulk-add ``count`` jobs nobody watches, with ids above every existing one (at least 100000)."""
        check_status(status)
        now = self._now()
        base_created = now - count * 60 - 3600
        with self._lock:
            first = max(max(self._jobs, default=0) + 1, 100_000)
            ids = list(range(first, first + count))
            for n, job_id in enumerate(ids):
                template = SimJob(
                    id=job_id,
                    status=status,
                    runtime_in_seconds=300,
                    package_id=9000 + n % 10,
                    package_name=f"unrelated_{n % 10}",
                    created_at=base_created + n * 60,
                )
                self._jobs[job_id] = _job_from(template, now)
        return ids

    def update(
        self,
        job_id: int,
        *,
        status: str | None = None,
        progress: float | None = None,
        runtime_in_seconds: int | None = None,
        errors: str | Unset | None = UNSET,
        outputs: Sequence[SimOutput] | None = None,
        bump_updated: bool = False,
    ) -> None:
        """Change a job the way the real service would; ``KeyError`` if it does not exist."""
        if status is not None:
            check_status(status)
        if progress is not None:
            _check_progress(progress)
        with self._lock:
            job = self._jobs[job_id]
            self._apply(job, status=status, progress=progress, errors=errors, bump_updated=bump_updated)
            if runtime_in_seconds is not None:
                job.runtime = float(runtime_in_seconds)
            if outputs is not None:
                job.outputs = _outputs_from(outputs, self._now(), job.outputs)
            self._refresh_animation(job)

    def _apply(
        self,
        job: _Job,
        *,
        status: str | None,
        progress: float | None,
        errors: str | Unset | None,
        bump_updated: bool,
    ) -> None:
        """Status transitions and their side effects, shared by ``update`` and scripted steps.

        ``updated_at`` moves on a status change (or when asked) and never on progress alone, like the real
        API. Each bump is strictly later than the previous ``updated_at``, even within one wall-clock second,
        so a client that detects change by ``updated_at`` always can.
        """
        changed = status is not None and status != job.status
        if changed or bump_updated:
            job.updated_at = max(self._now(), job.updated_at + 1)
        if changed and status is not None:
            job.status = status
            if self.on_transition is not None:
                self.on_transition(job.id, status)
            stamp = job.updated_at
            if status not in NOT_STARTED and job.started_at is None:
                job.started_at = stamp
            if status == "completed":
                job.completed_at = stamp
                job.progress = 1.0
            elif status == "failed":
                job.failed_at = stamp
        if progress is not None:
            job.progress = progress
        if not isinstance(errors, Unset):
            job.errors = errors

    def _refresh_animation(self, job: _Job) -> None:
        if job.animated:
            self._animated.add(job.id)
        else:
            self._animated.discard(job.id)

    def remove(self, job_id: int) -> None:
        """Forget a job (the API answers 404 for it afterwards); ``KeyError`` if it does not exist."""
        with self._lock:
            del self._jobs[job_id]
            self._animated.discard(job_id)

    def payload(self, job_id: int) -> dict[str, Any] | None:
        """The job object as GET /jobs/{id} renders it right now, or ``None`` if there is no such job."""
        with self._lock:
            job = self._jobs.get(job_id)
            return None if job is None else _render(job, self._root)

    def status_of(self, job_id: int) -> str:
        """Just the status, for tests and demos that wait on lifecycle progress."""
        with self._lock:
            return self._jobs[job_id].status

    def ids(self) -> list[int]:
        """Every job id, ascending."""
        with self._lock:
            return sorted(self._jobs)

    def select(self, query: ListQuery) -> tuple[list[dict[str, Any]], int]:
        """One page of the job list and the number of jobs matching the filters (for pagination links).

        Only the page is sorted fully (``heapq``), so listing stays cheap with tens of thousands of jobs.
        """
        with self._lock:
            matches = [
                j
                for j in self._jobs.values()
                if (query.status is None or j.status == query.status)
                and (query.package_id is None or j.package_id == query.package_id)
                # "only jobs updated at the given time or later" (sections/list-jobs.md, `since`)
                and (query.since is None or j.updated_at >= query.since)
            ]

            def by_created(j: _Job) -> tuple[int, int]:
                return (j.created_at, j.id)

            def by_updated(j: _Job) -> tuple[int, int]:
                return (j.updated_at, j.id)

            key = by_created if query.sort == "created" else by_updated
            wanted = query.offset + query.limit
            top = (
                heapq.nlargest(wanted, matches, key)
                if query.descending
                else heapq.nsmallest(wanted, matches, key)
            )
            return [_render(j, self._root) for j in top[query.offset :]], len(matches)

    def tick(self, wall_seconds: float) -> None:
        """Advance animated jobs by ``wall_seconds`` of real time (times ``speed``): steps, runtime, counters."""
        sim_seconds = wall_seconds * self._speed
        with self._lock:
            for job_id in list(self._animated):
                job = self._jobs[job_id]
                self._advance(job, sim_seconds)
                self._refresh_animation(job)

    def _advance(self, job: _Job, sim_seconds: float) -> None:
        """One tick of one job: fire due steps, then grow runtime, progress and records while running."""
        job.sim_elapsed += sim_seconds
        while job.next_step < len(job.script) and job.script[job.next_step].after_seconds <= job.sim_elapsed:
            step = job.script[job.next_step]
            job.next_step += 1
            errors: str | Unset | None = step.errors if step.errors is not None else UNSET
            self._apply(job, status=step.status, progress=step.progress, errors=errors, bump_updated=False)
        if job.status != "running":
            return
        job.runtime += sim_seconds
        if job.progress_per_second > 0:
            grown = min(_RUNNING_PROGRESS_CAP, job.progress + job.progress_per_second * sim_seconds)
            job.progress = max(job.progress, grown)
        for output in job.outputs:
            output.records += job.records_per_second * sim_seconds
