"""Every query of the Grafana dashboard against a real Prometheus scraping real exporters (issue 11, item 3).

    simulators (in-process) ─▶ exporters (`python -m exporter`, child processes) ─▶ Prometheus (scrapes every 1s)

Two exporters in two scrape jobs, so that the scope variables have something to tell apart:

- "integrateio-exporter": account acme, one account (no `account` label), scraped with the target labels
  `cluster="eu-1", namespace="etl"`. Package hourly_events (31): job 301 running (progress and records grow),
  job 304 completed (runtime 600 s). Package nightly_orders (32): job 302 failed, job 305 completed before it.
  Package weekly_rollup (33): job 303 queued, its progress never moves, and once Prometheus has scraped it
  its next three refreshes answer HTTP 500.
  Job 309 is watched but unknown to the API (404: missing, no package). Schedules and clusters on, with the
  demo's (`exporter.simulator.demo.add_pipelines`: a missed and a failing schedule, an idle and a broken cluster).
- "integrateio-accounts": `accounts:` with globex (every series has `account="globex"`), no cluster or namespace
  label, discovery of package globex_sync (41): job 401 running, job 402 failed.

Grafana's variables are substituted as Grafana does (tests/test_dashboard.py: "All" is `.*`);
`label_values(selector, label)` runs as `group by (label) (selector)`. Each test names the
panel it checks by title, so a renamed panel fails here rather than going untested.

Needs `prometheus` on PATH: skipped without it, unless INTEGRATEIO_E2E_REQUIRED=1 (CI).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from exporter.config import API_KEY_ENV
from exporter.simulator import SimJob, SimOutput, Simulator
from exporter.simulator.demo import add_pipelines
from tests.e2e_support import (
    Expression,
    Service,
    prom_query,
    scrape_job,
    shipped_expressions,
    start_exporter,
    start_prometheus,
    translate_label_values,
    write_prometheus_config,
    write_yaml,
)
from tests.support import require_tools, wait_until
from tests.test_dashboard import dashboard_panels, load_dashboard, substitute_grafana_variables, variables

pytestmark = pytest.mark.e2e

API_KEY = "e2e-dash-key-5d1e"
GLOBEX_KEY = "e2e-dash-key-globex-3a"
SCRAPE_JOB = "integrateio-exporter"
ACCOUNTS_JOB = "integrateio-accounts"
CLUSTER = "eu-1"
NAMESPACE = "etl"

ACME_JOBS = {301, 302, 303, 304, 305}  # known to the API
MISSING_JOB = 309
GLOBEX_JOBS = {401, 402}
PACKAGES = {31: "hourly_events", 32: "nightly_orders", 33: "weekly_rollup"}

WARMUP_TIMEOUT = 60.0
QUERY_TIMEOUT = 10.0


@dataclass
class Stack:
    sim: Simulator
    exporters: list[Service]
    prometheus: Service
    others: list[Simulator] = field(default_factory=list)  # the other exporters' simulated accounts

    def web(self, path: str, sim: Simulator | None = None) -> str:
        """A page of the simulated web UI, as the simulator names it in `html_url` (default: acme's)."""
        found = sim or self.sim
        return f"{found.base_url}/{found.account_id}/{path}"

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The series of an instant query; a query Prometheus refuses fails the test with its error."""
        answer = prom_query(self.prometheus.base_url, expr)
        assert answer.get("status") == "success", f"{answer.get('errorType')}: {answer.get('error')}\n{expr}"
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def has_data(self, expr: str) -> bool:
        return bool(prom_query(self.prometheus.base_url, expr).get("data", {}).get("result"))


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    binaries = require_tools("prometheus")
    with ExitStack() as cleanup:
        workdir = Path(tempfile.mkdtemp(prefix="integrateio-dashboard-e2e-"))
        cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
        now = int(time.time())

        sim = Simulator(account_id="acme", api_key=API_KEY, credits=5000, window_seconds=3600.0)
        sim.start()
        cleanup.callback(sim.stop)
        sim.add_job(
            SimJob(
                id=301,
                status="running",
                progress=0.1,
                runtime_in_seconds=1200,
                package_id=31,
                package_name=PACKAGES[31],
                outputs=[SimOutput(id=1, name="events_out", records_count=100)],
            ),
            progress_per_second=0.002,
            records_per_second=50.0,
        )
        sim.add_job(SimJob(id=303, status="queued", package_id=33, package_name=PACKAGES[33]))
        for job_id, status, package_id, runtime, ended in (
            (302, "failed", 32, 300, now - 600),
            (304, "completed", 31, 600, now - 1800),
            (305, "completed", 32, 900, now - 7200),
        ):
            sim.add_job(
                SimJob(
                    id=job_id,
                    status=status,
                    runtime_in_seconds=runtime,
                    created_at=ended - runtime,
                    package_id=package_id,
                    package_name=PACKAGES[package_id],
                    outputs=[SimOutput(id=job_id, name="out", records_count=10)],
                )
            )
        add_pipelines(sim, now)  # the demo's schedules and clusters, for the Schedules and Clusters rows
        acme = start_exporter(
            "exporter-acme",
            write_yaml(
                workdir / "acme.yml",
                {
                    "api": {"account_id": "acme", "base_url": sim.base_url, "timeout_seconds": 2},
                    "jobs": sorted(ACME_JOBS | {MISSING_JOB}),
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

        globex_sim = Simulator(account_id="globex", api_key=GLOBEX_KEY, credits=5000, window_seconds=3600.0)
        globex_sim.start()
        cleanup.callback(globex_sim.stop)
        globex_sim.add_job(
            SimJob(id=401, status="running", progress=0.2, package_id=41, package_name="globex_sync"),
            progress_per_second=0.001,
        )
        globex_sim.add_job(
            SimJob(id=402, status="failed", runtime_in_seconds=60, package_id=41, package_name="globex_sync")
        )
        globex = start_exporter(
            "exporter-globex",
            write_yaml(
                workdir / "globex.yml",
                {
                    "accounts": [
                        {
                            "name": "globex",
                            "api": {
                                "account_id": "globex",
                                "base_url": globex_sim.base_url,
                                "api_key_env": "E2E_GLOBEX_KEY",
                                "timeout_seconds": 2,
                            },
                            "discover": {"package_ids": [41]},
                            "polling": {"interval_seconds": 1},
                        }
                    ]
                },
            ),
            [],
            {"E2E_GLOBEX_KEY": GLOBEX_KEY},
            workdir,
            cleanup.callback,
        )

        prom_config = write_prometheus_config(
            workdir,
            [
                scrape_job(SCRAPE_JOB, acme, labels={"cluster": CLUSTER, "namespace": NAMESPACE}),
                scrape_job(ACCOUNTS_JOB, globex),
            ],
        )
        prometheus = start_prometheus(binaries["prometheus"], prom_config, workdir, cleanup.callback)
        stack = Stack(sim, [acme, globex], prometheus, [globex_sim])
        scraped = f'integrateio_job_status{{job="{SCRAPE_JOB}", job_id="303", status="queued"}} == 1'
        wait_until(partial(stack.has_data, scraped), WARMUP_TIMEOUT, f"Prometheus to store {scraped}")
        # refreshes fail once Prometheus watches, so the counter grows under its eyes (increase() sees it)
        sim.set_fault("status", job_id=303, code=500, times=3)
        for expr in (
            f'count_over_time(up{{job=~"{SCRAPE_JOB}|{ACCOUNTS_JOB}"}}[1m]) >= 5',  # enough for rate()
            'increase(integrateio_job_poll_errors_total{job_id="303"}[1h]) > 0',
            'changes(integrateio_job_progress_ratio{job_id="301"}[1h]) > 0',
            'changes(integrateio_job_progress_ratio{job_id="401"}[1h]) > 0',
            'integrateio_job_status{job_id="402", status="failed"} == 1',
            'integrateio_package_last_failure_timestamp_seconds{package_id="32"}',
            'integrateio_job_progress_ratio{job_id="303"} offset 10s',  # watched for the whole Stuck window
        ):
            wait_until(partial(stack.has_data, expr), WARMUP_TIMEOUT, f"Prometheus to store {expr}")
        yield stack


def target(title: str, ref: str = "A") -> str:
    """The query `ref` of the panel titled `title`, as written (one panel of each title carries queries)."""
    (panel,) = [p for p in dashboard_panels(load_dashboard()) if p["title"] == title and p["type"] != "row"]
    (found,) = [t["expr"] for t in panel["targets"] if t["refId"] == ref]
    return str(found)


def run(stack: Stack, title: str, ref: str = "A", **values: str) -> list[dict[str, Any]]:
    return stack.query(substitute_grafana_variables(target(title, ref), **values))


def scalar(stack: Stack, title: str, **values: str) -> float:
    (series,) = run(stack, title, **values)
    return float(series["value"][1])


def job_ids(series: list[dict[str, Any]]) -> set[int]:
    return {int(s["metric"]["job_id"]) for s in series}


def offered(stack: Stack, name: str, **values: str) -> set[str]:
    """The values Grafana lists for the query variable `name`: the non-empty values of its label."""
    promql, label = translate_label_values(
        substitute_grafana_variables(variables()[name]["query"]["query"], **values)
    )
    return {s["metric"][label] for s in stack.query(promql) if s["metric"].get(label)}


# -- every query -----------------------------------------------------------------------------------------------

DASHBOARD_EXPRESSIONS = [e for e in shipped_expressions() if e.kind in ("panel", "variable")]


@pytest.mark.parametrize("expression", DASHBOARD_EXPRESSIONS, ids=lambda e: e.where.split(": ", 1)[-1])
def test_every_query_runs_and_returns_data(stack: Stack, expression: Expression) -> None:
    """Every panel query and query variable parses, evaluates without a matching error, and returns data; a
    variable offers at least one value of its label."""

    def result() -> list[dict[str, Any]] | None:
        return stack.query(expression.promql) or None

    series = wait_until(
        result, QUERY_TIMEOUT, f"{expression.where} to return data\nas sent: {expression.promql}"
    )
    if expression.label:
        assert any(s["metric"].get(expression.label) for s in series), f"{expression.where}: {series}"


# -- what the panels say ---------------------------------------------------------------------------------------


def test_overview_counts(stack: Stack) -> None:
    assert scalar(stack, "Watched jobs") == len(ACME_JOBS | GLOBEX_JOBS)
    assert scalar(stack, "Running") == 2  # 301, 401
    assert scalar(stack, "Waiting") == 1  # 303 queued
    assert scalar(stack, "Failed") == 2  # 302, 402
    assert scalar(stack, "Packages failing") == 2  # nightly_orders (failure after success), globex_sync
    assert scalar(stack, "API up") == 1
    assert scalar(stack, "Age of data") < 30


def test_problem_tables(stack: Stack) -> None:
    """Each problem table lists exactly the jobs or packages in trouble, each with the pages its links open:
    the run's (`url`) and its package's (`package_url`), as the API named them (the simulator's `html_url`),
    whether the exporter has `accounts:` (globex) or not (acme)."""
    (globex,) = stack.others
    failed = run(stack, "Failed jobs")
    assert {(s["metric"].get("account"), int(s["metric"]["job_id"])) for s in failed} == {
        (None, 302),
        ("globex", 402),
    }
    assert {s["metric"]["package_name"] for s in failed} == {"nightly_orders", "globex_sync"}
    assert {(s["metric"]["url"], s["metric"]["package_url"]) for s in failed} == {
        (stack.web("jobs/302"), stack.web("packages/32")),
        (stack.web("jobs/402", globex), stack.web("packages/41", globex)),
    }
    assert stack.sim.job_payload(302)["html_url"] == stack.web("jobs/302")
    assert globex.job_payload(402)["package"]["html_url"] == stack.web("packages/41", globex)

    stuck = run(stack, "Stuck jobs")
    assert {(int(s["metric"]["job_id"]), s["metric"]["status"]) for s in stuck} == {(303, "queued")}
    assert [(s["metric"]["url"], s["metric"]["package_url"]) for s in stuck] == [
        (stack.web("jobs/303"), stack.web("packages/33"))
    ]

    slow = run(stack, "Slowest running jobs", "A")
    assert job_ids(slow) == {301, 401}
    (ratio,) = run(stack, "Slowest running jobs", "B")  # globex_sync has no completed run to compare with
    runtime = {int(s["metric"]["job_id"]): float(s["value"][1]) for s in slow}[301]
    assert ratio["metric"]["job_id"] == "301"
    # the same labels in both queries, so that Grafana merges them into one row per job
    assert ratio["metric"] == next(s["metric"] for s in slow if s["metric"]["job_id"] == "301")
    assert ratio["metric"]["url"] == stack.web("jobs/301")
    assert float(ratio["value"][1]) == pytest.approx(runtime / 600, rel=0.05)  # job 304 ran 600 s

    packages = run(stack, "Failing packages")
    assert {
        (s["metric"].get("account"), s["metric"]["package_name"], s["metric"]["package_url"])
        for s in packages
    } == {
        (None, "nightly_orders", stack.web("packages/32")),
        ("globex", "globex_sync", stack.web("packages/41", globex)),
    }


def test_the_jobs_schedules_and_clusters_tables_carry_their_pages(stack: Stack) -> None:
    """Every row of the Jobs, Schedules and Clusters tables has the page in Integrate.io its link opens, exactly
    as the simulator named it, in every query of the table (Grafana merges the queries into one row)."""
    (globex,) = stack.others
    expected = {
        job_id: (stack.web(f"jobs/{job_id}"), stack.web(f"packages/{package_id}"))
        for job_id, package_id in ((301, 31), (302, 32), (303, 33), (304, 31), (305, 32))
    }
    for job_id in (401, 402):
        expected[job_id] = (stack.web(f"jobs/{job_id}", globex), stack.web("packages/41", globex))
    for ref in ("A", "B", "C"):
        rows = run(stack, "Jobs", ref)
        pages = {int(s["metric"]["job_id"]): (s["metric"]["url"], s["metric"]["package_url"]) for s in rows}
        assert pages == expected, ref
    for title, key, resource, ids in (
        ("Schedules", "schedule_id", "schedules", {201, 202, 203, 204}),
        ("Clusters", "cluster_id", "clusters", {51, 52, 53, 54}),
    ):
        for ref in ("A", "B", "C", "D"):
            rows = run(stack, title, ref)
            pages = {int(s["metric"][key]): s["metric"].get("url") for s in rows}
            present = set(pages)
            assert present <= ids and present, (title, ref)
            assert pages == {item: stack.web(f"{resource}/{item}") for item in present}, (title, ref)
    assert stack.sim.schedule_payload(203)["html_url"] == stack.web("schedules/203")
    assert stack.sim.cluster_payload(52)["html_url"] == stack.web("clusters/52")


def test_aggregates_have_one_series_per_status_or_package(stack: Stack) -> None:
    by_status = {s["metric"]["status"]: float(s["value"][1]) for s in run(stack, "Jobs by status")}
    assert by_status == {"running": 2, "queued": 1, "failed": 2, "completed": 2}
    running = {
        s["metric"]["package_name"]: float(s["value"][1]) for s in run(stack, "Running jobs per package")
    }
    assert running == {"hourly_events": 1, "globex_sync": 1, "nightly_orders": 0, "weekly_rollup": 0}
    records = {s["metric"]["package_name"] for s in run(stack, "Records per package")}
    assert records == {"hourly_events", "nightly_orders"}


def test_time_series_per_job_leave_finished_jobs_out(stack: Stack) -> None:
    for title in ("Progress of unfinished jobs", "Runtime of unfinished jobs"):
        assert job_ids(run(stack, title)) == {301, 303, 401}, title
    assert job_ids(run(stack, "Records per output of unfinished jobs")) == {301}


def test_choosing_a_package_filters_every_job_panel_with_job_all(stack: Stack) -> None:
    """Package nightly_orders with Job "All" (`.*`): the job list, the table and the counts hold its jobs only."""
    chosen = {"package": "nightly_orders"}
    assert offered(stack, "job_id", **chosen) == {"302", "305"}
    assert job_ids(run(stack, "Jobs", **chosen)) == {302, 305}
    assert scalar(stack, "Watched jobs", **chosen) == 2
    assert scalar(stack, "Running", **chosen) == 0
    assert scalar(stack, "Failed", **chosen) == 1
    assert job_ids(run(stack, "Failed jobs", **chosen)) == {302}
    assert run(stack, "Slowest running jobs", **chosen) == []
    by_status = {s["metric"]["status"]: float(s["value"][1]) for s in run(stack, "Jobs by status", **chosen)}
    assert by_status == {"failed": 1, "completed": 1}
    # a job of another package stays out even when named
    assert job_ids(run(stack, "Jobs", package="nightly_orders", job_id="(301|302)")) == {302}
    # Grafana's regex for a multi-value choice
    assert job_ids(run(stack, "Jobs", package="(nightly_orders|weekly_rollup)")) == {302, 303, 305}


def test_scope_variables_narrow_and_all_keeps_unlabelled_series(stack: Stack) -> None:
    assert offered(stack, "scrape_job") == {SCRAPE_JOB, ACCOUNTS_JOB}
    assert offered(stack, "cluster") == {CLUSTER}
    assert offered(stack, "namespace") == {NAMESPACE}
    assert offered(stack, "account") == {"globex"}
    assert offered(stack, "package", account="globex") == {"globex_sync"}
    assert offered(stack, "package") == {*PACKAGES.values(), "globex_sync"}
    assert scalar(stack, "Watched jobs", scrape_job=ACCOUNTS_JOB) == 2
    assert scalar(stack, "Watched jobs", cluster=CLUSTER) == len(ACME_JOBS)
    assert scalar(stack, "Watched jobs", namespace=NAMESPACE, scrape_job=SCRAPE_JOB) == len(ACME_JOBS)
    assert scalar(stack, "Watched jobs", account="globex") == 2
    assert scalar(stack, "Packages failing", account="globex") == 1
    exporters = {s["metric"]["job"] for s in run(stack, "Exporters", "B")}
    assert exporters == {SCRAPE_JOB, ACCOUNTS_JOB}


def test_jobs_failing_to_refresh_include_those_without_a_package(stack: Stack) -> None:
    """Job 303's refreshes failed (HTTP 500) and job 309 is missing (404, so no package is known): the health
    table lists both, 303 with its package."""
    errors = run(stack, "Jobs failing to refresh", "A")
    packages = {int(s["metric"]["job_id"]): s["metric"].get("package_name") for s in errors}
    assert packages == {303: "weekly_rollup"}  # a 404 is no failed refresh: the job is shown as missing
    assert [s["metric"]["url"] for s in errors] == [stack.web("jobs/303")]
    (missing,) = run(stack, "Jobs failing to refresh", "B")
    assert (missing["metric"]["job_id"], float(missing["value"][1])) == (str(MISSING_JOB), 1.0)
    # The API never answered for it: no package, and no page to link to.
    assert {"package_name", "url", "package_url"}.isdisjoint(missing["metric"])


# -- 5,000 jobs ------------------------------------------------------------------------------------------------

CROWD_JOBS = 5000
CROWD_PACKAGES = 200


def crowd_status(index: int) -> str:
    """A mix with 100 failed, 280 running and 40 queued runs; the rest completed."""
    if index % 50 == 0:
        return "failed"
    if index % 17 == 0:
        return "running"
    if index % 97 == 0:
        return "queued"
    return "completed"


@pytest.fixture(scope="module")
def crowd() -> Iterator[Stack]:
    """One exporter watching 5,000 jobs of 200 packages (about 92,000 series), scraped every 5 s."""
    binaries = require_tools("prometheus")
    with ExitStack() as cleanup:
        workdir = Path(tempfile.mkdtemp(prefix="integrateio-dashboard-crowd-"))
        cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
        now = int(time.time())
        sim = Simulator(account_id="acme", api_key=API_KEY, credits=100_000, window_seconds=3600.0)
        sim.start()
        cleanup.callback(sim.stop)
        for index in range(CROWD_JOBS):
            status = crowd_status(index)
            final = status in ("failed", "completed")
            sim.add_job(
                SimJob(
                    id=10_000 + index,
                    status=status,
                    progress=0.5 if status == "running" else None,
                    runtime_in_seconds=600 + index % 300 if final else 0,
                    created_at=now - 7200 - index if final else None,
                    package_id=index % CROWD_PACKAGES,
                    package_name=f"pkg_{index % CROWD_PACKAGES}",
                    outputs=[SimOutput(id=index, name="out", records_count=index)],
                )
            )
        exporter = start_exporter(
            "exporter-crowd",
            write_yaml(
                workdir / "crowd.yml",
                {
                    "api": {"account_id": "acme", "base_url": sim.base_url},
                    "jobs": [10_000 + index for index in range(CROWD_JOBS)],
                    "rate_limit": {"credits": 100_000},
                },
            ),
            [],
            {API_KEY_ENV: API_KEY},
            workdir,
            cleanup.callback,
            timeout=120.0,
        )
        prom_config = write_prometheus_config(workdir, [scrape_job(SCRAPE_JOB, exporter)], interval="5s")
        prometheus = start_prometheus(binaries["prometheus"], prom_config, workdir, cleanup.callback)
        stack = Stack(sim, [exporter], prometheus)
        # three scrapes (10 s): the Stuck window's offset finds the series
        ready = f'count_over_time(up{{job="{SCRAPE_JOB}"}}[1m]) >= 3 and up == 1'
        wait_until(partial(stack.has_data, ready), 120.0, f"Prometheus to store {ready}")
        yield stack


def test_at_5000_jobs_every_panel_but_the_job_list_stays_small(crowd: Stack) -> None:
    """With every variable on All, each panel of the overview, problems, activity and health rows returns at
    most $top (10) series, or one per status; so do the per-job graphs. Only the Jobs table (and the Job
    variable's list) holds one row per job: it is a table to sort and filter, meant for a chosen package."""
    sizes = {}
    for expression in DASHBOARD_EXPRESSIONS:
        sizes[expression.where.split(": ", 1)[-1]] = len(crowd.query(expression.promql))
    unbounded = {where for where, size in sizes.items() if size > 10}
    assert unbounded == {
        "panel 'Jobs' query A",
        "panel 'Jobs' query B",
        "panel 'Jobs' query C",
        "variable 'package'",
        "variable 'job_id'",
    }, sizes
    assert sizes["panel 'Jobs' query A"] == CROWD_JOBS
    assert sizes["variable 'package'"] == CROWD_PACKAGES
    for title in ("Failed jobs", "Stuck jobs", "Slowest running jobs", "Records per package"):
        assert sizes[f"panel {title!r} query A"] == 10, title
    for title in ("Progress of unfinished jobs", "Runtime of unfinished jobs"):
        assert sizes[f"panel {title!r} query A"] == 10, title
    by_status = {s["metric"]["status"]: float(s["value"][1]) for s in run(crowd, "Jobs by status")}
    expected = {status: 0.0 for status in ("failed", "running", "queued", "completed")}
    for index in range(CROWD_JOBS):
        expected[crowd_status(index)] += 1
    assert by_status == expected
    assert scalar(crowd, "Watched jobs") == CROWD_JOBS


def test_at_5000_jobs_a_package_narrows_the_drill_down(crowd: Stack) -> None:
    chosen = {"package": "pkg_7"}
    expected = {10_000 + index for index in range(7, CROWD_JOBS, CROWD_PACKAGES)}
    assert {int(job) for job in offered(crowd, "job_id", **chosen)} == expected
    assert job_ids(run(crowd, "Jobs", **chosen)) == expected
