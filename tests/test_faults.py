"""The fault matrix on the wire: each way the API (or the path to it) can fail, against the in-process exporter.

For every fault the test shows what /metrics says (request outcome, the job's error counter, `api_up`, the
global backoff), what the log says, that the other jobs stay fresh when the fault hits one job, that the
credit budget holds, and how retries back off: a failing job is asked again after 1, 2, 4... cycles; a 429 or a
refused key pauses every request (base `max(1, window/60)` s, doubling, a longer Retry-After honoured up to
`min(900, window/4)`, a shorter one ignored). The "cycles" are counted on the wire: a healthy job refreshed in every cycle is the
clock the faulted job's attempts are read against.

`tests/test_exporter.py` covers 500/503, bodies that are not JSON or the wrong shape, resets, hangs, trickles, a
too-large body with a Content-Length and an unknown status; this file covers the rest.
"""

from __future__ import annotations

import email.utils
import itertools
import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from exporter.app import App
from exporter.simulator import SimJob, Simulator
from exporter.simulator.records import RequestRecord
from tests.support import (
    API_KEY,
    RecordingServer,
    Samples,
    add_two_jobs,
    free_port,
    max_requests_in_any_window,
    scrape,
    scrape_when,
    wait_until,
)

Start = Callable[..., App]

# Window 30 s: the global backoff starts at max(1, 30/60) = 1 s and is capped at min(900, 30/4) = 7.5 s.
WINDOW = 30.0
CREDITS = 1200
LIMIT = 1080  # credits × (1 − reserve 0.1)
BACKOFF_CAP = 7.5
CHARGED_ENDPOINTS = ("get_job", "list_jobs")


# --- helpers -------------------------------------------------------------------------------------------------


@pytest.fixture
def sim(make_sim: Callable[..., Simulator]) -> Simulator:
    """An API whose key has the credits the exporters here are configured for."""
    return make_sim(credits=CREDITS, window_seconds=WINDOW)


def watch(sim: Simulator, exporter_for: Start, jobs: list[int], interval: float = 0.1, **api: Any) -> App:
    """An exporter watching `jobs` with a short interval and a 1080-per-30 s budget."""
    return exporter_for(sim, jobs, interval=interval, credits=CREDITS, window=WINDOW, **api)


def first_values(app: App) -> Samples:
    return scrape_when(
        app,
        lambda m: (
            m.get("integrateio_job_progress_ratio", job_id="1") == 0.25
            and m.get("integrateio_job_progress_ratio", job_id="2") == 0.1
        ),
        "first values of jobs 1 and 2",
        timeout=10,
    )


def job_requests(sim: Simulator, job_id: int) -> list[RequestRecord]:
    return [r for r in sim.requests if r.endpoint == "get_job" and r.path.endswith(f"/jobs/{job_id}")]


def cycles_of(attempts: list[float], clock: list[float]) -> list[int]:
    """For each attempt, the index of the cycle it belongs to: the healthy job's nearest request."""
    return [min(range(len(clock)), key=lambda i: abs(clock[i] - moment)) for moment in attempts]


def gaps(values: list[float] | list[int]) -> list[float]:
    return [later - earlier for earlier, later in itertools.pairwise(values)]


def messages(caplog: pytest.LogCaptureFixture, level: int | None = None) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name.startswith("exporter") and (level is None or record.levelno == level)
    ]


def assert_warned_once(caplog: pytest.LogCaptureFixture, job_id: int, outcome: str) -> str:
    """The warnings are exactly one `job N: refresh failed: OUTCOME[ (detail)]; keeping its last values`: one
    when the job starts failing, not one per attempt, and nothing about other jobs. Returns it."""
    warnings = messages(caplog, logging.WARNING)
    assert len(warnings) == 1, warnings
    pattern = rf"job {job_id}: refresh failed: {outcome}( \(.+\))?; keeping its last values"
    assert re.fullmatch(pattern, warnings[0]), warnings[0]
    return warnings[0]


def pauses_logged(caplog: pytest.LogCaptureFixture) -> list[float]:
    """The pauses the poller announced after 429s and 401s, in order."""
    found = [re.search(r"pausing all requests for ([0-9.]+)s", text) for text in messages(caplog)]
    return [float(match.group(1)) for match in found if match]


def assert_budget_held(sim: Simulator) -> None:
    """Every request the exporter pays for (401s and 429s included: its ledger counts what it sends) stays
    within its share in every sliding window, and the API never had to refuse one for lack of credits."""
    sent = [r.time for r in sim.requests if r.endpoint in CHARGED_ENDPOINTS]
    assert max_requests_in_any_window(sent, WINDOW) <= LIMIT
    assert sim.credits_remaining() > 0


def assert_key_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    assert API_KEY not in caplog.text


@pytest.fixture(autouse=True)
def exporter_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="exporter")
    return caplog


# --- one job fails, the others carry on ----------------------------------------------------------------------

PER_JOB_FAULTS = [
    pytest.param({"kind": "status", "code": 502}, "server_error", id="502"),
    pytest.param({"kind": "status", "code": 403}, "forbidden", id="403"),
    pytest.param({"kind": "status", "code": 406}, "client_error", id="406"),
    # 20 MB in chunks, so no Content-Length announces the size: only the running count can stop the read.
    pytest.param(
        {"kind": "oversized", "size_bytes": 20_000_000, "chunked": True},
        "invalid_response",
        id="oversized-chunked",
    ),
]


@pytest.mark.parametrize(("fault", "outcome"), PER_JOB_FAULTS)
def test_a_failing_job_is_counted_retried_less_and_less_and_the_others_stay_fresh(
    sim: Simulator, exporter_for: Start, caplog: pytest.LogCaptureFixture, fault: dict[str, Any], outcome: str
) -> None:
    add_two_jobs(sim)
    app = watch(sim, exporter_for, [1, 2], max_response_bytes=65536)
    first_values(app)
    params = dict(fault)
    handle = sim.set_fault(params.pop("kind"), job_id=1, **params)
    set_at = time.monotonic()
    sim.update_job(2, progress=0.9)

    # Sixteen cycles of the healthy job: without backoff job 1 would be asked sixteen times too.
    wait_until(lambda: len([r for r in job_requests(sim, 2) if r.time > set_at]) >= 17, 15, "16 cycles")
    attempts = handle.fired
    assert 3 <= attempts <= 6, f"{attempts} attempts at job 1 in 16 cycles"

    metrics = scrape_when(
        app,
        lambda m: (
            m.get("integrateio_job_poll_errors_total", job_id="1", error=outcome) == attempts
            and m.get("integrateio_api_up") == 1.0
        ),
        f"{attempts} {outcome} errors counted and the API up",
        timeout=5,
    )
    assert metrics.get("integrateio_api_requests_total", endpoint="get_job", outcome=outcome) == attempts
    assert metrics.labelsets("integrateio_job_poll_errors_total") == [{"job_id": "1", "error": outcome}]
    assert metrics.get("integrateio_job_poll_success", job_id="1") == 0.0
    assert metrics.get("integrateio_api_backoff_seconds") == 0.0  # one job's trouble pauses nobody else
    # Job 1 keeps its last good values; job 2 is fresh.
    assert metrics.status(1) == "running"
    assert metrics.get("integrateio_job_progress_ratio", job_id="1") == 0.25
    assert metrics.get("integrateio_job_output_records", job_id="1", output_id="9", output_name="out") == 50.0
    assert metrics.get("integrateio_job_progress_ratio", job_id="2") == 0.9
    assert metrics.get("integrateio_job_poll_success", job_id="2") == 1.0

    assert_warned_once(caplog, 1, outcome)
    assert messages(caplog, logging.ERROR) == []
    assert_budget_held(sim)
    assert_key_never_logged(caplog)


def test_a_failing_job_is_retried_after_1_2_4_8_cycles(sim: Simulator, exporter_for: Start) -> None:
    """poller.py's promise, read on the wire: failures in a row are retried after 1, 2, 4, 8... cycles."""
    add_two_jobs(sim)
    app = watch(sim, exporter_for, [1, 2])
    first_values(app)
    sim.set_fault("status", job_id=1, code=502)
    set_at = time.monotonic()

    def failures() -> list[float]:
        return [r.time for r in job_requests(sim, 1) if r.status == 502]

    first_failure = wait_until(failures, 5, "the first failure")[0]
    wait_until(
        lambda: len([r for r in job_requests(sim, 2) if r.time >= first_failure - 0.02]) >= 18,
        15,
        "17 cycles after the first failure",
    )
    clock = [r.time for r in job_requests(sim, 2) if r.time > set_at]
    cycles = cycles_of(failures(), clock)
    assert gaps(cycles)[:4] == [1, 2, 4, 8], f"job 1 asked in cycles {cycles}"


def test_a_number_too_large_for_a_float_is_a_bad_field_not_a_failed_cycle(
    sim: Simulator, exporter_for: Start, caplog: pytest.LogCaptureFixture
) -> None:
    """JSON numbers have no size limit: a 400-digit progress must cost the job that field, counted as
    `invalid_field`, and never abort the refresh cycle (an error the poller only logs, counting nothing)."""
    add_two_jobs(sim)
    app = watch(sim, exporter_for, [1, 2])
    first_values(app)
    body = json.dumps({**sim.job_payload(1), "progress": 10**400})
    sim.set_fault("status", job_id=1, code=200, body=body)
    sim.update_job(2, progress=0.9)

    metrics = scrape_when(
        app,
        lambda m: (
            m.get("integrateio_job_poll_errors_total", job_id="1", error="invalid_field")
            and m.get("integrateio_job_progress_ratio", job_id="2") == 0.9
        ),
        "the bad field counted and job 2 fresh",
        timeout=5,
    )
    assert metrics.get("integrateio_job_progress_ratio", job_id="1") == 0.25
    assert metrics.get("integrateio_job_runtime_seconds", job_id="1") == 100.0
    assert messages(caplog, logging.ERROR) == []
    assert_warned_once(caplog, 1, "invalid_field")


def test_a_job_the_api_no_longer_has_is_shown_missing_and_asked_rarely(
    sim: Simulator, exporter_for: Start, caplog: pytest.LogCaptureFixture
) -> None:
    add_two_jobs(sim)
    app = watch(sim, exporter_for, [1, 2])
    first_values(app)
    sim.remove_job(1)
    removed_at = time.monotonic()
    sim.update_job(2, progress=0.9)

    metrics = scrape_when(
        app, lambda m: m.get("integrateio_job_missing", job_id="1") == 1.0, "job 1 missing", timeout=5
    )
    wait_until(lambda: len([r for r in job_requests(sim, 2) if r.time > removed_at]) >= 10, 10, "10 cycles")
    assert (
        len([r for r in job_requests(sim, 1) if r.time > removed_at]) == 1
    )  # rechecked hourly, not per cycle
    metrics = scrape(app)
    assert metrics.get("integrateio_api_requests_total", endpoint="get_job", outcome="not_found") == 1.0
    assert metrics.labelsets("integrateio_job_poll_errors_total") == []  # a 404 is an answer, not an error
    assert metrics.get("integrateio_job_poll_success", job_id="1") == 1.0
    assert metrics.get("integrateio_job_progress_ratio", job_id="1") == 0.25  # last known values stay
    assert metrics.get("integrateio_api_up") == 1.0
    assert metrics.get("integrateio_job_progress_ratio", job_id="2") == 0.9
    assert messages(caplog, logging.WARNING) == [
        "job 1: the API answers 404; shown as missing, rechecked every 3600s"
    ]
    assert_budget_held(sim)


@pytest.fixture
def other_host() -> Iterator[RecordingServer]:
    with RecordingServer.serving() as server:
        yield server


def test_a_redirect_to_another_host_is_not_followed_and_the_key_stays_home(
    sim: Simulator, exporter_for: Start, caplog: pytest.LogCaptureFixture, other_host: RecordingServer
) -> None:
    add_two_jobs(sim)
    app = watch(sim, exporter_for, [1, 2])
    first_values(app)
    location = f"http://localhost:{other_host.server_address[1]}/acme/api/jobs/1"
    handle = sim.set_fault("redirect", job_id=1, location=location)
    sim.update_job(2, progress=0.9)

    metrics = scrape_when(
        app,
        lambda m: (
            m.get("integrateio_job_progress_ratio", job_id="2") == 0.9
            and m.get("integrateio_job_poll_errors_total", job_id="1", error="invalid_response")
            and handle.fired >= 3
        ),
        "three refused redirects and job 2 fresh",
        timeout=6,
    )
    assert other_host.seen == []  # not followed at all, so certainly no Authorization header went there
    assert metrics.get("integrateio_api_requests_total", endpoint="get_job", outcome="invalid_response")
    assert metrics.get("integrateio_api_requests_total", endpoint="get_job", outcome="success")
    assert metrics.status(1) == "running"  # not the "completed" the other host would have said
    assert metrics.get("integrateio_job_progress_ratio", job_id="1") == 0.25
    assert metrics.get("integrateio_api_up") == 1.0
    assert_warned_once(caplog, 1, "invalid_response")
    assert_budget_held(sim)
    assert_key_never_logged(caplog)


# --- the API cannot be reached or trusted --------------------------------------------------------------------


def test_a_refused_connection_is_counted_retried_less_and_less_then_recovers(
    sim: Simulator, make_sim: Callable[..., Simulator], exporter_for: Start, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()  # nobody listens: a connection is refused
    app = watch(sim, exporter_for, [1], interval=0.15, base_url=f"http://127.0.0.1:{port}")
    started = time.monotonic()

    metrics = scrape_when(
        app,
        lambda m: m.get("integrateio_job_poll_errors_total", job_id="1", error="connection_error"),
        "a connection error counted",
        timeout=5,
    )
    assert metrics.get("integrateio_api_up") == 0.0
    assert metrics.get("integrateio_api_backoff_seconds") == 0.0  # nothing was refused: no global pause
    assert metrics.get("integrateio_job_poll_success", job_id="1") == 0.0
    assert metrics.status(1) is None  # never seen: no made-up status
    assert metrics.get(
        "integrateio_api_requests_total", endpoint="rate_limit_status", outcome="connection_error"
    )

    # 2.4 s is 16 cycles of 0.15 s: attempts in cycles 0, 1, 3, 7 and 15, not 16 of them.
    time.sleep(max(0.0, started + 2.4 - time.monotonic()))
    # Each attempt is one request counted, then one failure of the job: read both between two attempts.
    metrics = scrape_when(
        app,
        lambda m: (
            m.get("integrateio_api_requests_total", endpoint="get_job", outcome="connection_error")
            == m.get("integrateio_job_poll_errors_total", job_id="1", error="connection_error")
        ),
        "requests and failures counted alike",
        timeout=2,
    )
    failures = metrics.get("integrateio_job_poll_errors_total", job_id="1", error="connection_error")
    assert failures is not None and 3 <= failures <= 6, failures
    assert_warned_once(caplog, 1, "connection_error")

    # The API comes back on that port: the next retry picks the job up.
    back = make_sim(port=port)
    back.add_job(SimJob(id=1, status="running", progress=0.5))
    metrics = scrape_when(
        app,
        lambda m: m.get("integrateio_job_progress_ratio", job_id="1") == 0.5,
        "job 1 fetched once the API is back",
        timeout=8,
    )
    assert metrics.get("integrateio_api_up") == 1.0
    assert metrics.get("integrateio_job_poll_success", job_id="1") == 1.0
    assert len(job_requests(back, 1)) <= 3
    assert_key_never_logged(caplog)


def test_a_certificate_that_does_not_verify_is_refused(
    make_sim: Callable[..., Simulator], exporter_for: Start, caplog: pytest.LogCaptureFixture
) -> None:
    sim = make_sim(tls=True)
    sim.add_job(SimJob(id=1, status="running", progress=0.25))
    app = watch(sim, exporter_for, [1], interval=0.25)

    metrics = scrape_when(
        app,
        lambda m: m.get("integrateio_job_poll_errors_total", job_id="1", error="connection_error"),
        "the TLS failure counted",
        timeout=5,
    )
    assert sim.requests == []  # no request got past the handshake, so the key was never sent
    assert metrics.get("integrateio_api_up") == 0.0
    assert metrics.get("integrateio_api_requests_total", endpoint="get_job", outcome="connection_error")
    assert metrics.get("integrateio_job_progress_ratio", job_id="1") is None
    assert metrics.status(1) is None
    # The operator must be able to tell an untrusted certificate from a refused connection: the log says so.
    warning = assert_warned_once(caplog, 1, "connection_error")
    assert re.search(r"TLS|certificate", warning), warning


@pytest.mark.parametrize("ca_bundle_in_environment", [False, True], ids=["plain", "REQUESTS_CA_BUNDLE-set"])
def test_a_certificate_signed_by_the_configured_ca_file_is_trusted(
    make_sim: Callable[..., Simulator],
    exporter_for: Start,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    ca_bundle_in_environment: bool,
) -> None:
    """`api.ca_file` wins, also where the environment names a CA bundle (containers and CI often do)."""
    import trustme

    if ca_bundle_in_environment:
        system_like = tmp_path / "bundle.pem"
        trustme.CA().cert_pem.write_to_path(str(system_like))  # a bundle that does not hold the API's CA
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(system_like))
    else:
        monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
        monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    sim = make_sim(tls=True)
    sim.add_job(SimJob(id=1, status="running", progress=0.25))
    app = watch(sim, exporter_for, [1], interval=0.25, ca_file=str(sim.ca_pem_path))

    metrics = scrape_when(
        app,
        lambda m: m.get("integrateio_job_progress_ratio", job_id="1") == 0.25,
        "job 1 over verified TLS",
        timeout=5,
    )
    assert metrics.get("integrateio_api_up") == 1.0
    assert metrics.labelsets("integrateio_job_poll_errors_total") == []
    assert all(r.authorization_ok for r in sim.requests)


# --- the API refuses us: everything pauses -------------------------------------------------------------------


def http_date(seconds_from_now: float) -> str:
    return email.utils.formatdate(time.time() + seconds_from_now, usegmt=True)


def test_429_without_retry_after_pauses_everything_1_then_2_seconds(
    sim: Simulator, exporter_for: Start, caplog: pytest.LogCaptureFixture
) -> None:
    sim.add_job(SimJob(id=1, status="running", progress=0.25))
    app = watch(sim, exporter_for, [1], interval=0.25)
    wait_until(lambda: scrape(app).get("integrateio_job_progress_ratio", job_id="1") == 0.25, 5, "values")
    sim.set_fault("rate_limited")
    set_at = time.monotonic()

    metrics = scrape_when(
        app, lambda m: m.get("integrateio_api_backoff_seconds"), "a pause on /metrics", timeout=5
    )
    assert 0.0 < metrics["integrateio_api_backoff_seconds"] <= 1.0
    wait_until(
        lambda: (
            len([r for r in job_requests(sim, 1) if r.time > set_at]) >= 3 and len(pauses_logged(caplog)) >= 3
        ),
        6,
        "three 429s, three pauses",
    )
    refused = [r.time for r in job_requests(sim, 1) if r.time > set_at]
    time.sleep(0.6)  # the third pause is 4 s: nothing more may come now
    assert [r.time for r in job_requests(sim, 1) if r.time > set_at] == refused
    first, second = gaps(refused)[:2]
    assert 0.95 <= first <= 1.5 and 1.95 <= second <= 2.5, gaps(refused)
    assert pauses_logged(caplog)[:3] == [1.0, 2.0, 4.0]

    metrics = scrape(app)
    assert 2.0 <= metrics["integrateio_api_backoff_seconds"] <= 4.0  # published about once a second
    assert metrics.get("integrateio_api_requests_total", endpoint="get_job", outcome="rate_limited") == 3.0
    assert metrics.get("integrateio_job_poll_errors_total", job_id="1", error="rate_limited") == 3.0
    assert metrics.get("integrateio_api_up") == 1.0  # the API answered: it is up, just not for us right now
    assert metrics.get("integrateio_job_progress_ratio", job_id="1") == 0.25
    assert "API answered 429 (rate limited): pausing all requests for 1.0s" in messages(
        caplog, logging.WARNING
    )
    assert_budget_held(sim)


def test_429_with_retry_after_2_pauses_2_seconds_each_time(
    sim: Simulator, exporter_for: Start, caplog: pytest.LogCaptureFixture
) -> None:
    sim.add_job(SimJob(id=1, status="running", progress=0.25))
    app = watch(sim, exporter_for, [1], interval=0.25)
    wait_until(lambda: scrape(app).get("integrateio_job_progress_ratio", job_id="1") == 0.25, 5, "values")
    sim.set_fault("rate_limited", retry_after="2")
    set_at = time.monotonic()

    metrics = scrape_when(
        app, lambda m: m.get("integrateio_api_backoff_seconds"), "a pause on /metrics", timeout=5
    )
    assert 1.0 < metrics["integrateio_api_backoff_seconds"] <= 2.0
    wait_until(
        lambda: (
            len([r for r in job_requests(sim, 1) if r.time > set_at]) >= 3 and len(pauses_logged(caplog)) >= 3
        ),
        8,
        "three 429s, three pauses",
    )
    refused = [r.time for r in job_requests(sim, 1) if r.time > set_at]
    assert all(1.95 <= gap <= 2.5 for gap in gaps(refused)[:2]), gaps(refused)
    # The server's word while it is longer than our doubling (1, 2, 4 s), ours after.
    assert pauses_logged(caplog)[:3] == [2.0, 2.0, 4.0]
    assert scrape(app).get("integrateio_api_up") == 1.0
    assert_budget_held(sim)


@pytest.mark.parametrize("retry_after", ["0", http_date(-3600.0)], ids=["zero", "date-in-the-past"])
def test_a_retry_after_of_now_or_the_past_still_pauses_the_doubling_backoff(
    sim: Simulator, exporter_for: Start, caplog: pytest.LogCaptureFixture, retry_after: str
) -> None:
    """'Retry now' must not mean 429 after 429 every second: the API blacklists users who keep hitting it."""
    sim.add_job(SimJob(id=1, status="running", progress=0.25))
    app = watch(sim, exporter_for, [1], interval=0.25)
    wait_until(lambda: scrape(app).get("integrateio_job_progress_ratio", job_id="1") == 0.25, 5, "values")
    sim.set_fault("rate_limited", retry_after=retry_after)
    set_at = time.monotonic()

    wait_until(
        lambda: (
            len([r for r in job_requests(sim, 1) if r.time > set_at]) >= 3 and len(pauses_logged(caplog)) >= 3
        ),
        8,
        "three 429s, three pauses",
    )
    refused = [r.time for r in job_requests(sim, 1) if r.time > set_at]
    first, second = gaps(refused)[:2]
    assert 0.95 <= first <= 1.5 and 1.95 <= second <= 2.5, gaps(refused)
    assert pauses_logged(caplog)[:3] == [1.0, 2.0, 4.0]
    assert scrape(app).get("integrateio_job_poll_errors_total", job_id="1", error="rate_limited") == 3.0


@pytest.mark.parametrize(
    "retry_after", ["999999999", "Fri, 31 Dec 2100 23:59:59 GMT"], ids=["seconds", "http-date"]
)
def test_an_absurd_retry_after_is_capped_at_a_quarter_window(
    sim: Simulator, exporter_for: Start, caplog: pytest.LogCaptureFixture, retry_after: str
) -> None:
    sim.add_job(SimJob(id=1, status="running", progress=0.25))
    app = watch(sim, exporter_for, [1], interval=0.25)
    wait_until(lambda: scrape(app).get("integrateio_job_progress_ratio", job_id="1") == 0.25, 5, "values")
    sim.set_fault("rate_limited", retry_after=retry_after)
    set_at = time.monotonic()

    metrics = scrape_when(
        app, lambda m: m.get("integrateio_api_backoff_seconds"), "a pause on /metrics", timeout=5
    )
    assert BACKOFF_CAP - 1.5 <= metrics["integrateio_api_backoff_seconds"] <= BACKOFF_CAP
    assert pauses_logged(caplog) == [BACKOFF_CAP]
    time.sleep(2.0)
    assert len([r for r in job_requests(sim, 1) if r.time > set_at]) == 1
    metrics = scrape(app)
    # 2 s later, as published (about once a second) by the poller waiting out the pause.
    assert BACKOFF_CAP - 4.0 <= metrics["integrateio_api_backoff_seconds"] <= BACKOFF_CAP - 0.9
    assert metrics.get("integrateio_job_poll_errors_total", job_id="1", error="rate_limited") == 1.0


def test_429_with_a_near_http_date_waits_until_that_date(
    sim: Simulator, exporter_for: Start, caplog: pytest.LogCaptureFixture
) -> None:
    sim.add_job(SimJob(id=1, status="running", progress=0.25))
    app = watch(sim, exporter_for, [1], interval=0.25)
    wait_until(lambda: scrape(app).get("integrateio_job_progress_ratio", job_id="1") == 0.25, 5, "values")
    until = time.time() + 4.0
    sim.set_fault("rate_limited", retry_after=email.utils.formatdate(until, usegmt=True))
    set_at = time.monotonic()

    wait_until(lambda: len([r for r in job_requests(sim, 1) if r.time > set_at]) >= 2, 8, "the retry")
    first, retry = [r.time for r in job_requests(sim, 1) if r.time > set_at][:2]
    retried_at = time.time() - (time.monotonic() - retry)  # the retry's wall-clock time
    # The header carries whole seconds, so the date is int(until).
    assert int(until) - 0.05 <= retried_at <= int(until) + 0.5
    assert 2.0 <= pauses_logged(caplog)[0] <= 4.0
    assert retry - first >= 2.0


def test_concurrent_429s_count_as_one_refusal(
    sim: Simulator, exporter_for: Start, caplog: pytest.LogCaptureFixture
) -> None:
    """Four jobs refreshed at once (polling.concurrency 4) meet the same 429: one refusal, a 1 s pause, not
    four refusals in a row (1, 2, 4, 8 s: the cap at once, an hour-window exporter dark for 8 minutes).

    On a busy machine the four may not be in flight together; then the first 429 holds the others back, and
    the pause is 1 s all the same."""
    for job_id, status in enumerate(("running", "queued", "pending", "idle"), start=1):
        sim.add_job(SimJob(id=job_id, status=status, progress=0.25))
    app = watch(sim, exporter_for, [1, 2, 3, 4], interval=0.25)
    wait_until(
        lambda: all(
            scrape(app).get("integrateio_job_progress_ratio", job_id=str(j)) == 0.25 for j in (1, 2, 3, 4)
        ),
        5,
        "values of four jobs",
    )
    sim.set_fault("rate_limited", endpoint="get_job")
    set_at = time.monotonic()

    def asked() -> list[float]:
        return sorted(r.time for r in sim.requests if r.endpoint == "get_job" and r.time > set_at)

    first = wait_until(asked, 5, "the first 429")[0]
    # Requests in flight with the first one arrive together; the next one comes when the pause ends.
    after_pause = wait_until(lambda: [t for t in asked() if t > first + 0.3], 4, "a request after the pause")
    assert after_pause[0] - first <= 1.6, f"pauses logged: {pauses_logged(caplog)}"
    assert pauses_logged(caplog)[0] == 1.0


def test_a_refused_key_pauses_everything_1_then_2_seconds(
    sim: Simulator, exporter_for: Start, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    sim.add_job(SimJob(id=1, status="running", progress=0.25))
    wrong_key = "wrong-key-5d1f0c"
    key_file = tmp_path / "api.key"
    key_file.write_text(wrong_key + "\n", encoding="utf-8")
    app = watch(sim, exporter_for, [1], interval=0.25, api_key_file=str(key_file))

    wait_until(
        lambda: len(job_requests(sim, 1)) >= 3 and len(pauses_logged(caplog)) >= 3,
        6,
        "three 401s, three pauses",
    )
    refused = [r.time for r in job_requests(sim, 1)]
    time.sleep(max(0.0, refused[2] + 0.6 - time.monotonic()))  # the third pause is 4 s
    assert len(job_requests(sim, 1)) == 3
    first, second = gaps(refused)[:2]
    assert 0.95 <= first <= 1.5 and 1.95 <= second <= 2.5, gaps(refused)
    assert not any(r.authorization_ok for r in sim.requests)

    metrics = scrape(app)
    assert metrics.get("integrateio_api_up") == 0.0
    assert 2.0 <= metrics["integrateio_api_backoff_seconds"] <= 4.0  # published about once a second
    assert metrics.get("integrateio_api_requests_total", endpoint="get_job", outcome="unauthorized") == 3.0
    assert metrics.get("integrateio_job_poll_errors_total", job_id="1", error="unauthorized") == 3.0
    assert metrics.status(1) is None
    errors = messages(caplog, logging.ERROR)
    assert errors[:3] == [
        "API refused the key (401): check api.api_key_file / INTEGRATEIO_API_KEY; "
        f"pausing all requests for {pause}s"
        for pause in ("1.0", "2.0", "4.0")
    ]
    assert wrong_key not in caplog.text and wrong_key not in metrics.text
    assert_key_never_logged(caplog)
    assert max_requests_in_any_window([r.time for r in sim.requests], WINDOW) <= LIMIT
