"""Clusters against the simulated API over HTTP: /metrics shows what `GET /clusters` answers; bad answers keep
the last good values and are counted; terminated clusters leave after their age; and with every section on
(jobs, discovery, schedules, clusters) the exporter still keeps within its credit budget."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from exporter.app import App
from exporter.config import parse_configs
from exporter.model import parse_timestamp
from exporter.planner import cycle_interval, listed_interval
from exporter.simulator import SimCluster, SimJob, SimSchedule, Simulator
from exporter.simulator.pipelines import CLUSTER_STATUSES
from tests.support import API_KEY, Samples, max_requests_in_any_window, scrape, scrape_when, wait_until

SECTION = {"enabled": True, "interval_seconds": 1}


def clusters(sim: Simulator) -> list[SimCluster]:
    """An idle production cluster that never terminates itself, a busy one, one in error, one terminated now."""
    now = int(time.time())
    found = [
        SimCluster(id=52, name="etl-prod", nodes=4, available_since=now - 7200, terminate_on_idle=False),
        SimCluster(id=53, name="etl-batch", nodes=2, running_jobs_count=3, available_since=now - 600),
        SimCluster(id=54, name="sandbox", type="sandbox", status="error", nodes=1),
        SimCluster(
            id=55, name="done", status="terminated", available_since=now - 900, terminated_at=now - 60
        ),
    ]
    for cluster in found:
        sim.put_cluster(cluster)
    return found


def status(metrics: Samples, cluster_id: int) -> str | None:
    ones = [
        labels["status"]
        for labels in metrics.labelsets("integrateio_cluster_status")
        if labels["cluster_id"] == str(cluster_id)
        and metrics.get("integrateio_cluster_status", **labels) == 1.0
    ]
    assert len(ones) <= 1, ones
    return ones[0] if ones else None


def test_values_equal_the_api(sim: Simulator, exporter_for: Callable[..., App]) -> None:
    found = clusters(sim)
    app = exporter_for(sim, [], clusters=SECTION)
    metrics = scrape_when(app, lambda m: status(m, 55) is not None, "every cluster on /metrics")
    for cluster in found:
        payload = sim.cluster_payload(cluster.id)
        key = {"cluster_id": str(cluster.id)}
        url = (
            f"{sim.base_url}/acme/clusters/{cluster.id}"  # its page in the web UI, as the simulator sends it
        )
        assert payload["html_url"] == url
        assert (
            metrics.get(
                "integrateio_cluster_info", **key, cluster_name=payload["name"], type=payload["type"], url=url
            )
            == 1.0
        )
        assert status(metrics, cluster.id) == payload["status"]
        assert sorted(
            labels["status"]
            for labels in metrics.labelsets("integrateio_cluster_status")
            if labels["cluster_id"] == str(cluster.id)
        ) == sorted((*CLUSTER_STATUSES, "unknown"))
        assert metrics.get("integrateio_cluster_nodes", **key) == payload["nodes"]
        assert metrics.get("integrateio_cluster_running_jobs", **key) == payload["running_jobs_count"]
        since = payload["available_since"]
        assert metrics.get("integrateio_cluster_available_since_timestamp_seconds", **key) == (
            None if since is None else parse_timestamp(since)
        )
        assert metrics.get("integrateio_cluster_terminate_on_idle", **key) == float(
            payload["terminate_on_idle"]
        )


def test_terminated_clusters_leave_after_their_age(sim: Simulator, exporter_for: Callable[..., App]) -> None:
    now = int(time.time())
    sim.put_cluster(SimCluster(id=52, name="etl-prod"))
    sim.put_cluster(SimCluster(id=55, name="just now", status="terminated", terminated_at=now))
    sim.put_cluster(SimCluster(id=56, name="long gone", status="terminated", terminated_at=now - 3 * 86400))
    app = exporter_for(sim, [], clusters={**SECTION, "terminated_max_age_seconds": 6})
    metrics = scrape_when(app, lambda m: status(m, 55) == "terminated", "the just-terminated cluster")
    assert status(metrics, 56) is None  # terminated three days ago: never shown
    scrape_when(
        app, lambda m: status(m, 55) is None and status(m, 52) == "available", "cluster 55 aged out", 15
    )


def test_bad_answers_keep_the_last_good_values_and_are_counted(
    sim: Simulator, exporter_for: Callable[..., App]
) -> None:
    clusters(sim)
    app = exporter_for(sim, [], clusters=SECTION)
    good = scrape_when(app, lambda m: status(m, 55) is not None, "clusters")
    before = {key: value for key, value in good.values.items() if key[0].startswith("integrateio_cluster_")}

    def reads() -> int:
        return len([r for r in sim.requests if r.endpoint == "list_clusters"])

    for kind, params, error in (
        ("status", {"code": 503}, "server_error"),
        ("wrong_shape", {"shape": "nulls"}, "invalid_field"),
        ("wrong_shape", {"shape": "strings"}, None),
    ):
        count = reads()
        handle = sim.set_fault(kind, endpoint="list_clusters", times=1, **params)
        wait_until(lambda n=count: reads() > n + 1, 10, f"a read after the {kind} fault")
        assert handle.fired == 1
        metrics = scrape(app)
        if error is not None:
            assert (
                metrics.get("integrateio_listing_errors_total", resource="clusters", error=error) or 0
            ) >= 1
        after = {
            key: value for key, value in metrics.values.items() if key[0].startswith("integrateio_cluster_")
        }
        assert after == before, (kind, params)


def test_an_undocumented_status_is_unknown_and_a_string_id_is_read(
    sim: Simulator, exporter_for: Callable[..., App]
) -> None:
    sim.put_cluster(SimCluster(id=60, name="odd", extra={"status": "hibernating", "id": "60", "nodes": "3"}))
    app = exporter_for(sim, [], clusters=SECTION)
    metrics = scrape_when(app, lambda m: status(m, 60) is not None, "cluster 60")
    assert status(metrics, 60) == "unknown"
    assert metrics.get("integrateio_cluster_nodes", cluster_id="60") == 3.0


def test_the_budget_holds_with_every_section_on(sim: Simulator, exporter_for: Callable[..., App]) -> None:
    """30 credits a 20 s window (27 after the reserve), spent by 8 watched jobs, discovery of a package, and
    schedules and clusters asked for every second: the planner stretches what it must, nothing is refused."""
    for job_id in range(1, 9):
        sim.add_job(SimJob(id=job_id, status="running", package_id=434))
    clusters(sim)
    sim.put_schedule(SimSchedule(id=2, name="nightly", next_run_at=int(time.time()) + 3600))
    app = exporter_for(
        sim,
        list(range(1, 9)),
        credits=30,
        window=20.0,
        interval=1.0,
        discover={"package_ids": [434]},
        schedules=SECTION,
        clusters=SECTION,
    )
    started = time.monotonic()
    metrics = scrape_when(
        app,
        lambda m: (
            m.get("integrateio_schedule_enabled", schedule_id="2") == 1.0 and status(m, 52) == "available"
        ),
        "schedules and clusters",
    )
    assert metrics.status(1) == "running"
    wait_until(lambda: time.monotonic() > started + 45, 50, "45 s of polling", step=0.5)
    log = sim.requests
    assert [r for r in log if r.status == 429] == []
    charged = [r.time for r in log if r.charged]
    assert max_requests_in_any_window(charged, 20.0) <= 27
    # Both listed resources were read again within the run, not starved by the jobs.
    for endpoint in ("list_schedules", "list_clusters"):
        assert len([r for r in log if r.endpoint == endpoint]) >= 2, endpoint
    assert scrape(app).get("integrateio_budget_limit_credits") == 27


def test_each_account_reads_its_own_clusters_under_its_label(
    make_sim: Callable[..., Simulator], stop_apps: list[App], tmp_path: Path
) -> None:
    """With `accounts:` the same cluster id in two accounts gives two series, each with its account."""
    prod, staging = make_sim(), make_sim()
    prod.put_cluster(SimCluster(id=52, name="etl-prod", nodes=4))
    staging.put_cluster(SimCluster(id=52, name="etl-staging", nodes=1, status="error"))
    configs = parse_configs(
        {
            "accounts": [
                {
                    "name": name,
                    "api": {"account_id": "acme", "base_url": sim.base_url, "api_key_env": "KEY"},
                    "clusters": SECTION,
                    "polling": {"interval_seconds": 1},
                }
                for name, sim in (("prod", prod), ("staging", staging))
            ]
        },
        base_dir=tmp_path,
        environ={"KEY": API_KEY},
    )
    app = App(list(configs), ("127.0.0.1", 0))
    app.start()
    stop_apps.append(app)
    metrics = scrape_when(
        app,
        lambda m: (
            m.get("integrateio_cluster_nodes", account="staging", cluster_id="52") is not None
            and m.get("integrateio_cluster_nodes", account="prod", cluster_id="52") is not None
        ),
        "both accounts' clusters",
    )
    assert metrics.get("integrateio_cluster_nodes", account="prod", cluster_id="52") == 4.0
    assert metrics.get("integrateio_cluster_nodes", account="staging", cluster_id="52") == 1.0
    assert (
        metrics.get("integrateio_cluster_status", account="staging", cluster_id="52", status="error") == 1.0
    )
    assert (
        metrics.get(
            "integrateio_cluster_info",
            account="prod",
            cluster_id="52",
            cluster_name="etl-prod",
            type="production",
            url=f"{prod.base_url}/acme/clusters/52",
        )
        == 1.0
    )
    document = requests.get(app.url("/api/jobs"), timeout=10).json()
    assert sorted((c["account"], c["name"]) for c in document["clusters"]) == [
        ("prod", "etl-prod"),
        ("staging", "etl-staging"),
    ]


def test_the_planner_leaves_the_jobs_what_the_listed_resources_do_not_take() -> None:
    """Pure arithmetic of `exporter.planner`: a listed resource takes at most a quarter of the budget (its
    interval stretches past that), and the jobs' interval is planned on the rest."""
    assert listed_interval(pages=1, target=300.0, limit=4500, window_seconds=3600.0) == 300.0
    # 50 pages every 10 s would be 18,000 credits an hour: stretched to a quarter of 4,500, every 160 s
    assert listed_interval(pages=50, target=10.0, limit=4500, window_seconds=3600.0) == pytest.approx(160.0)
    assert cycle_interval(100, 0.0, target=60.0, limit=4500, window_seconds=3600.0) == pytest.approx(80.0)
    # schedules and clusters take 1,000 credits an hour: 100 credits a cycle fit 3,500 every 102.9 s
    assert cycle_interval(100, 1000.0, target=60.0, limit=4500, window_seconds=3600.0) == pytest.approx(
        100 * 3600 / 3500
    )
    assert cycle_interval(10, 1000.0, target=60.0, limit=4500, window_seconds=3600.0) == 60.0
