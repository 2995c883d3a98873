"""Lean list items: lists without outputs, or with nulls, keep every last good value and records stay fresh.

The documentation shows `GET /jobs` items as full jobs, but no recorded real list answer confirms that `outputs`
is there. The simulator serves lists in each `list_items` mode (`full` as documented, `lean` without `outputs`,
`nulls` with outputs, progress, runtime and package null) while `GET /jobs/{id}` stays full, and the same
lifecycle runs against each: the lifecycle tests of tests/test_exporter.py, imported below so that pytest runs them
here against lean simulators, and a lifecycle with enough jobs that status lists do the refreshing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from exporter.app import App
from exporter.cache import JobCache
from exporter.config import API_KEY_ENV, PollingConfig, parse_config
from exporter.errors import ConfigError
from exporter.list_items import ListItems
from exporter.model import Job, JobStatus, parse_job, parse_job_list
from exporter.planner import ListCosts, outputs_refreshes, plan_cycle
from exporter.simulator import SimJob, SimOutput, Simulator
from exporter.simulator.listing import LIST_ITEM_MODES
from tests.support import Samples, scrape, wait_until
from tests.test_discovery import (  # noqa: F401  (collected again here, against the `sim` below)
    test_a_new_run_appears_and_an_old_final_run_ages_out,
)
from tests.test_exporter import (  # noqa: F401  (collected again here, against the `sim` below)
    test_a_failure_shows_within_seconds_and_final_jobs_cost_nothing_more,
    test_a_missing_job_is_shown_asked_rarely_and_does_not_disturb_others,
    test_every_value_matches_the_api,
)

Start = Callable[..., App]
RUNNING = list(range(1, 13))  # more jobs than status lists cost: lists, not single GETs, refresh them
OUTPUTS_EVERY = 2.0


@pytest.fixture(params=[mode for mode in LIST_ITEM_MODES if mode != "full"])
def list_items(request: pytest.FixtureRequest) -> str:
    mode: str = request.param
    return mode


@pytest.fixture
def sim(make_sim: Callable[..., Simulator], list_items: str) -> Simulator:
    """A simulator whose lists are served in `list_items` mode (overrides conftest's `sim`)."""
    simulator = make_sim()
    simulator.set_list_items(list_items)
    return simulator


def matches_the_api(metrics: Samples, sim: Simulator, job_id: int) -> bool:
    """Status, progress, runtime and every output's records on /metrics are what `GET /jobs/{id}` says now."""
    truth = sim.job_payload(job_id)
    labels = {"job_id": str(job_id)}
    return (
        metrics.status(job_id) == truth["status"]
        and metrics.get("integrateio_job_progress_ratio", **labels) == truth["progress"]
        and metrics.get("integrateio_job_runtime_seconds", **labels) == truth["runtime_in_seconds"]
        and all(
            metrics.get(
                "integrateio_job_output_records",
                output_id=str(output["id"]),
                output_name=output["name"],
                **labels,
            )
            == output["records_count"]
            for output in truth["outputs"]
        )
    )


def gets_of(sim: Simulator) -> list[int]:
    return [int(r.path.rsplit("/", 1)[1]) for r in sim.requests if r.endpoint == "get_job"]


@pytest.mark.parametrize("list_items", LIST_ITEM_MODES)
def test_a_listed_lifecycle_keeps_every_value_fresh_in_every_list_mode(
    sim: Simulator, exporter_for: Start, list_items: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="exporter.list_items")
    for job_id in RUNNING:
        outputs = [SimOutput(id=job_id, name=f"out{job_id}", records_count=100 * job_id)]
        sim.add_job(SimJob(id=job_id, status="running", progress=0.1, runtime_in_seconds=10, outputs=outputs))
    app = exporter_for(
        sim,
        RUNNING,
        interval=0.5,
        credits=100_000,  # so that the budget does not stretch the outputs cadence (tested on its own below)
        polling={"outputs_refresh_seconds": OUTPUTS_EVERY},
    )
    wait_until(
        lambda: all(matches_the_api(scrape(app), sim, job_id) for job_id in RUNNING), 15, "every value"
    )
    metrics = scrape(app)
    lean = list_items != "full"
    assert metrics.get("integrateio_list_items_mode", mode="lean") == float(lean)
    assert metrics.get("integrateio_list_items_mode", mode="full") == float(not lean)
    assert [metrics.get("integrateio_job_poll_success", job_id=str(i)) for i in RUNNING] == [1.0] * 12
    assert metrics.labelsets("integrateio_job_poll_errors_total") == []

    # Records move, and a job fails with its final figures: both show within the outputs cadence.
    sim.update_job(
        1, progress=0.6, runtime_in_seconds=50, outputs=[SimOutput(id=1, name="out1", records_count=999)]
    )
    sim.update_job(
        3, status="failed", errors="boom", outputs=[SimOutput(id=3, name="out3", records_count=333)]
    )
    wait_until(lambda: matches_the_api(scrape(app), sim, 1), 3 * OUTPUTS_EVERY, "job 1's new records")
    wait_until(lambda: matches_the_api(scrape(app), sim, 3), 3 * OUTPUTS_EVERY, "job 3's final records")

    # What it costs: nothing but lists when lists are full; about one GET per running job per cadence if not.
    sim.clear_requests()
    start = scrape(app)["integrateio_last_full_refresh_timestamp_seconds"]
    wait_until(
        lambda: scrape(app)["integrateio_last_full_refresh_timestamp_seconds"] >= start + 2 * OUTPUTS_EVERY,
        10,
        "two outputs cadences of cycles",
    )
    gets = gets_of(sim)
    running = [job_id for job_id in RUNNING if job_id != 3]
    if lean:
        assert set(gets) == set(running)  # every running job's records refreshed, the failed one never again
        assert max(gets.count(job_id) for job_id in running) <= 3  # 2 cadences: at most one more at the edge
    else:
        assert gets == []
    assert metrics.labelsets("integrateio_job_poll_errors_total") == []

    said = [r.getMessage() for r in caplog.records if r.name == "exporter.list_items"]
    assert len(said) == int(lean)
    if lean:  # lists that carry outputs again: said once, and back to lists alone
        sim.set_list_items("full")
        wait_until(
            lambda: scrape(app).get("integrateio_list_items_mode", mode="full") == 1.0, 5, "mode full again"
        )
        said = [r.getMessage() for r in caplog.records if r.name == "exporter.list_items"]
        assert len(said) == 2 and "again" in said[1]


def test_discovered_runs_on_lean_pages_get_their_records_and_a_final_one_a_single_get(
    sim: Simulator, exporter_for: Start
) -> None:
    now = int(time.time())
    for job_id, status in ((1, "completed"), (2, "running")):
        outputs = [SimOutput(id=job_id, name="out", records_count=10 * job_id)]
        sim.add_job(
            SimJob(id=job_id, status=status, package_id=7, created_at=now - 10 * job_id, outputs=outputs)
        )
    app = exporter_for(
        sim,
        [],
        discover={"package_ids": [7]},
        interval=0.5,
        credits=100_000,
        polling={"outputs_refresh_seconds": OUTPUTS_EVERY},
    )
    wait_until(lambda: all(matches_the_api(scrape(app), sim, job_id) for job_id in (1, 2)), 10, "both runs")
    sim.update_job(2, outputs=[SimOutput(id=2, name="out", records_count=555)])
    wait_until(lambda: matches_the_api(scrape(app), sim, 2), 3 * OUTPUTS_EVERY, "run 2's new records")
    assert gets_of(sim).count(1) == 1  # the final run: one GET for its figures, then never again


def test_a_list_item_without_a_field_is_not_a_failure_but_a_garbled_one_is() -> None:
    job = {"id": 1, "status": "running", "progress": 0.5, "runtime_in_seconds": 7, "package": {"name": "p"}}
    (lean,) = parse_job_list([job])
    assert (lean.absent, lean.unusable) == (("outputs",), ())
    nulls = {**job, "outputs": None, "progress": None, "runtime_in_seconds": None, "package": None}
    (nulled,) = parse_job_list([nulls])
    assert (nulled.absent, nulled.unusable) == (
        ("outputs", "progress", "runtime_in_seconds", "package"),
        (),
    )
    (garbled,) = parse_job_list([{**job, "outputs": "none", "progress": 57}])
    assert (garbled.absent, garbled.unusable) == ((), ("progress", "outputs"))
    # A single GET is the full answer: what it leaves out is counted.
    assert parse_job(job).unusable == ("outputs",)


def test_lean_outputs_are_refreshed_oldest_first_spread_over_cycles_and_within_half_the_budget() -> None:
    ages = {1: 10.0, 2: 400.0, 3: float("inf"), 4: 299.0}
    # 4 jobs at a 300 s cadence, 60 s after the last cycle: ceil(4 × 60 / 300) = 1 now, the oldest first.
    assert outputs_refreshes(ages, 300.0, credits_per_second=10.0, since=60.0) == [3]
    assert outputs_refreshes(ages, 300.0, credits_per_second=10.0, since=300.0) == [3, 2]
    # 5,000 credits an hour: 4 jobs fit a 300 s cadence; 1,000 jobs stretch it to 1,000 / (0.5 × 5000/3600) s.
    many = {job_id: 700.0 for job_id in range(1000)}
    assert outputs_refreshes(many, 300.0, credits_per_second=5000 / 3600, since=60.0) == []
    assert len(outputs_refreshes(many, 300.0, credits_per_second=10.0, since=60.0)) == 200


def test_jobs_due_for_outputs_get_a_get_and_leave_the_lists() -> None:
    known: dict[int, JobStatus | None] = {job_id: JobStatus.RUNNING for job_id in range(1, 6)}
    plan = plan_cycle(known, ListCosts(), outputs=[2, 9])  # 9: a final job whose outputs never came
    assert plan.list_statuses == (JobStatus.RUNNING,)
    assert plan.expected[JobStatus.RUNNING] == {1, 3, 4, 5}
    assert plan.gets == (2, 9)


def test_the_outputs_cadence_is_configurable_and_checked() -> None:
    def polling(**keys: float) -> PollingConfig:
        document = {"api": {"account_id": "acme"}, "jobs": [1], "polling": keys}
        return parse_config(document, base_dir=Path("."), environ={API_KEY_ENV: "k"}).polling

    assert (
        polling().outputs_refresh_seconds,
        polling(outputs_refresh_seconds=120).outputs_refresh_seconds,
    ) == (
        300.0,
        120.0,
    )
    with pytest.raises(ConfigError) as caught:
        polling(outputs_refresh_seconds=0)
    assert (
        str(caught.value)
        == "polling.outputs_refresh_seconds: must be a number greater than 0 and at most 86400, got 0"
    )


def test_one_item_without_outputs_makes_a_page_lean_and_an_empty_page_says_nothing() -> None:
    """A page mixing items with and without outputs is lean: the items without them need GETs for their
    records. Only a page whose items all carry outputs is full again."""
    cache = JobCache()
    items = ListItems(cache, lambda: 1000.0)
    full = Job(1, JobStatus.RUNNING, "running")
    lean = Job(2, JobStatus.RUNNING, "running", absent=("outputs",))
    modes = []
    for page in ([full, lean], [], [full], [lean, full, full], []):
        items.observe_page(page)
        modes.append(cache.snapshot().exporter.list_items)
    assert modes == ["lean", "lean", "full", "lean", "lean"]


def test_a_job_the_api_no_longer_has_gets_no_single_get_for_its_outputs() -> None:
    """Jobs whose last answer came without outputs get GETs for them, the final ones once; a job the API
    answered 404 for is asked about on the missing jobs' own slow schedule, not again for its outputs."""
    cache = JobCache()
    cache.set_watched([1, 2, 3, 4, 5])
    items = ListItems(cache, lambda: 1000.0)
    answers = [
        Job(1, JobStatus.RUNNING, "running", absent=("outputs",)),
        Job(2, JobStatus.RUNNING, "running", absent=("outputs",)),
        Job(3, JobStatus.COMPLETED, "completed", absent=("outputs",)),
        Job(4, JobStatus.COMPLETED, "completed", absent=("outputs",)),
        Job(5, JobStatus.RUNNING, "running"),  # with outputs: nothing lacking
    ]
    for job in answers:
        items.saw(job, was_final=False)
    cache.record_jobs(answers, now=1000.0)
    cache.record_missing(2)
    cache.record_missing(4)
    assert items.lacking(cache.states()) == ([3], {1: float("inf")})
