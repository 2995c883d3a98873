"""A package's run history: its last finished runs, and from them how long a run of it usually takes.

"Running far longer than usual" needs a baseline per package, not per exporter instance: a new pod has seen no
run yet. The history is part of `PackageState`, so it goes into the state file and survives restarts and
rollouts; the baseline is the median runtime of the completed runs in it (a median, so one run that hung for a
day does not move it), served once there are `TYPICAL_MIN_RUNS` of them.

The history also decides what `RunTotals` counts, each run once: a run already in the history (by job id) is
not counted again, and neither is one that finished no later than the newest run that ever left the history
(`RunTotals.evicted_until`): only such a run can have been counted before and forgotten since. A restart
restores the history and the totals together, so a run the new process sees again is not counted twice. The
price: a run first seen after 20 newer runs of its package have come and gone is not counted (better one run
missing from a counter than one counted twice); a batch of runs seen at once is counted oldest first, so all of
it is counted (`JobCache.record_jobs`).
"""

from __future__ import annotations

import bisect
import itertools
import statistics
from dataclasses import dataclass, replace

from exporter.model import Job, JobStatus

HISTORY_LENGTH = 20  # finished runs kept per package: enough for a stable median, small in the state file
TYPICAL_MIN_RUNS = 3  # completed runs needed before a typical duration is served: one or two prove nothing


@dataclass(frozen=True)
class Run:
    """One finished run of a package, as the history keeps it."""

    job_id: int
    status: JobStatus
    started_at: float | None
    finished_at: float
    runtime_seconds: float | None

    @classmethod
    def of(cls, job: Job) -> Run | None:
        """The run `job` was, or None while it is not finished (or its finish time is unknown)."""
        if not job.status.is_final or job.finished_at is None:
            return None
        runtime = job.runtime_seconds
        if runtime is None and job.started_at is not None:
            runtime = max(0.0, job.finished_at - job.started_at)
        return cls(job.id, job.status, job.started_at, job.finished_at, runtime)


def with_run(history: tuple[Run, ...], job: Job) -> tuple[Run, ...]:
    """`history` after seeing `job`: its run added (or replaced, when seen before), oldest first, the last
    `HISTORY_LENGTH` kept. Unchanged while `job` is not finished."""
    run = Run.of(job)
    if run is None:
        return history
    runs = [known for known in history if known.job_id != run.job_id]
    runs.append(run)
    runs.sort(key=lambda known: (known.finished_at, known.job_id))
    return tuple(runs[-HISTORY_LENGTH:])


def with_counted_run(
    history: tuple[Run, ...], totals: RunTotals, job: Job
) -> tuple[tuple[Run, ...], RunTotals]:
    """`history` and `totals` after seeing `job`: its run counted unless it may have been counted before."""
    updated = with_run(history, job)
    run = Run.of(job)
    if run is None or any(known.job_id == run.job_id for known in history):
        return updated, totals
    horizon = totals.evicted_until
    if horizon is None or run.finished_at > horizon:
        totals = totals.counted(run)
    kept = {known.job_id for known in updated}
    evicted = [known.finished_at for known in (*history, run) if known.job_id not in kept]
    if evicted:
        totals = replace(totals, evicted_until=max(evicted) if horizon is None else max(horizon, *evicted))
    return updated, totals


def typical_duration(history: tuple[Run, ...]) -> float | None:
    """The median runtime of the completed runs in `history`; None with fewer than `TYPICAL_MIN_RUNS`."""
    runtimes = [
        run.runtime_seconds
        for run in history
        if run.status is JobStatus.COMPLETED and run.runtime_seconds is not None
    ]
    if len(runtimes) < TYPICAL_MIN_RUNS:
        return None
    return float(statistics.median(runtimes))


# Runtime buckets of `integrateio_package_run_duration_seconds`, from a minute to a day: ETL runs take minutes to
# hours, and each bound is about twice the previous one, so a quantile is read within a factor of two.
DURATION_BUCKETS = (
    60.0,
    120.0,
    300.0,
    600.0,
    900.0,
    1800.0,
    3600.0,
    7200.0,
    14400.0,
    28800.0,
    43200.0,
    86400.0,
)
COUNTED_STATUSES = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.STOPPED)


@dataclass(frozen=True)
class RunTotals:
    """A package's finished runs counted since the exporter (or its state file) first saw the package: per final
    status, and the runtimes of the completed ones as a histogram (`DURATION_BUCKETS`). Only completed runs go
    into the histogram: a failed or stopped run ends at an arbitrary point, which says nothing about how long a
    run of the package takes."""

    completed: int = 0
    failed: int = 0
    stopped: int = 0
    buckets: tuple[int, ...] = (0,) * (len(DURATION_BUCKETS) + 1)  # per bucket, not cumulative; +Inf last
    runtime_sum: float = 0.0
    evicted_until: float | None = None  # the newest finish of a run that left the history (see the module)

    def __post_init__(self) -> None:
        if (
            len(self.buckets) != len(DURATION_BUCKETS) + 1
            or min(self.completed, self.failed, self.stopped, *self.buckets) < 0
        ):
            raise ValueError(f"run totals need {len(DURATION_BUCKETS) + 1} buckets and no negative count")

    def count(self, status: JobStatus) -> int:
        """Runs counted that ended in `status` (one of `COUNTED_STATUSES`)."""
        return {
            JobStatus.COMPLETED: self.completed,
            JobStatus.FAILED: self.failed,
            JobStatus.STOPPED: self.stopped,
        }.get(status, 0)

    def cumulative(self) -> tuple[int, ...]:
        """The histogram's `_bucket` values: runs at or below each bound, then all of them (+Inf)."""
        return tuple(itertools.accumulate(self.buckets))

    def counted(self, run: Run) -> RunTotals:
        """These totals with one more finished run."""
        if run.status is JobStatus.FAILED:
            return replace(self, failed=self.failed + 1)
        if run.status is JobStatus.STOPPED:
            return replace(self, stopped=self.stopped + 1)
        if run.status is not JobStatus.COMPLETED:
            return self
        totals = replace(self, completed=self.completed + 1)
        if run.runtime_seconds is None:
            return totals  # counted, but with no runtime to observe
        index = bisect.bisect_left(DURATION_BUCKETS, run.runtime_seconds)  # `le`: a bound holds its own value
        buckets = list(self.buckets)
        buckets[index] += 1
        return replace(totals, buckets=tuple(buckets), runtime_sum=self.runtime_sum + run.runtime_seconds)

    @classmethod
    def of(cls, history: tuple[Run, ...]) -> RunTotals:
        """The totals of the runs in `history`, for a state file written before the totals existed. A full history
        may have let older runs go: none older than its oldest is counted again."""
        totals = cls(evicted_until=history[0].finished_at if len(history) >= HISTORY_LENGTH else None)
        for run in history:
            totals = totals.counted(run)
        return totals
