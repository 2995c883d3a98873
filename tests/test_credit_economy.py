"""Issue 3: keep many jobs fresh on few credits, stay correct across lists, and share the key politely."""

from __future__ import annotations

import time
from collections.abc import Callable

from exporter.app import App
from exporter.simulator import SimJob, Simulator
from tests.support import scrape, wait_until

Start = Callable[..., App]


def charged(sim: Simulator, endpoint: str | None = None) -> list[str]:
    return [r.path for r in sim.requests if r.charged and (endpoint is None or r.endpoint == endpoint)]


def list_reads(sim: Simulator) -> int:
    """Pages read of the running list so far: one per cycle while everything fits one page."""
    return len([r for r in sim.requests if r.endpoint == "list_jobs" and r.query.get("status") == "running"])


def test_a_hundred_running_jobs_cost_one_credit_per_cycle(sim: Simulator, exporter_for: Start) -> None:
    for job_id in range(1, 101):
        sim.add_job(SimJob(id=job_id, status="running", progress=0.1))
    app = exporter_for(sim, list(range(1, 101)), interval=0.5, credits=100_000)
    wait_until(lambda: scrape(app).status(100) == "running", 10, "all jobs fetched")
    sim.clear_requests()
    wait_until(lambda: list_reads(sim) >= 5, 10, "five cycles")
    requests = [r for r in sim.requests if r.charged]
    # Each cycle is one page of the running list and nothing else.
    assert {(r.endpoint, r.query.get("status"), r.query.get("limit")) for r in requests} == {
        ("list_jobs", "running", "100")
    }
    assert scrape(app)["integrateio_refresh_interval_seconds"] == 0.5


def test_jobs_spread_over_many_pages_of_unrelated_jobs_are_all_fresh(
    sim: Simulator, exporter_for: Start
) -> None:
    watched = list(range(1, 151))
    for job_id in watched:  # created long ago, so that they come last in the list's created-desc order
        sim.add_job(SimJob(id=job_id, status="running", progress=0.1, created_at=1_700_000_000))
    sim.add_unrelated_jobs(2000, status="running")
    app = exporter_for(sim, watched, interval=1.0, credits=100_000)
    wait_until(
        lambda: (lambda m: all(m.status(j) == "running" for j in (1, 75, 150)))(scrape(app)),
        20,
        "first refresh",
    )
    for job_id in watched:
        sim.update_job(job_id, progress=0.7)

    def all_at_07() -> bool:
        metrics = scrape(app)
        return all(metrics.get("integrateio_job_progress_ratio", job_id=str(j)) == 0.7 for j in watched)

    wait_until(all_at_07, 20, "every watched job at 0.7")
    # Reading 22 pages is cheaper than 150 single GETs, and no job was fetched one by one after the start.
    sim.clear_requests()
    wait_until(lambda: list_reads(sim) >= 44, 30, "two full passes over the running list")
    assert charged(sim, "get_job") == []
    # The watched jobs sit on the last pages: every pass reads to the last one (offset 2100 of 2150 jobs).
    assert max(int(r.query.get("offset", "0")) for r in sim.requests if r.endpoint == "list_jobs") == 2100


def test_a_job_that_finishes_between_list_calls_ends_in_its_true_final_state(
    sim: Simulator, exporter_for: Start
) -> None:
    for job_id in range(1, 11):
        sim.add_job(SimJob(id=job_id, status="running", progress=0.2))
    for job_id in range(11, 16):
        sim.add_job(SimJob(id=job_id, status="queued"))
    app = exporter_for(sim, list(range(1, 16)), interval=0.3, credits=100_000)
    wait_until(lambda: scrape(app).status(15) == "queued", 10, "first refresh")
    # While cycles run back to back: job 5 completes (leaves the running list), job 12 moves from the queued
    # list to the running one, then fails.
    sim.update_job(5, status="completed", progress=1.0)
    sim.update_job(12, status="running")
    wait_until(lambda: scrape(app).status(5) == "completed", 5, "job 5 completed")
    wait_until(lambda: scrape(app).status(12) == "running", 5, "job 12 running")
    sim.update_job(12, status="failed", errors="boom")
    wait_until(lambda: scrape(app).status(12) == "failed", 5, "job 12 failed")
    metrics = scrape(app)
    for job_id in range(1, 16):
        assert metrics.status(job_id) == sim.job_status(job_id), job_id
    # Each left its list once and was confirmed by exactly one GET; final, it is never asked again.
    sim.clear_requests()
    wait_until(lambda: list_reads(sim) >= 5, 10, "five more cycles")
    assert [p for p in charged(sim) if p.endswith(("/jobs/5", "/jobs/12"))] == []


def test_credit_use_per_cycle_is_what_the_planner_promised(sim: Simulator, exporter_for: Start) -> None:
    for job_id in range(1, 41):
        sim.add_job(SimJob(id=job_id, status="running"))
    for job_id in range(41, 44):
        sim.add_job(SimJob(id=job_id, status="queued"))
    sim.add_job(SimJob(id=44, status="pending"))
    app = exporter_for(sim, list(range(1, 45)), interval=0.5, credits=100_000)
    wait_until(lambda: scrape(app).status(44) == "pending", 10, "first refresh")
    sim.clear_requests()
    wait_until(lambda: list_reads(sim) >= 6, 10, "six cycles")
    cycles = list_reads(sim)
    log = [r for r in sim.requests if r.charged]
    queued_lists = [r for r in log if r.endpoint == "list_jobs" and r.query.get("status") == "queued"]
    single = [r for r in log if r.endpoint == "get_job"]
    # The plan: list running (40 jobs, one page), list queued (3 jobs, one page), GET the lone pending job.
    assert abs(len(queued_lists) - cycles) <= 1
    assert abs(len(single) - cycles) <= 1
    assert {r.path.rsplit("/", 1)[1] for r in single} == {"44"}
    assert len(log) <= 3 * (cycles + 1)


def test_no_429_when_a_neighbour_spends_a_third_of_the_key(
    make_sim: Callable[..., Simulator], exporter_for: Start
) -> None:
    """A window of 10 s and 30 credits: the exporter alone would spend 27; the neighbour takes 10."""
    sim = make_sim(credits=30, window_seconds=10.0)
    for job_id in range(1, 7):
        sim.add_job(
            SimJob(
                id=job_id, status=("running", "queued", "pending", "idle", "stopping", "running")[job_id - 1]
            )
        )
    sim.start_neighbour(credits_per_hour=3600.0)  # 10 per 10 s window: a third of the key
    app = exporter_for(sim, list(range(1, 7)), credits=30, window=10.0, interval=0.2)
    started = time.monotonic()
    wait_until(lambda: scrape(app) and time.monotonic() > started + 35, 40, "three and a half windows")
    log = sim.requests
    assert [r for r in log if r.status == 429] == []
    ours = [r for r in log if r.charged]
    # It did not simply stop: it used what the neighbour left, minus the reserve.
    assert len(ours) >= 3 * 15
    metrics = scrape(app)
    assert metrics["integrateio_api_rate_limit_credits"] == 30.0
    assert metrics["integrateio_api_rate_limit_remaining_credits"] >= 0.0


def test_a_cold_start_over_finished_jobs_reads_their_lists_not_one_get_each(
    sim: Simulator, exporter_for: Start
) -> None:
    for job_id in range(1, 251):
        sim.add_job(SimJob(id=job_id, status=("completed", "failed", "stopped")[job_id % 3]))
    sim.add_job(SimJob(id=251, status="running"))
    app = exporter_for(sim, list(range(1, 252)), interval=5.0, credits=100_000)
    metrics = wait_until(
        lambda: (m := scrape(app)).get("integrateio_last_full_refresh_timestamp_seconds") and m, 10, "ready"
    )
    assert [metrics.status(job_id) for job_id in (3, 4, 5, 251)] == [
        "completed",
        "failed",
        "stopped",
        "running",
    ]
    # Six non-final lists, then three final ones (one page each): nine credits instead of 250 GETs.
    assert len([r for r in sim.requests if r.charged]) == 9
    assert [r for r in sim.requests if r.endpoint == "get_job"] == []
