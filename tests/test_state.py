"""Restarts: final jobs come back from the state file for free, a bad file is ignored, the start is paced."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from exporter.app import App
from exporter.simulator import SimJob, SimOutput, Simulator
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
        ('{"version": 99}', "state file {path} ignored: not a version 1 or 2 state file"),
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
