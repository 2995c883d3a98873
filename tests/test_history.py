"""A package's run history: the last 20 finished runs, and the median runtime of the completed ones."""

from __future__ import annotations

from exporter.history import HISTORY_LENGTH, Run, typical_duration, with_run
from exporter.model import Job, JobStatus


def finished(job_id: int, runtime: float, status: JobStatus = JobStatus.COMPLETED) -> Job:
    """Run `job_id` finished at second 1000 + job_id, after `runtime` seconds."""
    end = 1000.0 + job_id
    return Job(
        job_id, status, status.value, runtime_seconds=runtime, started_at=end - runtime, finished_at=end
    )


def history_of(*jobs: Job) -> tuple[Run, ...]:
    history: tuple[Run, ...] = ()
    for job in jobs:
        history = with_run(history, job)
    return history


def test_the_last_twenty_finished_runs_are_kept_oldest_first() -> None:
    history = history_of(*(finished(job_id, 60.0) for job_id in range(30, 0, -1)))
    assert len(history) == HISTORY_LENGTH == 20
    assert [run.job_id for run in history] == list(range(11, 31))


def test_a_run_seen_again_is_replaced_and_a_run_still_going_is_not_kept() -> None:
    history = history_of(finished(1, 60.0), finished(1, 61.0), Job(2, JobStatus.RUNNING, "running"))
    assert history == (Run(1, JobStatus.COMPLETED, 1001.0 - 61.0, 1001.0, 61.0),)


def test_the_typical_duration_is_the_median_of_completed_runs_from_three_on() -> None:
    two = history_of(finished(1, 100.0), finished(2, 200.0), finished(3, 5.0, JobStatus.FAILED))
    assert typical_duration(two) is None  # a failed run's runtime says nothing about a usual run
    three = with_run(two, finished(4, 900.0))
    assert typical_duration(three) == 200.0
    assert typical_duration(with_run(three, finished(5, 300.0))) == 250.0


def test_without_a_runtime_the_run_lasted_from_start_to_finish() -> None:
    job = Job(7, JobStatus.COMPLETED, "completed", started_at=100.0, finished_at=160.0)
    assert history_of(job)[0].runtime_seconds == 60.0
