"""The simulated Integrate.io API, exercised the way the exporter uses it: real HTTP on loopback via requests.

Waiting is always poll-with-deadline (``wait_until``), never a bare sleep, so the file stays fast and stable.
"""

from __future__ import annotations

import itertools
import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from exporter.simulator import (
    DEMO_JOB_IDS,
    FINAL_STATUSES,
    JSON_TYPE,
    STATUSES,
    RequestRecord,
    SimJob,
    SimOutput,
    Simulator,
    Step,
)
from exporter.simulator.ledger import CreditLedger
from exporter.simulator.timestamps import format_timestamp, parse_timestamp
from tests.support import wait_until

# Every timestamp here is UTC on the wire and in Unix seconds: under a local time that is not UTC, one written or
# read in local time is 5 h 45 min off, and fails, even on a machine whose own zone is UTC.
pytestmark = pytest.mark.usefixtures("local_time_not_utc")

ACCEPT = "application/vnd.xplenty+json; version=2"
KEY = "sim-key"
T0 = 1_700_000_000  # 2023-11-14T22:13:20Z
T0_TEXT = "2023-11-14T22:13:20Z"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(account_id="acme", api_key=KEY, credits=5000, window_seconds=3600.0) as simulator:
        yield simulator


def api(
    sim: Simulator,
    path: str,
    *,
    params: dict[str, Any] | None = None,
    key: str | None = KEY,
    accept: str | None = ACCEPT,
    account: str = "acme",
    timeout: float | tuple[float, float] = 2.0,
    **kwargs: Any,
) -> requests.Response:
    headers = {"Accept": accept} if accept is not None else {}
    auth = (key, "") if key is not None else None
    return requests.get(
        f"{sim.base_url}/{account}/api{path}",
        params=params,
        headers=headers,
        auth=auth,
        timeout=timeout,
        **kwargs,
    )


def ids_of(response: requests.Response) -> list[int]:
    return [job["id"] for job in response.json()]


def compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def add_four_jobs(sim: Simulator) -> None:
    """1 running/pkg 10, 2 completed/pkg 10, 3 failed/pkg 20, 4 running/pkg 20; created a minute apart."""
    specs = [(1, "running", 10), (2, "completed", 10), (3, "failed", 20), (4, "running", 20)]
    for n, (job_id, status, package_id) in enumerate(specs):
        sim.add_job(SimJob(id=job_id, status=status, package_id=package_id, created_at=T0 + 60 * n))


# -- the job object ---------------------------------------------------------------------------------------


def test_get_job_returns_the_documented_job_object(sim: Simulator) -> None:
    sim.add_job(
        SimJob(
            id=157,
            status="running",
            progress=0.3,
            runtime_in_seconds=42,
            package_id=434,
            package_name="orders",
            cluster_id=52,
            cluster_name="etl",
            created_at=T0,
            variables={"region": "eu"},
            outputs=[SimOutput(id=1, name="projected_results", records_count=10)],
        )
    )
    response = api(sim, "/jobs/157")
    root = f"{sim.base_url}/acme"
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/vnd.xplenty+json; version=2; charset=utf-8"
    assert response.headers["Content-Type"] == JSON_TYPE
    assert response.json() == {
        "id": 157,
        "status": "running",
        "owner_id": 1,
        "progress": 0.3,
        "outputs_count": 1,
        "outputs": [
            {
                "id": 1,
                "name": "projected_results",
                "records_count": 10,
                "created_at": T0_TEXT,
                "updated_at": T0_TEXT,
                "url": f"{root}/api/jobs/157/outputs/1",
                "component": {"name": "projected_results", "type": "destination", "fields": ["id", "value"]},
            }
        ],
        "variables": {"region": "eu"},
        "dynamic_variables": {},
        "started_at": T0_TEXT,
        "created_at": T0_TEXT,
        "failed_at": None,
        "completed_at": None,
        "updated_at": T0_TEXT,
        "cluster_id": 52,
        "package_id": 434,
        "errors": "",
        "runtime_in_seconds": 42,
        "url": f"{root}/api/jobs/157",
        "html_url": f"{root}/jobs/157",
        "log_url": f"{root}/api/jobs/157/log",
        "creator": {"type": "User", "display_name": "Sim User", "id": 1, "url": f"{root}/api/members/1"},
        "package": {
            "id": 434,
            "name": "orders",
            "url": f"{root}/api/packages/434",
            "html_url": f"{root}/packages/434",
        },
        "cluster": {"id": 52, "name": "etl", "url": f"{root}/api/clusters/52"},
    }
    assert response.json() == sim.job_payload(157)


def test_defaults_derive_timestamps_from_status(sim: Simulator) -> None:
    sim.add_job(SimJob(id=1, status="completed", runtime_in_seconds=60, created_at=T0))
    sim.add_job(SimJob(id=2, status="failed", runtime_in_seconds=30, created_at=T0, errors=None))
    sim.add_job(SimJob(id=3, status="queued", created_at=T0))
    done, failed, queued = (sim.job_payload(i) for i in (1, 2, 3))
    assert (done["progress"], done["completed_at"], done["failed_at"], done["updated_at"]) == (
        1.0,
        "2023-11-14T22:14:20Z",
        None,
        "2023-11-14T22:14:20Z",
    )
    assert (failed["progress"], failed["failed_at"], failed["completed_at"], failed["errors"]) == (
        0.0,
        "2023-11-14T22:13:50Z",
        None,
        None,
    )
    assert (queued["started_at"], queued["log_url"], queued["updated_at"]) == (None, None, T0_TEXT)


@pytest.mark.parametrize("path", ["/jobs/999", "/jobs/abc"])
def test_unknown_or_non_integer_job_is_404_and_charged(sim: Simulator, path: str) -> None:
    response = api(sim, path)
    assert (response.status_code, response.json()) == (404, {"message": "Item not found."})
    assert response.headers["X-RateLimit-Remaining"] == "4999"
    assert [(r.endpoint, r.status, r.charged) for r in sim.requests] == [("get_job", 404, True)]


def test_wrong_account_is_404(sim: Simulator) -> None:
    sim.add_job(SimJob(id=1))
    response = api(sim, "/jobs/1", account="other")
    assert (response.status_code, response.json()) == (404, {"message": "Account 'other' not found."})


def test_remove_job_makes_it_404(sim: Simulator) -> None:
    sim.add_job(SimJob(id=7))
    assert api(sim, "/jobs/7").status_code == 200
    sim.remove_job(7)
    assert api(sim, "/jobs/7").status_code == 404
    with pytest.raises(KeyError):
        sim.job_payload(7)


def test_add_job_rejects_nonsense(sim: Simulator) -> None:
    sim.add_job(SimJob(id=1))
    with pytest.raises(ValueError, match="already exists"):
        sim.add_job(SimJob(id=1))
    with pytest.raises(ValueError, match="unknown job status 'done'"):
        sim.add_job(SimJob(id=2, status="done"))
    with pytest.raises(ValueError, match="ordered"):
        sim.add_job(SimJob(id=3), script=[Step(5, status="running"), Step(1, status="queued")])
    with pytest.raises(ValueError, match="progress"):
        sim.update_job(1, progress=1.5)
    assert sim.job_ids() == [1]
    assert len(STATUSES) == 9
    assert sorted(FINAL_STATUSES) == ["completed", "failed", "stopped"]


# -- auth and content negotiation -------------------------------------------------------------------------


@pytest.mark.parametrize("auth", [None, ("wrong", ""), (KEY, "password")])
def test_bad_credentials_are_401_uncharged_without_rate_headers(
    sim: Simulator, auth: tuple[str, str] | None
) -> None:
    sim.add_job(SimJob(id=1))
    response = requests.get(
        f"{sim.base_url}/acme/api/jobs/1", headers={"Accept": ACCEPT}, auth=auth, timeout=2
    )
    assert (response.status_code, response.json()) == (401, {"message": "Unauthorized"})
    assert "X-RateLimit-Remaining" not in response.headers
    assert "X-RateLimit-Limit" not in response.headers
    assert sim.credits_remaining() == 5000
    record = sim.requests[0]
    assert (record.authorization_ok, record.charged, record.status) == (False, False, 401)


@pytest.mark.parametrize(
    "accept",
    [None, "application/json", "application/vnd.xplenty+json", "application/vnd.xplenty+json; version=1"],
)
def test_missing_or_wrong_accept_is_406(sim: Simulator, accept: str | None) -> None:
    sim.add_job(SimJob(id=1))
    response = api(sim, "/jobs/1", accept=accept)
    assert response.status_code == 406
    assert response.json() == {
        "message": "Not acceptable: send 'Accept: application/vnd.xplenty+json; version=2'"
    }
    assert response.headers["X-RateLimit-Remaining"] == "5000"
    assert sim.requests[0].accept == (accept if accept is not None else "*/*")


@pytest.mark.parametrize(
    "accept",
    [
        "application/vnd.xplenty+json;version=2",
        "application/vnd.xplenty+json ;  version = 2 ",
        'application/vnd.xplenty+json; version="2"',
        "text/html, Application/Vnd.Xplenty+JSON; Version=2",
    ],
)
def test_accept_header_spelling_variants_are_fine(sim: Simulator, accept: str) -> None:
    sim.add_job(SimJob(id=1))
    assert api(sim, "/jobs/1", accept=accept).status_code == 200


# -- listing ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, [4, 3, 2, 1]),
        ({"status": "all"}, [4, 3, 2, 1]),
        ({"status": "running"}, [4, 1]),
        ({"package_id": "10"}, [2, 1]),
        ({"status": "running", "package_id": "20"}, [4]),
        ({"since": format_timestamp(T0 + 120)}, [4, 3]),
        ({"status": "stopped"}, []),
    ],
)
def test_list_filters(sim: Simulator, params: dict[str, str], expected: list[int]) -> None:
    add_four_jobs(sim)
    response = api(sim, "/jobs", params=params)
    assert (response.status_code, ids_of(response)) == (200, expected)
    assert "Link" not in response.headers


def test_list_sort_and_direction(sim: Simulator) -> None:
    add_four_jobs(sim)
    sim.update_job(1, bump_updated=True)  # job 1 now has the newest updated_at
    assert ids_of(api(sim, "/jobs", params={"direction": "asc"})) == [1, 2, 3, 4]
    assert ids_of(api(sim, "/jobs", params={"sort": "updated"})) == [1, 4, 3, 2]
    assert ids_of(api(sim, "/jobs", params={"sort": "updated", "direction": "asc"})) == [2, 3, 4, 1]
    assert api(sim, "/jobs").json()[3] == sim.job_payload(1)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"status": "bogus"}, "Invalid value for status: 'bogus'"),
        ({"sort": "name"}, "Invalid value for sort: 'name'"),
        ({"direction": "up"}, "Invalid value for direction: 'up'"),
        ({"since": "2024-01-01"}, "Invalid value for since: '2024-01-01'"),
        ({"since": "2024-01-01T00:00:00+00:00"}, "Invalid value for since: '2024-01-01T00:00:00+00:00'"),
        ({"package_id": "abc"}, "Invalid value for package_id: 'abc'"),
        ({"offset": "-1"}, "Invalid value for offset: '-1'"),
        ({"limit": "0"}, "Invalid value for limit: '0'"),
        ({"limit": "ten"}, "Invalid value for limit: 'ten'"),
    ],
)
def test_bad_list_parameters_are_400_and_charged(
    sim: Simulator, params: dict[str, str], message: str
) -> None:
    response = api(sim, "/jobs", params=params)
    assert (response.status_code, response.json()) == (400, {"message": message})
    assert response.headers["X-RateLimit-Remaining"] == "4999"


def test_pagination_links_and_limit_clamp(sim: Simulator) -> None:
    ids = sim.add_unrelated_jobs(250)
    assert ids == list(range(100_000, 100_250))
    url = f"{sim.base_url}/acme/api/jobs"

    first = api(sim, "/jobs", params={"limit": "500"})
    assert ids_of(first) == list(range(100_249, 100_149, -1))
    assert first.headers["Link"] == f'<{url}?offset=100&limit=100>; rel="next"'

    second = requests.get(
        f"{url}?offset=100&limit=100", headers={"Accept": ACCEPT}, auth=(KEY, ""), timeout=2
    )
    assert ids_of(second) == list(range(100_149, 100_049, -1))
    assert second.headers["Link"] == (
        f'<{url}?offset=200&limit=100>; rel="next", <{url}?offset=0&limit=100>; rel="prev"'
    )
    assert second.links["next"]["url"] == f"{url}?offset=200&limit=100"

    third = api(sim, "/jobs", params={"offset": "200", "limit": "100"})
    assert ids_of(third) == list(range(100_049, 99_999, -1))
    assert third.headers["Link"] == f'<{url}?offset=100&limit=100>; rel="prev"'

    default = api(sim, "/jobs", params={"status": "completed", "sort": "updated"})
    assert len(default.json()) == 20
    assert default.headers["Link"] == f'<{url}?status=completed&sort=updated&offset=20&limit=20>; rel="next"'

    beyond = api(sim, "/jobs", params={"offset": "300"})
    assert (beyond.json(), beyond.headers["Link"]) == ([], f'<{url}?offset=280&limit=20>; rel="prev"')


def test_add_unrelated_jobs_is_fast_and_filterable(sim: Simulator) -> None:
    started = time.perf_counter()
    ids = sim.add_unrelated_jobs(5000)
    assert time.perf_counter() - started < 1.0
    assert (len(ids), ids[0], ids[-1]) == (5000, 100_000, 104_999)
    page = api(sim, "/jobs", params={"package_id": "9003", "limit": "100"}).json()
    assert len(page) == 100
    assert {(job["package_id"], job["status"]) for job in page} == {(9003, "completed")}
    assert sim.add_unrelated_jobs(2, status="running") == [105_000, 105_001]


# -- credits ----------------------------------------------------------------------------------------------


def test_rate_headers_count_down_and_rate_limit_status_is_free(sim: Simulator) -> None:
    sim.add_job(SimJob(id=1))
    remaining = [api(sim, "/jobs/1").headers["X-RateLimit-Remaining"] for _ in range(3)]
    assert remaining == ["4999", "4998", "4997"]
    for _ in range(2):
        status = api(sim, "/rate_limit_status")
        assert status.json() == {"limits": {"limit": 5000, "remaining": 4997}}
        assert (status.headers["X-RateLimit-Limit"], status.headers["X-RateLimit-Remaining"]) == (
            "5000",
            "4997",
        )
    assert sim.credits_remaining() == 4997
    assert [(r.endpoint, r.charged) for r in sim.requests] == [("get_job", True)] * 3 + [
        ("rate_limit_status", False)
    ] * 2


def test_429_when_exhausted_then_recovers_as_the_window_slides() -> None:
    with Simulator(account_id="acme", api_key=KEY, credits=5, window_seconds=1.0) as sim:
        sim.add_job(SimJob(id=1))
        remaining = [api(sim, "/jobs/1").headers["X-RateLimit-Remaining"] for _ in range(5)]
        assert remaining == ["4", "3", "2", "1", "0"]
        refused = api(sim, "/jobs/1")
        assert (refused.status_code, refused.json()) == (429, {"message": "Rate limit exceeded"})
        assert "Retry-After" not in refused.headers
        assert refused.headers["X-RateLimit-Remaining"] == "0"
        assert sim.requests[-1].charged is False
        wait_until(
            lambda: api(sim, "/rate_limit_status").json()["limits"]["remaining"] == 5, 3.0, "5 credits left"
        )
        again = api(sim, "/jobs/1")
        assert (again.status_code, again.headers["X-RateLimit-Remaining"]) == (200, "4")


def test_optional_retry_after_on_ledger_429() -> None:
    with Simulator(
        account_id="acme", api_key=KEY, credits=1, window_seconds=30.0, retry_after_on_429=True
    ) as sim:
        sim.add_job(SimJob(id=1))
        assert api(sim, "/jobs/1").status_code == 200
        refused = api(sim, "/jobs/1")
        assert (refused.status_code, refused.headers["Retry-After"]) == (429, "30")


def test_credit_ledger_slides_with_its_clock() -> None:
    now = [100.0]
    ledger = CreditLedger(2, 10.0, clock=lambda: now[0])
    assert [ledger.try_charge(), ledger.try_charge(), ledger.try_charge()] == [True, True, False]
    assert (ledger.remaining(), ledger.seconds_until_credit()) == (0, 10)
    now[0] = 109.5
    assert (ledger.remaining(), ledger.seconds_until_credit()) == (0, 1)
    now[0] = 110.0
    assert (ledger.remaining(), ledger.seconds_until_credit()) == (2, 0)


def test_neighbour_spending_shows_in_remaining() -> None:
    with Simulator(account_id="acme", api_key=KEY, credits=1000, window_seconds=600.0) as sim:
        sim.add_job(SimJob(id=1))
        sim.start_neighbour(credits_per_hour=36_000)  # one credit every 0.1 s
        wait_until(lambda: sim.credits_remaining() <= 997, 3.0, "3 credits spent")
        sim.stop_neighbour()
        left = sim.credits_remaining()
        assert left <= 997
        response = api(sim, "/jobs/1")
        assert response.headers["X-RateLimit-Remaining"] == str(left - 1)
        assert api(sim, "/rate_limit_status").json() == {"limits": {"limit": 1000, "remaining": left - 1}}
        assert [r.endpoint for r in sim.requests] == [
            "get_job",
            "rate_limit_status",
        ]  # the neighbour is not us


# -- lifecycle --------------------------------------------------------------------------------------------


def test_updated_at_moves_on_status_change_not_on_progress_ticks() -> None:
    with Simulator(account_id="acme", api_key=KEY, speed=20.0) as sim:
        created = int(time.time()) - 100
        sim.add_job(
            SimJob(id=5, status="running", created_at=created, outputs=[SimOutput(id=1, name="out")]),
            progress_per_second=0.01,
            records_per_second=10,
        )
        wait_until(lambda: sim.job_payload(5)["runtime_in_seconds"] >= 8, 3.0, "job 5 to run 8 s")
        ticking = api(sim, "/jobs/5").json()
        assert ticking["progress"] > 0.0
        assert ticking["outputs"][0]["records_count"] > 0
        assert ticking["updated_at"] == format_timestamp(created)

        before = int(time.time())
        sim.update_job(5, status="completed")
        after = int(time.time())
        done = api(sim, "/jobs/5").json()
        assert before <= parse_timestamp(done["updated_at"]) <= after
        assert (done["status"], done["progress"], done["completed_at"]) == (
            "completed",
            1.0,
            done["updated_at"],
        )
        runtime = done["runtime_in_seconds"]
        sim.add_job(SimJob(id=6, status="running"), progress_per_second=0.01)  # a witness that ticks go on
        wait_until(lambda: sim.job_payload(6)["progress"] > 0.0, 3.0, "job 6 to progress")
        assert sim.job_payload(5)["runtime_in_seconds"] == runtime  # completed jobs no longer tick


def test_updated_at_strictly_increases_within_one_second(sim: Simulator) -> None:
    sim.add_job(SimJob(id=1, status="queued"))
    stamps = [parse_timestamp(sim.job_payload(1)["updated_at"])]
    for status in ("running", "pending_stoppage", "stopping", "stopped"):
        sim.update_job(1, status=status)
        stamps.append(parse_timestamp(sim.job_payload(1)["updated_at"]))
    assert all(b > a for a, b in itertools.pairwise(stamps))
    sim.update_job(1, progress=0.7, runtime_in_seconds=9)  # no status change, no bump
    assert parse_timestamp(sim.job_payload(1)["updated_at"]) == stamps[-1]
    sim.update_job(1, bump_updated=True)
    assert parse_timestamp(sim.job_payload(1)["updated_at"]) == max(int(time.time()), stamps[-1] + 1)


def test_update_job_sets_failure_fields(sim: Simulator) -> None:
    sim.add_job(SimJob(id=1, status="running", outputs=[SimOutput(id=1, name="a")]))
    sim.update_job(
        1, status="failed", progress=0.5, errors="boom", outputs=[SimOutput(id=2, name="b", records_count=7)]
    )
    job = api(sim, "/jobs/1").json()
    assert (job["status"], job["progress"], job["errors"], job["failed_at"]) == (
        "failed",
        0.5,
        "boom",
        job["updated_at"],
    )
    assert job["completed_at"] is None
    assert (job["outputs_count"], job["outputs"][0]["name"], job["outputs"][0]["records_count"]) == (
        1,
        "b",
        7,
    )
    sim.update_job(1, errors=None)
    assert sim.job_payload(1)["errors"] is None


def test_scripted_steps_follow_the_clock() -> None:
    with Simulator(account_id="acme", api_key=KEY, speed=50.0) as sim:
        sim.add_job(
            SimJob(id=1, status="queued"),
            script=[Step(5, status="running"), Step(20, status="failed", errors="out of memory")],
        )
        assert sim.job_status(1) == "queued"
        wait_until(lambda: sim.job_status(1) == "failed", 3.0, "job 1 to fail")
        job = api(sim, "/jobs/1").json()
        assert (job["errors"], job["failed_at"]) == ("out of memory", job["updated_at"])
        assert job["started_at"] is not None


def test_demo_scenario_plays_through_at_high_speed() -> None:
    assert DEMO_JOB_IDS == (101, 102, 103, 104, 105, 106, 107)
    sim = Simulator.demo(speed=100)
    sim.start()
    try:
        seen: dict[int, set[str]] = {job_id: set() for job_id in DEMO_JOB_IDS}

        def finished() -> bool:
            response = requests.get(
                f"{sim.base_url}/demo/api/jobs", headers={"Accept": ACCEPT}, auth=("demo-key", ""), timeout=2
            )
            for job in response.json():
                seen[job["id"]].add(job["status"])
            return all(seen[job_id] & FINAL_STATUSES for job_id in DEMO_JOB_IDS)

        wait_until(finished, 10.0, "every demo job to finish")
        final = {job_id: sim.job_payload(job_id) for job_id in DEMO_JOB_IDS}
        assert {job_id: job["status"] for job_id, job in final.items()} == {
            101: "completed",
            102: "failed",
            103: "completed",
            104: "completed",
            105: "stopped",
            106: "completed",
            107: "failed",
        }
        assert {"queued", "running", "completed"} <= seen[101]
        assert {"idle", "running"} <= seen[103]
        assert "running" in seen[104]
        assert final[102]["errors"].startswith(
            "Component 'mysql_customers' failed: Communications link failure."
        )
        assert final[107]["errors"] == (
            "Job failed: java.lang.OutOfMemoryError: GC overhead limit exceeded (join_touchpoints)"
        )
        assert final[101]["outputs"][0]["records_count"] > 0
        assert final[105]["errors"] == ""
        assert [job["package"]["name"] for job in final.values()] == [
            "orders_daily",
            "customers_sync",
            "inventory_snapshot",
            "clickstream_rollup",
            "legacy_export",
            "finance_ledger",
            "marketing_attribution",
        ]
    finally:
        sim.stop()


# -- request log ------------------------------------------------------------------------------------------


def test_request_log_records_every_request(sim: Simulator) -> None:
    api(sim, "/jobs", params={"status": "running"})
    api(sim, "/nothing/here")
    records = sim.requests
    assert len(records) == 2
    first = records[0]
    assert isinstance(first, RequestRecord)
    assert (first.method, first.path, first.query, first.status, first.charged) == (
        "GET",
        "/acme/api/jobs",
        {"status": "running"},
        200,
        True,
    )
    assert (first.accept, first.authorization_ok, first.endpoint) == (ACCEPT, True, "list_jobs")
    assert (records[1].endpoint, records[1].status, records[1].charged) == ("other", 404, False)
    assert first.time <= records[1].time <= time.monotonic()
    sim.clear_requests()
    assert sim.requests == []


# -- faults -----------------------------------------------------------------------------------------------


@pytest.fixture
def job_sim(sim: Simulator) -> Simulator:
    sim.add_job(
        SimJob(
            id=157,
            status="running",
            progress=0.3,
            runtime_in_seconds=42,
            created_at=T0,
            outputs=[SimOutput(id=1, name="projected_results", records_count=10)],
        )
    )
    sim.add_job(SimJob(id=158, status="queued", created_at=T0))
    return sim


def test_reset_closes_without_answering_and_costs_nothing(job_sim: Simulator) -> None:
    job_sim.set_fault("reset", job_id=157)
    with pytest.raises(requests.exceptions.ConnectionError):
        api(job_sim, "/jobs/157")
    assert api(job_sim, "/jobs/158").status_code == 200
    assert [(r.status, r.charged) for r in job_sim.requests] == [(0, False), (200, True)]


def test_reset_mid_body_sends_part_of_the_body(job_sim: Simulator) -> None:
    job_sim.set_fault("reset_mid_body")
    response = api(job_sim, "/jobs/157", stream=True)
    assert response.status_code == 200
    assert response.headers["Content-Length"] == str(len(compact(job_sim.job_payload(157))))
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        _ = response.content
    assert job_sim.credits_remaining() == 5000


def test_trickle_sends_one_byte_at_a_time(job_sim: Simulator) -> None:
    job_sim.set_fault("trickle", interval=0.02, times=1)
    response = api(job_sim, "/jobs/157", stream=True)
    assert (response.status_code, response.headers["Transfer-Encoding"]) == (200, "chunked")
    chunks = response.iter_content(chunk_size=1)
    assert b"".join(next(chunks) for _ in range(10)) == b'{"id":157,'
    response.close()
    job_sim.set_fault("trickle", interval=1.0)
    with pytest.raises(requests.exceptions.ConnectionError, match="Read timed out"):
        api(job_sim, "/jobs/157", timeout=(1.0, 0.2))


def test_hang_never_answers(job_sim: Simulator) -> None:
    job_sim.set_fault("hang", endpoint="get_job")
    with pytest.raises(requests.exceptions.ReadTimeout):
        api(job_sim, "/jobs/157", timeout=(1.0, 0.2))
    assert api(job_sim, "/rate_limit_status").status_code == 200
    assert [(r.endpoint, r.status) for r in job_sim.requests] == [("get_job", 0), ("rate_limit_status", 200)]


@pytest.mark.parametrize(
    ("code", "message"),
    [(500, "Internal Server Error"), (502, "Bad Gateway"), (503, "Service Unavailable"), (403, "Forbidden")],
)
def test_status_fault_answers_that_status_and_is_charged(job_sim: Simulator, code: int, message: str) -> None:
    job_sim.set_fault("status", code=code)
    response = api(job_sim, "/jobs/157")
    assert (response.status_code, response.json()) == (code, {"message": message})
    assert response.headers["X-RateLimit-Remaining"] == "4999"


def test_status_fault_variants(job_sim: Simulator) -> None:
    job_sim.set_fault("status", code=401, times=1)
    unauthorized = api(job_sim, "/jobs/157")
    assert (unauthorized.status_code, unauthorized.json()) == (401, {"message": "Unauthorized"})
    assert "X-RateLimit-Remaining" not in unauthorized.headers
    assert job_sim.credits_remaining() == 5000
    job_sim.set_fault("status", code=404, message="Item not found.", times=1)
    assert api(job_sim, "/jobs/157").json() == {"message": "Item not found."}
    job_sim.set_fault("status", code=500, body="<<oops>>", times=1)
    assert api(job_sim, "/jobs/157").text == "<<oops>>"
    assert job_sim.credits_remaining() == 4998


@pytest.mark.parametrize("retry_after", ["5", "Wed, 21 Oct 2015 07:28:00 GMT", "999999", None])
def test_rate_limited_fault_passes_retry_after_verbatim(job_sim: Simulator, retry_after: str | None) -> None:
    job_sim.set_fault("rate_limited", retry_after=retry_after)
    response = api(job_sim, "/jobs/157")
    assert (response.status_code, response.json()) == (429, {"message": "Rate limit exceeded"})
    assert response.headers.get("Retry-After") == retry_after
    assert response.headers["X-RateLimit-Remaining"] == "5000"


def test_not_json_fault(job_sim: Simulator) -> None:
    job_sim.set_fault("not_json")
    response = api(job_sim, "/jobs/157")
    assert (response.status_code, response.headers["Content-Type"]) == (200, "text/html; charset=utf-8")
    assert response.text.startswith("<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title>")
    with pytest.raises(requests.exceptions.JSONDecodeError):
        response.json()
    assert job_sim.credits_remaining() == 4999


def test_wrong_shape_list(job_sim: Simulator) -> None:
    job_sim.set_fault("wrong_shape", shape="list")
    assert api(job_sim, "/jobs/157").json() == [job_sim.job_payload(157)]
    assert api(job_sim, "/jobs").json() == {"jobs": [job_sim.job_payload(158), job_sim.job_payload(157)]}


def test_wrong_shape_nulls(job_sim: Simulator) -> None:
    job_sim.set_fault("wrong_shape", shape="nulls")
    job = api(job_sim, "/jobs/157").json()
    assert {k: v for k, v in job.items() if v is not None} == {
        "id": 157,
        "status": "running",
        "url": f"{job_sim.base_url}/acme/api/jobs/157",
        "outputs": [
            None,
            {
                "id": 1,
                "name": None,
                "records_count": None,
                "created_at": None,
                "updated_at": None,
                "url": None,
                "component": None,
            },
        ],
    }
    assert (job["progress"], job["package"], job["runtime_in_seconds"], job["outputs_count"]) == (None,) * 4
    assert api(job_sim, "/jobs").json()[0] is None
    job_sim.set_fault("wrong_shape", shape="null_outputs")
    nulled = api(job_sim, "/jobs/157").json()
    assert (nulled["outputs"], nulled["outputs_count"], nulled["progress"]) == (None, None, 0.3)


def test_wrong_shape_strings(job_sim: Simulator) -> None:
    job_sim.set_fault("wrong_shape", shape="strings")
    job = api(job_sim, "/jobs/157").json()
    assert (job["id"], job["progress"], job["runtime_in_seconds"], job["outputs_count"]) == (
        "157",
        "0.3",
        "42",
        "1",
    )
    assert (job["outputs"][0]["records_count"], job["package"]["id"]) == ("10", "1")
    assert (job["failed_at"], job["status"]) == (None, "running")


def test_oversized_fault_is_valid_json_of_the_requested_size(job_sim: Simulator) -> None:
    job_sim.set_fault("oversized", size_bytes=2_000_000, times=1)
    response = api(job_sim, "/jobs/157")
    assert (response.headers["Content-Length"], len(response.content)) == ("2000000", 2_000_000)
    body = response.json()
    assert (body["id"], body["progress"]) == (157, 0.3)
    assert body["padding"] == "x" * (
        2_000_000 - len(compact(job_sim.job_payload(157))) - len(',"padding":""')
    )
    job_sim.set_fault("oversized", size_bytes=300_000, chunked=True, times=1)
    chunked = api(job_sim, "/jobs")
    assert ("Content-Length" in chunked.headers, chunked.headers["Transfer-Encoding"]) == (False, "chunked")
    assert len(chunked.content) == 300_000
    assert chunked.json()[-1] == "x" * (
        300_000 - len(compact([job_sim.job_payload(158), job_sim.job_payload(157)])) - 3
    )


def test_default_oversized_body_is_streamed_and_abandonable(job_sim: Simulator) -> None:
    job_sim.set_fault("oversized")
    response = api(job_sim, "/jobs/157", stream=True)
    assert response.headers["Content-Length"] == "20000000"
    assert next(response.iter_content(chunk_size=65536)).startswith(b'{"id":157,')
    response.close()
    started = time.monotonic()
    job_sim.stop()
    assert time.monotonic() - started < 1.0


def test_redirect_fault_and_where_credentials_go(job_sim: Simulator) -> None:
    seen: list[tuple[str, str | None]] = []

    class Landing(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append((self.path, self.headers.get("Authorization")))
            body = b"{}"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    landing = HTTPServer(("127.0.0.1", 0), Landing)
    thread = threading.Thread(target=landing.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        location = f"http://127.0.0.1:{landing.server_address[1]}/landed"
        job_sim.set_fault("redirect", location=location)
        response = api(job_sim, "/jobs/157", allow_redirects=False)
        assert (response.status_code, response.headers["Location"]) == (302, location)
        assert response.headers["X-RateLimit-Remaining"] == "4999"
        followed = api(job_sim, "/jobs/157")
        assert (followed.status_code, followed.url) == (200, location)
        assert seen == [("/landed", None)]  # requests drops Authorization when the port changes
    finally:
        landing.shutdown()
        landing.server_close()


def test_fault_targeting_counting_and_clearing(job_sim: Simulator) -> None:
    job_sim.set_fault("status", endpoint="list_jobs", code=503)
    only_157 = job_sim.set_fault("status", job_id=157, code=500, times=2)
    assert [api(job_sim, "/jobs/157").status_code for _ in range(3)] == [500, 500, 200]
    assert (only_157.fired, only_157.active) == (2, False)
    assert api(job_sim, "/jobs/158").status_code == 200
    assert api(job_sim, "/jobs").status_code == 503
    everything = job_sim.set_fault("status", code=502)
    assert [api(job_sim, p).status_code for p in ("/jobs/158", "/jobs", "/rate_limit_status")] == [
        502,
        502,
        502,
    ]
    everything.clear()
    assert api(job_sim, "/jobs/158").status_code == 200
    job_sim.clear_faults()
    assert api(job_sim, "/jobs").status_code == 200


def test_faults_apply_to_well_formed_requests_only(job_sim: Simulator) -> None:
    job_sim.set_fault("reset")
    assert api(job_sim, "/jobs/157", key="wrong").status_code == 401
    assert api(job_sim, "/jobs/157", accept="application/json").status_code == 406


def test_exhausted_ledger_wins_over_charged_faults() -> None:
    with Simulator(account_id="acme", api_key=KEY, credits=1, window_seconds=60.0) as sim:
        sim.add_job(SimJob(id=1))
        assert api(sim, "/jobs/1").status_code == 200
        handle = sim.set_fault("status", code=500, times=1)
        assert api(sim, "/jobs/1").status_code == 429
        assert (handle.fired, handle.active) == (0, True)
        sim.set_fault("reset", times=1)
        with pytest.raises(requests.exceptions.ConnectionError):
            api(sim, "/jobs/1")


@pytest.mark.parametrize(
    ("kind", "kwargs", "message"),
    [
        ("bogus", {}, "unknown fault kind 'bogus'"),
        ("redirect", {}, "needs parameter 'location'"),
        ("status", {"code": "500"}, "parameter 'code'"),
        ("trickle", {"speed": 1}, "takes no parameter"),
        ("wrong_shape", {"shape": "square"}, "parameter 'shape'"),
        ("reset", {"endpoint": "nope"}, "unknown endpoint 'nope'"),
        ("reset", {"times": 0}, "times must be at least 1"),
    ],
)
def test_set_fault_rejects_mistakes(sim: Simulator, kind: str, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sim.set_fault(kind, **kwargs)


# -- lifecycle of the simulator itself --------------------------------------------------------------------


def test_stop_is_prompt_with_trickling_and_hanging_connections(job_sim: Simulator) -> None:
    job_sim.set_fault("trickle", job_id=157)
    job_sim.set_fault("hang", job_id=158)
    errors: list[BaseException] = []

    def client(path: str) -> None:
        try:
            api(job_sim, path, timeout=30.0)
        except requests.exceptions.RequestException as exc:
            errors.append(exc)

    clients = [threading.Thread(target=client, args=(p,), daemon=True) for p in ("/jobs/157", "/jobs/158")]
    for thread in clients:
        thread.start()
    wait_until(lambda: len(job_sim.requests) == 2, 5.0, "two requests")
    started = time.monotonic()
    job_sim.stop()
    assert time.monotonic() - started < 1.0
    for thread in clients:
        thread.join(timeout=2.0)
    assert len(errors) == 2
    job_sim.stop()  # idempotent


def test_context_manager_and_base_url() -> None:
    sim = Simulator()
    with pytest.raises(RuntimeError, match="not started"):
        _ = sim.base_url
    with sim as started:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", started.base_url)
        assert started.port == int(started.base_url.rsplit(":", 1)[1])
        with pytest.raises(RuntimeError, match="already started"):
            started.start()
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"{sim.base_url}/acme/api/rate_limit_status", timeout=1)


def test_tls_certificate_verifies_only_with_the_simulators_ca() -> None:
    sim = Simulator(account_id="acme", api_key=KEY)
    sim.start(tls=True)
    try:
        sim.add_job(SimJob(id=1, status="running"))
        assert sim.base_url.startswith("https://127.0.0.1:")
        with pytest.raises(requests.exceptions.SSLError):
            api(sim, "/jobs/1")
        ca = sim.ca_pem_path
        response = api(sim, "/jobs/1", verify=str(ca))
        assert (response.status_code, response.json()["url"]) == (200, f"{sim.base_url}/acme/api/jobs/1")
    finally:
        sim.stop()
    assert not ca.exists()


def test_command_line_serves_until_sigterm(tmp_path: Path) -> None:
    ids_file = tmp_path / "ids.txt"
    command = [
        sys.executable,
        "-m",
        "exporter.simulator",
        "--port",
        "0",
        "--account-id",
        "acme",
        "--api-key",
        "secret-key",
        "--running-jobs",
        "2",
        "--unrelated-jobs",
        "3",
        "--job-ids-file",
        str(ids_file),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.fullmatch(r"simulator listening on (http://127\.0\.0\.1:\d+) account=acme jobs=5\n", line)
        assert match, line
        assert "secret-key" not in line
        assert ids_file.read_text() == "1000\n1001\n"
        response = requests.get(
            f"{match.group(1)}/acme/api/jobs/1001",
            headers={"Accept": ACCEPT},
            auth=("secret-key", ""),
            timeout=2,
        )
        assert (response.status_code, response.json()["status"]) == (200, "running")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
