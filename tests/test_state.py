"""Restarts: jobs and packages come back from the state file for free, a bad file is ignored, a failed write
leaves the old one, the start is paced."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from exporter.app import App
from exporter.cache import JobCache, PackageState
from exporter.model import Job, JobStatus
from exporter.simulator import SimJob, SimOutput, Simulator
from exporter.state import FORMAT_VERSION, SavedState, StateStore, load_state, save_state
from tests.support import make_config, max_requests_in_any_window, scrape, wait_until

Start = Callable[..., App]


def run_until_ready(sim: Simulator, jobs: list[int], state_file: Path | None, **options: Any) -> App:
    config = make_config(sim, jobs, state_file=None if state_file is None else str(state_file), **options)
    app = App(config, ("127.0.0.1", 0))
    app.start()
    wait_until(
        lambda: scrape(app).get("integrateio_last_full_refresh_timestamp_seconds"), 10, "a full refresh"
    )
    return app


def add_jobs(sim: Simulator) -> None:
    sim.add_job(
        SimJob(
            id=1,
            status="completed",
            runtime_in_seconds=60,
            outputs=[SimOutput(id=5, name="done", records_count=123)],
        )
    )
    sim.add_job(SimJob(id=2, status="failed", errors="boom"))
    sim.add_job(SimJob(id=3, status="running", progress=0.3))


def test_final_jobs_survive_a_restart_and_cost_nothing(sim: Simulator, tmp_path: Path) -> None:
    add_jobs(sim)
    state = tmp_path / "state" / "final.json"
    first = run_until_ready(sim, [1, 2, 3], state)
    wait_until(state.exists, 5, "the state file")
    before = scrape(first)
    first.stop()
    assert sorted(json.loads(state.read_text())["jobs"]) == ["1", "2", "3"]

    sim.clear_requests()
    second = run_until_ready(sim, [1, 2, 3], state)
    try:
        after = scrape(second)
        assert [r.path for r in sim.requests if r.path.endswith(("/jobs/1", "/jobs/2"))] == []
        for name, labels in [
            ("integrateio_job_status", {"job_id": "1", "status": "completed"}),
            ("integrateio_job_status", {"job_id": "2", "status": "failed"}),
            ("integrateio_job_runtime_seconds", {"job_id": "1"}),
            ("integrateio_job_output_records", {"job_id": "1", "output_id": "5", "output_name": "done"}),
            ("integrateio_job_last_success_timestamp_seconds", {"job_id": "1"}),
        ]:
            assert after.get(name, **labels) == before.get(name, **labels), name
        assert after.status(3) == "running"
    finally:
        second.stop()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "state file {path} ignored: cannot read it as JSON (JSONDecodeError)"),
        ('{"version": 99}', "state file {path} ignored: not a version 1, 2 or 3 state file"),
        (
            '{"version": 1, "account_id": "other", "jobs": {}}',
            "state file {path} ignored: written for account 'other', not 'acme'",
        ),
        (
            '{"version": 1, "account_id": "acme", "jobs": {"1": {"job": {}}}}',
            "state file {path} ignored: malformed (missing 'status')",
        ),
    ],
)
def test_a_corrupt_state_file_is_reported_and_ignored(
    sim: Simulator, tmp_path: Path, caplog: pytest.LogCaptureFixture, content: str, message: str
) -> None:
    add_jobs(sim)
    state = tmp_path / "final.json"
    state.write_text(content)
    with caplog.at_level(logging.INFO, logger="exporter"):
        app = run_until_ready(sim, [1, 2, 3], state)
    try:
        assert message.format(path=state) in caplog.messages
        metrics = scrape(app)
        assert [metrics.status(job_id) for job_id in (1, 2, 3)] == ["completed", "failed", "running"]
        assert any(r.path.endswith("/jobs/1") for r in sim.requests)
    finally:
        app.stop()
    # Rewritten whole once a cycle has seen the jobs.
    assert sorted(json.loads(state.read_text())["jobs"]) == ["1", "2", "3"]


def test_a_missing_state_file_is_created(
    sim: Simulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    add_jobs(sim)
    state = tmp_path / "final.json"
    with caplog.at_level(logging.INFO, logger="exporter"):
        app = run_until_ready(sim, [1, 2, 3], state)
    app.stop()
    assert f"state file {state} does not exist yet; it is written after the first refresh" in caplog.messages
    assert json.loads(state.read_text())["account_id"] == "acme"


def test_the_first_refresh_is_spread_inside_the_budget(sim: Simulator) -> None:
    """120 jobs the API has never heard of (each needs its own GET to learn it is missing), a budget of 900 per
    hour: a burst of 45 requests, then one every 4 s — not a stampede of 120."""
    config = make_config(sim, list(range(1, 121)), credits=1000, window=3600.0)
    app = App(config, ("127.0.0.1", 0))
    app.start()
    try:
        wait_until(
            lambda: len([r for r in sim.requests if r.charged]) >= 47, 10, "the burst and a paced request"
        )
        charged = [r.time for r in sim.requests if r.charged]
        assert max_requests_in_any_window(charged, 1.0) <= 45
        assert max_requests_in_any_window(charged, 3.0) <= 46
        assert len([r for r in sim.requests if r.endpoint == "get_job"]) < 120
    finally:
        app.stop()


def v1_job(job_id: int, status: str, finished: float, runtime: float) -> dict[str, Any]:
    """A job as version 1 wrote it (every field of `Job`, the status as text)."""
    return {
        "id": job_id,
        "status": status,
        "raw_status": status,
        "progress": 1.0 if status == "completed" else 0.0,
        "runtime_seconds": runtime,
        "outputs": [{"id": 5, "name": "done", "records_count": 123}],
        "package_id": 434,
        "package_name": "orders",
        "started_at": finished - runtime,
        "updated_at": finished,
        "created_at": finished - runtime,
        "finished_at": finished,
        "errors": "boom" if status == "failed" else "",
        "unusable": [],
    }


def test_a_version_1_file_is_read_and_rewritten_as_the_current_version(
    sim: Simulator, tmp_path: Path
) -> None:
    add_jobs(sim)
    state = tmp_path / "state.json"
    version_1 = {
        "version": 1,
        "account_id": "acme",
        "jobs": {
            "1": {"job": v1_job(1, "completed", 1_764_000_000.0, 60.0), "last_success": 1_764_000_100.0},
            "2": {"job": v1_job(2, "failed", 1_764_000_500.0, 30.0), "last_success": 1_764_000_600.0},
        },
    }
    state.write_text(json.dumps(version_1))
    app = run_until_ready(sim, [1, 2, 3], state)
    try:
        metrics = scrape(app)
        assert [r.path for r in sim.requests if r.path.endswith(("/jobs/1", "/jobs/2"))] == []
        assert metrics.get("integrateio_job_last_success_timestamp_seconds", job_id="1") == 1_764_000_100.0
        # The packages, which version 1 did not keep, are rebuilt from its jobs.
        assert metrics.get("integrateio_package_last_job_status", package_id="434", status="failed") == 1.0
        assert metrics.get("integrateio_package_last_success_timestamp_seconds", package_id="434") == 1.764e9
        assert (
            metrics.get("integrateio_package_last_failure_timestamp_seconds", package_id="434")
            == 1_764_000_500.0
        )
        assert metrics.get("integrateio_package_typical_duration_seconds", package_id="434") is None  # 1 run
        wait_until(
            lambda: json.loads(state.read_text())["version"] == FORMAT_VERSION, 5, "the file rewritten"
        )
    finally:
        app.stop()
    package = json.loads(state.read_text())["packages"]["434"]
    # Each run as [job id, status, started, finished, runtime].
    assert package["history"] == [
        [1, "completed", 1_764_000_000.0 - 60.0, 1_764_000_000.0, 60.0],
        [2, "failed", 1_764_000_500.0 - 30.0, 1_764_000_500.0, 30.0],
    ]
    assert (package["name"], package["last_run"]["id"], package["last_success"]) == ("orders", 2, 1.764e9)


WRITE_UNDER_A_SIZE_LIMIT = """
import logging, os, resource, signal, sys
from exporter.model import Job, JobStatus
from exporter.state import SavedState, save_state

logging.basicConfig(format="%(message)s")
path = sys.argv[1]

def jobs(count):
    job = lambda i: Job(i, JobStatus.COMPLETED, "completed", finished_at=1.0)
    return SavedState(jobs={i: (job(i), 2.0) for i in range(1, count + 1)})

assert save_state(path, "acme", jobs(1))
# From here on no file of this process may grow past the state file's size: the next, larger write fails with
# EFBIG half-way through (SIGXFSZ ignored, so the write returns the error instead of killing the process).
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(path), resource.RLIM_INFINITY))
print(save_state(path, "acme", jobs(200)))
"""


def test_a_write_that_fails_half_way_leaves_the_previous_file_intact(tmp_path: Path) -> None:
    """A real failed write, not a mock: the kernel's file size limit (RLIMIT_FSIZE), as a full disk would."""
    state = tmp_path / "state.json"
    done = subprocess.run(
        [sys.executable, "-c", WRITE_UNDER_A_SIZE_LIMIT, str(state)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout == "False\n"
    assert done.stderr == f"state file {state} not written: File too large\n"
    assert list(json.loads(state.read_text())["jobs"]) == ["1"]
    assert [path.name for path in tmp_path.iterdir()] == ["state.json"]  # the temporary file is gone


def test_a_temporary_file_a_killed_process_left_is_removed_at_start(
    sim: Simulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    add_jobs(sim)
    state = tmp_path / "state.json"
    leftover = tmp_path / ".state.json.k1ll3d.tmp"
    leftover.write_text('{"version": 2, "acc')
    with caplog.at_level(logging.INFO, logger="exporter"):
        app = run_until_ready(sim, [1, 2, 3], state)
    app.stop()
    assert not leftover.exists()
    assert f"state file {state}: removed {leftover.name}, left by an interrupted write" in caplog.messages


def saved_jobs(count: int) -> SavedState:
    def job(job_id: int) -> Job:
        return Job(job_id, JobStatus.COMPLETED, "completed", finished_at=1.0)

    return SavedState(jobs={job_id: (job(job_id), 2.0) for job_id in range(1, count + 1)})


def test_a_write_is_on_disk_beside_the_file_before_it_replaces_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a power loss would show, which no test can cause: the new contents, all of them, are flushed to
    disk (fsync) in a temporary file in the state file's own directory (a rename across file systems is no
    rename), named as a start after a SIGKILL looks for it, while the state file still holds the previous
    state; only then is the temporary renamed over it (os.replace: atomic, never a file half old, half new),
    and the directory synced so that the rename survives too."""
    state = tmp_path / "state.json"
    assert save_state(str(state), "acme", saved_jobs(1))
    previous = state.read_bytes()
    events: list[tuple[Any, ...]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        synced = Path(os.readlink(f"/proc/self/fd/{fd}"))
        events.append(("fsync", synced, os.fstat(fd).st_size, state.read_bytes()))
        real_fsync(fd)

    def replace(source: str, target: str) -> None:
        events.append(("replace", Path(source), Path(target)))
        real_replace(source, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    assert save_state(str(state), "acme", saved_jobs(3))  # smaller than any buffer: only a flush writes it
    monkeypatch.undo()

    written = state.read_bytes()
    assert [event[0] for event in events] == ["fsync", "replace", "fsync"]
    (_, synced, synced_size, state_then), (_, source, target), (_, directory, _, _) = events
    assert directory == tmp_path  # and then the rename itself is put on disk
    assert synced.parent == tmp_path
    assert re.fullmatch(r"\.state\.json\.[^/]+\.tmp", synced.name)
    assert (synced_size, state_then) == (len(written), previous)  # all of it synced; the old file untouched
    assert (source, target) == (synced, state)
    assert list(json.loads(written)["jobs"]) == ["1", "2", "3"]
    assert [path.name for path in tmp_path.iterdir()] == ["state.json"]


UNREADABLE_ENTRIES = [
    pytest.param(
        {
            "version": 3,
            "jobs": {
                "1": {
                    "job": {"id": 2, "status": "completed", "raw_status": "completed", "outputs": []},
                    "last_success": 5.0,
                }
            },
            "followed": {},
            "packages": {},
        },
        "state file {path} ignored: entry 1 holds job 2",
        id="an-entry-holding-another-job",
    ),
    pytest.param(
        {
            "version": 1,
            "jobs": {
                "1": {
                    "job": {"id": 1, "status": "running", "raw_status": "running", "outputs": []},
                    "last_success": 5.0,
                }
            },
        },
        "state file {path} ignored: entry 1 is not a final job",
        id="version-1-with-a-running-job",
    ),
]


@pytest.mark.parametrize(("document", "message"), UNREADABLE_ENTRIES)
def test_a_file_whose_entries_contradict_themselves_is_ignored_whole(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, document: dict[str, Any], message: str
) -> None:
    """Job 2's values under job 1's key would show job 1 with another run's status; a version 1 file kept
    final jobs only, so a running one there is not what that exporter wrote. Neither file is trusted at all."""
    state = tmp_path / "state.json"
    state.write_text(json.dumps({**document, "account_id": "acme"}))
    with caplog.at_level(logging.INFO, logger="exporter"):
        assert load_state(str(state), "acme") == SavedState()
    assert caplog.messages == [message.format(path=state)]


def run_of(job_id: int, package_id: int, status: JobStatus = JobStatus.COMPLETED, name: str = "p") -> Job:
    return Job(
        job_id, status, status.value, package_id=package_id, package_name=name, finished_at=100.0 + job_id
    )


def test_only_the_packages_still_of_interest_are_restored(tmp_path: Path) -> None:
    """Those of the restored jobs and those discovery reads: a package of a job no longer watched, nor
    discovered, would otherwise come back as series nobody configured."""
    cache = JobCache()
    cache.set_watched([1])
    saved = SavedState(
        jobs={1: (run_of(1, 434), 5.0), 2: (run_of(2, 999), 5.0)},
        packages={
            package_id: PackageState(package_id).seen(run_of(job_id, package_id))
            for job_id, package_id in ((1, 434), (2, 999), (3, 512))
        },
    )
    StateStore(str(tmp_path / "state.json"), "acme").restore(cache, saved, discovered=[512])
    snapshot = cache.snapshot()
    assert [package.package_id for package in snapshot.packages] == [434, 512]
    assert [state.job_id for state in snapshot.jobs if state.job is not None] == [1]


def test_a_renamed_package_is_written_though_no_status_changed(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    store = StateStore(str(path), "acme")
    cache = JobCache()
    cache.set_watched([1])
    cache.record_jobs([run_of(1, 434, JobStatus.RUNNING, name="orders")], now=10.0)
    store.save(cache, {})
    cache.record_jobs([run_of(1, 434, JobStatus.RUNNING, name="orders-v2")], now=20.0)
    store.save(cache, {})
    assert json.loads(path.read_text())["packages"]["434"]["name"] == "orders-v2"
