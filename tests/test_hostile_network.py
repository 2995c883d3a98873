"""A hostile network on the wire: answers that never end, links that lead away, numbers and bodies no parser
should trust, and exceptions nobody foresaw. Each must cost one request, counted by class, and never the poller.

The simulator plays the hostile server through its fault matrix (`exporter/simulator/faults.py`): `trickle_head`
(status line and headers one byte at a time), `trickle` (the body), `hang` (nothing at all), `link` and
`proxied_links` (next-page links elsewhere), `rate_headers` (X-RateLimit-* values such as "²" or 400 digits) and
`deep_json` (100,000 nested brackets).
"""

from __future__ import annotations

import http.client
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from exporter.app import App
from exporter.client import DEADLINE_MARGIN, ApiClient, Timeout
from exporter.simulator import SimJob, Simulator
from tests.support import API_KEY, RecordingServer, add_two_jobs, make_config, scrape, scrape_when, wait_until
from tests.test_faults import first_values, gaps, job_requests, messages

Start = Callable[..., App]

TIMEOUT = 1.0
DEADLINE = TIMEOUT + DEADLINE_MARGIN


@pytest.fixture(autouse=True)
def exporter_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="exporter")
    return caplog


def assert_nothing_escaped(caplog: pytest.LogCaptureFixture) -> None:
    """No error line, no traceback: every failure above was an outcome, not an exception."""
    assert messages(caplog, logging.ERROR) == []
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []


# --- one deadline for the whole request ----------------------------------------------------------------------

SLOW_ANSWERS = [
    pytest.param({"kind": "trickle_head", "interval": 0.05}, id="headers-drip"),
    pytest.param({"kind": "trickle", "interval": 0.05}, id="body-drips"),
    pytest.param({"kind": "hang"}, id="says-nothing"),
]


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
@pytest.mark.parametrize("fault", SLOW_ANSWERS)
def test_a_request_ends_by_its_deadline_whatever_the_server_does_byte_by_byte(
    make_sim: Callable[..., Simulator], fault: dict[str, Any], tls: bool
) -> None:
    """A byte every 50 ms never lets the read timeout (1 s) fire: only the deadline over the whole request ends
    it, at timeout_seconds + DEADLINE_MARGIN. A server that says nothing meets the read timeout first."""
    sim = make_sim(tls=tls)
    sim.add_job(SimJob(id=1, status="running", progress=0.25))
    options = {"ca_file": str(sim.ca_pem_path)} if tls else {}
    client = ApiClient(make_config(sim, [1], timeout=TIMEOUT, **options).api)
    params = dict(fault)
    kind = params.pop("kind")
    handle = sim.set_fault(kind, job_id=1, times=1, **params)

    started = time.monotonic()
    with pytest.raises(Timeout):
        client.get_job(1)
    elapsed = time.monotonic() - started

    assert handle.fired == 1
    earliest = TIMEOUT if kind == "hang" else DEADLINE
    assert earliest - 0.05 <= elapsed <= DEADLINE + 0.4, elapsed
    # The cut connection is thrown away, not handed to the next request.
    assert client.get_job(1).body["progress"] == 0.25
    client.close()


@pytest.mark.parametrize("fault", SLOW_ANSWERS)
def test_an_answer_that_never_completes_is_a_timeout_and_the_other_jobs_stay_fresh(
    make_sim: Callable[..., Simulator],
    exporter_for: Start,
    caplog: pytest.LogCaptureFixture,
    fault: dict[str, Any],
) -> None:
    sim = make_sim()
    add_two_jobs(sim)
    app = exporter_for(sim, [1, 2], interval=0.1, timeout=TIMEOUT)
    first_values(app)
    params = dict(fault)
    handle = sim.set_fault(params.pop("kind"), job_id=1, **params)
    set_at = time.monotonic()
    sim.update_job(2, progress=0.9)

    wait_until(lambda: handle.fired >= 3, 20, "three attempts at job 1")
    metrics = scrape_when(
        app,
        lambda m: (
            (m.get("integrateio_job_poll_errors_total", job_id="1", error="timeout") or 0) >= 3
            and m.get("integrateio_api_requests_total", endpoint="get_job", outcome="timeout")
            == m.get("integrateio_job_poll_errors_total", job_id="1", error="timeout")
        ),
        "three timeouts counted",
        timeout=2 * DEADLINE + 1,
    )
    assert metrics.get("integrateio_job_progress_ratio", job_id="1") == 0.25  # last good values stay
    assert metrics.get("integrateio_job_poll_success", job_id="1") == 0.0
    assert metrics.get("integrateio_job_progress_ratio", job_id="2") == 0.9
    # The cycle waits for job 1's request, but never longer than its deadline: job 2 is refreshed throughout.
    clock = [r.time for r in job_requests(sim, 2) if r.time > set_at]
    assert len(clock) >= 3
    assert max(gaps([set_at, *clock])) <= DEADLINE + 1.0, gaps(clock)
    assert app.accounts[0].thread.is_alive()
    assert [m for m in messages(caplog, logging.WARNING) if m.startswith("job 1:")] == [
        f"job 1: refresh failed: timeout ({detail}); keeping its last values"
        for detail in (
            [f"no answer within {TIMEOUT:g} s"]
            if fault["kind"] == "hang"
            else [f"request not complete within {DEADLINE:g} s"]
        )
    ]
    assert_nothing_escaped(caplog)


# --- next-page links -----------------------------------------------------------------------------------------

PAGE_ONE = "/acme/api/jobs?status=running&direction=desc&sort=created&limit=100"  # the exporter's, reordered


def watched_jobs_on_page_two(make_sim: Callable[..., Simulator]) -> Simulator:
    """Jobs 1-3 running, older than 150 unrelated running jobs: `GET /jobs?status=running` (newest first, 100 a
    page) has them on page 2. From its second cycle on, the exporter refreshes them with that list. The key
    has credits enough for cycles of 0.2 s (exporters on it get `FAST`)."""
    sim = make_sim(credits=5000, window_seconds=30)
    long_ago = int(time.time()) - 10 * 86400
    for job_id in (1, 2, 3):
        sim.add_job(SimJob(id=job_id, status="running", progress=0.25, created_at=long_ago + job_id))
    sim.add_unrelated_jobs(150, "running")
    return sim


FAST = {"interval": 0.2, "credits": 5000, "window": 30}


def list_requests(sim: Simulator, since: float = 0.0) -> list[Any]:
    return [r for r in sim.requests if r.endpoint == "list_jobs" and r.time > since]


PROXY_ORIGINS = [
    pytest.param(lambda sim, proxy: proxy.origin, id="another-host"),
    pytest.param(lambda sim, proxy: f"https://localhost:{sim.port}", id="another-scheme"),
]


@pytest.mark.parametrize("origin", PROXY_ORIGINS)
def test_a_next_page_named_under_another_origin_is_read_from_base_url(
    make_sim: Callable[..., Simulator],
    exporter_for: Start,
    caplog: pytest.LogCaptureFixture,
    origin: Callable[[Simulator, RecordingServer], str],
) -> None:
    """Behind a proxy or a gateway the API names its pages under an origin of its own: the path is the API's,
    so the page is read — from base_url, the only place the key goes."""
    sim = watched_jobs_on_page_two(make_sim)
    with RecordingServer.serving() as proxy:
        sim.set_fault("proxied_links", endpoint="list_jobs", origin=origin(sim, proxy))
        app = exporter_for(sim, [1, 2, 3], **FAST)
        wait_until(
            lambda: [r for r in list_requests(sim) if r.query.get("offset") == "100"], 10, "page 2 read"
        )
        marked = time.monotonic()
        sim.update_job(1, progress=0.75)
        metrics = scrape_when(
            app,
            lambda m: m.get("integrateio_job_progress_ratio", job_id="1") == 0.75,
            "job 1 fresh",
            timeout=10,
        )
        assert proxy.seen == []
    assert job_requests(sim, 1)[-1].time < marked  # refreshed by the list's second page, not by a GET
    assert all(r.path == "/acme/api/jobs" and r.authorization_ok for r in list_requests(sim))
    assert metrics.get("integrateio_api_requests_total", endpoint="list_jobs", outcome="link_refused") is None
    assert metrics.get("integrateio_api_requests_total", endpoint="list_jobs", outcome="success")
    assert messages(caplog, logging.WARNING) == []


class Gateway(ThreadingHTTPServer):
    """An API gateway on loopback that serves the API below a path of its own, `/gw`: it forwards what it gets
    there to the simulator, headers and all, and answers with what the simulator said; `forwarded` holds the
    paths and queries it got. With `rewrite`, it names the next page on its own origin and path, as a gateway
    that knows its prefix does; without, the Link goes through as the API wrote it."""

    daemon_threads = True
    PREFIX = "/gw"

    def __init__(self, sim: Simulator, rewrite: bool) -> None:
        super().__init__(("127.0.0.1", 0), _GatewayHandler)
        self.sim, self.rewrite = sim, rewrite
        self.forwarded: list[str] = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{self.PREFIX}"


class _GatewayHandler(BaseHTTPRequestHandler):
    server: Gateway

    def do_GET(self) -> None:
        gateway = self.server
        gateway.forwarded.append(self.path)
        if not self.path.startswith(f"{gateway.PREFIX}/"):
            self.send_error(404)
            return
        upstream = http.client.HTTPConnection("127.0.0.1", gateway.sim.port, timeout=5)
        headers = {name: value for name, value in self.headers.items() if name.lower() != "host"}
        upstream.request("GET", self.path.removeprefix(gateway.PREFIX), headers=headers)
        answer = upstream.getresponse()
        body = answer.read()
        upstream.close()
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() in ("content-length", "connection", "transfer-encoding", "date", "server"):
                continue
            if name.lower() == "link" and gateway.rewrite:
                value = value.replace(gateway.sim.base_url, gateway.base_url)
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.mark.parametrize("rewrite", [True, False], ids=["link-on-the-gateway", "link-as-the-api-wrote-it"])
def test_a_next_page_behind_a_gateway_path_is_read_through_the_gateway(
    make_sim: Callable[..., Simulator], exporter_for: Start, caplog: pytest.LogCaptureFixture, rewrite: bool
) -> None:
    """`base_url` with a path (`http://gateway/gw`): a next page named below it (`/gw/acme/api/jobs?...`) or
    below the API's own root (`/acme/api/jobs?...`) is the API's page 2, read on base_url, through the
    gateway, with the key; nothing reaches the API but through it."""
    sim = watched_jobs_on_page_two(make_sim)
    gateway = Gateway(sim, rewrite)
    thread = threading.Thread(target=gateway.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        app = exporter_for(sim, [1, 2, 3], base_url=gateway.base_url, **FAST)
        page_two = wait_until(
            lambda: [r for r in list_requests(sim) if r.query.get("offset") == "100"], 10, "page 2 read"
        )
        marked = time.monotonic()
        sim.update_job(1, progress=0.75)
        metrics = scrape_when(
            app,
            lambda m: m.get("integrateio_job_progress_ratio", job_id="1") == 0.75,
            "job 1 fresh",
            timeout=10,
        )
        reached = list(sim.requests)
        forwarded = list(gateway.forwarded)  # after: a request is forwarded before the API records it
        warnings = messages(caplog, logging.WARNING)
    finally:
        gateway.shutdown()
        gateway.server_close()
        thread.join(timeout=5)
    assert job_requests(sim, 1)[-1].time < marked  # refreshed by the list's second page, not by a GET
    assert page_two[0].authorization_ok
    assert all(r.path == "/acme/api/jobs" and r.authorization_ok for r in list_requests(sim))
    assert len(forwarded) >= len(reached)  # every request the API got came through the gateway
    assert all(path.startswith("/gw/acme/api/") for path in forwarded)
    assert next(path for path in forwarded if "offset=100" in path).startswith("/gw/acme/api/jobs?")
    assert metrics.get("integrateio_api_requests_total", endpoint="list_jobs", outcome="link_refused") is None
    assert warnings == []


OFF_ROOT_LINKS = [
    pytest.param(lambda sim, other: f"{other.origin}/elsewhere/jobs?offset=100", id="another-host-and-path"),
    pytest.param(lambda sim, other: f"{other.origin}/acme/apis/jobs", id="a-lookalike-root"),
    pytest.param(
        lambda sim, other: f"{sim.base_url}/other-account/api/jobs?offset=100", id="another-account"
    ),
    pytest.param(
        lambda sim, other: f"{sim.base_url}/acme/api/%2e%2e/%2E%2E/other/api/jobs", id="dot-segments"
    ),
    pytest.param(lambda sim, other: "../../../elsewhere/jobs", id="relative-escape"),
    pytest.param(lambda sim, other: f"ftp://127.0.0.1:{sim.port}/acme/api/jobs", id="not-http"),
]


@pytest.mark.parametrize("link", OFF_ROOT_LINKS)
def test_a_next_page_outside_the_api_root_is_refused_counted_and_the_key_stays_home(
    make_sim: Callable[..., Simulator],
    exporter_for: Start,
    caplog: pytest.LogCaptureFixture,
    link: Callable[[Simulator, RecordingServer], str],
) -> None:
    """Neither followed where it points (the other host would get the key) nor rewritten onto base_url (a
    path outside the API root is not an API page): the page that named it counts as `link_refused`, the jobs it
    did not reach are confirmed by single GETs, and one warning says so."""
    sim = watched_jobs_on_page_two(make_sim)
    with RecordingServer.serving() as other:
        sim.set_fault("link", endpoint="list_jobs", url=link(sim, other))
        app = exporter_for(sim, [1, 2, 3], **FAST)
        wait_until(lambda: list_requests(sim), 10, "a list read")
        sim.update_job(1, progress=0.75)
        metrics = scrape_when(
            app,
            lambda m: (
                m.get("integrateio_job_progress_ratio", job_id="1") == 0.75
                and (
                    m.get("integrateio_api_requests_total", endpoint="list_jobs", outcome="link_refused") or 0
                )
                >= 2
            ),
            "job 1 fresh and two refused links",
            timeout=10,
        )
        assert other.seen == []
    assert all(r.path.startswith("/acme/api/") for r in sim.requests)
    assert {r.path for r in list_requests(sim)} == {"/acme/api/jobs"}
    assert {r.query.get("offset") for r in list_requests(sim)} == {None}  # only ever the first page
    assert metrics.get("integrateio_api_requests_total", endpoint="list_jobs", outcome="success") is None
    assert metrics.labelsets("integrateio_job_poll_errors_total") == []
    assert messages(caplog, logging.WARNING) == [
        "list_jobs: a next-page link leaves the API root; not followed (the key goes nowhere else), "
        "counted as link_refused"
    ]
    assert API_KEY not in caplog.text
    assert_nothing_escaped(caplog)


def test_a_page_that_links_to_a_page_already_read_ends_the_paging(
    make_sim: Callable[..., Simulator], exporter_for: Start, caplog: pytest.LogCaptureFixture
) -> None:
    """A page naming itself as the next one (its parameters in another order) would be read again and again,
    a credit each, within one cycle: it is read once per cycle, and the jobs not on it get confirming GETs."""
    sim = watched_jobs_on_page_two(make_sim)
    sim.add_job(SimJob(id=4, status="queued", progress=0.1))  # a clock: one GET per cycle
    sim.set_fault("link", endpoint="list_jobs", url=sim.base_url + PAGE_ONE)
    app = exporter_for(sim, [1, 2, 3, 4], **FAST)
    started = wait_until(lambda: list_requests(sim), 10, "a list read")[0].time
    wait_until(lambda: len([r for r in job_requests(sim, 4) if r.time > started]) >= 8, 10, "8 cycles")
    sim.update_job(1, progress=0.75)
    wait_until(
        lambda: scrape(app).get("integrateio_job_progress_ratio", job_id="1") == 0.75, 5, "job 1 fresh"
    )

    cycles = len([r for r in job_requests(sim, 4) if r.time >= started])
    assert cycles - 1 <= len(list_requests(sim, started - 0.01)) <= cycles + 1
    assert len(job_requests(sim, 1)) >= cycles - 1  # confirmed by a GET in each cycle
    assert messages(caplog, logging.WARNING) == [
        "list_jobs: a next-page link names a page already read; paging stops there"
    ]
    assert_nothing_escaped(caplog)


def test_a_later_page_that_links_to_itself_ends_the_paging(
    make_sim: Callable[..., Simulator], exporter_for: Start, caplog: pytest.LogCaptureFixture
) -> None:
    """Page 2 naming itself as the next page: every page read in a cycle is remembered, not only the first.
    Job 3 finishes, so it is on no page of the running list and the paging goes on past page 2, which is not
    read again: the cycle confirms job 3 with a GET and goes on, page 2 read once a cycle."""
    sim = watched_jobs_on_page_two(make_sim)
    sim.set_fault("link", endpoint="list_jobs", url=sim.base_url + PAGE_ONE + "&offset=100")
    app = exporter_for(sim, [1, 2, 3], **FAST)
    wait_until(lambda: [r for r in list_requests(sim) if r.query.get("offset") == "100"], 10, "page 2 read")
    sim.update_job(3, status="completed")
    wait_until(lambda: scrape(app).status(3) == "completed", 10, "job 3 completed on /metrics")
    sim.update_job(1, progress=0.75)
    wait_until(
        lambda: scrape(app).get("integrateio_job_progress_ratio", job_id="1") == 0.75, 5, "job 1 fresh"
    )

    offsets = [r.query.get("offset") for r in list_requests(sim)]
    assert ["100", "100"] not in [offsets[i : i + 2] for i in range(len(offsets) - 1)], offsets
    assert set(offsets) == {None, "100"}
    assert messages(caplog, logging.WARNING) == [
        "list_jobs: a next-page link names a page already read; paging stops there"
    ]
    assert_nothing_escaped(caplog)


# --- numbers and bodies nobody should trust ------------------------------------------------------------------

GARBLED = [
    pytest.param(
        "get_job", {"kind": "rate_headers", "remaining": "1" * 400}, "success", id="remaining-400-digits"
    ),
    pytest.param(
        "get_job", {"kind": "rate_headers", "remaining": "²"}, "success", id="remaining-superscript-2"
    ),
    pytest.param("get_job", {"kind": "rate_headers", "limit": "9" * 400}, "success", id="limit-400-digits"),
    pytest.param(
        "get_job", {"kind": "rate_headers", "limit": "-5", "remaining": "1e3"}, "success", id="signs"
    ),
    pytest.param(
        "rate_limit_status",
        {"kind": "status", "code": 200, "body": '{"limits": {"limit": %s, "remaining": 4000}}' % ("9" * 400)},
        "success",
        id="status-limit-400-digits",
    ),
    pytest.param(
        "rate_limit_status",
        {"kind": "status", "code": 200, "body": '{"limits": {"limit": 1e400, "remaining": "\\u00b2"}}'},
        "success",
        id="status-limit-infinite",
    ),
    pytest.param("get_job", {"kind": "deep_json"}, "invalid_response", id="job-nested-100000-deep"),
    pytest.param(
        "rate_limit_status", {"kind": "deep_json"}, "invalid_response", id="status-nested-100000-deep"
    ),
]


RATE_HEADERS = [
    pytest.param({"limit": "5000", "remaining": "4321"}, (5000, 4321), id="plain"),
    pytest.param({"limit": "5000 ", "remaining": "\t4321 "}, (5000, 4321), id="padded"),
    pytest.param({"limit": "0", "remaining": "000"}, (0, 0), id="zeros"),
    pytest.param(
        {"limit": "999999999999", "remaining": "1000000000000"}, (999_999_999_999, None), id="bounds"
    ),
    pytest.param({"limit": "9" * 5000, "remaining": "7" * 4400}, (None, None), id="past-int-s-digit-limit"),
    pytest.param({"limit": "-5", "remaining": "+7"}, (None, None), id="signs"),
    pytest.param({"limit": "5e3", "remaining": "4321.0"}, (None, None), id="not-integers"),
    pytest.param({"limit": "\u00b2", "remaining": "\u00b9\u00b2"}, (None, None), id="superscripts"),
]


@pytest.mark.parametrize(("headers", "expected"), RATE_HEADERS)
def test_rate_limit_headers_are_read_as_exact_ascii_counts(
    sim: Simulator, headers: dict[str, str], expected: tuple[int | None, int | None]
) -> None:
    """X-RateLimit-Limit and -Remaining as the client reads them off the wire: ASCII digits around optional
    blanks, at most 12 of them (below 10**12), or nothing; never an exception, whatever the header."""
    add_two_jobs(sim)
    sim.set_fault("rate_headers", endpoint="get_job", **headers)
    client = ApiClient(make_config(sim, [1]).api)
    try:
        answer = client.get_job(1)
    finally:
        client.close()
    assert (answer.rate_limit, answer.rate_limit_remaining) == expected
    assert answer.body["id"] == 1


STATUS_BODIES = [
    pytest.param('{"limits": {"limit": 5000, "remaining": 4321}}', (5000, 4321), id="integers"),
    pytest.param(
        '{"limits": {"limit": 5000.0, "remaining": "4321"}}', (5000, 4321), id="whole-float-and-text"
    ),
    pytest.param(
        '{"limits": {"limit": 1000000000000, "remaining": 999999999999}}',
        (None, 999_999_999_999),
        id="bounds",
    ),
    pytest.param('{"limits": {"limit": 5000.5, "remaining": 2.5}}', (None, None), id="fractions"),
    pytest.param('{"limits": {"limit": true, "remaining": false}}', (None, None), id="booleans"),
    pytest.param('{"limits": {"limit": -1, "remaining": null}}', (None, None), id="negative-and-null"),
    pytest.param('{"limits": {"limit": 1e400, "remaining": [1]}}', (None, None), id="infinite-and-a-list"),
]


@pytest.mark.parametrize(("body", "expected"), STATUS_BODIES)
def test_rate_limit_status_counts_are_whole_numbers_or_nothing(
    sim: Simulator, body: str, expected: tuple[int | None, int | None]
) -> None:
    """`GET /rate_limit_status`'s body as the client reads it: a whole number (an integer, an integral float,
    ASCII digits) or nothing; a fraction is not rounded into a count, a boolean is not 1 or 0."""
    sim.set_fault("status", endpoint="rate_limit_status", code=200, body=body)
    client = ApiClient(make_config(sim, []).api)
    try:
        answer = client.rate_limit_status()
    finally:
        client.close()
    assert (answer.rate_limit, answer.rate_limit_remaining) == expected


@pytest.mark.parametrize(("endpoint", "fault", "outcome"), GARBLED)
def test_no_number_or_body_from_the_network_stops_the_poller(
    make_sim: Callable[..., Simulator],
    exporter_for: Start,
    caplog: pytest.LogCaptureFixture,
    endpoint: str,
    fault: dict[str, Any],
    outcome: str,
) -> None:
    """Armed before the exporter starts: the first request it sends is `rate_limit_status`, outside any cycle,
    where an exception used to end the poller for good. Garbled rate-limit numbers are ignored (the answer is
    still good); a body nested 100,000 deep is an `invalid_response`."""
    sim = make_sim()
    add_two_jobs(sim)
    params = dict(fault)
    kind = params.pop("kind")
    # Garbled numbers come with every answer (the last one read is the one kept); a body too deep, only with
    # job 1's, so that job 2 shows the poller going on.
    where = {"job_id": 1} if (endpoint, kind) == ("get_job", "deep_json") else {"endpoint": endpoint}
    handle = sim.set_fault(kind, **where, **params)
    app = exporter_for(sim, [1, 2], interval=0.1)

    wait_until(lambda: handle.fired >= (3 if endpoint == "get_job" else 1), 10, "the fault answering")
    sim.update_job(2, progress=0.9)
    metrics = scrape_when(
        app,
        lambda m: (
            m.get("integrateio_job_progress_ratio", job_id="2") == 0.9
            and m.get("integrateio_api_requests_total", endpoint=endpoint, outcome=outcome)
        ),
        f"job 2 fresh and {endpoint} counted as {outcome}",
        timeout=10,
    )
    counted = {("get_job", "success"), (endpoint, outcome)}
    if endpoint == "get_job":
        counted.add(("rate_limit_status", "success"))
    assert metrics.labelsets("integrateio_api_requests_total") == [
        {"endpoint": e, "outcome": o} for e, o in sorted(counted)
    ]
    if endpoint == "get_job" and outcome == "success":
        assert metrics.get("integrateio_job_progress_ratio", job_id="1") == 0.25
        assert metrics.labelsets("integrateio_job_poll_errors_total") == []
    elif endpoint == "get_job":
        assert metrics.labelsets("integrateio_job_poll_errors_total") == [{"job_id": "1", "error": outcome}]
    # What the API reports about the key stays a number a float holds (or is left out), scrape after scrape.
    for family in ("integrateio_api_rate_limit_credits", "integrateio_api_rate_limit_remaining_credits"):
        assert (metrics.get(family) or 0) <= 5000
    assert app.accounts[0].thread.is_alive()
    assert_nothing_escaped(caplog)


# --- the request boundary -------------------------------------------------------------------------------------


def test_whatever_escapes_a_request_is_counted_logged_once_and_polling_goes_on(
    make_sim: Callable[..., Simulator], stop_apps: list[App], caplog: pytest.LogCaptureFixture
) -> None:
    """A key requests cannot encode in a Basic header raises UnicodeEncodeError, which is no RequestException:
    it used to end the poller on its first request. It is counted as `unexpected_error`, said once on one line
    without the key, and every later request meets it again, counted, at the failing jobs' backoff."""
    sim = make_sim()
    add_two_jobs(sim)
    config = make_config(sim, [1, 2], interval=0.1)
    key = "k\u00e9y-\u2603-" + API_KEY
    app = App(replace(config, api=replace(config.api, api_key=key)), ("127.0.0.1", 0))
    stop_apps.append(app)
    app.start()

    metrics = scrape_when(
        app,
        lambda m: (
            (m.get("integrateio_job_poll_errors_total", job_id="1", error="unexpected_error") or 0) >= 3
        ),
        "three unexpected errors of job 1",
        timeout=10,
    )
    assert sim.requests == []  # nothing could be sent, so no key went anywhere
    assert metrics.get(
        "integrateio_api_requests_total", endpoint="rate_limit_status", outcome="unexpected_error"
    )
    assert (
        metrics.get("integrateio_api_requests_total", endpoint="get_job", outcome="unexpected_error") or 0
    ) >= 6
    assert metrics.get("integrateio_job_poll_errors_total", job_id="2", error="unexpected_error")
    assert app.accounts[0].thread.is_alive()
    [error] = messages(caplog, logging.ERROR)
    assert re.fullmatch(
        r"rate_limit_status: request failed unexpectedly \(UnicodeEncodeError at \w+\.py:\d+: 'latin-1' codec "
        r"can't encode character '\\u2603' in position 4: ordinal not in range\(256\)\); counted as "
        r"unexpected_error, polling goes on",
        error,
    ), error
    assert key not in caplog.text and API_KEY not in caplog.text
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []
