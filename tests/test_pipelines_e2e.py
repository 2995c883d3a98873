"""End to end: a schedule whose run comes due and never starts reaches Alertmanager as IntegrateioScheduleMissedRun.

    simulator (in-process: schedules and clusters) ─▶ exporter (`python -m exporter`, schedules and clusters on)
      ─▶ Prometheus (scrapes every 1s, evaluates the shipped rule file every 1s, with IntegrateioScheduleMissedRun's
         lateSeconds set to 3 instead of 900: the chart's threshold marker, replaced as the chart does)
      ─▶ Alertmanager (no clustering, group_wait 0s) ─▶ a webhook receiver in this process.

Schedule 203 (inventory nightly, package 436) is due a few seconds after the start and never runs; schedule 201
runs every minute on time (the simulator starts its due runs); schedule 204 is disabled with a next run long
past. Only 203 pages, and never before its due time plus the grace.

Needs `prometheus` and `prometheus-alertmanager` on PATH: skipped without them, unless INTEGRATEIO_E2E_REQUIRED=1
(CI), which turns a missing binary into a failure.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from exporter.config import API_KEY_ENV
from exporter.simulator import SimCluster, SimSchedule, Simulator
from tests.e2e_support import (
    WebhookReceiver,
    prom_query,
    rules_with_threshold,
    scrape_job,
    start_alertmanager,
    start_exporter,
    start_prometheus,
    write_alertmanager_config,
    write_prometheus_config,
    write_yaml,
)
from tests.support import require_tools, wait_until

pytestmark = pytest.mark.e2e

API_KEY = "e2e-key-pipelines-6b0e"
SCRAPE_JOB = "integrateio-exporter"
LATE_SECONDS = 3
DUE_IN_SECONDS = 8  # schedule 203's next run, from the start: after Prometheus has scraped it as not yet due
ALERT_TIMEOUT = 60.0


def test_a_missed_schedule_run_reaches_alertmanager() -> None:
    binaries = require_tools("prometheus", "prometheus-alertmanager")
    with ExitStack() as cleanup:
        workdir = Path(tempfile.mkdtemp(prefix="integrateio-pipelines-e2e-"))
        cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
        webhook = WebhookReceiver()
        cleanup.callback(webhook.stop)

        sim = Simulator(account_id="acme", api_key=API_KEY)
        sim.start()
        cleanup.callback(sim.stop)
        now = int(time.time())
        due = now + DUE_IN_SECONDS
        # the monotonic moment the run is late by LATE_SECONDS, against which the webhook's arrivals are timed
        late_at = time.monotonic() + (due + LATE_SECONDS - time.time())
        sim.put_schedule(
            SimSchedule(
                203,
                "inventory nightly",
                next_run_at=due,
                last_run_at=due - 86400,
                last_run_status="completed",
                execution_count=58,
                package_ids=(436,),
            )
        )
        sim.put_schedule(
            SimSchedule(
                201, "orders", interval_unit="minutes", next_run_at=now + 5, last_run_at=now - 55, runs=True
            )
        )
        sim.put_schedule(SimSchedule(204, "legacy export", status="disabled", next_run_at=now - 86400))
        sim.put_cluster(SimCluster(52, "etl-prod", running_jobs_count=1, available_since=now - 600))

        exporter = start_exporter(
            "exporter",
            write_yaml(
                workdir / "exporter.yml",
                {
                    "api": {"account_id": "acme", "base_url": sim.base_url, "timeout_seconds": 2},
                    "polling": {"interval_seconds": 1},
                    "schedules": {"enabled": True, "interval_seconds": 1},
                    "clusters": {"enabled": True, "interval_seconds": 1},
                },
            ),
            [],
            {API_KEY_ENV: API_KEY},
            workdir,
            cleanup.callback,
        )
        am_config = write_alertmanager_config(workdir, webhook.url, ["alertname", "schedule_id"])
        alertmanager = start_alertmanager(
            binaries["prometheus-alertmanager"], am_config, workdir, cleanup.callback
        )
        prom_config = write_prometheus_config(
            workdir,
            [scrape_job(SCRAPE_JOB, exporter)],
            rule_file=rules_with_threshold(
                workdir, "IntegrateioScheduleMissedRun", "lateSeconds", LATE_SECONDS, markers=1
            ),
            alertmanager=alertmanager,
        )
        prometheus = start_prometheus(binaries["prometheus"], prom_config, workdir, cleanup.callback)

        # Prometheus saw schedule 203 before its run was due: the alert is about a run that came due and did not start.
        stored = 'integrateio_schedule_next_run_timestamp_seconds{schedule_id="203"}'
        answer = wait_until(
            lambda: prom_query(prometheus.base_url, stored).get("data", {}).get("result"),
            30,
            f"Prometheus to store {stored}",
        )
        assert float(answer[0]["value"][0]) < due

        def missed() -> list[dict[str, object]]:
            return [
                a for _, a in webhook.alerts("IntegrateioScheduleMissedRun") if a.get("status") == "firing"
            ]

        firing = wait_until(
            missed,
            ALERT_TIMEOUT,
            lambda: (
                f"IntegrateioScheduleMissedRun at the webhook; received {[n.body for n in webhook.notifications()]}"
                f"\nprometheus log:\n{prometheus.log_tail()}\nexporter log:\n{exporter.log_tail()}"
            ),
        )
        received = [n.received_at for n, _ in webhook.alerts("IntegrateioScheduleMissedRun")]
        assert min(received) > late_at - 1, (
            "paged before the run was due plus the grace (timestamps: whole seconds)"
        )
        (alert,) = firing[:1]
        assert alert["labels"] == {
            "alertname": "IntegrateioScheduleMissedRun",
            "job": SCRAPE_JOB,
            "schedule_id": "203",
            "severity": "critical",
        }
        annotations = alert["annotations"]
        assert isinstance(annotations, dict)
        assert annotations["summary"] == "Integrate.io schedule inventory nightly missed its run"
        assert annotations["description"].startswith(
            "Integrate.io schedule 203 (inventory nightly) is enabled and was due to run "
        )
        assert annotations["description"].endswith(
            "but its run has not started: no job of its packages 436 ran for it."
        )
        assert annotations["runbook_url"] == "docs/runbook.md#integrateioschedulemissedrun"
        # The schedule that runs on time and the disabled one never page.
        assert {a["labels"]["schedule_id"] for _, a in webhook.alerts("IntegrateioScheduleMissedRun")} == {
            "203"
        }
