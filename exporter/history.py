"""A package's run history: its last finished runs, and from them how long a run of it usually takes.

"Running far longer than usual" needs a baseline per package, not per exporter instance: a new pod has seen no
run yet. The history is part of `PackageState`, so it goes into the state file and survives restarts and
rollouts; the baseline is the median runtime of the completed runs in it (a median, so one run that hung for a
day does not move it), served once there are `TYPICAL_MIN_RUNS` of them.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

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
