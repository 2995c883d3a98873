"""End to end with real components (GitHub issue 4, item 5), all on loopback with free ports and a temp dir:

    simulator (in-process) ─▶ exporter (`python -m exporter`, a child process)
      ─▶ Prometheus (scrapes every 1s, evaluates the shipped rule file as it is, every 1s)
      ─▶ Alertmanager (no clustering, group_wait 0s, group_interval 1s)
      ─▶ a webhook receiver in this process.

One module-scoped stack serves every test. Its scenario: job 101 runs healthily (progress and records grow),
job 102 runs until Prometheus has scraped it running and then fails, job 103 is queued and its next two
refreshes answer HTTP 500 (so poll errors exist). The stack is handed to the tests once Prometheus has stored
the failure and the poll errors, so every dashboard query has the data it is about.

Needs `prometheus` and `prometheus-alertmanager` on PATH: skipped without them, unless INTEGRATEIO_E2E_REQUIRED=1
(CI), which turns a missing binary into a failure.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from exporter.config import API_KEY_ENV
from exporter.simulator import SimJob, SimOutput, Simulator
from tests.e2e_support import (
    Expression,
    Notification,
    Service,
    WebhookReceiver,
    prom_query,
    prom_rules,
    require_binaries,
    selectors,
    shipped_expressions,
    start_service,
    wait_for,
    write_yaml,
)
from tests.test_rules import RULES

pytestmark = pytest.mark.e2e

ACCOUNT_ID = "acme"
API_KEY = "e2e-key-4f2a9c61"
SCRAPE_JOB = "integrateio-exporter"  # the shipped IntegrateioExporterDown matches up{job=~".*integrateio.*"}

HEALTHY_JOB = 101
FAILING_JOB = 102
FLAKY_JOB = 103
FAILING_PACKAGE = "nightly_orders"

STARTUP_TIMEOUT = 30.0  # each process until /-/ready (or /readyz)
WARMUP_TIMEOUT = 30.0  # until the scenario's data is in Prometheus
ALERT_TIMEOUT = 60.0  # from the failure in the simulator to the webhook
QUERY_TIMEOUT = 10.0  # per query, after the warm-up: only for windows still filling

EXPRESSIONS = shipped_expressions()


@dataclass
class Stack:
    sim: Simulator
    exporter: Service
    alertmanager: Service
    prometheus: Service
    webhook: WebhookReceiver
    failed_at: float  # time.monotonic() when job FAILING_JOB failed in the simulator

    def query(self, expr: str) -> dict[str, Any]:
        return prom_query(self.prometheus.base_url, expr)

    def has_data(self, expr: str) -> bool:
        answer = self.query(expr)
        return answer.get("status") == "success" and bool(answer["data"]["result"])


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    binaries = require_binaries(["prometheus", "prometheus-alertmanager"])
    with ExitStack() as cleanup:  # unwinds in reverse: processes stop before their directory is removed
        workdir = Path(tempfile.mkdtemp(prefix="integrateio-e2e-"))
        cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)

        webhook = WebhookReceiver()
        cleanup.callback(webhook.stop)

        sim = Simulator(account_id=ACCOUNT_ID, api_key=API_KEY, credits=5000, window_seconds=3600.0)
        sim.start()
        cleanup.callback(sim.stop)
        sim.add_job(
            SimJob(
                id=HEALTHY_JOB,
                status="running",
                progress=0.1,
                package_id=11,
                package_name="hourly_events",
                outputs=[SimOutput(id=1, name="events_out", records_count=100)],
            ),
            progress_per_second=0.002,
            records_per_second=50.0,
        )
        sim.add_job(
            SimJob(
                id=FAILING_JOB,
                status="running",
                progress=0.3,
                package_id=12,
                package_name=FAILING_PACKAGE,
                outputs=[SimOutput(id=2, name="orders_out", records_count=1000)],
            )
        )
        sim.add_job(SimJob(id=FLAKY_JOB, status="queued", package_id=13, package_name="weekly_rollup"))

        config = write_yaml(
            workdir / "exporter.yml",
            {
                "api": {"account_id": ACCOUNT_ID, "base_url": sim.base_url, "timeout_seconds": 2},
                "jobs": [HEALTHY_JOB, FAILING_JOB, FLAKY_JOB],
                "polling": {"interval_seconds": 1},
            },
        )
        exporter = start_service(
            "exporter",
            lambda port: [
                sys.executable,
                "-m",
                "exporter",
                "--config",
                str(config),
                "--web.listen-address",
                f"127.0.0.1:{port}",
            ],
            "/readyz",
            workdir,
            cleanup.callback,
            env={**os.environ, API_KEY_ENV: API_KEY},
            timeout=STARTUP_TIMEOUT,
        )

        am_config = write_yaml(
            workdir / "alertmanager.yml",
            {
                "route": {
                    # one group per alert name: a notification lists every firing alert of that name, so the
                    # one announcing the failed job would also show a wrongly alerting healthy job
                    "receiver": "webhook",
                    "group_by": ["alertname"],
                    "group_wait": "0s",
                    "group_interval": "1s",
                    "repeat_interval": "1h",
                },
                "receivers": [
                    {"name": "webhook", "webhook_configs": [{"url": webhook.url, "send_resolved": True}]}
                ],
            },
        )
        alertmanager = start_service(
            "alertmanager",
            lambda port: [
                binaries["prometheus-alertmanager"],
                f"--config.file={am_config}",
                f"--storage.path={workdir / 'alertmanager-data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
            ],
            "/-/ready",
            workdir,
            cleanup.callback,
            timeout=STARTUP_TIMEOUT,
        )

        prom_config = write_yaml(
            workdir / "prometheus.yml",
            {
                "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(RULES)],
                "alerting": {
                    "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager.port}"]}]}]
                },
                "scrape_configs": [
                    {
                        "job_name": SCRAPE_JOB,
                        "static_configs": [{"targets": [f"127.0.0.1:{exporter.port}"]}],
                    }
                ],
            },
        )
        prometheus = start_service(
            "prometheus",
            lambda port: [
                binaries["prometheus"],
                f"--config.file={prom_config}",
                f"--storage.tsdb.path={workdir / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            "/-/ready",
            workdir,
            cleanup.callback,
            timeout=STARTUP_TIMEOUT,
        )

        stack = Stack(sim, exporter, alertmanager, prometheus, webhook, failed_at=0.0)

        # The failure must be a transition Prometheus saw: running first, failed afterwards.
        running = f'integrateio_job_status{{job_id="{FAILING_JOB}",status="running"}} == 1'
        wait_for(lambda: stack.has_data(running), WARMUP_TIMEOUT, f"Prometheus to store {running}")
        sim.set_fault("status", job_id=FLAKY_JOB, code=500, times=2)
        sim.update_job(FAILING_JOB, status="failed")
        stack.failed_at = time.monotonic()

        for expr in (
            f'integrateio_job_status{{job_id="{FAILING_JOB}",status="failed"}} == 1',
            f'integrateio_job_poll_errors_total{{job_id="{FLAKY_JOB}"}} >= 2',
            f'count_over_time(up{{job="{SCRAPE_JOB}"}}[1m]) >= 5',  # enough samples for rate() and changes()
        ):
            wait_for(partial(stack.has_data, expr), WARMUP_TIMEOUT, f"Prometheus to store {expr}")
        yield stack


def _id(expression: Expression) -> str:
    """The test id: where the expression is, without the file name (rules: group/alert)."""
    return expression.where.split(": ", 1)[-1]


# -- 1. a failed job reaches the webhook ------------------------------------------------------------------------


def test_failed_job_reaches_the_webhook_as_a_firing_alert(stack: Stack) -> None:
    """Job 102 failed in the simulator: IntegrateioJobFailed arrives at the webhook, firing, for job_id 102, with
    the shipped annotations rendered (including the package name looked up by the description's query); the
    healthy running job 101, scraped and evaluated all along, never raises one."""

    def failed_alert() -> tuple[Notification, dict[str, Any]] | None:
        for notification, alert in stack.webhook.alerts("IntegrateioJobFailed"):
            if alert.get("status") == "firing" and alert["labels"].get("job_id") == str(FAILING_JOB):
                return notification, alert
        return None

    notification, alert = wait_for(
        failed_alert,
        ALERT_TIMEOUT - (time.monotonic() - stack.failed_at),
        lambda: (
            f"IntegrateioJobFailed for job_id {FAILING_JOB} at the webhook; received: "
            f"{[n.body for n in stack.webhook.notifications()]}\nprometheus log:\n{stack.prometheus.log_tail()}"
            f"\nalertmanager log:\n{stack.alertmanager.log_tail()}"
        ),
    )
    assert notification.received_at > stack.failed_at
    assert alert["labels"]["severity"] == "critical"
    assert alert["labels"]["job"] == SCRAPE_JOB
    assert alert["annotations"]["summary"] == f"Integrate.io job {FAILING_JOB} failed"
    assert f"of package {FAILING_PACKAGE} reached" in alert["annotations"]["description"]

    firing_in_group = {
        a["labels"].get("job_id") for a in notification.body["alerts"] if a["status"] == "firing"
    }
    assert firing_in_group == {str(FAILING_JOB)}
    ever_alerted = {a["labels"].get("job_id") for _, a in stack.webhook.alerts("IntegrateioJobFailed")}
    assert ever_alerted == {str(FAILING_JOB)}, (
        f"IntegrateioJobFailed for a job that did not fail: {ever_alerted}"
    )


# -- 2. every shipped PromQL expression works against the real Prometheus ----------------------------------------


@pytest.mark.parametrize("expression", [e for e in EXPRESSIONS if e.kind == "alert"], ids=_id)
def test_alert_rule_evaluates_against_the_exporter(stack: Stack, expression: Expression) -> None:
    """An alert expression is empty while nothing is wrong, so "it returned data" cannot be its test, and
    stripping its comparison is ill-defined for the compound ones (`… == 1 and on (…) changes(…) == 0`).
    What proves it works, instead:

    1. Prometheus parses it as written in the file (an instant query answers status "success");
    2. Prometheus evaluates the rule from the loaded file against the live series without error
       (/api/v1/rules: health "ok", lastError empty) — vector matching errors (many-to-many, duplicate series)
       surface here, since the series it matches on exist;
    3. every selector of the exporter's metrics (and `up`) in it selects series scraped from the exporter: a
       misspelt metric, label or label value, which would keep the alert silent for ever, fails here.

    IntegrateioJobFailed is, in addition, seen firing at the webhook (the test above).
    """
    answer = stack.query(expression.promql)
    assert answer.get("status") == "success", (
        f"{expression.where}: Prometheus rejects the expression: {answer.get('errorType')}: "
        f"{answer.get('error')}\n{expression.promql}"
    )

    def evaluated() -> dict[str, Any] | None:
        for rule in prom_rules(stack.prometheus.base_url):
            if rule.get("name") == expression.name and rule.get("health") != "unknown":
                return rule
        return None

    rule = wait_for(evaluated, QUERY_TIMEOUT, f"Prometheus to evaluate rule {expression.name}")
    assert (rule["health"], rule.get("lastError", "")) == ("ok", ""), f"{expression.where}: {rule}"

    empty = [selector for selector in selectors(expression.promql) if not stack.has_data(selector)]
    assert not empty, f"{expression.where}: these selectors match no series from the exporter: {empty}"


@pytest.mark.parametrize("expression", [e for e in EXPRESSIONS if e.kind in ("panel", "variable")], ids=_id)
def test_dashboard_query_returns_data(stack: Stack, expression: Expression) -> None:
    """Every panel query and query variable of the dashboard parses and returns data once the exporter has
    been scraped for a few seconds and job 102 has failed (needed by "Recent failures" and "Failed").

    Grafana's variables are substituted as Grafana would for "All" (`.*`), its built-in windows by 1m/1h
    (e2e_support.GRAFANA_BUILTINS), and `label_values(selector, label)` runs as `group by (label) (selector)`,
    whose result must carry the label.
    """
    last: dict[str, Any] = {}

    def result() -> list[dict[str, Any]] | None:
        last.clear()
        last.update(stack.query(expression.promql))
        if last.get("status") != "success":
            raise AssertionError(
                f"{expression.where}: Prometheus rejects the query: {last.get('errorType')}: {last.get('error')}"
                f"\nas sent: {expression.promql}"
            )
        series: list[dict[str, Any]] = last["data"]["result"]
        return series or None

    series = wait_for(
        result,
        QUERY_TIMEOUT,
        lambda: f"{expression.where} to return data\nas sent: {expression.promql}\nlast answer: {last}",
    )
    if expression.label:
        assert all(s["metric"].get(expression.label) for s in series), f"{expression.where}: {series}"
