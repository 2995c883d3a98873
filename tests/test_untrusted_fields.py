"""Answers that are well-formed but not what the documentation promises, on the wire: a status it does not list,
a progress outside 0..1. Neither may eat the budget, flood the log, or show a value that was never true."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import pytest

from exporter.app import App
from exporter.simulator import SimJob, Simulator
from exporter.simulator.statuses import UNDOCUMENTED_STATUS
from tests.support import scrape, wait_until
from tests.test_lean_lists import gets_of

Start = Callable[..., App]
UNKNOWN = list(range(1, 301))
CLOCK = 1000  # a running job refreshed by one GET every cycle


def test_jobs_in_an_undocumented_status_cost_a_few_pages_not_a_get_each_and_one_log_line(
    sim: Simulator, exporter_for: Start, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="exporter")
    for job_id in UNKNOWN:
        sim.add_job(SimJob(id=job_id, status=UNDOCUMENTED_STATUS, progress=0.5))
    sim.add_job(SimJob(id=CLOCK, status="running", progress=0.1))
    app = exporter_for(sim, [*UNKNOWN, CLOCK], interval=0.5, credits=1_000_000)
    first = wait_until(
        lambda: (m := scrape(app)) and all(m.status(job_id) == "unknown" for job_id in UNKNOWN) and m,
        20,
        "every job shown as unknown",
    )
    assert (first.get("integrateio_job_poll_errors_total", job_id="7", error="unknown_status") or 0) >= 1
    assert set(gets_of(sim)) <= {CLOCK}  # even at the cold start: the 300 are found on the status=all pages

    sim.clear_requests()
    start = first["integrateio_last_full_refresh_timestamp_seconds"]
    wait_until(
        lambda: scrape(app)["integrateio_last_full_refresh_timestamp_seconds"] >= start + 5,
        15,
        "about ten more cycles",
    )
    charged = [r for r in sim.requests if r.charged]
    gets = gets_of(sim)
    all_pages = [r for r in charged if r.endpoint == "list_jobs" and r.query.get("status") == "all"]
    assert set(gets) == {CLOCK}  # not one GET for the 300: 3,000 credits in these cycles before
    # Read from the status=all pages (4 of them), backing off: cycles 1, 2, 4, 8 after a failure.
    assert 4 <= len(all_pages) <= 4 * 4
    assert len(charged) <= len(gets) + len(all_pages) + 2  # + a cycle in flight at either edge

    # Still refreshed: a job that leaves the undocumented status shows within the backed-off cadence.
    sim.update_job(5, status="completed")
    wait_until(lambda: scrape(app).status(5) == "completed", 15, "job 5 completed")

    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len([line for line in warnings if UNDOCUMENTED_STATUS in line]) == 1, warnings
    assert not [line for line in warnings if "refresh failed" in line]


def test_a_progress_outside_the_ratio_keeps_the_last_good_value_and_is_counted(
    sim: Simulator, exporter_for: Start
) -> None:
    sim.add_job(SimJob(id=1, status="running", progress=0.25, runtime_in_seconds=100))
    app = exporter_for(sim, [1])
    wait_until(
        lambda: scrape(app).get("integrateio_job_progress_ratio", job_id="1") == 0.25, 10, "first values"
    )
    body = json.dumps({**sim.job_payload(1), "progress": 57, "runtime_in_seconds": 200})  # a percentage
    sim.set_fault("status", job_id=1, code=200, body=body)
    after = wait_until(
        lambda: (
            (m := scrape(app)).get("integrateio_job_poll_errors_total", job_id="1", error="invalid_field")
            and m
        ),
        10,
        "an invalid_field counted for job 1",
    )
    assert after.get("integrateio_job_progress_ratio", job_id="1") == 0.25  # not 1.0: never true
    assert (
        after.get("integrateio_job_runtime_seconds", job_id="1") == 200.0
    )  # the rest of the answer is taken
    assert after.get("integrateio_job_poll_success", job_id="1") == 0.0
