"""Issue 7: package metrics across runs, several accounts in one process, and shards that partition the jobs."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

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
    assert metrics.get("integrateio_package_info", package_id="434", package_name="orders") == 1.0
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
