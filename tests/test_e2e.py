"""End to end with real components (GitHub issues 4 and 7), all on loopback with free ports and a temp dir:

    simulators (in-process) ─▶ exporters (`python -m exporter`, child processes)
      ─▶ Prometheus (scrapes every 1s, evaluates the shipped rule file every 1s, with a 3-second grace for
         IntegrateioPackageFailed instead of 15 minutes: the chart's threshold marker, replaced as the chart does)
      ─▶ Alertmanager (no clustering, group_wait 0s, group_interval 1s)
      ─▶ a webhook receiver in this process.

One module-scoped stack serves every test. Three exporters, in two scrape jobs:

- "integrateio-exporter": two shards (`--shard 0/2`, `--shard 1/2`) of one single-account configuration (account
  acme: no `account` label). Shard 0 watches jobs 101, 102, 103 and 108, shard 1 jobs 104 and 105 (the ids hash
  so). Job 101 runs healthily (progress and records grow); job 102 runs until Prometheus has scraped it running
  and then fails (no retry: package 12 pages); job 103 is queued and its next two refreshes answer HTTP 500 (so poll errors exist). Package
  nightly_orders (12) failed two hours ago (job 108, shard 0) and completed an hour ago (job 104, shard 1):
  shard 0 alone sees only the failure, and the package alert must not fire until job 102 fails. Package
  hourly_events (11) completed half an hour ago (job 105, shard 1) and is running (job 101, shard 0).
- "integrateio-accounts": one exporter with `accounts:` (globex and initech, each against its own simulator
  with its own key), which use the same job ids (201 running, 202 to 204 completed) and package id (21): every series
  carries an `account` label, and the rules must keep the accounts apart. globex lists its job ids, initech
  finds them by discovery (`discover: {package_ids: [21]}`).

The stack is handed to the tests once Prometheus has stored the failure and the poll errors, so every alert
expression has the data it is about, with and without the `account` label. The dashboard's queries run against
their own stack in tests/test_dashboard_e2e.py.

Needs `prometheus` and `prometheus-alertmanager` on PATH: skipped without them, unless INTEGRATEIO_E2E_REQUIRED=1
(CI), which turns a missing binary into a failure.
"""

from __future__ import annotations

import shutil
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
from exporter.simulator import SimCluster, SimJob, SimOutput, SimSchedule, Simulator
from tests.e2e_support import (
    Expression,
    Notification,
    Service,
    WebhookReceiver,
    prom_query,
    prom_rules,
    rules_with_threshold,
    scrape_job,
    selectors,
    shipped_expressions,
    start_alertmanager,
    start_exporter,
    start_prometheus,
    write_alertmanager_config,
    write_prometheus_config,
    write_yaml,
)
from tests.support import require_tools, wait_until

pytestmark = pytest.mark.e2e

ACCOUNT_ID = "acme"
API_KEY = "e2e-key-4f2a9c61"
SCRAPE_JOB = "integrateio-exporter"  # the shipped IntegrateioExporterDown matches up{job=~".*integrateio.*"}

ACCOUNTS_JOB = "integrateio-accounts"
ACCOUNTS = {"globex": "e2e-key-globex-77", "initech": "e2e-key-initech-91"}  # name (and account id) -> key
COMPLETED_ACCOUNT_JOBS = (202, 203, 204)  # package 21 in both accounts, beside the running 201

WEBHOOK = {"enabled": True, "basic_auth": {"username": "integrateio", "password_file": "hook-password"}}
HEALTHY_JOB = 101
FAILING_JOB = 102
FLAKY_JOB = 103
EARLIER_SUCCESS_JOB = 104  # package 12, shard 1
OTHER_SUCCESS_JOB = 105  # package 11, shard 1
# package 11, shard 1: with 105, three completed runs give the package a typical duration
EARLIER_HOURLY_JOBS = (106, 107)
EARLIER_FAILURE_JOB = 108  # package 12, shard 0
FAILING_PACKAGE_ID = 12
FAILING_PACKAGE = "nightly_orders"
HEALTHY_PACKAGE_ID = 11
SHARDS = {
    0: {HEALTHY_JOB, FAILING_JOB, FLAKY_JOB, EARLIER_FAILURE_JOB},
    1: {EARLIER_SUCCESS_JOB, OTHER_SUCCESS_JOB, *EARLIER_HOURLY_JOBS},
}

WARMUP_TIMEOUT = 30.0  # until the scenario's data is in Prometheus
ALERT_TIMEOUT = 60.0  # from the failure in the simulator to the webhook
GRACE_SECONDS = 3  # IntegrateioPackageFailed's graceSeconds in this stack (the rule file's default is 900)
QUERY_TIMEOUT = 10.0  # per query, after the warm-up: only for windows still filling

EXPRESSIONS = shipped_expressions()


@dataclass
class Stack:
    sim: Simulator
    shards: list[Service]
    accounts_exporter: Service
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
    binaries = require_tools("prometheus", "prometheus-alertmanager")
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
        now = int(time.time())
        for job_id, status, package_id, package_name, ended in (
            (EARLIER_FAILURE_JOB, "failed", FAILING_PACKAGE_ID, FAILING_PACKAGE, now - 7200),
            (EARLIER_SUCCESS_JOB, "completed", FAILING_PACKAGE_ID, FAILING_PACKAGE, now - 3600),
            (OTHER_SUCCESS_JOB, "completed", HEALTHY_PACKAGE_ID, "hourly_events", now - 1800),
            (EARLIER_HOURLY_JOBS[0], "completed", HEALTHY_PACKAGE_ID, "hourly_events", now - 5400),
            (EARLIER_HOURLY_JOBS[1], "completed", HEALTHY_PACKAGE_ID, "hourly_events", now - 9000),
        ):
            sim.add_job(
                SimJob(
                    id=job_id,
                    status=status,
                    runtime_in_seconds=600,
                    created_at=ended - 600,
                    package_id=package_id,
                    package_name=package_name,
                )
            )

        # A schedule that runs on time and a busy cluster: the schedule and cluster alerts' selectors match
        # series (read by shard 0 alone), and none of those alerts fires (tests/test_pipelines_e2e.py pages).
        sim.put_schedule(
            SimSchedule(
                2,
                "hourly",
                interval_unit="hours",
                next_run_at=now + 1800,
                last_run_at=now - 1800,
                last_run_status="completed",
                package_ids=(HEALTHY_PACKAGE_ID,),
                runs=True,
            )
        )
        sim.put_cluster(SimCluster(52, "etl-prod", running_jobs_count=1, available_since=now - 600))
        config = write_yaml(
            workdir / "exporter.yml",
            {
                "api": {"account_id": ACCOUNT_ID, "base_url": sim.base_url, "timeout_seconds": 2},
                "jobs": sorted(SHARDS[0] | SHARDS[1]),
                "polling": {"interval_seconds": 1},
                "schedules": {"enabled": True, "interval_seconds": 1},
                "clusters": {"enabled": True, "interval_seconds": 1},
            },
        )
        shards = [
            start_exporter(
                f"exporter-shard-{index}",
                config,
                ["--shard", f"{index}/{len(SHARDS)}"],
                {API_KEY_ENV: API_KEY},
                workdir,
                cleanup.callback,
            )
            for index in sorted(SHARDS)
        ]

        (workdir / "hook-password").write_text("e2e-hook-password")
        accounts = []
        for name, key in ACCOUNTS.items():
            account_sim = Simulator(account_id=name, api_key=key, credits=5000, window_seconds=3600.0)
            account_sim.start()
            cleanup.callback(account_sim.stop)
            account_sim.add_job(
                SimJob(id=201, status="running", progress=0.2, package_id=21, package_name=f"{name}_sync"),
                progress_per_second=0.001,
            )
            for job_id in COMPLETED_ACCOUNT_JOBS:  # three completed runs: the package's typical duration
                account_sim.add_job(
                    SimJob(
                        id=job_id,
                        status="completed",
                        runtime_in_seconds=60,
                        package_id=21,
                        package_name=f"{name}_sync",
                    )
                )
            accounts.append(
                {
                    "name": name,
                    "api": {
                        "account_id": name,
                        "base_url": account_sim.base_url,
                        "api_key_env": f"E2E_{name.upper()}_KEY",
                        "timeout_seconds": 2,
                    },
                    # initech follows its package's runs (discover:) instead of listing them
                    **(
                        {"discover": {"package_ids": [21]}}
                        if name == "initech"
                        else {"jobs": [201, *COMPLETED_ACCOUNT_JOBS]}
                    ),
                    "polling": {"interval_seconds": 1},
                    # globex has web hooks on (none arrive here), so IntegrateioWebhookSilent has its series
                    **({"webhook": WEBHOOK} if name == "globex" else {}),
                }
            )
        accounts_exporter = start_exporter(
            "exporter-accounts",
            write_yaml(workdir / "accounts.yml", {"accounts": accounts}),
            [],
            {f"E2E_{name.upper()}_KEY": key for name, key in ACCOUNTS.items()},
            workdir,
            cleanup.callback,
        )

        # One group per alert name and package or job: a notification lists every firing alert of its group, so
        # the one announcing package 12 would also show a wrongly alerting healthy package.
        am_config = write_alertmanager_config(workdir, webhook.url, ["alertname", "package_id", "job_id"])
        alertmanager = start_alertmanager(
            binaries["prometheus-alertmanager"], am_config, workdir, cleanup.callback
        )

        prom_config = write_prometheus_config(
            workdir,
            [scrape_job(SCRAPE_JOB, *shards), scrape_job(ACCOUNTS_JOB, accounts_exporter)],
            rule_file=rules_with_a_short_grace(workdir),
            alertmanager=alertmanager,
        )
        prometheus = start_prometheus(binaries["prometheus"], prom_config, workdir, cleanup.callback)

        stack = Stack(sim, shards, accounts_exporter, alertmanager, prometheus, webhook, failed_at=0.0)

        # The failure must be a transition Prometheus saw: running first, failed afterwards.
        running = f'integrateio_job_status{{job_id="{FAILING_JOB}",status="running"}} == 1'
        wait_until(lambda: stack.has_data(running), WARMUP_TIMEOUT, f"Prometheus to store {running}")
        sim.set_fault("status", job_id=FLAKY_JOB, code=500, times=2)
        sim.update_job(FAILING_JOB, status="failed")
        stack.failed_at = time.monotonic()

        for expr in (
            f'integrateio_job_status{{job_id="{FAILING_JOB}",status="failed"}} == 1',
            f'integrateio_job_poll_errors_total{{job_id="{FLAKY_JOB}"}} >= 2',
            f'count_over_time(up{{job=~"{SCRAPE_JOB}|{ACCOUNTS_JOB}"}}[1m]) >= 5',  # enough for rate(), changes()
            f'integrateio_package_last_failure_timestamp_seconds{{package_id="{FAILING_PACKAGE_ID}"}}'
            f" > {now}",  # job 102's failure has reached the package series
        ):
            wait_until(partial(stack.has_data, expr), WARMUP_TIMEOUT, f"Prometheus to store {expr}")
        yield stack


def _id(expression: Expression) -> str:
    """The test id: where the expression is, without the file name (rules: group/alert)."""
    return expression.where.split(": ", 1)[-1]


# -- 1. a failed package reaches the webhook ---------------------------------------------------------------------


def rules_with_a_short_grace(workdir: Path) -> Path:
    """The shipped rule file with IntegrateioPackageFailed's grace set to GRACE_SECONDS, at both of its markers (the
    failure's age, and the window in which a retry that started holds the page back); tests/test_webhook_e2e.py's
    stack uses it too."""
    return rules_with_threshold(workdir, "IntegrateioPackageFailed", "graceSeconds", GRACE_SECONDS, markers=2)


def test_failed_package_reaches_the_webhook_once_with_its_link_and_runbook(stack: Stack) -> None:
    """Job 102 failed in the simulator: IntegrateioPackageFailed arrives at the webhook for package 12, named by
    the description's queries (package name, failed job), with the link to job 102 in Integrate.io (the API's
    html_url, through integrateio_job_info's url label) and its runbook_url, after the grace and never before the failure.
    Package 12's earlier failure (job 108, shard 0) was older than its success (job 104, shard 1): the rule
    compares the shards through their timestamps. Package 11 and the other accounts' packages, which only
    completed, never raise it, and neither does any single job."""

    def package_alert() -> tuple[Notification, dict[str, Any]] | None:
        for notification, alert in stack.webhook.alerts("IntegrateioPackageFailed"):
            if alert.get("status") == "firing" and alert["labels"].get("package_id") == str(
                FAILING_PACKAGE_ID
            ):
                return notification, alert
        return None

    notification, alert = wait_until(
        package_alert,
        ALERT_TIMEOUT - (time.monotonic() - stack.failed_at),
        lambda: (
            f"IntegrateioPackageFailed for package {FAILING_PACKAGE_ID} at the webhook; received: "
            f"{[n.body for n in stack.webhook.notifications()]}\nprometheus log:\n{stack.prometheus.log_tail()}"
            f"\nalertmanager log:\n{stack.alertmanager.log_tail()}"
        ),
    )
    # after the grace, counted from the API's failed_at, which has whole seconds: up to 1 s before failed_at
    assert notification.received_at > stack.failed_at + GRACE_SECONDS - 1
    assert alert["labels"] == {
        "alertname": "IntegrateioPackageFailed",
        "job": SCRAPE_JOB,
        "package_id": str(FAILING_PACKAGE_ID),
        "severity": "critical",
    }
    annotations = alert["annotations"]
    assert annotations["summary"] == f"Integrate.io package {FAILING_PACKAGE} failed"
    assert annotations["description"].startswith(
        f"The last finished run of Integrate.io package {FAILING_PACKAGE_ID} ({FAILING_PACKAGE}) failed at "
    )
    assert annotations["description"].endswith(
        f"(job {FAILING_JOB}), and no run of the package has completed since."
    )
    assert annotations["link"] == stack.sim.job_payload(FAILING_JOB)["html_url"]
    assert annotations["link"].endswith(f"/jobs/{FAILING_JOB}")
    assert annotations["runbook_url"] == "docs/runbook.md#integrateiopackagefailed"

    firing_in_group = [a["labels"] for a in notification.body["alerts"] if a["status"] == "firing"]
    assert firing_in_group == [alert["labels"]]
    received = [
        (n.received_at, a["labels"].get("package_id"), a["labels"].get("job"))
        for n, a in stack.webhook.alerts("IntegrateioPackageFailed")
    ]
    assert {(package, job) for _, package, job in received} == {(str(FAILING_PACKAGE_ID), SCRAPE_JOB)}, (
        received
    )
    assert all(at > stack.failed_at for at, _, _ in received), (
        f"alerted before job {FAILING_JOB} failed: {received}"
    )
    per_job = {a["labels"]["alertname"] for _, a in stack.webhook.alerts() if "job_id" in a["labels"]}
    assert per_job == set(), f"a run alert for a healthy, queued or failed run: {per_job}"


def test_shards_split_the_jobs_and_share_the_credits(stack: Stack) -> None:
    """Each shard watches the job ids that hash to it, and allows itself half of the key's credits."""
    answer = stack.query(f'integrateio_watched_jobs{{job="{SCRAPE_JOB}"}}')
    watched = {s["metric"]["instance"]: int(float(s["value"][1])) for s in answer["data"]["result"]}
    expected = {shard.address: len(SHARDS[index]) for index, shard in enumerate(stack.shards)}
    assert watched == expected
    answer = stack.query(f'integrateio_budget_limit_credits{{job="{SCRAPE_JOB}"}}')
    limits = {int(float(s["value"][1])) for s in answer["data"]["result"]}
    assert limits == {int(5000 // len(SHARDS) * 0.9)}  # credits / COUNT, less the reserve of 10%


# -- 2. every alert expression works against the real Prometheus ----------------------------------------


@pytest.mark.parametrize("expression", [e for e in EXPRESSIONS if e.kind in ("alert", "record")], ids=_id)
def test_alert_rule_evaluates_against_the_exporter(stack: Stack, expression: Expression) -> None:
    """An alert expression (or the recording rule IntegrateioRunStuck reads) is empty while nothing is wrong, so
    "it returned data" cannot be its test, and stripping its comparison is ill-defined for the compound ones
    (`… == 1 and on (…) changes(…) == 0`).
    What proves it works, instead:

    1. Prometheus parses it as written in the file (an instant query answers status "success");
    2. Prometheus evaluates the rule from the loaded file against the live series without error
       (/api/v1/rules: health "ok", lastError empty) — vector matching errors (many-to-many, duplicate series)
       surface here, since the series it matches on exist;
    3. every selector of the exporter's metrics (and `up`) in it selects series scraped from the exporter: a
       misspelt metric, label or label value, which would keep the alert silent for ever, fails here.

    IntegrateioPackageFailed is, in addition, seen firing at the webhook (the test above).
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

    rule = wait_until(evaluated, QUERY_TIMEOUT, f"Prometheus to evaluate rule {expression.name}")
    assert (rule["health"], rule.get("lastError", "")) == ("ok", ""), f"{expression.where}: {rule}"

    empty = [selector for selector in selectors(expression.promql) if not stack.has_data(selector)]
    assert not empty, f"{expression.where}: these selectors match no series from the exporter: {empty}"


def test_discovery_finds_the_runs_of_a_package(stack: Stack) -> None:
    """initech lists no job id: discovery found the four runs of its package 21, and they carry the account."""
    answer = stack.query(f'integrateio_discovered_jobs{{job="{ACCOUNTS_JOB}"}}')
    discovered = {s["metric"].get("account"): float(s["value"][1]) for s in answer["data"]["result"]}
    assert discovered == {"initech": 4.0}
    answer = stack.query(f'integrateio_job_info{{job="{ACCOUNTS_JOB}",account="initech"}}')
    assert {s["metric"]["job_id"] for s in answer["data"]["result"]} == {"201", "202", "203", "204"}


def test_each_account_has_its_packages_typical_duration(stack: Stack) -> None:
    """Three completed runs of 60 s each: the median IntegrateioRunTooLong compares a running run with."""
    answer = stack.query(f'integrateio_package_typical_duration_seconds{{job="{ACCOUNTS_JOB}"}}')
    typical = {
        (s["metric"]["account"], s["metric"]["package_id"]): s["value"][1] for s in answer["data"]["result"]
    }
    assert typical == {("globex", "21"): "60", ("initech", "21"): "60"}
