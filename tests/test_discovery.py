"""Issue 7: watch packages as they run: new runs join within an interval, old final runs age out, a cap holds."""

from __future__ import annotations

import time
from collections.abc import Callable

from exporter.app import App
from exporter.simulator import SimJob, Simulator
from tests.support import scrape, wait_until

Start = Callable[..., App]


def test_a_new_run_appears_and_an_old_final_run_ages_out(sim: Simulator, exporter_for: Start) -> None:
    now = int(time.time())
    sim.add_job(SimJob(id=1, status="completed", package_id=434, package_name="orders", created_at=now - 60))
    sim.add_job(SimJob(id=2, status="running", package_id=434, package_name="orders", created_at=now - 30))
    sim.add_job(SimJob(id=3, status="running", package_id=999, package_name="other"))
    app = exporter_for(
        sim, [], discover={"package_ids": [434], "max_age_seconds": 4.0}, credits=100_000, interval=0.5
    )
    wait_until(lambda: scrape(app).status(2) == "running", 5, "run 2 discovered")
    metrics = scrape(app)
    assert metrics.status(3) is None  # another package
    # Run 1 finished 60 s ago, beyond max_age: it is not discovered at all.
    assert metrics.status(1) is None
    assert metrics["integrateio_discovered_jobs"] == 1.0

    sim.add_job(SimJob(id=4, status="queued", package_id=434, package_name="orders"))
    wait_until(lambda: scrape(app).status(4) == "queued", 3, "the new run 4 within an interval or two")
    sim.update_job(2, status="completed", progress=1.0)
    wait_until(lambda: scrape(app).status(2) == "completed", 3, "run 2 completed")
    # Four seconds after it finished, run 2 leaves /metrics; the running run 4 stays.
    wait_until(lambda: scrape(app).status(2) is None, 10, "run 2 aged out")
    metrics = scrape(app)
    assert metrics.status(4) == "queued"
    assert metrics.get("integrateio_job_progress_ratio", job_id="2") is None


def test_statuses_filter_and_the_cap_count_what_they_turn_away(sim: Simulator, exporter_for: Start) -> None:
    for job_id in range(1, 6):
        sim.add_job(SimJob(id=job_id, status="running", package_id=7))
    sim.add_job(SimJob(id=6, status="queued", package_id=7))
    app = exporter_for(
        sim,
        [],
        discover={"package_ids": [7], "statuses": ["running"], "max_jobs": 3},
        credits=100_000,
        interval=0.5,
    )
    wait_until(lambda: scrape(app).get("integrateio_discovered_jobs") == 3.0, 5, "three discovered")
    metrics = scrape(app)
    assert metrics.status(6) is None  # queued: not in discover.statuses
    assert metrics["integrateio_discovery_dropped_jobs_total"] == 2.0
    watched = [j for j in range(1, 6) if metrics.status(j) == "running"]
    assert len(watched) == 3
    # Still 2 after more cycles: each turned-away job is counted once.
    wait_until(
        lambda: (
            scrape(app)["integrateio_last_full_refresh_timestamp_seconds"]
            > metrics["integrateio_last_full_refresh_timestamp_seconds"] + 1
        ),
        5,
        "two more cycles",
    )
    assert scrape(app)["integrateio_discovery_dropped_jobs_total"] == 2.0


def test_a_full_cap_makes_room_by_retiring_the_oldest_final_run(sim: Simulator, exporter_for: Start) -> None:
    now = int(time.time())
    sim.add_job(SimJob(id=1, status="completed", package_id=7, created_at=now - 50))
    sim.add_job(SimJob(id=2, status="completed", package_id=7, created_at=now - 40))
    app = exporter_for(sim, [], discover={"package_ids": [7], "max_jobs": 2}, credits=100_000, interval=0.5)
    wait_until(lambda: scrape(app).status(2) == "completed", 5, "two runs")
    sim.add_job(SimJob(id=3, status="running", package_id=7))
    wait_until(lambda: scrape(app).status(3) == "running", 5, "the new run")
    metrics = scrape(app)
    assert metrics.status(1) is None
    assert metrics.status(2) == "completed"
    assert metrics["integrateio_discovery_dropped_jobs_total"] == 1.0


def test_fixed_jobs_keep_working_beside_discovery(sim: Simulator, exporter_for: Start) -> None:
    sim.add_job(SimJob(id=10, status="running", package_id=1))
    sim.add_job(SimJob(id=11, status="running", package_id=2))
    app = exporter_for(sim, [10], discover={"package_ids": [2]}, credits=100_000, interval=0.5)
    wait_until(lambda: scrape(app).status(11) == "running", 5, "discovered 11")
    assert scrape(app).status(10) == "running"
    assert scrape(app)["integrateio_watched_jobs"] == 2.0
