"""Write the Grafana dashboard helm/integrateio-exporter/files/integrateio-dashboard.json from code.

    python scripts/dashboard.py          # (re)write the JSON file
    python scripts/dashboard.py --check  # exit 1 when the committed file differs from what this code writes

The dashboard is code because a hand-edited JSON of thousands of lines drifts: a query that forgets the package
filter, a panel that draws one line per job. Here every query is built from the same few pieces, so the rules
that keep it readable at 5,000 jobs hold by construction:

- job series are always joined to `integrateio_job_info` narrowed by the Package and Job variables
  (`selected`), so choosing a package filters every job panel even when Job is "All" (`.*`); only the
  exporter's health row, where a job may have no package yet, is not narrowed by package;
- per-job time series only show the top $top jobs not finished (`unfinished`); finished jobs appear in tables
  and in aggregated series (counts by status, records per package), never as one line each;
- problem tables are top-N (`$top`) and sorted by the value that makes them a problem;
- every selector carries the scrape job, cluster and namespace variables (a label that is absent matches "All",
  `.*`), and every series of the exporter but its process-wide ones carries the account variable;
- links into the Integrate.io web UI are the pages the API names (`html_url`), which the exporter serves as the
  `url` label of the job, package, schedule and cluster info series: a table's rows carry the `url` of what they
  show (and job rows their package's as `package_url`), hidden, and its data links open `${__data.fields.url}`.
  No address is ever put together on the dashboard.

Plain dictionaries, no library: both grafanalib and the Grafana Foundation SDK install from PyPI, but
grafanalib's last release (0.7.1) is from January 2024, and the SDK's builds follow Grafana's own versions
(10.1.0 as of writing) with generated builders; the dashboard model used here (schemaVersion 39) is small and
stable, and a reader sees the JSON it becomes. tests/test_dashboard.py runs `--check` and unit-tests the structure;
tests/test_dashboard_e2e.py runs every query against a real Prometheus scraping the exporter.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
OUTPUT = REPO / "helm/integrateio-exporter/files/integrateio-dashboard.json"

UID = "integrateio-exporter"  # the chart replaces it (and the title) per release
TITLE = "Integrate.io jobs"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

# Labels that identify one job's series (shards and exporters apart), and one package across the shards of a
# scrape job (the package series of shards are combined: newest timestamps, running jobs summed).
JOB_KEY = "cluster, namespace, job, instance, account, job_id"
PACKAGE_KEY = "cluster, namespace, job, account, package_id"
NOT_FINAL = "idle|pending|queued|running|pending_stoppage|stopping"
WAITING = "idle|pending|queued"

SCOPE = ('job=~"$scrape_job"', 'cluster=~"$cluster"', 'namespace=~"$namespace"')
ACCOUNT = 'account=~"$account"'


# -- PromQL pieces ----------------------------------------------------------------------------------------------


def sel(metric: str, *matchers: str, account: bool = True) -> str:
    """`metric{...}` narrowed by the scope variables (and the account, except for process-wide series)."""
    return f"{metric}{{{', '.join([*SCOPE, *([ACCOUNT] if account else []), *matchers])}}}"


CHOSEN_PACKAGE = 'package_name=~"$package"'
CHOSEN_JOB = 'job_id=~"$job_id"'
SELECTED_JOBS = sel("integrateio_job_info", CHOSEN_PACKAGE, CHOSEN_JOB)
SELECTED_PACKAGES = (
    f"max by ({PACKAGE_KEY}, package_name) ({sel('integrateio_package_info', CHOSEN_PACKAGE)})"
)


def in_status(statuses: str) -> str:
    """One series per job (no `status` label) for the jobs now in one of `statuses` (a regex)."""
    matcher = f'status=~"{statuses}"'
    return f"max by ({JOB_KEY}) ({sel('integrateio_job_status', matcher)} == 1)"


def selected(expr: str, labels: str = "package_id, package_name", jobs: str = SELECTED_JOBS) -> str:
    """`expr` (job series) kept for the jobs of the chosen packages and jobs (`jobs`: their info series), with
    their package labels."""
    return f"({expr}) * on ({JOB_KEY}) group_left ({labels}) {jobs}"


# Each package's page in the web UI, as `package_url`, over the shards of a scrape job; packages whose page no
# exporter knows (the API did not send it) are left out, so that a join never meets two values for one package.
KNOWN_URL = 'url!=""'
PACKAGE_URLS = (
    f"max by ({PACKAGE_KEY}, package_url) "
    f'(label_replace({sel("integrateio_package_info", KNOWN_URL)}, "package_url", "$1", "url", "(.*)"))'
)
# What a table's job rows carry for their links: the run's page (`url`) and its package's (`package_url`).
JOB_LINK_LABELS = "package_id, package_name, url, package_url"


def with_package_url(jobs: str) -> str:
    """`jobs` (`integrateio_job_info` series) with their package's page in the web UI (`package_url`) where an
    exporter knows it, and as they are where none does."""
    return f"({jobs} * on ({PACKAGE_KEY}) group_left (package_url) {PACKAGE_URLS} or on ({JOB_KEY}) {jobs})"


def linked(expr: str) -> str:
    """`expr` (job series) kept for the chosen jobs, as `selected`, with what a table's links need: the package
    labels, the run's page in the web UI (`url`) and its package's (`package_url`)."""
    return selected(expr, JOB_LINK_LABELS, with_package_url(SELECTED_JOBS))


def with_package_if_known(expr: str) -> str:
    """`expr` (job series of the chosen jobs) with their package and link labels where the exporter knows the
    job, and without where it does not (a job the API never answered for): for the exporter's health, not by
    package."""
    return (
        f"({expr}) * on ({JOB_KEY}) group_left ({JOB_LINK_LABELS}) "
        f"{with_package_url(sel('integrateio_job_info'))} or on ({JOB_KEY}) ({expr})"
    )


def unfinished(expr: str) -> str:
    """`expr` (job series) for the top $top jobs by its value among the chosen ones not finished: a graph of one
    line per job stays readable with a package of a few runs and with Package on All at 5,000 jobs."""
    return f"topk($top, {selected(f'{expr} and on ({JOB_KEY}) {in_status(NOT_FINAL)}', 'package_name')})"


def newest(metric: str) -> str:
    """A package timestamp combined over the shards of a scrape job: the newest."""
    return f"max by ({PACKAGE_KEY}) ({sel(metric)})"


FAILURE = newest("integrateio_package_last_failure_timestamp_seconds")
SUCCESS = newest("integrateio_package_last_success_timestamp_seconds")
# Packages whose last finished run failed, valued by when it failed: a failure newer than the last success,
# or a failure and no success at all.
FAILING_PACKAGES = (
    f"({FAILURE} > ({SUCCESS} or {FAILURE} * 0)) "
    f"* on ({PACKAGE_KEY}) group_left (package_name) {SELECTED_PACKAGES}"
)
# The same for a table: each package with its page in the web UI (`package_url`) where an exporter knows it.
LINKED_PACKAGES = (
    f"{SELECTED_PACKAGES} * on ({PACKAGE_KEY}) group_left (package_url) {PACKAGE_URLS} "
    f"or on ({PACKAGE_KEY}) {SELECTED_PACKAGES}"
)
LINKED_FAILING_PACKAGES = (
    f"({FAILURE} > ({SUCCESS} or {FAILURE} * 0)) "
    f"* on ({PACKAGE_KEY}) group_left (package_name, package_url) ({LINKED_PACKAGES})"
)
# The usual runtime of a package: the mean of its completed runs the exporter watches.
USUAL_RUNTIME = (
    f"avg by ({PACKAGE_KEY}) ({sel('integrateio_job_runtime_seconds')} * on ({JOB_KEY}) group_left (package_id) "
    f"({sel('integrateio_job_info')} and on ({JOB_KEY}) {in_status('completed')}))"
)
RUNNING_RUNTIME = linked(
    f"{sel('integrateio_job_runtime_seconds')} and on ({JOB_KEY}) {in_status('running')}"
)
NOT_FINAL_STATUS = sel("integrateio_job_status", f'status=~"{NOT_FINAL}"')
# Jobs not finished whose progress did not move in the window, among those already watched when it began.
STUCK = linked(
    f"{sel('integrateio_job_runtime_seconds')} * on ({JOB_KEY}) group_left (status) "
    f"({NOT_FINAL_STATUS} == 1) unless on ({JOB_KEY}) "
    f"changes({sel('integrateio_job_progress_ratio')}[$stuck]) > 0 "
    f"and on ({JOB_KEY}) {sel('integrateio_job_progress_ratio')} offset $stuck"
)
# Failed jobs valued by when they started (0 for one that failed before it started).
FAILED_JOBS = linked(
    f"{sel('integrateio_job_started_timestamp_seconds')} and on ({JOB_KEY}) {in_status('failed')} "
    f"or on ({JOB_KEY}) {in_status('failed')} * 0"
)


# -- panels -----------------------------------------------------------------------------------------------------


def target(expr: str, legend: str = "__auto", ref: str = "A", table: bool = False) -> dict[str, Any]:
    """One Prometheus query; table queries are instant and come back as one row per series."""
    query: dict[str, Any] = {"datasource": DATASOURCE, "refId": ref, "expr": expr, "legendFormat": legend}
    if table:
        query.update({"format": "table", "instant": True, "range": False})
    return query


def panel(
    kind: str, title: str, description: str, targets: list[dict[str, Any]], **extra: Any
) -> dict[str, Any]:
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": targets,
        **extra,
    }


def stat(
    title: str, description: str, expr: str, unit: str = "short", w: int = 3, **extra: Any
) -> dict[str, Any]:
    return panel(
        "stat",
        title,
        description,
        [target(expr)],
        fieldConfig={"defaults": {"unit": unit, **extra}, "overrides": []},
        options={
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
        },
        gridPos={"w": w, "h": 4},
    )


def timeseries(
    title: str,
    description: str,
    targets: list[dict[str, Any]],
    unit: str = "short",
    stack: bool = False,
    w: int = 12,
) -> dict[str, Any]:
    custom: dict[str, Any] = {"lineWidth": 1, "fillOpacity": 20 if stack else 0, "showPoints": "never"}
    if stack:
        custom["stacking"] = {"mode": "normal", "group": "A"}
    return panel(
        "timeseries",
        title,
        description,
        targets,
        fieldConfig={"defaults": {"unit": unit, "custom": custom}, "overrides": []},
        options={"legend": {"displayMode": "table", "placement": "right", "calcs": ["lastNotNull"]}},
        gridPos={"w": w, "h": 8},
    )


def web_link(title: str, field: str = "url") -> dict[str, Any]:
    """A link to the page in the Integrate.io web UI that the row's `field` names (the API's `html_url`)."""
    return {"title": f"{title} in Integrate.io", "url": f"${{__data.fields.{field}}}", "targetBlank": True}


def job_links() -> list[dict[str, Any]]:
    return [
        web_link("Run ${__value.raw}"),
        {
            "title": "Drill down to job ${__value.raw}",
            "url": "/d/${__dashboard.uid}?${__url_time_range}&${datasource:queryparam}"
            "&var-package=${__data.fields.package_name}&var-job_id=${__value.raw}",
        },
    ]


def package_links() -> list[dict[str, Any]]:
    return [
        web_link("Package ${__value.raw}", "package_url"),
        {
            "title": "Drill down to package ${__value.raw}",
            "url": "/d/${__dashboard.uid}?${__url_time_range}&${datasource:queryparam}&var-package=${__value.raw}",
        },
    ]


def override(field: str, **properties: Any) -> dict[str, Any]:
    return {
        "matcher": {"id": "byName", "options": field},
        "properties": [{"id": key, "value": value} for key, value in properties.items()],
    }


HIDDEN = ("Time", "cluster", "namespace", "job", "instance", "__name__")
LINK_FIELDS = ("url", "package_url")  # the pages in the web UI the links open


def table(
    title: str,
    description: str,
    targets: list[dict[str, Any]],
    values: dict[str, tuple[str, str]],
    sort_by: str,
    w: int = 12,
    h: int = 8,
    links: dict[str, list[dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """An instant table: one row per series, its labels as columns, `values` maps "Value #A" to (name, unit).

    `links` maps a column to its data links; by default `job_id` links to the run in Integrate.io and drills
    down, `package_name` to the package in Integrate.io and drills down. The columns the links read their pages
    from (`LINK_FIELDS`) are hidden, not removed: a data link only reads a field the table still has.
    """
    if links is None:
        links = {"job_id": job_links(), "package_name": package_links()}
    overrides = [override(column, links=found) for column, found in links.items()]
    if links:
        overrides.extend(override(field, **{"custom.hidden": True}) for field in LINK_FIELDS)
    renames: dict[str, str] = {}
    for field, (name, unit) in values.items():
        overrides.append(override(field, unit=unit))
        renames[field] = name
    transformations: list[dict[str, Any]] = []
    if len(targets) > 1:
        transformations.append({"id": "merge", "options": {}})
    transformations.append(
        {
            "id": "organize",
            "options": {
                "excludeByName": {name: True for name in HIDDEN},
                "renameByName": renames,
                "indexByName": {},
            },
        }
    )
    return panel(
        "table",
        title,
        description,
        targets,
        fieldConfig={"defaults": {"custom": {"filterable": True}}, "overrides": overrides},
        options={
            "showHeader": True,
            "sortBy": [{"displayName": sort_by, "desc": True}],
            "footer": {"show": False},
        },
        transformations=transformations,
        gridPos={"w": w, "h": h},
    )


def row(title: str) -> dict[str, Any]:
    return {"type": "row", "title": title, "collapsed": False, "panels": [], "gridPos": {"w": 24, "h": 1}}


def overview() -> list[dict[str, Any]]:
    return [
        row("Overview"),
        stat(
            "Watched jobs",
            "Jobs of the chosen packages and jobs that the exporters watch now.",
            f"count({SELECTED_JOBS}) or vector(0)",
        ),
        stat("Running", "Watched jobs now running.", f"count({selected(in_status('running'))}) or vector(0)"),
        stat(
            "Waiting",
            "Watched jobs waiting to run: idle, pending or queued.",
            f"count({selected(in_status(WAITING))}) or vector(0)",
        ),
        stat(
            "Failed",
            "Watched jobs whose status is failed.",
            f"count({selected(in_status('failed'))}) or vector(0)",
            color={"mode": "thresholds"},
            thresholds={
                "mode": "absolute",
                "steps": [{"color": "green", "value": None}, {"color": "red", "value": 1}],
            },
        ),
        stat(
            "Packages failing",
            "Packages whose last finished run failed (newer than their last success), over all shards.",
            f"count({FAILING_PACKAGES}) or vector(0)",
            color={"mode": "thresholds"},
            thresholds={
                "mode": "absolute",
                "steps": [{"color": "green", "value": None}, {"color": "red", "value": 1}],
            },
        ),
        stat(
            "API up",
            "1 while every exporter's last API request was answered and authenticated.",
            f"min({sel('integrateio_api_up')})",
            mappings=[
                {"type": "value", "options": {"0": {"text": "down", "color": "red"}, "1": {"text": "up"}}}
            ],
        ),
        stat(
            "Credits left",
            "Credits the exporters may still spend in their sliding window.",
            f"sum({sel('integrateio_budget_remaining_credits')})",
        ),
        stat(
            "Age of data",
            "Time since the exporter whose data is oldest last refreshed every job it watches.",
            f"time() - min({sel('integrateio_last_full_refresh_timestamp_seconds')})",
            unit="s",
        ),
    ]


def problems() -> list[dict[str, Any]]:
    return [
        row("Problems (top $top)"),
        table(
            "Failed jobs",
            "Watched jobs that failed, the most recently started first. The job links to the run in "
            "Integrate.io, the package to its page there (the pages the API names).",
            [target(f"topk($top, {FAILED_JOBS})", table=True)],
            {"Value": ("started", "dateTimeAsIso")},
            "started",
            w=8,
        ),
        table(
            "Stuck jobs",
            "Jobs not finished whose progress did not change for the 'Stuck after' window, longest runtime first.",
            [target(f"topk($top, {STUCK})", table=True)],
            {"Value": ("runtime", "s")},
            "runtime",
            w=8,
        ),
        table(
            "Slowest running jobs",
            "Running jobs with the longest runtime, and their runtime as a multiple of the mean runtime of "
            "the package's completed runs that the exporters watch.",
            [
                target(f"topk($top, {RUNNING_RUNTIME})", ref="A", table=True),
                target(
                    f"(topk($top, {RUNNING_RUNTIME})) / on ({PACKAGE_KEY}) group_left () {USUAL_RUNTIME}",
                    ref="B",
                    table=True,
                ),
            ],
            {"Value #A": ("runtime", "s"), "Value #B": ("× usual", "short")},
            "runtime",
            w=8,
        ),
        table(
            "Failing packages",
            "Packages whose last finished run failed, the most recent failure first, over all shards.",
            [target(f"topk($top, {LINKED_FAILING_PACKAGES})", table=True)],
            {"Value": ("failed at", "dateTimeAsIso")},
            "failed at",
            w=24,
        ),
    ]


def activity() -> list[dict[str, Any]]:
    return [
        row("Activity"),
        timeseries(
            "Jobs by status",
            "Watched jobs of the chosen packages in each status.",
            [
                target(
                    f"sum by (status) ({selected(sel('integrateio_job_status') + ' == 1', '')})",
                    "{{status}}",
                )
            ],
            stack=True,
            w=8,
        ),
        timeseries(
            "Records per package",
            "Records written by the watched runs of each package (top $top), summed over their outputs.",
            [
                target(
                    f"topk($top, sum by (account, package_name) "
                    f"({selected(sel('integrateio_job_output_records'), 'package_name')}))",
                    "{{package_name}} {{account}}",
                )
            ],
            w=8,
        ),
        timeseries(
            "Running jobs per package",
            "Watched jobs of each package now running (top $top), over all shards.",
            [
                target(
                    f"topk($top, sum by ({PACKAGE_KEY}) ({sel('integrateio_package_running_jobs')}) "
                    f"* on ({PACKAGE_KEY}) group_left (package_name) {SELECTED_PACKAGES})",
                    "{{package_name}} {{account}}",
                )
            ],
            stack=True,
            w=8,
        ),
    ]


# Labels that identify one schedule or one cluster across the shards of a scrape job (each shard reads the same
# account's schedules and clusters: the newest value is everyone's).
SCHEDULE_KEY = "cluster, namespace, job, account, schedule_id"
IS_AVAILABLE, IS_FAILED, IS_ERROR = ('status="available"', 'status="failed"', 'status="error"')
CLUSTER_KEY = "cluster, namespace, job, account, cluster_id"
WITH_CLUSTER_INFO = (
    f"group_left (cluster_name, type, url) max by ({CLUSTER_KEY}, cluster_name, type, url) "
    f"({sel('integrateio_cluster_info')})"
)


def per_schedule(metric: str, *matchers: str) -> str:
    """A schedule series over the shards, with the schedule's name and its page in the web UI (`url`)."""
    return (
        f"max by ({SCHEDULE_KEY}) ({sel(metric, *matchers)}) * on ({SCHEDULE_KEY}) group_left (schedule_name, url) "
        f"max by ({SCHEDULE_KEY}, schedule_name, url) ({sel('integrateio_schedule_info')})"
    )


def per_cluster(metric: str, *matchers: str) -> str:
    """A cluster series over the shards, with the cluster's name, type and page in the web UI (`url`)."""
    return f"max by ({CLUSTER_KEY}) ({sel(metric, *matchers)}) * on ({CLUSTER_KEY}) {WITH_CLUSTER_INFO}"


NEXT_RUN = f"max by ({SCHEDULE_KEY}) ({sel('integrateio_schedule_next_run_timestamp_seconds')})"
# Enabled schedules whose due run has not started: next run in the past, last run before it.
MISSED = (
    f"(time() - {NEXT_RUN} > 900) and on ({SCHEDULE_KEY}) "
    f"(max by ({SCHEDULE_KEY}) ({sel('integrateio_schedule_enabled')}) == 1) "
    f"unless on ({SCHEDULE_KEY}) "
    f"(max by ({SCHEDULE_KEY}) ({sel('integrateio_schedule_last_run_timestamp_seconds')}) >= on ({SCHEDULE_KEY}) {NEXT_RUN})"
)
IDLE_CLUSTERS = (
    f"(max by ({CLUSTER_KEY}) ({sel('integrateio_cluster_status', IS_AVAILABLE)}) == 1) "
    f"and on ({CLUSTER_KEY}) (max by ({CLUSTER_KEY}) ({sel('integrateio_cluster_running_jobs')}) == 0) "
    f"and on ({CLUSTER_KEY}) (max by ({CLUSTER_KEY}) ({sel('integrateio_cluster_terminate_on_idle')}) == 0)"
)


def alarm_count(title: str, description: str, expr: str, colour: str) -> dict[str, Any]:
    """A count of schedules or clusters in trouble: green at 0, `colour` from 1."""
    steps = [{"color": "green", "value": None}, {"color": colour, "value": 1}]
    return stat(
        title,
        description,
        expr,
        w=4,
        color={"mode": "thresholds"},
        thresholds={"mode": "absolute", "steps": steps},
    )


def schedules() -> list[dict[str, Any]]:
    return [
        row("Schedules"),
        alarm_count(
            "Missed runs",
            "Enabled schedules whose run was due more than 15 minutes ago and has not started.",
            f"count({MISSED}) or vector(0)",
            "red",
        ),
        alarm_count(
            "Last run failed",
            "Enabled schedules whose last run failed.",
            f"count(max by ({SCHEDULE_KEY}) ({sel('integrateio_schedule_last_run_status', IS_FAILED)}) == 1) "
            "or vector(0)",
            "red",
        ),
        timeseries(
            "Schedule runs per hour",
            "Runs the schedules started in each hour (from execution_count), by schedule.",
            [
                target(
                    f"sum by (schedule_name) (increase({sel('integrateio_schedule_runs_total')}[1h]) "
                    f"* on ({SCHEDULE_KEY}) group_left (schedule_name) "
                    f"max by ({SCHEDULE_KEY}, schedule_name) ({sel('integrateio_schedule_info')}))",
                    "{{schedule_name}}",
                )
            ],
            w=16,
        ),
        table(
            "Schedules",
            "Every schedule of the accounts: when it runs next and ran last, its last run's status, and how "
            "often it has run. A next run in the past with a last run before it is a missed run. The name links "
            "to the schedule in Integrate.io.",
            [
                target(per_schedule("integrateio_schedule_next_run_timestamp_seconds"), ref="A", table=True),
                target(per_schedule("integrateio_schedule_last_run_timestamp_seconds"), ref="B", table=True),
                target(per_schedule("integrateio_schedule_runs_total"), ref="C", table=True),
                target(per_schedule("integrateio_schedule_interval_seconds"), ref="D", table=True),
            ],
            {
                "Value #A": ("next run", "dateTimeAsIso"),
                "Value #B": ("last run", "dateTimeAsIso"),
                "Value #C": ("runs", "short"),
                "Value #D": ("every", "s"),
            },
            "next run",
            w=24,
            links={"schedule_name": [web_link("Schedule ${__value.raw}")]},
        ),
    ]


def clusters() -> list[dict[str, Any]]:
    return [
        row("Clusters"),
        alarm_count(
            "Idle clusters billed",
            "Available clusters with no running job that do not terminate themselves on idle.",
            f"count({IDLE_CLUSTERS}) or vector(0)",
            "orange",
        ),
        alarm_count(
            "Clusters in error",
            "Clusters whose status is error.",
            f"count(max by ({CLUSTER_KEY}) ({sel('integrateio_cluster_status', IS_ERROR)}) == 1) "
            "or vector(0)",
            "red",
        ),
        timeseries(
            "Nodes of available clusters",
            "Compute nodes of the clusters that are available, by cluster: what the account is billed for.",
            [
                target(
                    f"sum by (cluster_name) ({per_cluster('integrateio_cluster_nodes')} and on ({CLUSTER_KEY}) "
                    f"(max by ({CLUSTER_KEY}) ({sel('integrateio_cluster_status', IS_AVAILABLE)}) == 1))",
                    "{{cluster_name}}",
                )
            ],
            stack=True,
            w=16,
        ),
        table(
            "Clusters",
            "Every cluster of the accounts (terminated ones until clusters.terminated_max_age_seconds) with its "
            "status, nodes, running jobs and since when it is available. The name links to the cluster in "
            "Integrate.io.",
            [
                target(
                    f"max by ({CLUSTER_KEY}, status) ({sel('integrateio_cluster_status')} == 1) "
                    f"* on ({CLUSTER_KEY}) {WITH_CLUSTER_INFO}",
                    ref="A",
                    table=True,
                ),
                target(per_cluster("integrateio_cluster_nodes"), ref="B", table=True),
                target(per_cluster("integrateio_cluster_running_jobs"), ref="C", table=True),
                target(
                    per_cluster("integrateio_cluster_available_since_timestamp_seconds"), ref="D", table=True
                ),
            ],
            {
                "Value #A": ("in status", "short"),
                "Value #B": ("nodes", "short"),
                "Value #C": ("running jobs", "short"),
                "Value #D": ("available since", "dateTimeAsIso"),
            },
            "nodes",
            w=24,
            links={"cluster_name": [web_link("Cluster ${__value.raw}")]},
        ),
    ]


def drill_down() -> list[dict[str, Any]]:
    return [
        row("Jobs of the chosen packages"),
        table(
            "Jobs",
            "Every watched job of the chosen packages and jobs, with its status, progress and runtime. "
            "Choose a package first: at thousands of jobs this table is long.",
            [
                target(
                    linked(f"max by ({JOB_KEY}, status) ({sel('integrateio_job_status')} == 1)"),
                    ref="A",
                    table=True,
                ),
                target(linked(sel("integrateio_job_progress_ratio")), ref="B", table=True),
                target(linked(sel("integrateio_job_runtime_seconds")), ref="C", table=True),
            ],
            {
                "Value #A": ("current", "short"),
                "Value #B": ("progress", "percentunit"),
                "Value #C": ("runtime", "s"),
            },
            "runtime",
            w=24,
        ),
        timeseries(
            "Progress of unfinished jobs",
            "Progress of the chosen jobs that are not finished (the $top furthest on); finished jobs leave the "
            "graph.",
            [target(unfinished(sel("integrateio_job_progress_ratio")), "{{package_name}} {{job_id}}")],
            unit="percentunit",
            w=8,
        ),
        timeseries(
            "Runtime of unfinished jobs",
            "Runtime as the API reports it, of the chosen jobs that are not finished (the $top longest).",
            [target(unfinished(sel("integrateio_job_runtime_seconds")), "{{package_name}} {{job_id}}")],
            unit="s",
            w=8,
        ),
        timeseries(
            "Records per output of unfinished jobs",
            "Records written to each output by the chosen jobs that are not finished (the $top largest outputs).",
            [
                target(
                    unfinished(sel("integrateio_job_output_records")),
                    "{{package_name}} {{job_id}} {{output_name}}",
                )
            ],
            w=8,
        ),
    ]


def exporter_health() -> list[dict[str, Any]]:
    return [
        row("Exporter health"),
        timeseries(
            "Credit budget",
            "Credits each exporter spent in its window, may still spend, and allows itself.",
            [
                target(sel("integrateio_budget_spent_credits"), "spent {{instance}} {{account}}", "A"),
                target(
                    sel("integrateio_budget_remaining_credits"), "remaining {{instance}} {{account}}", "B"
                ),
                target(sel("integrateio_budget_limit_credits"), "limit {{instance}} {{account}}", "C"),
            ],
            w=8,
        ),
        timeseries(
            "API-reported credits",
            "The key's credits as the API reports them, all clients of the key included.",
            [
                target(
                    sel("integrateio_api_rate_limit_remaining_credits"),
                    "remaining {{instance}} {{account}}",
                    "A",
                ),
                target(sel("integrateio_api_rate_limit_credits"), "limit {{instance}} {{account}}", "B"),
            ],
            w=8,
        ),
        timeseries(
            "API requests by outcome",
            "Requests per second to the API, by endpoint and outcome, over every exporter.",
            [
                target(
                    f"sum by (endpoint, outcome) (rate({sel('integrateio_api_requests_total')}[$__rate_interval]))",
                    "{{endpoint}} {{outcome}}",
                )
            ],
            unit="reqps",
            w=8,
        ),
        timeseries(
            "Age of data per exporter",
            "Per exporter: time since its oldest job was refreshed, and since it refreshed every job in one "
            "cycle.",
            [
                target(
                    "max by (job, instance, account) "
                    f"(time() - {sel('integrateio_job_last_success_timestamp_seconds')})",
                    "oldest job {{instance}} {{account}}",
                    "A",
                ),
                target(
                    f"time() - {sel('integrateio_last_full_refresh_timestamp_seconds')}",
                    "full refresh {{instance}} {{account}}",
                    "B",
                ),
            ],
            unit="s",
            w=8,
        ),
        timeseries(
            "Refresh interval",
            "The effective refresh interval, above the configured one when the budget stretched it.",
            [
                target(
                    sel("integrateio_refresh_interval_seconds"), "effective {{instance}} {{account}}", "A"
                ),
                target(
                    sel("integrateio_refresh_interval_target_seconds"), "target {{instance}} {{account}}", "B"
                ),
            ],
            unit="s",
            w=8,
        ),
        timeseries(
            "API up and backoff",
            "Whether each exporter reaches the API, and the seconds left in a pause after a 429 or a refused key.",
            [
                target(sel("integrateio_api_up"), "api up {{instance}} {{account}}", "A"),
                target(sel("integrateio_api_backoff_seconds"), "backoff {{instance}} {{account}}", "B"),
            ],
            w=8,
        ),
        timeseries(
            "Poll errors by class",
            "Failed refreshes per second, by error class, over every job (the table beside it names the jobs).",
            [
                target(
                    f"sum by (error) (rate({sel('integrateio_job_poll_errors_total')}[$__rate_interval]))",
                    "{{error}}",
                )
            ],
            unit="reqps",
            w=8,
        ),
        table(
            "Jobs failing to refresh",
            "Jobs whose refreshes failed in the time range, the most errors first (error classes: see the README's "
            "metric table), and jobs the API answers 404 for. Not narrowed by package: a job the API never "
            "answered for has none.",
            [
                target(
                    "topk($top, "
                    + with_package_if_known(
                        f"sum by ({JOB_KEY}) (increase({sel('integrateio_job_poll_errors_total', CHOSEN_JOB)}"
                        "[$__range])) > 0"
                    )
                    + ")",
                    ref="A",
                    table=True,
                ),
                target(
                    with_package_if_known(
                        f"max by ({JOB_KEY}) ({sel('integrateio_job_missing', CHOSEN_JOB)} == 1)"
                    ),
                    ref="B",
                    table=True,
                ),
            ],
            {"Value #A": ("errors", "short"), "Value #B": ("missing (404)", "short")},
            "errors",
            w=16,
        ),
        timeseries(
            "Discovery",
            "Runs watched because discovery found them, and runs it dropped at discover.max_jobs.",
            [
                target(sel("integrateio_discovered_jobs"), "discovered {{instance}} {{account}}", "A"),
                target(
                    f"sum by (instance, account) (increase({sel('integrateio_discovery_dropped_jobs_total')}"
                    "[$__rate_interval]))",
                    "dropped {{instance}} {{account}}",
                    "B",
                ),
            ],
            w=8,
        ),
        panel(
            "table",
            "Exporters",
            "Each exporter's version, and whether its last configuration load succeeded.",
            [
                target(
                    "max by (job, instance, version, python_version) "
                    f"({sel('integrateio_exporter_build_info', account=False)})",
                    ref="A",
                    table=True,
                ),
                target(
                    f"min by (job, instance) ({sel('integrateio_config_last_reload_success')})",
                    ref="B",
                    table=True,
                ),
            ],
            transformations=[
                {"id": "merge", "options": {}},
                {
                    "id": "organize",
                    "options": {
                        "excludeByName": {"Time": True, "Value #A": True},
                        "renameByName": {"Value #B": "config loaded"},
                        "indexByName": {},
                    },
                },
            ],
            fieldConfig={"defaults": {}, "overrides": []},
            options={"showHeader": True},
            gridPos={"w": 16, "h": 8},
        ),
    ]


# -- variables --------------------------------------------------------------------------------------------------

ALL = {"selected": True, "text": ["All"], "value": ["$__all"]}


def query_variable(name: str, label: str, query: str, description: str, sort: int = 1) -> dict[str, Any]:
    """A multi-value variable from `label_values(...)`; "All" is `.*`, which also matches an absent label."""
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": query,
        "query": {"query": query, "refId": name},
        "current": ALL,
        "hide": 0,
        "includeAll": True,
        "allValue": ".*",
        "multi": True,
        "refresh": 2,
        "regex": "",
        "sort": sort,
        "options": [],
        "description": description,
    }


def custom_variable(name: str, label: str, values: list[str], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "custom",
        "query": ",".join(values),
        "current": {"selected": True, "text": values[0], "value": values[0]},
        "options": [
            {"selected": index == 0, "text": value, "value": value} for index, value in enumerate(values)
        ],
        "hide": 0,
        "includeAll": False,
        "multi": False,
        "description": description,
    }


def variables() -> list[dict[str, Any]]:
    scope = ", ".join(SCOPE)
    return [
        {
            "name": "datasource",
            "label": "Data source",
            "type": "datasource",
            "query": "prometheus",
            "current": {},
            "hide": 0,
            "includeAll": False,
            "multi": False,
            "refresh": 1,
            "regex": "",
            "options": [],
        },
        query_variable(
            "scrape_job",
            "Scrape job",
            "label_values(integrateio_exporter_build_info, job)",
            "The Prometheus scrape job of the exporters (with the Prometheus Operator: the Service's name).",
        ),
        query_variable(
            "cluster",
            "Cluster",
            'label_values(integrateio_exporter_build_info{job=~"$scrape_job"}, cluster)',
            "The `cluster` label, where a multi-cluster Prometheus (or its external labels) sets one; "
            "empty otherwise, and All then matches the series without it.",
        ),
        query_variable(
            "namespace",
            "Namespace",
            'label_values(integrateio_exporter_build_info{job=~"$scrape_job", cluster=~"$cluster"}, namespace)',
            "The Kubernetes namespace of the exporters, where the scrape sets one.",
        ),
        query_variable(
            "account",
            "Account",
            f"label_values(integrateio_watched_jobs{{{scope}}}, account)",
            "The account label that `accounts:` adds to every series. Without it (one account per exporter) the "
            "list is empty and All (.*) also matches series without the label.",
        ),
        query_variable(
            "package",
            "Package",
            f"label_values(integrateio_package_info{{{scope}, {ACCOUNT}}}, package_name)",
            "Narrows every job and package panel, and the Job list.",
        ),
        query_variable(
            "job_id",
            "Job",
            f'label_values(integrateio_job_info{{{scope}, {ACCOUNT}, package_name=~"$package"}}, job_id)',
            "The jobs of the chosen packages. All keeps the package filter: every job panel joins its series to "
            'integrateio_job_info{package_name=~"$package"}.',
            sort=3,
        ),
        custom_variable(
            "top", "Top", ["10", "25", "50"], "Rows of the problem tables and lines of the top-N graphs."
        ),
        custom_variable(
            "stuck",
            "Stuck after",
            ["1h", "30m", "3h", "6h"],
            "A job not finished whose progress did not change for this long is listed as stuck.",
        ),
    ]


# -- the dashboard ----------------------------------------------------------------------------------------------


def layout(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give each panel an id and a place: left to right, a new line when 24 columns are full, rows alone."""
    x = y = line = 0
    for index, item in enumerate(panels, start=1):
        grid = item["gridPos"]
        if item["type"] == "row" or x + grid["w"] > 24:
            x, y, line = 0, y + line, 0
        item["id"] = index
        item["gridPos"] = {"h": grid["h"], "w": grid["w"], "x": x, "y": y}
        x += grid["w"]
        line = max(line, grid["h"])
        if item["type"] == "row":
            x, y, line = 0, y + grid["h"], 0
    return panels


def dashboard() -> dict[str, Any]:
    return {
        "title": TITLE,
        "uid": UID,
        "description": "Integrate.io (Xplenty) ETL jobs watched by integrateio-exporter: problems first, "
        "aggregates that stay readable at thousands of jobs, a drill-down by package and job, and the "
        "exporter's health. Generated by scripts/dashboard.py.",
        "tags": ["integrateio", "etl", "prometheus"],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "1m",
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "timezone": "",
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "links": [],
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "templating": {"list": variables()},
        "panels": layout(
            [
                *overview(),
                *problems(),
                *activity(),
                *schedules(),
                *clusters(),
                *drill_down(),
                *exporter_health(),
            ]
        ),
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="fail when the committed JSON differs")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(
                f"{args.output} differs from what scripts/dashboard.py writes: run it and commit",
                file=sys.stderr,
            )
            return 1
        return 0
    args.output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
