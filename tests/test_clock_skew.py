"""An API clock that is wrong, or one answer dated in the future, blinds nothing (issue 16 item 3).

Answers are ordered by what the exporter observed (the refresh cycle, then the order they arrived in), with the
API's `updated_at` only a hint within one cycle, and only when it is not beyond the tolerance in the future. An
answer dated in the future is stored and counted as `future_timestamp`. On the wire against the simulator: one
future-dated answer followed by a failure, a list page and a GET of one job in one cycle in either order, and an
API clock ten minutes ahead or behind; then the ordering decision itself, as pure functions.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest
import requests

from exporter.app import App
from exporter.budget import CreditBudget
from exporter.cache import JobCache
from exporter.client import ApiClient
from exporter.fetcher import Fetcher
from exporter.list_items import ListItems
from exporter.model import Job, JobStatus
from exporter.ordering import (
    FUTURE_TIMESTAMP,
    FUTURE_TOLERANCE_SECONDS,
    Answer,
    believable,
    future_fields,
    supersedes,
)
from exporter.recorder import Recorder
from exporter.retries import RetryBook
from exporter.simulator import SimJob, SimOutput, Simulator
from exporter.simulator.timestamps import format_timestamp, parse_timestamp
from tests.support import API_KEY, Samples, add_two_jobs, make_config, scrape_when, wait_until

Start = Callable[..., App]

FAR_FUTURE = "2999-01-01T00:00:00Z"
BUDGET = {"credits": 1200, "window": 30.0}  # 36 credits a second: a 0.1 s interval is never stretched
TEN_MINUTES = 600


def gets_of(sim: Simulator, job_id: int) -> int:
    return sum(1 for r in sim.requests if r.endpoint == "get_job" and r.path.endswith(f"/jobs/{job_id}"))


def errors_of(metrics: Samples, job_id: int) -> dict[str, float]:
    return {
        labels["error"]: metrics.values[("integrateio_job_poll_errors_total", frozenset(labels.items()))]
        for labels in metrics.labelsets("integrateio_job_poll_errors_total")
        if labels["job_id"] == str(job_id)
    }


# --- one answer from 2999, then the job fails ----------------------------------------------------------------


def test_a_failure_after_an_answer_dated_2999_shows_at_the_next_refresh(
    sim: Simulator, exporter_for: Start
) -> None:
    add_two_jobs(sim)  # job 1 running, job 2 queued: each refreshed by its own GET every cycle
    future = sim.set_fault("updated_at", job_id=1, times=1, value=FAR_FUTURE)
    app = exporter_for(sim, [1, 2], interval=0.1, **BUDGET)
    metrics = scrape_when(
        app,
        lambda m: m.get("integrateio_job_poll_errors_total", job_id="1", error=FUTURE_TIMESTAMP) == 1,
        "the future-dated answer counted",
    )
    assert future.fired == 1
    assert metrics.status(1) == "running"  # what the answer said is true and shown
    assert metrics.get("integrateio_job_progress_ratio", job_id="1") == 0.25
    assert metrics.get("integrateio_job_poll_success", job_id="1") == 1.0  # true values: not a failed refresh

    sim.update_job(1, status="failed", errors="boom")
    failed = scrape_when(
        app,
        lambda m: m.get("integrateio_job_status", job_id="1", status="failed") == 1,
        "job 1 failed on /metrics",
        timeout=5.0,
    )
    assert failed.get("integrateio_job_status", job_id="1", status="running") == 0.0
    assert errors_of(failed, 1) == {FUTURE_TIMESTAMP: 1.0}
    assert failed.get("integrateio_job_poll_success", job_id="1") == 1.0
    assert failed.get("integrateio_package_last_job_status", package_id="1", status="failed") == 1.0
    assert (
        failed.get("integrateio_package_last_failure_timestamp_seconds", package_id="1") or 0
    ) <= time.time()

    # Final now, so job 1 costs no more credits while job 2 is still asked every cycle.
    asked = gets_of(sim, 1)
    clock = gets_of(sim, 2)
    wait_until(lambda: gets_of(sim, 2) >= clock + 5, 10, "five more cycles")
    assert gets_of(sim, 1) == asked


def test_an_api_clock_set_back_after_running_ahead_blinds_no_job(sim: Simulator, exporter_for: Start) -> None:
    """The API's clock ran ten minutes ahead, then was corrected: a non-final change dated by the corrected
    clock (ten minutes "older" than the last answer) still shows at the next refresh."""
    add_two_jobs(sim)
    ahead = sim.set_fault("clock", offset_seconds=TEN_MINUTES)
    app = exporter_for(sim, [1, 2], interval=0.1, **BUDGET)
    scrape_when(
        app,
        lambda m: (m.get("integrateio_job_poll_errors_total", job_id="1", error=FUTURE_TIMESTAMP) or 0) >= 2,
        "answers from the fast clock counted",
    )
    ahead.clear()
    sim.update_job(1, status="pending_stoppage")
    metrics = scrape_when(
        app,
        lambda m: m.status(1) == "pending_stoppage",
        "job 1 pending_stoppage on /metrics",
        timeout=5.0,
    )
    assert metrics.get("integrateio_job_poll_success", job_id="1") == 1.0
    assert set(errors_of(metrics, 1)) == {FUTURE_TIMESTAMP}


# --- a skewed clock changes nothing ------------------------------------------------------------------------

SCENARIO_FAMILIES = (
    "integrateio_job_status",
    "integrateio_job_progress_ratio",
    "integrateio_job_runtime_seconds",
    "integrateio_job_output_records",
    "integrateio_job_info",
    "integrateio_job_poll_success",
    "integrateio_job_missing",
    "integrateio_package_last_job_status",
    "integrateio_package_running_jobs",
    "integrateio_package_info",
)
"""What a user reads off /metrics about jobs and packages, but the timestamps: an API clock that runs behind
dates them behind (the exporter cannot know better), one that runs ahead has them held at when they were seen."""


def play_scenario(sim: Simulator, exporter_for: Start) -> Samples:
    """Three jobs of one package go through a few changes; /metrics once all of them are seen final, job 2
    (failed) the last."""
    output = SimOutput(id=9, name="out", records_count=50)
    sim.add_job(SimJob(id=1, status="running", progress=0.25, runtime_in_seconds=100, outputs=[output]))
    sim.add_job(SimJob(id=2, status="queued", progress=0.1))
    sim.add_job(SimJob(id=3, status="running", progress=0.5, runtime_in_seconds=40))
    app = exporter_for(sim, [1, 2, 3], interval=0.1, **BUDGET)
    scrape_when(app, lambda m: all(m.status(job) for job in (1, 2, 3)), "every job seen")
    sim.update_job(2, status="running", progress=0.2)
    sim.update_job(3, status="pending_stoppage")
    scrape_when(
        app, lambda m: m.status(2) == "running" and m.status(3) == "pending_stoppage", "the first changes"
    )
    sim.update_job(1, status="completed", runtime_in_seconds=160, outputs=[replace(output, records_count=80)])
    sim.update_job(3, status="stopped")
    scrape_when(app, lambda m: (m.status(1), m.status(3)) == ("completed", "stopped"), "jobs 1 and 3 final")
    # Job 2 ends last, in a later second of the API's clock, so the package's last finished job is job 2.
    second = int(time.time())
    wait_until(lambda: int(time.time()) > second, 2, "the next second")
    sim.update_job(2, status="failed", errors="boom")
    return scrape_when(app, lambda m: m.status(2) == "failed", "job 2 final")


def job_values(metrics: Samples) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The scenario's series; `url` is left out of the labels, since each run has a simulator (and port)
    of its own."""
    return {
        (name, frozenset((label, value) for label, value in labels if label != "url")): sample
        for (name, labels), sample in metrics.values.items()
        if name in SCENARIO_FAMILIES
    }


def timestamps(metrics: Samples) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        key: value
        for key, value in metrics.values.items()
        if key[0].endswith("_timestamp_seconds")
        and key[0].startswith(("integrateio_job", "integrateio_package"))
    }


@pytest.fixture
def correct_run(make_sim: Callable[..., Simulator], exporter_for: Start) -> Samples:
    return play_scenario(make_sim(), exporter_for)


@pytest.mark.parametrize("offset", [TEN_MINUTES, -TEN_MINUTES], ids=["ahead", "behind"])
def test_an_api_clock_ten_minutes_off_changes_no_value(
    correct_run: Samples, make_sim: Callable[..., Simulator], exporter_for: Start, offset: int
) -> None:
    sim = make_sim()
    sim.set_fault("clock", offset_seconds=offset)
    skewed = play_scenario(sim, exporter_for)

    assert job_values(skewed) == job_values(correct_run)
    assert len(timestamps(skewed)) == len(timestamps(correct_run)) > 0
    assert max(timestamps(skewed).values()) <= time.time()  # never a start or an end from the future
    errors = {job: errors_of(skewed, job) for job in (1, 2, 3)}
    if offset < 0:
        assert errors == {
            1: {},
            2: {},
            3: {},
        }  # a clock behind dates everything in the past: nothing to count
    else:
        assert all(set(counted) == {FUTURE_TIMESTAMP} for counted in errors.values()), errors
    assert {job: errors_of(correct_run, job) for job in (1, 2, 3)} == {1: {}, 2: {}, 3: {}}


# --- a list page and a GET of one job in one cycle -----------------------------------------------------------


class Poll:
    """The exporter's own parts between the wire and the cache (fetcher, recorder, retry book), driven by hand,
    so that one cycle can read a list page and a GET of the same job in the order a test chooses."""

    def __init__(self, sim: Simulator) -> None:
        config = make_config(sim, [1])
        self.cache = JobCache()
        self.cache.set_watched([1])
        self.client = ApiClient(config.api)
        list_items = ListItems(self.cache, time.time)
        self.fetch = Fetcher(
            self.client,
            CreditBudget(config.rate_limit),
            self.cache,
            threading.Event(),
            list_items,
            on_wait=lambda: None,
        )
        self.retries = RetryBook(self.cache, time.monotonic)
        self.retries.cycle = 1
        self.recorder = Recorder(self.cache, self.retries, time.time, list_items)

    def get(self) -> None:
        self.recorder.store([self.fetch.get_job(1)])

    def list_page(self, status: str) -> None:
        self.recorder.store(next(iter(self.fetch.pages(status=status))))

    def status(self) -> JobStatus:
        state = self.cache.get(1)
        assert state is not None and state.job is not None
        return state.job.status

    def errors(self) -> dict[str, int]:
        state = self.cache.get(1)
        assert state is not None
        return dict(state.errors)


@pytest.fixture
def poll(sim: Simulator) -> Iterator[Poll]:
    sim.add_job(SimJob(id=1, status="running", progress=0.25, runtime_in_seconds=100))
    poll = Poll(sim)
    yield poll
    poll.client.close()


@pytest.mark.parametrize("later", ["pending_stoppage", "failed"])
def test_a_list_page_dated_2999_then_a_get_in_the_same_cycle_ends_with_the_get(
    sim: Simulator, poll: Poll, later: str
) -> None:
    sim.set_fault("updated_at", endpoint="list_jobs", times=1, value=FAR_FUTURE, only_job=1)
    poll.list_page("running")
    assert poll.status() is JobStatus.RUNNING
    sim.update_job(1, status=later)
    poll.get()
    assert poll.status() is JobStatus(later)
    assert poll.errors() == {FUTURE_TIMESTAMP: 1}


@pytest.mark.parametrize("later", ["pending_stoppage", "failed"])
def test_a_get_dated_2999_then_a_list_page_in_the_same_cycle_ends_with_the_list(
    sim: Simulator, poll: Poll, later: str
) -> None:
    sim.set_fault("updated_at", job_id=1, times=1, value=FAR_FUTURE)
    poll.get()
    assert poll.status() is JobStatus.RUNNING
    sim.update_job(1, status=later)
    poll.list_page(later)
    assert poll.status() is JobStatus(later)
    assert poll.errors() == {FUTURE_TIMESTAMP: 1}


def test_a_list_page_from_a_lagging_copy_does_not_undo_a_get_of_the_same_cycle(
    sim: Simulator, poll: Poll
) -> None:
    """Within one cycle the API's own believable `updated_at` breaks the tie: a list page read after a GET but
    showing the job as it was before (a lagging copy, served here by an injected body) is the older truth."""
    before = sim.job_payload(1)
    sim.update_job(1, status="pending_stoppage")
    poll.get()
    sim.set_fault("status", endpoint="list_jobs", times=1, code=200, body=json.dumps([before]))
    poll.list_page("running")
    assert poll.status() is JobStatus.PENDING_STOPPAGE
    poll.retries.cycle = 2  # in the next cycle, a later request is newer whatever its date
    sim.update_job(1, status="stopping")
    poll.list_page("stopping")
    assert poll.status() is JobStatus.STOPPING
    assert poll.errors() == {}


# --- the simulator's wrong clocks -----------------------------------------------------------------------


def api_get(sim: Simulator, path: str) -> requests.Response:
    return requests.get(
        f"{sim.base_url}/acme/api/{path}",
        headers={"Accept": "application/vnd.xplenty+json; version=2"},
        auth=(API_KEY, ""),
        timeout=5,
    )


def test_the_clock_fault_moves_every_date_and_nothing_else(sim: Simulator) -> None:
    sim.add_job(SimJob(id=1, status="failed", runtime_in_seconds=60, outputs=[SimOutput(id=9)]))
    healthy = sim.job_payload(1)
    sim.set_fault("clock", offset_seconds=-TEN_MINUTES)
    moved = api_get(sim, "jobs/1").json()
    listed = api_get(sim, "jobs?status=failed").json()
    missing = api_get(sim, "jobs/2")

    def shifted(stamp: str) -> str:
        return format_timestamp(parse_timestamp(stamp) - TEN_MINUTES)

    dates = ("created_at", "started_at", "updated_at", "failed_at")
    assert {name: moved[name] for name in dates} == {name: shifted(healthy[name]) for name in dates}
    assert moved["completed_at"] is None
    assert moved["outputs"][0]["updated_at"] == shifted(healthy["outputs"][0]["updated_at"])
    assert {**moved, **{name: None for name in dates}, "outputs": None} == {
        **healthy,
        **{name: None for name in dates},
        "outputs": None,
    }
    assert listed == [moved]
    assert (missing.status_code, missing.json()) == (404, {"message": "Item not found."})


def test_the_updated_at_fault_redates_one_job_on_a_list_page(sim: Simulator) -> None:
    sim.add_job(SimJob(id=1, status="running"))
    sim.add_job(SimJob(id=2, status="running"))
    healthy = sim.job_payload(2)["updated_at"]
    sim.set_fault("updated_at", endpoint="list_jobs", value=FAR_FUTURE, only_job=1)
    listed = {job["id"]: job["updated_at"] for job in api_get(sim, "jobs?status=running").json()}
    assert listed == {1: FAR_FUTURE, 2: healthy}


@pytest.mark.parametrize(
    ("kind", "params", "error"),
    [
        ("clock", {}, "needs parameter 'offset_seconds'"),
        ("clock", {"offset_seconds": 0}, "non-zero whole number of seconds"),
        ("clock", {"offset_seconds": 1.5}, "non-zero whole number of seconds"),
        ("updated_at", {"value": ""}, "non-empty string"),
        ("updated_at", {"value": FAR_FUTURE, "only_job": 0}, "positive integer"),
    ],
)
def test_a_misspelt_clock_fault_fails_when_set(
    sim: Simulator, kind: str, params: dict[str, object], error: str
) -> None:
    with pytest.raises(ValueError, match=error):
        sim.set_fault(kind, **params)


# --- the ordering decision, pure ---------------------------------------------------------------------------

NOW = 1_800_000_000.0


def job(status: str = "running", updated_at: float | None = NOW - 100, **dates: float | None) -> Job:
    """Job 1 in `status`, with `updated_at` and any of `created_at`, `started_at`, `finished_at`."""
    return replace(Job(id=1, status=JobStatus(status), raw_status=status, updated_at=updated_at), **dates)


def answer(
    status: str = "running", *, cycle: int = 1, seen_at: float = NOW, **fields: float | None
) -> Answer:
    return Answer(job(status, **fields), cycle, seen_at)


def test_only_timestamps_beyond_the_tolerance_are_in_the_future() -> None:
    within = NOW + FUTURE_TOLERANCE_SECONDS
    beyond = within + 1
    assert future_fields(job(updated_at=within, started_at=within), NOW) == ()
    assert future_fields(job(updated_at=beyond, finished_at=beyond, created_at=NOW), NOW) == (
        "updated_at",
        "finished_at",
    )
    assert future_fields(job(updated_at=None), NOW) == ()


def test_the_first_answer_is_always_taken() -> None:
    assert supersedes(answer(), None)


def test_a_later_cycle_wins_whatever_the_dates_say() -> None:
    old = answer(cycle=1, updated_at=NOW - 10)
    assert supersedes(answer("stopping", cycle=2, seen_at=NOW + 5, updated_at=NOW - 500), old)
    assert not supersedes(answer("stopping", cycle=0, updated_at=NOW), old)


def test_within_a_cycle_a_believable_older_date_keeps_the_answer_we_have() -> None:
    old = answer("pending_stoppage", updated_at=NOW - 10)
    assert not supersedes(answer("running", seen_at=NOW + 1, updated_at=NOW - 60), old)
    assert supersedes(
        answer("stopping", seen_at=NOW + 1, updated_at=NOW - 10), old
    )  # same date: arrived later
    assert supersedes(answer("stopping", seen_at=NOW + 1, updated_at=None), old)


def test_within_a_cycle_a_date_from_the_future_is_no_hint() -> None:
    dated_2999 = answer(updated_at=32_472_144_000.0)
    assert supersedes(answer("pending_stoppage", seen_at=NOW + 1, updated_at=NOW - 60), dated_2999)
    assert supersedes(answer("pending_stoppage", seen_at=NOW + 1, updated_at=32_472_144_000.0), answer())


def test_a_change_to_a_final_status_is_never_discarded() -> None:
    old = answer("running", updated_at=NOW - 10)
    assert supersedes(answer("failed", seen_at=NOW + 1, updated_at=NOW - 3600), old)
    assert supersedes(answer("completed", cycle=0, updated_at=NOW - 3600), old)


def test_a_final_job_never_goes_back() -> None:
    old = answer("failed", updated_at=NOW - 10)
    assert not supersedes(answer("running", cycle=5, seen_at=NOW + 600, updated_at=NOW + 500), old)
    assert supersedes(answer("failed", cycle=2, seen_at=NOW + 600), old)  # a later copy of the same news


def test_shown_timestamps_from_the_future_are_held_at_the_last_believable_value() -> None:
    future = NOW + 3600
    fresh = job("failed", updated_at=future, started_at=future, finished_at=future, created_at=NOW - 60)
    previous = job("running", started_at=NOW - 50)
    held = believable(fresh, NOW, previous)
    assert (held.started_at, held.finished_at, held.created_at) == (NOW - 50, NOW, NOW - 60)
    assert held.updated_at == future  # never shown: kept as sent, only ever weighed against when it arrived
    assert held.status is JobStatus.FAILED
    assert believable(job(started_at=NOW + 30), NOW, None).started_at == NOW + 30  # within the tolerance
