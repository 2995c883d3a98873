"""End to end with web hooks on and polling slowed to minutes: a failure still pages within seconds.

    simulator (in-process, fires a web hook on every job transition: basic auth, salt and hash)
      ─▶ exporter (`python -m exporter`, a child process, polling every 5 minutes, the doorbell on)
      ─▶ Prometheus (scrapes every 1 s, evaluates the shipped rule file every 1 s, IntegrateioPackageFailed's
         grace set to 3 s as the chart's threshold marker allows)
      ─▶ Alertmanager ─▶ a receiver in this process.

Job 301 (package 31) runs; once Prometheus has stored it running, it fails in the simulator. Polling alone would
see it at the next cycle, up to 5 minutes later; the hook makes the exporter ask the API at once, so
IntegrateioPackageFailed reaches the receiver seconds after the grace. The exporter asked the API about the job
once for it. Reuses tests/e2e_support.py (processes, receiver, Prometheus API) and the short-grace rule file of
tests/test_e2e.py.

Needs `prometheus` and `prometheus-alertmanager` on PATH: skipped without them, unless INTEGRATEIO_E2E_REQUIRED=1.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from exporter.config import API_KEY_ENV
from exporter.simulator import HookTarget, SimJob, Simulator
from tests.e2e_support import (
    Service,
    WebhookReceiver,
    prom_query,
    scrape_job,
    start_alertmanager,
    start_exporter,
    start_prometheus,
    write_alertmanager_config,
    write_prometheus_config,
    write_yaml,
)
from tests.support import require_tools, wait_until
from tests.test_e2e import GRACE_SECONDS, rules_with_a_short_grace

pytestmark = pytest.mark.e2e

ACCOUNT_ID = "hooked"
API_KEY = "e2e-key-hooks-3e8d"
USER, PASSWORD, SALT = "integrateio", "e2e-hook-password-71c0", "e2e-salt-9b2f"
JOB, PACKAGE_ID, PACKAGE = 301, 31, "hourly_invoices"
POLL_SECONDS = 300  # polling slowed to minutes: only the hook can be fast
ALERT_TIMEOUT = 30.0  # from the failure to the receiver: the grace, a scrape, an evaluation, a notification
SCRAPE_JOB = "integrateio-hooked"


@dataclass
class Stack:
    sim: Simulator
    exporter: Service
    prometheus: Service
    alertmanager: Service
    receiver: WebhookReceiver

    def has_data(self, expr: str) -> bool:
        answer = prom_query(self.prometheus.base_url, expr)
        return answer.get("status") == "success" and bool(answer["data"]["result"])


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    binaries = require_tools("prometheus", "prometheus-alertmanager")
    with ExitStack() as cleanup:
        workdir = Path(tempfile.mkdtemp(prefix="integrateio-hooks-e2e-"))
        cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
        receiver = WebhookReceiver()
        cleanup.callback(receiver.stop)
        sim = Simulator(account_id=ACCOUNT_ID, api_key=API_KEY, credits=5000, window_seconds=3600.0)
        sim.start()
        cleanup.callback(sim.stop)
        sim.add_job(
            SimJob(id=JOB, status="running", progress=0.4, package_id=PACKAGE_ID, package_name=PACKAGE)
        )

        (workdir / "hook-password").write_text(PASSWORD + "\n")
        (workdir / "hook-salt").write_text(SALT)
        config = write_yaml(
            workdir / "exporter.yml",
            {
                "api": {"account_id": ACCOUNT_ID, "base_url": sim.base_url, "timeout_seconds": 2},
                "jobs": [JOB],
                "polling": {"interval_seconds": POLL_SECONDS},
                "webhook": {
                    "enabled": True,
                    "path": "/hooks/integrateio",
                    "basic_auth": {"username": USER, "password_file": "hook-password"},
                    "salt_file": "hook-salt",
                },
            },
        )
        exporter = start_exporter("exporter", config, [], {API_KEY_ENV: API_KEY}, workdir, cleanup.callback)
        sim.send_hooks(HookTarget(exporter.url("/hooks/integrateio"), USER, PASSWORD, SALT))

        am_config = write_alertmanager_config(workdir, receiver.url, ["alertname", "package_id"])
        alertmanager = start_alertmanager(
            binaries["prometheus-alertmanager"], am_config, workdir, cleanup.callback
        )
        prom_config = write_prometheus_config(
            workdir,
            [scrape_job(SCRAPE_JOB, exporter)],
            rule_file=rules_with_a_short_grace(workdir),
            alertmanager=alertmanager,
        )
        prometheus = start_prometheus(binaries["prometheus"], prom_config, workdir, cleanup.callback)
        yield Stack(sim, exporter, prometheus, alertmanager, receiver)


def test_a_failure_pages_within_seconds_with_polling_at_five_minutes(stack: Stack) -> None:
    running = f'integrateio_job_status{{job_id="{JOB}",status="running"}} == 1'
    # Enough history for the package alert's guards (two `up` samples, a full refresh), the run seen running.
    warm = f'count_over_time(up{{job="{SCRAPE_JOB}"}}[1m]) >= 5'
    for expr in (running, warm):
        wait_until(lambda expr=expr: stack.has_data(expr), 30, f"Prometheus to store {expr}")
    requests_before = len([r for r in stack.sim.requests if r.endpoint == "get_job"])
    stack.sim.update_job(JOB, status="failed")
    failed_at = time.monotonic()

    def paged() -> tuple[float, dict[str, Any]] | None:
        for notification, alert in stack.receiver.alerts("IntegrateioPackageFailed"):
            if alert.get("status") == "firing" and alert["labels"].get("package_id") == str(PACKAGE_ID):
                return notification.received_at, alert
        return None

    received_at, alert = wait_until(
        paged,
        ALERT_TIMEOUT,
        lambda: (
            f"IntegrateioPackageFailed for package {PACKAGE_ID}; received: "
            f"{[n.body for n in stack.receiver.notifications()]}\nexporter log:\n{stack.exporter.log_tail()}"
            f"\nprometheus log:\n{stack.prometheus.log_tail()}"
        ),
    )
    # Far below the 300 s poll: the grace (3 s, counted from failed_at's whole second) and a few 1 s steps.
    assert GRACE_SECONDS - 1 < received_at - failed_at < ALERT_TIMEOUT
    assert alert["labels"] == {
        "alertname": "IntegrateioPackageFailed",
        "job": SCRAPE_JOB,
        "package_id": str(PACKAGE_ID),
        "severity": "critical",
    }
    # The hooks (job.failed) made the exporter ask the API about the job once; polling did not run meanwhile.
    get_jobs = [r for r in stack.sim.requests if r.endpoint == "get_job"]
    assert len(get_jobs) - requests_before == 1
    assert not any(r.endpoint == "list_jobs" and r.time > failed_at for r in stack.sim.requests)
    accepted = f'integrateio_webhook_requests_total{{job="{SCRAPE_JOB}",outcome="accepted"}} >= 1'
    wait_until(lambda: stack.has_data(accepted), 10, accepted)
    assert not stack.has_data(
        f'integrateio_webhook_requests_total{{job="{SCRAPE_JOB}",outcome="unauthorized"}} > 0'
    )
