"""The status page (/) and /api/jobs: rendering from a real JobCache snapshot, then over HTTP against the simulator.

The unit tests build the cache the way the poller does (parsed jobs, recorded failures and 404s, a published
budget), so what they render is what a scrape of a running exporter renders; they check exact text, because
the page is read by people and a changed word is a changed page.
"""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

from exporter import __version__
from exporter.app import App
from exporter.budget import BudgetSnapshot
from exporter.cache import CacheSnapshot, JobCache
from exporter.model import parse_job
from exporter.simulator import SimJob, SimOutput, Simulator
from exporter.statuspage import (
    JSON_CONTENT_TYPE,
    ROW_LIMIT,
    human_age,
    human_duration,
    jobs_document,
    render_json,
    render_page,
    rfc3339,
)
from tests.support import wait_until

# Every timestamp here is UTC on the wire and in Unix seconds: under a local time that is not UTC, one written or
# read in local time is 5 h 45 min off, and fails, even on a machine whose own zone is UTC.
pytestmark = pytest.mark.usefixtures("local_time_not_utc")

NOW = 1_795_000_000.0  # 2026-11-18T...Z; fixed, so ages are exact
HOSTILE_OUTPUT = "<script>window.pwned=1</script>"
HOSTILE_PACKAGE = '<img src=x onerror="window.pwned=2">&amp;'


def payload(job_id: int, status: str, **fields: Any) -> dict[str, Any]:
    """A job object as the API sends it; `fields` override the defaults."""
    document: dict[str, Any] = {
        "id": job_id,
        "status": status,
        "progress": 0.5,
        "runtime_in_seconds": 60,
        "package_id": 400 + job_id,
        "package": {"id": 400 + job_id, "name": f"package_{job_id}"},
        "outputs": [{"id": job_id * 10, "name": f"out_{job_id}", "records_count": 1000}],
    }
    document.update(fields)
    return document


def budget(
    spent: int = 120, api_limit: int | None = 5000, api_remaining: int | None = 4870
) -> BudgetSnapshot:
    return BudgetSnapshot(
        limit=4500,
        window_seconds=3600.0,
        spent=spent,
        remaining=4500 - spent,
        backoff_seconds=0.0,
        api_limit=api_limit,
        api_remaining=api_remaining,
        held_by_api=False,
    )


def rows(page: str) -> list[int]:
    """Job ids in the order the page's table shows them."""
    return [int(job_id) for job_id in re.findall(r'<tr class="[^"]*" id="job-\d+" data-job="(\d+)"', page)]


def row(page: str, job_id: int) -> str:
    match = re.search(rf'<tr [^>]*data-job="{job_id}">.*?</tr>', page, re.S)
    assert match, f"no row for job {job_id}"
    return match.group(0)


def text(fragment: str) -> str:
    """What a reader sees: tags dropped, entities decoded, spaces collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


@pytest.fixture
def cache() -> JobCache:
    """Nine watched jobs in every situation the page distinguishes, recorded as the poller records them."""
    cache = JobCache()
    cache.set_watched([1, 2, 3, 4, 5, 6, 7, 8, 9])
    cache.record_jobs(
        [
            parse_job(payload(1, "completed", progress=1, runtime_in_seconds=842)),
            parse_job(payload(2, "running", progress=0.42, runtime_in_seconds=3725)),
            parse_job(
                payload(
                    3,
                    "failed",
                    package={"id": 403, "name": HOSTILE_PACKAGE},
                    outputs=[{"id": 30, "name": HOSTILE_OUTPUT, "records_count": 1_204_331}],
                    errors="java.lang.OutOfMemoryError <join_touchpoints>",
                )
            ),
            parse_job(payload(4, "queued", progress=0, runtime_in_seconds=0)),
            parse_job(payload(6, "stopped")),
            parse_job(payload(7, "running", runtime_in_seconds=45)),
            parse_job(payload(8, "failed")),
        ],
        now=NOW - 12,
    )
    cache.record_failure(7, "timeout")  # failing now
    cache.record_failure(8, "server_error")
    cache.record_failure(8, "server_error")
    cache.record_jobs([parse_job(payload(8, "failed"))], now=NOW - 3)  # recovered since
    cache.record_missing(9)
    cache.update_exporter(
        budget=budget(), api_up=True, interval_seconds=5.0, target_interval_seconds=5.0, ready=True
    )
    cache.update_exporter(last_full_refresh=NOW - 4)
    return cache


def page_of(cache: JobCache, **kwargs: Any) -> str:
    return render_page(cache.snapshot(), NOW, **kwargs).decode()


# -- units ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, "0 s"),
        (-5, "0 s"),
        (45, "45 s"),
        (59.9, "59 s"),
        (60, "1 min"),
        (65, "1 min 05 s"),
        (3600, "1 h"),
        (3720, "1 h 02 min"),
        (3725, "1 h 02 min"),
        (86400 + 3600 + 61, "1 d 01 h"),
    ],
)
def test_human_duration(seconds: float, expected: str) -> None:
    assert human_duration(seconds) == expected


def test_human_age_and_rfc3339() -> None:
    assert human_age(NOW - 12, NOW) == "12 s ago"
    assert human_age(NOW + 2, NOW) == "0 s ago"  # a clock a little ahead is not "in the future"
    assert human_age(None, NOW) == "never"
    assert rfc3339(0) == "1970-01-01T00:00:00Z"
    assert rfc3339(1795860000.9) == "2026-11-28T10:00:00Z"  # whole seconds, UTC whatever the local time
    assert rfc3339(None) is None


# -- the page ---------------------------------------------------------------------------------------------------


def test_rows_sorted_failed_then_running_then_waiting_then_final(cache: JobCache) -> None:
    # failed 3, 8; running 2, 7; not final 4 (queued), 5 (never fetched), 9 (missing); final 1, 6
    assert rows(page_of(cache)) == [3, 8, 2, 7, 4, 5, 9, 1, 6]


def test_names_are_escaped_and_the_page_has_no_script(cache: JobCache) -> None:
    page = page_of(cache)
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=&quot;window.pwned=2&quot;&gt;&amp;amp;" in page
    assert "<script" not in page.lower()
    assert "<img" not in page.lower()
    assert text(row(page, 3)).startswith(f"3 {HOSTILE_PACKAGE} #403 ✖ failed")
    assert f"{HOSTILE_OUTPUT} 1,204,331" in text(row(page, 3))
    # the API's own error text for the job, under its status, escaped too
    assert '<div class="why">java.lang.OutOfMemoryError &lt;join_touchpoints&gt;</div>' in row(page, 3)


def test_a_row_reads_as_a_sentence(cache: JobCache) -> None:
    page = page_of(cache)
    assert text(row(page, 2)) == "2 package_2 #402 ▶ running 42 % 1 h 02 min out_2 1,000 12 s ago"
    assert '<progress max="1" value="0.4200"' in row(page, 2)
    assert text(row(page, 7)) == "7 package_7 #407 ▶ running 50 % 45 s out_7 1,000 ⚠ 12 s ago ✖ timeout"
    assert text(row(page, 8)).endswith("3 s ago server_error (2 errors), since ok")
    assert text(row(page, 1)) == "1 package_1 #401 ✔ completed 100 % 14 min 02 s out_1 1,000 12 s ago"
    assert text(row(page, 4)) == "4 package_4 #404 ◔ queued 0 % 0 s out_4 1,000 12 s ago"
    assert text(row(page, 5)) == "5 — … not fetched yet — — — never"
    assert text(row(page, 9)) == "9 — — no data — — — never ⚠ missing (404)"
    assert text(row(page, 6)) == "6 package_6 #406 ■ stopped 50 % 1 min out_6 1,000 12 s ago"


def test_status_has_colour_symbol_and_word(cache: JobCache) -> None:
    page = page_of(cache)
    assert '<span class="badge st-failed">✖ failed</span>' in row(page, 3)
    assert '<tr class="st-failed"' in row(page, 3)
    assert ".badge.st-failed{" in page


def test_header_shows_the_exporters_health(cache: JobCache) -> None:
    page = page_of(cache)
    header = text(page.split('<table id="jobs"', 1)[0].split("<body>", 1)[1])
    assert header == (
        f"integrateio-exporter {__version__} ✔ API reachable Credits used 120 , left 4,380 of 4,500 per 1 h "
        "API reports 4,870 of 5,000 left on the key Refresh every 5 s Last full refresh 4 s ago "
        "9 jobs watched: 2 failed, 2 running, 1 missing, 1 not fetched yet, 1 queued, 1 completed, 1 stopped "
        "/metrics /api/jobs /healthz /readyz"
    )
    for path in ("/metrics", "/healthz", "/readyz", "/api/jobs"):
        assert f'<a href="{path}"' in page
    assert "<title>2 failed · 2 running — integrateio-exporter</title>" in page


def test_header_when_the_api_is_down_and_the_interval_stretched(cache: JobCache) -> None:
    cache.update_exporter(
        api_up=False, interval_seconds=12.0, budget=budget(api_limit=None, api_remaining=None)
    )
    header = text(page_of(cache).split('<table id="jobs"', 1)[0])
    assert "✖ API unreachable" in header
    assert "Refresh every 12 s (stretched from 5 s to fit the budget)" in header
    assert "API reports" not in header


def test_a_fresh_exporter_says_what_it_does_not_know_yet() -> None:
    cache = JobCache()
    cache.set_watched([])
    page = page_of(cache)
    assert "◔ API not contacted yet" in page
    assert "Credits: not counted yet" in page
    assert "No jobs are watched" in page
    assert '<meta http-equiv="refresh" content="5">' in page


def test_page_is_self_contained(cache: JobCache) -> None:
    """Works offline: every link and resource is on this server (or inline); nothing else may load."""
    page = page_of(cache)
    references = re.findall(r'(?:href|src|action)="([^"]*)"', page)
    assert references, "expected links"
    assert all((ref.startswith("/") and not ref.startswith("//")) or ref == "data:," for ref in references)
    assert "http://" not in page and "https://" not in page and "@import" not in page
    assert "Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'" in page
    assert '<meta http-equiv="refresh" content="5">' in page


def test_many_outputs_and_long_names_are_cut() -> None:
    cache = JobCache()
    cache.set_watched([1])
    outputs = [{"id": n, "name": f"o{n}", "records_count": n} for n in range(1, 11)]
    cache.record_jobs([parse_job(payload(1, "running", outputs=outputs, package={"name": "p" * 500}))], NOW)
    page = page_of(cache)
    assert "and 2 more (see /api/jobs)" in page
    assert "p" * 119 + "…" in page and "p" * 120 not in page
    assert len(jobs_document(cache.snapshot(), NOW)["jobs"][0]["outputs"]) == 10


def test_unknown_status_shows_the_raw_word_escaped() -> None:
    cache = JobCache()
    cache.set_watched([1])
    cache.record_jobs([parse_job(payload(1, "<b>paused</b>"))], NOW)
    assert '<span class="badge st-unknown">? unknown: &lt;b&gt;paused&lt;/b&gt;</span>' in page_of(cache)


def ten_thousand_jobs() -> CacheSnapshot:
    cache = JobCache()
    ids = list(range(1, 10_001))
    cache.set_watched(ids)
    statuses = ["completed", "running", "queued", "failed", "stopped"]
    cache.record_jobs([parse_job(payload(i, statuses[i % 5])) for i in ids], NOW - 30)
    cache.update_exporter(budget=budget(), api_up=True, interval_seconds=60.0, target_interval_seconds=60.0)
    return cache.snapshot()


def test_ten_thousand_jobs_are_capped_with_a_note(record_property: Callable[[str, object], None]) -> None:
    snapshot = ten_thousand_jobs()
    started = time.perf_counter()
    body = render_page(snapshot, NOW)
    seconds = time.perf_counter() - started
    page = body.decode()
    record_property("render_seconds_10000_jobs", round(seconds, 4))
    record_property("page_bytes_10000_jobs", len(body))
    print(f"status page, 10,000 jobs: rendered in {seconds * 1000:.1f} ms, {len(body):,} bytes")

    shown = rows(page)
    assert len(shown) == ROW_LIMIT
    assert shown[:3] == [3, 8, 13]  # failed first (every fifth job), by id
    assert all(job_id % 5 == 3 for job_id in shown)  # 2,000 failed jobs fill all 500 rows
    note = re.search(r'<p class="note" id="cap">.*?</p>', page)
    assert note is not None
    assert text(note.group(0)) == "showing 500 of 10,000 jobs; all are on /metrics and /api/jobs"
    assert "10,000 jobs watched: 2,000 failed, 2,000 running, 2,000 queued" in page
    assert len(body) < 1_000_000

    started = time.perf_counter()
    document = json.loads(render_json(snapshot, NOW))
    record_property("json_seconds_10000_jobs", round(time.perf_counter() - started, 4))
    assert len(document["jobs"]) == 10_000  # the JSON is never capped
    assert [job["job_id"] for job in document["jobs"][:ROW_LIMIT]] == shown


# -- the JSON ---------------------------------------------------------------------------------------------------


def test_json_document(cache: JobCache) -> None:
    document = json.loads(render_json(cache.snapshot(), NOW))
    assert document["exporter"] == {
        "version": __version__,
        "generated_at": rfc3339(NOW),
        "api_up": True,
        "ready": True,
        "refresh_interval_seconds": 5,
        "refresh_interval_target_seconds": 5,
        "last_full_refresh": rfc3339(NOW - 4),
        "config_reload_ok": True,
        "watched_jobs": 9,
        "budget": {
            "limit": 4500,
            "spent": 120,
            "remaining": 4380,
            "window_seconds": 3600,
            "backoff_seconds": 0,
            "api_limit": 5000,
            "api_remaining": 4870,
            "held_by_api": False,
        },
    }
    jobs = {job["job_id"]: job for job in document["jobs"]}
    assert [job["job_id"] for job in document["jobs"]] == [3, 8, 2, 7, 4, 5, 9, 1, 6]
    assert jobs[3] == {
        "account": None,
        "job_id": 3,
        "package_id": 403,
        "package_name": HOSTILE_PACKAGE,
        "status": "failed",
        "raw_status": "failed",
        "progress": 0.5,
        "runtime_seconds": 60,
        "started_at": None,
        "job_errors": "java.lang.OutOfMemoryError <join_touchpoints>",
        "attempts": None,
        "outputs": [{"id": 30, "name": HOSTILE_OUTPUT, "records": 1204331}],
        "last_success": rfc3339(NOW - 12),
        "last_success_age_seconds": 12.0,
        "last_attempt_ok": True,
        "missing": False,
        "last_error": None,
        "errors": {},
    }
    assert jobs[7]["last_error"] == "timeout" and jobs[7]["last_attempt_ok"] is False
    assert jobs[8]["errors"] == {"server_error": 2} and jobs[8]["last_attempt_ok"] is True
    assert jobs[9]["missing"] is True and jobs[9]["status"] is None and jobs[9]["last_success"] is None
    assert jobs[5]["last_success_age_seconds"] is None and jobs[5]["outputs"] == []


# -- over HTTP, against the simulator ---------------------------------------------------------------------------


def api_jobs(app: App) -> dict[str, Any]:
    response = requests.get(app.url("/api/jobs"), timeout=10)
    response.raise_for_status()
    assert response.headers["Content-Type"] == JSON_CONTENT_TYPE
    document: dict[str, Any] = response.json()
    return document


def job_in(document: dict[str, Any], job_id: int) -> dict[str, Any]:
    return next(job for job in document["jobs"] if job["job_id"] == job_id)


@pytest.fixture
def watched(sim: Simulator, exporter_for: Callable[..., App]) -> App:
    """An exporter watching a running job with hostile names, a failed job and a job the API does not have."""
    sim.add_job(
        SimJob(
            id=1,
            status="running",
            progress=0.25,
            runtime_in_seconds=3725,
            package_name=HOSTILE_PACKAGE,
            outputs=[SimOutput(id=10, name=HOSTILE_OUTPUT, records_count=5000)],
        ),
        progress_per_second=0.01,
        records_per_second=100,
    )
    sim.add_job(SimJob(id=2, status="failed", runtime_in_seconds=45, package_name="nightly"))
    app = exporter_for(sim, [1, 2, 3], interval=0.5)
    wait_until(
        lambda: job_in(api_jobs(app), 3)["missing"] and job_in(api_jobs(app), 1)["status"] == "running",
        10,
        "the first refresh (job 1 running, job 3 missing)",
    )
    return app


def test_http_status_page(watched: App) -> None:
    response = requests.get(watched.url("/"), timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    page = response.text
    assert rows(page) == [2, 1, 3]
    assert re.fullmatch(r"2 nightly #1 ✖ failed 0 % 45 s — \d+ s ago", text(row(page, 2))), row(page, 2)
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in row(page, 1) and "<script" not in page
    assert "1 h 02 min" in row(page, 1) and "<progress " in row(page, 1)
    assert "⚠ missing (404)" in row(page, 3)
    assert "✔ API reachable" in page
    for path in ("/metrics", "/healthz", "/readyz", "/api/jobs"):
        assert f'<a href="{path}"' in page

    head = requests.head(watched.url("/"), timeout=10)
    assert head.status_code == 200 and head.content == b""


def test_http_api_jobs(watched: App, sim: Simulator) -> None:
    document = api_jobs(watched)
    assert document["exporter"]["api_up"] is True
    assert document["exporter"]["watched_jobs"] == 3
    assert document["exporter"]["budget"]["spent"] > 0
    running = job_in(document, 1)
    assert running["package_name"] == HOSTILE_PACKAGE
    assert running["outputs"][0]["name"] == HOSTILE_OUTPUT
    assert running["outputs"][0]["records"] >= 5000
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", running["last_success"])
    assert 0 <= running["last_success_age_seconds"] < 10
    assert job_in(document, 2)["status"] == "failed"
    missing = job_in(document, 3)
    assert (missing["missing"], missing["status"], missing["last_error"], missing["errors"]) == (
        True,
        None,
        None,
        {},
    )
    assert [job["job_id"] for job in document["jobs"]] == [2, 1, 3]


def test_http_errors_and_an_unreachable_api_show_up(watched: App, sim: Simulator) -> None:
    sim.set_fault("reset")
    wait_until(lambda: api_jobs(watched)["exporter"]["api_up"] is False, 10, "api_up false")
    wait_until(lambda: job_in(api_jobs(watched), 1)["last_error"] == "connection_error", 10, "the error")
    page = requests.get(watched.url("/"), timeout=10).text
    assert "✖ API unreachable" in page
    assert "✖ connection_error" in row(page, 1)


def test_serving_the_page_never_calls_the_api(watched: App, sim: Simulator) -> None:
    watched.poller.stop()
    time.sleep(1.0)  # let a cycle in flight finish
    sim.clear_requests()
    for _ in range(5):
        requests.get(watched.url("/"), timeout=10).raise_for_status()
        requests.get(watched.url("/api/jobs"), timeout=10).raise_for_status()
    assert sim.requests == []
