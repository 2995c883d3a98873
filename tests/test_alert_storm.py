"""An API outage at 5,000 watched jobs raises a handful of alerts, not 5,000: checked against a real Prometheus.

`promtool test rules` refuses a query that loads more than 10,000 samples, so this scenario cannot be a
tests/rules/*.test.yaml file. Instead the data of two shards watching 2,500 running jobs each is backfilled into a
TSDB (`promtool tsdb create-blocks-from openmetrics`), a real Prometheus serves it, and every alert expression of
the shipped rule file is evaluated at two moments: during the outage only IntegrateioApiDown returns a series (one
per scrape job), and when the API answers again while the data stays stale (a stuck poller) only
IntegrateioDataStale does, one series counting 5,000 jobs. An expression returning a series is the condition of
its alert (`for` only delays it), so one series is at most one alert.

Needs `prometheus` (Debian package prometheus, which also ships promtool): skipped without it, unless
INTEGRATEIO_E2E_REQUIRED=1.
"""

from __future__ import annotations

import subprocess
import time
from typing import Any

import pytest
import requests

from tests.e2e_support import start_service, write_yaml
from tests.support import require_tools
from tests.test_rules import RULES, alert_rules

SHARDS = 2
JOBS_PER_SHARD = 2500
STEP = 60  # seconds between samples, as a 1-minute scrape interval
MINUTES = 50
OUTAGE = (5, 30)  # integrateio_api_up is 0 from minute 5 to minute 29


def openmetrics(start: int) -> str:
    """Two shards, 5,000 running jobs last refreshed at `start`; the API is down in OUTAGE, up otherwise."""
    times = [start + minute * STEP for minute in range(MINUTES + 1)]
    lines: list[str] = []

    def family(name: str, series: list[tuple[str, list[float]]]) -> None:
        lines.append(f"# TYPE {name} gauge")
        for labels, values in series:
            lines.extend(
                f"{name}{{{labels}}} {value:.17g} {moment}"
                for value, moment in zip(values, times, strict=True)
            )

    targets = [f'job="integrateio",instance="exp-{shard}:9863"' for shard in range(SHARDS)]
    constant = [1.0] * len(times)
    api_up = [0.0 if OUTAGE[0] <= minute < OUTAGE[1] else 1.0 for minute in range(MINUTES + 1)]
    family("up", [(target, constant) for target in targets])
    family("integrateio_api_up", [(target, api_up) for target in targets])
    family("integrateio_refresh_interval_seconds", [(target, [60.0] * len(times)) for target in targets])
    family(
        "integrateio_refresh_interval_target_seconds", [(target, [60.0] * len(times)) for target in targets]
    )
    family(
        "integrateio_last_full_refresh_timestamp_seconds",
        [(target, [float(start)] * len(times)) for target in targets],
    )
    jobs = [
        (f'{target},job_id="{shard * JOBS_PER_SHARD + number}"')
        for shard, target in enumerate(targets)
        for number in range(1, JOBS_PER_SHARD + 1)
    ]
    family("integrateio_job_status", [(f'{job},status="running"', constant) for job in jobs])
    family(
        "integrateio_job_last_success_timestamp_seconds", [(job, [float(start)] * len(times)) for job in jobs]
    )
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def query_at(base_url: str, expr: str, moment: int) -> list[dict[str, Any]]:
    response = requests.get(f"{base_url}/api/v1/query", params={"query": expr, "time": moment}, timeout=60)
    answer = response.json()
    assert answer["status"] == "success", (expr, answer)
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


@pytest.fixture(scope="module")
def prometheus_with_5000_jobs(tmp_path_factory: pytest.TempPathFactory) -> Any:
    binaries = require_tools("prometheus", "promtool")
    workdir = tmp_path_factory.mktemp("storm")
    start = (int(time.time()) // 3600 - 3) * 3600  # three hours ago: inside the default retention
    source = workdir / "data.om"
    source.write_text(openmetrics(start), encoding="utf-8")
    blocks = workdir / "tsdb"
    created = subprocess.run(
        [binaries["promtool"], "tsdb", "create-blocks-from", "openmetrics", str(source), str(blocks)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert created.returncode == 0, created.stdout + created.stderr
    config = write_yaml(
        workdir / "prometheus.yml", {"global": {"evaluation_interval": "1m"}, "rule_files": [str(RULES)]}
    )
    stops: list[Any] = []
    try:
        prometheus = start_service(
            "prometheus",
            lambda port: [
                binaries["prometheus"],
                f"--config.file={config}",
                f"--storage.tsdb.path={blocks}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            "/-/ready",
            workdir,
            stops.append,
            timeout=120,
        )
        yield prometheus.base_url, start
    finally:
        for stop in reversed(stops):
            stop()


def firing_series(base_url: str, moment: int) -> dict[str, list[dict[str, Any]]]:
    return {rule["alert"]: query_at(base_url, rule["expr"], moment) for rule in alert_rules()}


def test_during_the_outage_only_one_api_down_per_scrape_job(prometheus_with_5000_jobs: Any) -> None:
    base_url, start = prometheus_with_5000_jobs
    found = firing_series(base_url, start + 20 * STEP)
    assert {name for name, series in found.items() if series} == {"IntegrateioApiDown"}
    (series,) = found["IntegrateioApiDown"]
    assert series["metric"] == {"job": "integrateio"}
    assert query_at(base_url, "count(integrateio_job_status)", start + 20 * STEP)[0]["value"][1] == "5000"


def test_a_stuck_poller_at_5000_jobs_is_one_data_stale_alert_counting_them(
    prometheus_with_5000_jobs: Any,
) -> None:
    base_url, start = prometheus_with_5000_jobs
    found = firing_series(base_url, start + 45 * STEP)
    assert {name for name, series in found.items() if series} == {"IntegrateioDataStale"}
    (series,) = found["IntegrateioDataStale"]
    assert series["metric"] == {"job": "integrateio"}
    assert series["value"][1] == "5000"
