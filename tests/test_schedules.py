"""Schedules against the simulated API over HTTP: /metrics shows what `GET /schedules` answers, and bad answers
(nulls, numbers as strings, statuses nobody documented, 5xx) keep the last good values and are counted."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import requests

from exporter.app import App
from exporter.model import parse_timestamp
from exporter.simulator import SimCluster, SimSchedule, Simulator
from exporter.simulator.demo import build_demo
from tests.support import API_KEY, Samples, scrape, scrape_when

SECTION = {"enabled": True, "interval_seconds": 1}


def schedules(sim: Simulator) -> list[SimSchedule]:
    """A daily schedule that ran, a monthly one that never ran, a disabled one, a weekly one that failed."""
    now = int(time.time())
    found = [
        SimSchedule(
            id=2,
            name="nightly orders",
            next_run_at=now + 3600,
            last_run_at=now - 82800,
            last_run_status="completed",
            execution_count=41,
            package_ids=(434, 435),
        ),
        SimSchedule(id=3, name="monthly close", interval_unit="months", next_run_at=now + 86400),
        SimSchedule(id=4, name="old export", status="disabled", interval_amount=2, interval_unit="hours"),
        SimSchedule(
            id=5,
            name="weekly rollup",
            interval_unit="weeks",
            next_run_at=now + 7200,
            last_run_at=now - 600,
            last_run_status="failed",
            execution_count=9,
            package_ids=(440,),
        ),
    ]
    for schedule in found:
        sim.put_schedule(schedule)
    return found


def expected(payload: dict[str, Any]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The series one schedule's documented JSON should give, computed from the JSON itself."""
    key = (("schedule_id", str(payload["id"])),)
    unit = {
        "minutes": 60,
        "hours": 3600,
        "days": 86400,
        "weeks": 604800,
        "months": 2592000,
        "years": 31536000,
    }
    series = {
        (
            "integrateio_schedule_info",
            (*key, ("schedule_name", payload["name"]), ("url", payload["html_url"])),
        ): 1.0,
        ("integrateio_schedule_enabled", key): 1.0 if payload["status"] == "enabled" else 0.0,
        ("integrateio_schedule_runs_total", key): float(payload["execution_count"]),
        ("integrateio_schedule_interval_seconds", key): float(
            payload["interval_amount"] * unit[payload["interval_unit"]]
        ),
    }
    for field, name in (
        ("next_run_at", "integrateio_schedule_next_run_timestamp_seconds"),
        ("last_run_at", "integrateio_schedule_last_run_timestamp_seconds"),
    ):
        if payload[field] is not None:
            series[(name, key)] = parse_timestamp(payload[field]) or 0.0
    for package in payload["task"]["packages"]:
        series[("integrateio_schedule_package_info", (*key, ("package_id", str(package["package_id"]))))] = (
            1.0
        )
    if payload["last_run_status"] is not None:
        series[("integrateio_schedule_last_run_status", (*key, ("status", payload["last_run_status"])))] = 1.0
    return series


def served(metrics: Samples, schedule_id: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The schedule's series on /metrics (state sets: only the state that is 1)."""
    return {
        (name, tuple(sorted(labels))): value
        for (name, labels), value in metrics.values.items()
        if name.startswith("integrateio_schedule_")
        and ("schedule_id", str(schedule_id)) in labels
        and not (name == "integrateio_schedule_last_run_status" and value == 0.0)
    }


def normalised(series: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> dict[Any, float]:
    return {(name, tuple(sorted(labels))): value for (name, labels), value in series.items()}


def test_values_equal_the_api(sim: Simulator, exporter_for: Callable[..., App]) -> None:
    found = schedules(sim)
    app = exporter_for(sim, [], schedules=SECTION)
    metrics = scrape_when(
        app, lambda m: m.get("integrateio_schedule_enabled", schedule_id="5") is not None, "5"
    )
    for schedule in found:
        assert served(metrics, schedule.id) == normalised(expected(sim.schedule_payload(schedule.id)))
    # Each schedule's page in the web UI, as the simulator sends it (`html_url`), is its `url` label.
    web = f"{sim.base_url}/acme/schedules"
    assert [sim.schedule_payload(schedule.id)["html_url"] for schedule in found] == [
        f"{web}/{schedule.id}" for schedule in found
    ]
    assert (
        metrics.get(
            "integrateio_schedule_info", schedule_id="2", schedule_name="nightly orders", url=f"{web}/2"
        )
        == 1.0
    )
    # The documented example sends package ids as strings; the join to packages is by the number.
    assert metrics.get("integrateio_schedule_package_info", schedule_id="2", package_id="435") == 1.0
    assert metrics.get("integrateio_schedule_interval_seconds", schedule_id="3") == 30 * 86400
    assert metrics.get("integrateio_schedule_last_run_status", schedule_id="5", status="failed") == 1.0
    # Never ran: no last run, no last status (documented as null until then).
    assert metrics.get("integrateio_schedule_last_run_timestamp_seconds", schedule_id="3") is None
    assert metrics.labelsets("integrateio_schedule_last_run_status") and not any(
        labels["schedule_id"] == "3" for labels in metrics.labelsets("integrateio_schedule_last_run_status")
    )
    assert metrics.get("integrateio_api_requests_total", endpoint="list_schedules", outcome="success")


def test_a_deleted_schedule_leaves_and_a_new_one_arrives(
    sim: Simulator, exporter_for: Callable[..., App]
) -> None:
    schedules(sim)
    app = exporter_for(sim, [], schedules=SECTION)
    scrape_when(app, lambda m: m.get("integrateio_schedule_enabled", schedule_id="4") == 0.0, "disabled 4")
    sim.remove_listed("schedules", 4)
    sim.put_schedule(SimSchedule(id=6, name="new", next_run_at=int(time.time()) + 60))
    metrics = scrape_when(
        app, lambda m: m.get("integrateio_schedule_enabled", schedule_id="6") == 1.0, "schedule 6 on /metrics"
    )
    assert metrics.get("integrateio_schedule_info", schedule_id="4", schedule_name="old export") is None


def test_every_page_is_read(sim: Simulator, exporter_for: Callable[..., App]) -> None:
    for schedule_id in range(1, 251):
        sim.put_schedule(
            SimSchedule(id=schedule_id, name=f"s{schedule_id}", next_run_at=int(time.time()) + 60)
        )
    app = exporter_for(sim, [], schedules={"enabled": True, "interval_seconds": 3600})
    metrics = scrape_when(
        app, lambda m: len(m.labelsets("integrateio_schedule_enabled")) == 250, "250 schedules on /metrics"
    )
    assert (
        metrics.get(
            "integrateio_schedule_info",
            schedule_id="250",
            schedule_name="s250",
            url=f"{sim.base_url}/acme/schedules/250",
        )
        == 1.0
    )
    pages = [r for r in sim.requests if r.endpoint == "list_schedules"]
    assert [r.query.get("offset", "0") for r in pages] == ["0", "100", "200"]
    assert all(r.charged for r in pages)


def test_bad_answers_keep_the_last_good_values_and_are_counted(
    sim: Simulator, exporter_for: Callable[..., App]
) -> None:
    found = schedules(sim)
    app = exporter_for(sim, [], schedules=SECTION)
    good = scrape_when(
        app, lambda m: m.get("integrateio_schedule_enabled", schedule_id="5") is not None, "schedules"
    )
    before = {schedule.id: served(good, schedule.id) for schedule in found}

    def errors(metrics: Samples, error: str) -> float:
        return metrics.get("integrateio_listing_errors_total", resource="schedules", error=error) or 0.0

    for kind, params, error in (
        ("status", {"code": 500}, "server_error"),
        ("not_json", {}, "invalid_response"),
        ("wrong_shape", {"shape": "list"}, "invalid_response"),
        ("wrong_shape", {"shape": "nulls"}, "invalid_field"),
        ("wrong_shape", {"shape": "strings"}, None),
    ):
        seen = errors(scrape(app), error) if error else 0.0
        requests_before = len([r for r in sim.requests if r.endpoint == "list_schedules"])
        handle = sim.set_fault(kind, endpoint="list_schedules", times=1, **params)
        scrape_when(
            app,
            lambda m, n=requests_before: (
                len([r for r in sim.requests if r.endpoint == "list_schedules"]) > n + 1
            ),
            f"a read after the {kind} fault",
        )
        assert handle.fired == 1
        metrics = scrape(app)
        if error is not None:
            assert errors(metrics, error) > seen, (kind, params)
        for schedule in found:
            assert served(metrics, schedule.id) == before[schedule.id], (kind, params, schedule.id)


def test_an_undocumented_status_is_unknown_and_a_null_keeps_the_last(
    sim: Simulator, exporter_for: Callable[..., App]
) -> None:
    now = int(time.time())
    schedule = SimSchedule(
        id=7, name="odd", next_run_at=now + 60, last_run_status="completed", last_run_at=now
    )
    sim.put_schedule(schedule)
    app = exporter_for(sim, [], schedules=SECTION)
    scrape_when(app, lambda m: m.get("integrateio_schedule_runs_total", schedule_id="7") == 0.0, "schedule 7")
    schedule.extra = {"last_run_status": "exploded", "execution_count": None, "interval_unit": "fortnights"}
    sim.put_schedule(schedule)
    metrics = scrape_when(
        app,
        lambda m: m.get("integrateio_schedule_last_run_status", schedule_id="7", status="unknown") == 1.0,
        "the undocumented status shown as unknown",
    )
    assert metrics.get("integrateio_schedule_last_run_status", schedule_id="7", status="completed") == 0.0
    assert metrics.get("integrateio_schedule_runs_total", schedule_id="7") == 0.0
    assert metrics.get("integrateio_schedule_interval_seconds", schedule_id="7") == 86400.0
    assert (
        metrics.get("integrateio_listing_errors_total", resource="schedules", error="invalid_field") or 0
    ) >= 1


def test_the_simulator_filters_by_status_and_charges_a_credit_a_page(sim: Simulator) -> None:
    """The documented parameters (sections/list-schedules.md, list-clusters.md): `status` is `all` or one of the
    resource's statuses, anything else is a 400; each page costs a credit like a job list page."""
    schedules(sim)
    sim.put_cluster(SimCluster(id=54, name="sandbox-dev", status="error"))
    sim.put_cluster(SimCluster(id=52, name="etl-prod"))

    def get(path: str, **params: str) -> requests.Response:
        return requests.get(
            f"{sim.base_url}/acme/api/{path}",
            params=params,
            headers={"Accept": "application/vnd.xplenty+json; version=2"},
            auth=(API_KEY, ""),
            timeout=5,
        )

    before = sim.credits_remaining()
    assert [item["id"] for item in get("schedules", status="disabled").json()] == [4]
    assert [item["id"] for item in get("schedules", status="all", limit="2").json()] == [5, 4]
    assert get("schedules", status="running").status_code == 400
    assert [item["id"] for item in get("clusters", status="error").json()] == [54]
    assert get("clusters", status="enabled").status_code == 400
    paged = get("schedules", limit="2", direction="asc")
    assert [item["id"] for item in paged.json()] == [2, 3]
    assert 'rel="next"' in paged.headers["Link"]
    assert sim.credits_remaining() == before - 6  # a 400 costs a credit too, as every answered list page does
    assert get("schedules").json()[0]["task"]["packages"] == [{"package_id": "440", "variables": {}}]


def test_the_demo_has_a_missed_and_a_failing_schedule_and_an_idle_and_a_broken_cluster(
    exporter_for: Callable[..., App],
) -> None:
    demo = build_demo(account_id="acme", api_key=API_KEY)
    demo.start()
    try:
        app = exporter_for(demo, [], schedules=SECTION, clusters=SECTION)
        metrics = scrape_when(
            app,
            lambda m: (
                m.get("integrateio_cluster_nodes", cluster_id="54") is not None
                and m.get("integrateio_schedule_enabled", schedule_id="203") is not None
            ),
            "the demo's schedules and clusters",
        )
        now = time.time()
        missed = {"schedule_id": "203"}
        assert metrics.get("integrateio_schedule_enabled", **missed) == 1.0
        next_run = metrics.get("integrateio_schedule_next_run_timestamp_seconds", **missed) or now
        assert now - next_run > 900 - 5  # past the alert's grace
        assert (metrics.get("integrateio_schedule_last_run_timestamp_seconds", **missed) or now) < next_run
        assert metrics.get("integrateio_schedule_last_run_status", schedule_id="202", status="failed") == 1.0
        assert metrics.get("integrateio_schedule_enabled", schedule_id="204") == 0.0
        assert metrics.get("integrateio_cluster_status", cluster_id="54", status="error") == 1.0
        idle = {"cluster_id": "53"}
        assert metrics.get("integrateio_cluster_status", **idle, status="available") == 1.0
        assert metrics.get("integrateio_cluster_running_jobs", **idle) == 0.0
        assert metrics.get("integrateio_cluster_terminate_on_idle", **idle) == 0.0
        assert metrics.get("integrateio_cluster_status", cluster_id="51", status="terminated") == 1.0

        # The status page and /api/jobs show the same: the missed run overdue, the idle cluster billed.
        page = requests.get(app.url("/"), timeout=10).text
        row = page.split('id="schedule-203"', 1)[1].split("</tr>", 1)[0]
        assert "inventory nightly" in row and "overdue by 15 min" in row and "436" in row
        assert "<td>in 19 min" in page.split('id="schedule-201"', 1)[1].split("</tr>", 1)[0]
        assert "failed" in page.split('id="schedule-202"', 1)[1].split("</tr>", 1)[0]
        assert "idle, billed" in page.split('id="cluster-53"', 1)[1].split("</tr>", 1)[0]
        assert "idle, billed" not in page.split('id="cluster-52"', 1)[1].split("</tr>", 1)[0]
        document = requests.get(app.url("/api/jobs"), timeout=10).json()
        by_id = {item["schedule_id"]: item for item in document["schedules"]}
        assert by_id[203]["overdue_seconds"] > 900 - 5 and by_id[203]["package_ids"] == [436]
        assert by_id[202]["last_run_status"] == "failed" and by_id[201]["overdue_seconds"] is None
        clusters = {item["cluster_id"]: item for item in document["clusters"]}
        assert clusters[53]["idle_and_billed"] is True and clusters[54]["status"] == "error"
        assert clusters[52] == {
            "account": None,
            "cluster_id": 52,
            "name": "etl-prod",
            "type": "production",
            "status": "available",
            "nodes": 4,
            "running_jobs": 2,
            "available_since": demo.cluster_payload(52)["available_since"],
            "terminated_at": None,
            "terminate_on_idle": True,
            "idle_and_billed": False,
        }
    finally:
        demo.stop()
