"""Issue 7: package metrics across runs, several accounts in one process, and shards that partition the jobs."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from exporter.app import App
from exporter.config import Shard, parse_configs
from exporter.simulator import SimJob, Simulator
from tests.support import API_KEY, Samples, make_config, max_requests_in_any_window, scrape, wait_until

Start = Callable[..., App]


def test_the_package_state_set_follows_the_last_finished_run(sim: Simulator, exporter_for: Start) -> None:
    now = int(time.time())
    sim.add_job(SimJob(id=1, status="completed", package_id=434, package_name="orders", created_at=now - 30))
    sim.add_job(SimJob(id=2, status="running", package_id=434, package_name="orders", created_at=now - 10))
    app = exporter_for(sim, [], credits=100_000, interval=0.5, discover={"package_ids": [434]})

    def package(metrics: Samples, status: str) -> float | None:
        return metrics.get("integrateio_package_last_job_status", package_id="434", status=status)

    metrics = wait_until(lambda: (m := scrape(app)).status(2) == "running" and m, 5, "both runs")
    assert package(metrics, "completed") == 1.0
    assert metrics.get("integrateio_package_running_jobs", package_id="434") == 1.0
    assert (
        metrics.get(
            "integrateio_package_info",
            package_id="434",
            package_name="orders",
            url=f"{sim.base_url}/acme/packages/434",
        )
        == 1.0
    )
    success = metrics.get("integrateio_package_last_success_timestamp_seconds", package_id="434")
    assert success is not None
    assert metrics.get("integrateio_package_last_failure_timestamp_seconds", package_id="434") is None

    sim.update_job(2, status="failed", errors="boom")
    metrics = wait_until(lambda: (m := scrape(app)).status(2) == "failed" and m, 5, "run 2 failed")
    assert package(metrics, "failed") == 1.0
    assert package(metrics, "completed") == 0.0
    assert metrics.get("integrateio_package_running_jobs", package_id="434") == 0.0
    failure = metrics.get("integrateio_package_last_failure_timestamp_seconds", package_id="434")
    assert failure is not None and failure > success
    assert metrics.get("integrateio_package_last_success_timestamp_seconds", package_id="434") == success


def two_accounts(sim_a: Simulator, sim_b: Simulator, tmp_path: Path) -> list[object]:
    document = {
        "accounts": [
            {
                "name": "prod",
                "api": {"account_id": sim_a.account_id, "base_url": sim_a.base_url, "api_key_env": "KEY_A"},
                "jobs": [1, 2],
                "polling": {"interval_seconds": 0.2},
                "rate_limit": {"credits": 20, "window_seconds": 10, "reserve": 0.0},
            },
            {
                "name": "staging",
                "api": {"account_id": sim_b.account_id, "base_url": sim_b.base_url, "api_key_env": "KEY_B"},
                "jobs": [1, 3],
                "polling": {"interval_seconds": 0.2},
                "rate_limit": {"credits": 10, "window_seconds": 10, "reserve": 0.0},
            },
        ]
    }
    return list(parse_configs(document, base_dir=tmp_path, environ={"KEY_A": API_KEY, "KEY_B": API_KEY}))


def test_two_accounts_are_labelled_and_never_spend_each_others_credits(
    make_sim: Callable[..., Simulator], stop_apps: list[App], tmp_path: Path
) -> None:
    sim_a = make_sim(credits=20, window_seconds=10.0)
    sim_b = make_sim(credits=10, window_seconds=10.0)
    for sim in (sim_a, sim_b):
        sim.add_job(SimJob(id=1, status="running", package_id=5))
    sim_a.add_job(SimJob(id=2, status="queued"))
    sim_b.add_job(SimJob(id=3, status="failed"))
    app = App(two_accounts(sim_a, sim_b, tmp_path), ("127.0.0.1", 0))  # type: ignore[arg-type]
    app.start()
    stop_apps.append(app)
    started = time.monotonic()
    wait_until(lambda: scrape(app) and time.monotonic() > started + 12, 15, "more than one window")
    metrics = scrape(app)
    # The same job id in two accounts: two series, told apart by `account`.
    assert metrics.get("integrateio_job_status", account="prod", job_id="1", status="running") == 1.0
    assert metrics.get("integrateio_job_status", account="staging", job_id="1", status="running") == 1.0
    assert metrics.get("integrateio_job_status", account="staging", job_id="3", status="failed") == 1.0
    assert metrics.get("integrateio_budget_limit_credits", account="prod") == 20.0
    assert metrics.get("integrateio_budget_limit_credits", account="staging") == 10.0
    assert metrics.get("integrateio_watched_jobs", account="staging") == 2.0
    assert metrics.get("integrateio_package_running_jobs", account="prod", package_id="5") == 1.0
    assert (
        metrics.get(
            "integrateio_exporter_build_info",
            python_version=__import__("platform").python_version(),
            version=__import__("exporter").__version__,
        )
        == 1.0
    )
    # Each account kept to its own budget, against its own API, and neither saw a 429.
    for sim, limit in ((sim_a, 20), (sim_b, 10)):
        charged = [r.time for r in sim.requests if r.charged]
        assert max_requests_in_any_window(charged, 10.0) <= limit
        assert [r for r in sim.requests if r.status == 429] == []
    assert len([r for r in sim_a.requests if r.charged]) > len([r for r in sim_b.requests if r.charged])
    assert API_KEY not in metrics.text


def test_shards_export_each_job_exactly_once(sim: Simulator, stop_apps: list[App]) -> None:
    for job_id in range(1, 41):
        sim.add_job(SimJob(id=job_id, status="running"))
    config = make_config(sim, list(range(1, 41)), credits=100_000, interval=0.5)
    apps = []
    for index in range(3):
        app = App(config.sharded(Shard(index, 3)), ("127.0.0.1", 0))
        app.start()
        stop_apps.append(app)
        apps.append(app)
    exported: list[set[str]] = []
    for app in apps:
        metrics = wait_until(
            lambda app=app: (m := scrape(app)).get("integrateio_last_full_refresh_timestamp_seconds") and m,
            10,
            "a refresh",
        )
        exported.append({s["job_id"] for s in metrics.labelsets("integrateio_job_status")})
    assert set().union(*exported) == {str(i) for i in range(1, 41)}
    assert sum(len(part) for part in exported) == 40
    assert [scrape(app)["integrateio_budget_limit_credits"] for app in apps] == [
        29_999.0
    ] * 3  # (100,000 // 3) × 0.9


def test_the_status_page_and_api_jobs_show_every_accounts_budget_and_state(
    make_sim: Callable[..., Simulator], stop_apps: list[App], tmp_path: Path
) -> None:
    """Prod's key works: two GETs, 2 of its 300 credits, the API's own count read back. Staging's key is
    refused: one GET, 1 of its 90 credits, API down, a minute's pause. Each shows as itself, not as prod."""
    prod, staging = make_sim(credits=5000), make_sim(credits=1000)
    prod.add_job(SimJob(id=1, status="completed"))
    prod.add_job(SimJob(id=2, status="failed"))
    staging.add_job(SimJob(id=1, status="stopped"))

    def account(name: str, sim: Simulator, jobs: list[int], interval: float, **rate: float) -> dict[str, Any]:
        api = {"account_id": sim.account_id, "base_url": sim.base_url, "api_key_env": f"KEY_{name}"}
        return {
            "name": name,
            "api": api,
            "jobs": jobs,
            "polling": {"interval_seconds": interval},
            "rate_limit": {"window_seconds": 3600, **rate},
        }

    document = {
        "accounts": [
            account("prod", prod, [1, 2], 0.5, credits=300, reserve=0.0),
            account("staging", staging, [1], 2.0, credits=100, reserve=0.1),
        ]
    }
    environ = {"KEY_prod": API_KEY, "KEY_staging": "a-refused-key"}
    app = App(list(parse_configs(document, base_dir=tmp_path, environ=environ)), ("127.0.0.1", 0))
    app.start()
    stop_apps.append(app)

    def settled() -> dict[str, Any] | None:
        exporter: dict[str, Any] = requests.get(app.url("/api/jobs"), timeout=10).json()["exporter"]
        accounts = exporter["accounts"]
        done = exporter["ready"] and accounts["prod"]["budget"]["spent"] == 2
        return exporter if done and accounts["staging"]["api_up"] is False else None

    exporter = wait_until(settled, 10, "both accounts' first refresh")
    # Final jobs are never asked again and staging is paused, so nothing moves from here on.
    ages = {name: state.pop("last_full_refresh") for name, state in exporter["accounts"].items()}
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", age) for age in ages.values()), ages
    backoff = exporter["accounts"]["staging"]["budget"].pop("backoff_seconds")
    assert 50 < backoff <= 60
    assert exporter["ready"] is True and exporter["watched_jobs"] == 3
    assert exporter["accounts"] == {
        "prod": {
            "api_up": True,
            "ready": True,
            "refresh_interval_seconds": 0.5,
            "refresh_interval_target_seconds": 0.5,
            "config_reload_ok": True,
            "watched_jobs": 2,
            "budget": {
                "limit": 300,
                "spent": 2,
                "remaining": 298,
                "window_seconds": 3600,
                "backoff_seconds": 0,
                "api_limit": 5000,
                "api_remaining": 4998,
                "held_by_api": False,
            },
        },
        "staging": {
            "api_up": False,
            "ready": True,
            "refresh_interval_seconds": 40,  # 1 credit a cycle, 90 an hour
            "refresh_interval_target_seconds": 2,
            "config_reload_ok": True,
            "watched_jobs": 1,
            "budget": {
                "limit": 90,
                "spent": 1,
                "remaining": 89,
                "window_seconds": 3600,
                "api_limit": None,
                "api_remaining": None,
                "held_by_api": False,
            },
        },
    }
    assert (
        "api_up" not in exporter and "budget" not in exporter
    )  # no account's figures pass for the exporter's

    page = requests.get(app.url("/"), timeout=10).text
    assert 'id="health"' not in page
    lines = {
        name: " ".join(html.unescape(re.sub(r"<[^>]+>", " ", line)).split())
        for name, line in re.findall(r'<ul class="health" data-account="(\w+)">(.*?)</ul>', page)
    }
    assert list(lines) == ["prod", "staging"]
    assert re.fullmatch(
        r"prod ✔ API reachable Credits used 2 , left 298 of 300 per 1 h "
        r"API reports 4,998 of 5,000 left on the key Refresh every 0\.5 s Last full refresh \d+ s ago",
        lines["prod"],
    ), lines["prod"]
    assert re.fullmatch(
        r"staging ✖ API unreachable Credits used 1 , left 89 of 90 per 1 h "
        r"⏸ paused \d\d s after a 429 or a refused key "
        r"Refresh every 40 s \(stretched from 2 s to fit the budget\) Last full refresh \d+ s ago",
        lines["staging"],
    ), lines["staging"]
