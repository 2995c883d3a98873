"""Issue 12 items 3 and 4 over HTTP against the simulator: each package's finished runs counted once and its
completed runs' runtimes as a histogram, both kept across a restart on the state file (a run the new process sees
again is not counted twice); a job's attempts when the API sends them; the API's error text for a failed run on
the status page (escaped) and in /api/jobs, never on /metrics."""

from __future__ import annotations

import html
import json
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import requests

from exporter.app import App
from exporter.cache import JobCache, PackageState
from exporter.history import HISTORY_LENGTH
from exporter.model import Job, JobStatus, parse_job
from exporter.simulator import SimJob, Simulator
from exporter.state import SavedState, load_state, save_state
from tests.support import Samples, make_config, scrape, scrape_when, wait_until

RUNNING_RUN = 20
LATE_RUN = 21
HOSTILE_ERROR = "<script>window.pwned=1</script> & \"quoted\" 'single' </div><b>\nsecond line"
DURATION = "integrateio_package_run_duration_seconds"
BOUNDS = ("60.0", "120.0", "300.0", "600.0", "900.0", "1800.0", "3600.0", "7200.0", "14400.0", "28800.0")
BOUNDS += ("43200.0", "86400.0", "+Inf")


def start(sim: Simulator, state: Path) -> App:
    """An exporter that discovers package 434's and 500's runs of the last hour, with a state file."""
    config = make_config(
        sim,
        [],
        discover={"package_ids": [434, 500], "max_age_seconds": 3600},
        state_file=str(state),
        credits=100_000,
        interval=0.5,
    )
    app = App(config, ("127.0.0.1", 0))
    app.start()
    return app


def add_finished(
    sim: Simulator, job_id: int, package_id: int, status: str, runtime: int, **fields: Any
) -> None:
    """A run of `package_id` that ended `job_id` seconds ago (so each has its own finish), after `runtime`."""
    finished = int(time.time()) - 600 + job_id
    sim.add_job(
        SimJob(
            id=job_id,
            status=status,
            runtime_in_seconds=runtime,
            package_id=package_id,
            package_name=f"package-{package_id}",
            created_at=finished - runtime,
            **fields,
        )
    )


def add_runs(sim: Simulator) -> None:
    """Package 434: completed runs of 45, 60 (on a bucket's bound), 700 and 4,000 s, a failed run (with a hostile
    error text), a stopped run, and a run still going; package 500: 24 completed runs of 30 s (more than the 20 its
    history keeps: only the state file's totals remember them all) and one longer than a day."""
    for job_id, runtime in ((2, 45), (3, 60), (4, 700), (5, 4000)):
        add_finished(sim, job_id, 434, "completed", runtime)
    add_finished(sim, 6, 434, "failed", 50, errors=HOSTILE_ERROR, attempts=3)
    add_finished(sim, 7, 434, "stopped", 10)
    add_finished(sim, 8, 500, "completed", 100_000)
    for job_id in range(100, 124):
        add_finished(sim, job_id, 500, "completed", 30)
    sim.add_job(
        SimJob(
            id=RUNNING_RUN,
            status="running",
            package_id=434,
            package_name="package-434",
            created_at=int(time.time()) - 300,
            attempts=2,
        )
    )


def runs(metrics: Samples, package_id: str) -> dict[str, float | None]:
    return {
        status: metrics.get("integrateio_package_runs_total", package_id=package_id, status=status)
        for status in ("completed", "failed", "stopped")
    }


def histogram(metrics: Samples, package_id: str) -> dict[str, float | None]:
    """The package's histogram: every bucket by `le`, and `count` and `sum`."""
    found: dict[str, float | None] = {
        bound: metrics.get(f"{DURATION}_bucket", package_id=package_id, le=bound) for bound in BOUNDS
    }
    found["count"] = metrics.get(f"{DURATION}_count", package_id=package_id)
    found["sum"] = metrics.get(f"{DURATION}_sum", package_id=package_id)
    return found


def cumulative(*counts: int) -> dict[str, float | None]:
    """Expected buckets from the number of runs at or below each bound (+Inf last)."""
    assert len(counts) == len(BOUNDS)
    return dict(zip(BOUNDS, map(float, counts), strict=True))


def history_lines(app: App) -> list[str]:
    """The two families exactly as served: HELP, TYPE and every sample line."""
    text = requests.get(app.url("/metrics"), timeout=10).text
    return [line for line in text.splitlines() if "integrateio_package_run" in line]


def full_refreshes(app: App, count: int) -> None:
    """Wait until the exporter has refreshed everything `count` more times."""
    for _ in range(count):
        before = scrape(app).get("integrateio_last_full_refresh_timestamp_seconds") or 0.0
        scrape_when(
            app,
            lambda metrics, before=before: (
                (metrics.get("integrateio_last_full_refresh_timestamp_seconds") or 0) > before
            ),
            "a full refresh",
        )


def test_runs_are_counted_once_and_survive_a_restart(sim: Simulator, tmp_path: Path, promtool: str) -> None:
    add_runs(sim)
    state = tmp_path / "state.json"

    first = start(sim, state)
    try:
        metrics = scrape_when(
            first,
            lambda m: (
                runs(m, "434")["completed"] == 4.0
                and runs(m, "500")["completed"] == 25.0
                and m.status(RUNNING_RUN) == "running"
            ),
            "package 434's finished runs counted",
        )
        assert runs(metrics, "434") == {"completed": 4.0, "failed": 1.0, "stopped": 1.0}
        assert runs(metrics, "500") == {"completed": 25.0, "failed": 0.0, "stopped": 0.0}
        # 45 and 60 s at or below a minute, 700 s below 15 minutes, 4,000 s below 2 hours.
        assert histogram(metrics, "434") == {
            **cumulative(2, 2, 2, 2, 3, 3, 3, 4, 4, 4, 4, 4, 4),
            "count": 4.0,
            "sum": 4805.0,
        }
        assert histogram(metrics, "500") == {
            **cumulative(24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 25),
            "count": 25.0,
            "sum": 100_720.0,
        }

        # The running run completes: counted once, however many refreshes see it afterwards.
        sim.update_job(RUNNING_RUN, status="completed", runtime_in_seconds=1500)
        scrape_when(first, lambda m: runs(m, "434")["completed"] == 5.0, "the run's completion counted")
        full_refreshes(first, 3)
        metrics = scrape(first)
        assert runs(metrics, "434") == {"completed": 5.0, "failed": 1.0, "stopped": 1.0}
        assert histogram(metrics, "434") == {
            **cumulative(2, 2, 2, 2, 3, 4, 4, 5, 5, 5, 5, 5, 5),
            "count": 5.0,
            "sum": 6305.0,
        }
        body = requests.get(first.url("/metrics"), timeout=10).text
        wait_until(lambda: state.exists(), 10, "the state file written")
        before = history_lines(first)
    finally:
        first.stop()
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, text=True, timeout=60, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr

    # A new process on the same state file: the same counters and histogram, and after it has listed and
    # recorded every run of the hour again, still the same (nothing counted twice).
    sim.clear_requests()
    second = start(sim, state)
    try:
        assert history_lines(second) == before
        scrape_when(
            second, lambda m: all(m.status(job_id) for job_id in (2, 6, 8, 20)), "the runs seen again"
        )
        full_refreshes(second, 2)
        assert sim.requests, "the new process asked the API"
        assert history_lines(second) == before

        # A run that finished while no exporter ran is new: counted on top of the kept totals.
        add_finished(sim, LATE_RUN, 434, "completed", 200)
        metrics = scrape_when(second, lambda m: runs(m, "434")["completed"] == 6.0, "the late run counted")
        assert runs(metrics, "434") == {"completed": 6.0, "failed": 1.0, "stopped": 1.0}
        assert histogram(metrics, "434") == {
            **cumulative(2, 2, 3, 3, 4, 5, 5, 6, 6, 6, 6, 6, 6),
            "count": 6.0,
            "sum": 6505.0,
        }
    finally:
        second.stop()


def test_attempts_and_the_error_text_reach_metrics_page_and_json(sim: Simulator, tmp_path: Path) -> None:
    add_runs(sim)
    app = start(sim, tmp_path / "state.json")
    try:
        metrics = scrape_when(app, lambda m: m.status(6) == "failed" and m.status(2), "the runs discovered")
        assert metrics.get("integrateio_job_attempts", job_id="6") == 3.0
        assert metrics.get("integrateio_job_attempts", job_id=str(RUNNING_RUN)) == 2.0
        assert metrics.get("integrateio_job_attempts", job_id="2") is None  # not sent: no series, no guess
        assert "pwned" not in metrics.text  # an error text is never a label

        page = requests.get(app.url("/"), timeout=10).text
        assert "<script>window.pwned" not in page and "</div><b>" not in page
        assert html.escape(HOSTILE_ERROR, quote=True) in page
        assert '<span class="dim">3 attempts</span>' in page and '<span class="dim">2 attempts</span>' in page

        document = requests.get(app.url("/api/jobs"), timeout=10).json()
        jobs = {job["job_id"]: job for job in document["jobs"]}
        assert jobs[6]["job_errors"] == HOSTILE_ERROR
        assert (jobs[6]["attempts"], jobs[RUNNING_RUN]["attempts"], jobs[2]["attempts"]) == (3, 2, None)
    finally:
        app.stop()


@pytest.mark.parametrize(
    ("sent", "read"),
    [(2, 2), (0, 0), ("3", 3), (4.0, 4), (-1, None), (1.5, None), ("x", None), (True, None), (None, None)],
)
def test_attempts_are_read_tolerantly(sent: object, read: int | None) -> None:
    """`attempts` is not in the API documentation: a whole number of at least 0 is read, anything else is
    unknown (and costs the job none of its other values)."""
    job = parse_job({"id": 1, "status": "failed", "progress": 0, "runtime_in_seconds": 5, "attempts": sent})
    assert job.attempts == read
    assert job.runtime_seconds == 5.0


# --- counting each run once, without the HTTP around it -------------------------------------------------------


def finished(job_id: int, runtime: float, status: JobStatus = JobStatus.COMPLETED, end: float = 0.0) -> Job:
    """Run `job_id` finished at second `end` (default 1000 + job_id), after `runtime` seconds."""
    end = end or 1000.0 + job_id
    return Job(
        job_id, status, status.value, runtime_seconds=runtime, started_at=end - runtime, finished_at=end
    )


def seen(*jobs: Job, package: PackageState | None = None) -> PackageState:
    package = package or PackageState(434)
    for job in jobs:
        package = package.seen(job)
    return package


def test_a_run_seen_again_even_after_it_left_the_history_is_not_counted_again() -> None:
    package = seen(*(finished(job_id, 60.0) for job_id in range(1, 31)))
    assert package.totals.completed == 30 and len(package.history) == HISTORY_LENGTH
    assert seen(finished(30, 60.0), finished(3, 60.0), package=package).totals == package.totals
    # A run never seen that finished after every run the history let go is new.
    assert seen(finished(99, 60.0, end=1015.5), package=package).totals.completed == 31


def test_a_batch_of_runs_is_counted_whole_whatever_its_order() -> None:
    """A list page brings the newest runs first: the cache takes them oldest first, as if seen one by one."""
    cache = JobCache()
    cache.set_watched(range(1, 31))
    newest_first = [finished(job_id, 30.0 * job_id) for job_id in range(30, 0, -1)]
    cache.record_jobs([replace(job, package_id=434) for job in newest_first], now=2000.0)
    (package,) = cache.snapshot().packages
    assert package.totals.completed == 30
    assert package.totals.cumulative() == (2, 4, 10, 20, 30, 30, 30, 30, 30, 30, 30, 30, 30)  # 30 s to 900 s
    assert package.totals.runtime_sum == 30.0 * sum(range(1, 31))


def test_only_completed_runs_with_a_runtime_go_into_the_histogram() -> None:
    totals = seen(
        finished(1, 5.0, JobStatus.FAILED),
        finished(2, 7.0, JobStatus.STOPPED),
        Job(3, JobStatus.COMPLETED, "completed", finished_at=1003.0),  # no runtime, no start
        finished(4, 60.0),
        finished(5, 60.5),
    ).totals
    assert (totals.completed, totals.failed, totals.stopped) == (3, 1, 1)
    assert totals.cumulative()[:2] == (1, 2) and totals.cumulative()[-1] == 2  # `le` holds its bound
    assert totals.runtime_sum == 120.5


def test_a_state_file_from_before_the_totals_counts_its_history(tmp_path: Path) -> None:
    """Version 2 files written before the totals existed: the runs in each history are what was counted, and
    with a full history nothing older than it is counted again."""
    package = seen(*(finished(job_id, 60.0) for job_id in range(1, 26)))
    path = tmp_path / "state.json"
    assert save_state(str(path), "acme", SavedState(packages={434: package}))
    document = json.loads(path.read_text())
    assert document["packages"]["434"]["runs"]["completed"] == 25
    assert load_state(str(path), "acme").packages[434].totals == package.totals
    del document["packages"]["434"]["runs"]
    path.write_text(json.dumps(document))
    old = load_state(str(path), "acme").packages[434]
    assert old.totals.completed == HISTORY_LENGTH
    assert seen(finished(2, 60.0), package=old).totals == old.totals
