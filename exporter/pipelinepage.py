"""The schedules and clusters on the status page (`/`) and in `/api/jobs`, from the same snapshot.

Kept beside `exporter.statuspage`, which places them: a table of schedules (next run in, last run and its
status, enabled or not) and one of clusters (status, nodes, running jobs, idle since), each only for an account
with its section on. A schedule whose due run has not started is flagged "overdue"; an available cluster with
no running job that does not terminate itself on idle is flagged "idle, billed". As text:

    Schedules
    Schedule                 Next run             Last run                Runs  Every    Packages
    203 inventory nightly    ⚠ overdue by 15 min  ✔ completed 1 d ago       58  1 d      436
    Clusters
    Cluster         Status       Type        Nodes  Running jobs  Available since
    53 etl-batch    available    production      2             0  3 h ago  ⚠ idle, billed
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

from exporter.cache import CacheSnapshot, ExporterState
from exporter.pipelines import Cluster, ClusterStatus, Schedule

Duration = Callable[[float], str]  # statuspage.human_duration, passed in: statuspage imports this module
Moment = Callable[[float | None], str | None]  # statuspage.rfc3339
OVERDUE_AFTER_SECONDS = 60.0  # a run a minute late is only "due now": the API starts runs with some delay


def pipeline_tables(snapshot: CacheSnapshot, now: float, human_duration: Duration) -> str:
    """The schedules' and clusters' tables of every account that reads them ("" when none does)."""
    schedules = [(state, item) for state in snapshot.exporters for item in state.schedules or ()]
    clusters = [(state, item) for state in snapshot.exporters for item in state.clusters or ()]
    if not any(state.schedules is not None for state in snapshot.exporters):
        schedule_part = ""
    else:
        rows = "".join(_schedule_row(state, item, now, human_duration) for state, item in schedules) or (
            '<tr><td colspan="6" class="dim">No schedules in the account.</td></tr>'
        )
        schedule_part = (
            '<h2>Schedules</h2><table id="schedules"><thead><tr><th>Schedule</th><th>Next run</th>'
            '<th>Last run</th><th class="num">Runs</th><th class="num">Every</th><th>Packages</th></tr>'
            f"</thead><tbody>\n{rows}</tbody></table>\n"
        )
    if not any(state.clusters is not None for state in snapshot.exporters):
        return schedule_part
    rows = "".join(_cluster_row(state, item, now, human_duration) for state, item in clusters) or (
        '<tr><td colspan="6" class="dim">No clusters in the account.</td></tr>'
    )
    return (
        f"{schedule_part}"
        '<h2>Clusters</h2><table id="clusters"><thead><tr><th>Cluster</th><th>Status</th><th>Type</th>'
        '<th class="num">Nodes</th><th class="num">Running jobs</th><th>Available since</th></tr>'
        f"</thead><tbody>\n{rows}</tbody></table>\n"
    )


def overdue(schedule: Schedule, now: float) -> float | None:
    """Seconds the schedule's due run is late (enabled, next run past, not started since), else None."""
    due = schedule.next_run_at
    if not schedule.enabled or due is None or now - due < OVERDUE_AFTER_SECONDS:
        return None
    if schedule.last_run_at is not None and schedule.last_run_at >= due:
        return None
    return now - due


def idle_and_billed(cluster: Cluster) -> bool:
    """Available, no job running, and not set to terminate itself on idle: money burning."""
    return (
        cluster.status is ClusterStatus.AVAILABLE
        and cluster.running_jobs == 0
        and cluster.terminate_on_idle is False
    )


def _name(state: ExporterState, item_id: int, name: str | None) -> str:
    account = f'<span class="dim">{html.escape(state.account)}</span> ' if state.account else ""
    return f"{account}{item_id} {html.escape(name or '')}"


def _schedule_row(state: ExporterState, schedule: Schedule, now: float, human_duration: Duration) -> str:
    late = overdue(schedule, now)
    if not schedule.enabled:
        next_run = '<span class="dim">disabled</span>'
    elif late is not None:
        next_run = f'<span class="err">⚠ overdue by {human_duration(late)}</span>'
    elif schedule.next_run_at is None:
        next_run = '<span class="dim">unknown</span>'
    else:
        next_run = f"in {human_duration(max(0.0, schedule.next_run_at - now))}"
    status = schedule.last_run_status
    if status is None:
        last_run = '<span class="dim">never ran</span>'
    else:
        ago = (
            ""
            if schedule.last_run_at is None
            else f" {human_duration(max(0.0, now - schedule.last_run_at))} ago"
        )
        last_run = f'<span class="badge st-{status.value}">{status.value.replace("_", " ")}</span>{ago}'
    runs = "" if schedule.execution_count is None else f"{int(schedule.execution_count):,}"
    every = "" if schedule.interval_seconds is None else human_duration(schedule.interval_seconds)
    packages = ", ".join(str(package_id) for package_id in schedule.package_ids)
    return (
        f'<tr id="schedule-{schedule.id}" data-schedule="{schedule.id}"><td>{_name(state, schedule.id, schedule.name)}'
        f'</td><td>{next_run}</td><td>{last_run}</td><td class="num">{runs}</td>'
        f'<td class="num">{every}</td><td>{packages}</td></tr>\n'
    )


def _cluster_row(state: ExporterState, cluster: Cluster, now: float, human_duration: Duration) -> str:
    status = cluster.status.value
    badge = "st-failed" if cluster.status is ClusterStatus.ERROR else "st-none"
    if cluster.status is ClusterStatus.AVAILABLE:
        badge = "st-running" if cluster.running_jobs else "st-idle"
    since = (
        ""
        if cluster.available_since is None
        else f"{human_duration(max(0.0, now - cluster.available_since))} ago"
    )
    if idle_and_billed(cluster):
        since += ' <span class="err">⚠ idle, billed</span>'
    nodes = "" if cluster.nodes is None else f"{int(cluster.nodes):,}"
    running = "" if cluster.running_jobs is None else f"{int(cluster.running_jobs):,}"
    return (
        f'<tr id="cluster-{cluster.id}" data-cluster="{cluster.id}"><td>{_name(state, cluster.id, cluster.name)}</td>'
        f'<td><span class="badge {badge}">{status.replace("_", " ")}</span></td>'
        f'<td>{html.escape(cluster.type or "")}</td><td class="num">{nodes}</td>'
        f'<td class="num">{running}</td><td>{since}</td></tr>\n'
    )


def pipeline_documents(snapshot: CacheSnapshot, now: float, rfc3339: Moment) -> dict[str, Any]:
    """`schedules` and `clusters` for `/api/jobs`: every item of every account that reads them (else absent)."""
    document: dict[str, Any] = {}
    if any(state.schedules is not None for state in snapshot.exporters):
        document["schedules"] = [
            {
                "account": state.account,
                "schedule_id": item.id,
                "name": item.name,
                "enabled": item.enabled,
                "next_run_at": rfc3339(item.next_run_at),
                "overdue_seconds": None if (late := overdue(item, now)) is None else round(late, 3),
                "last_run_at": rfc3339(item.last_run_at),
                "last_run_status": None if item.last_run_status is None else item.last_run_status.value,
                "runs": None if item.execution_count is None else int(item.execution_count),
                "interval_seconds": item.interval_seconds,
                "package_ids": list(item.package_ids),
            }
            for state in snapshot.exporters
            for item in state.schedules or ()
        ]
    if any(state.clusters is not None for state in snapshot.exporters):
        document["clusters"] = [
            {
                "account": state.account,
                "cluster_id": item.id,
                "name": item.name,
                "type": item.type,
                "status": item.status.value,
                "nodes": None if item.nodes is None else int(item.nodes),
                "running_jobs": None if item.running_jobs is None else int(item.running_jobs),
                "available_since": rfc3339(item.available_since),
                "terminated_at": rfc3339(item.terminated_at),
                "terminate_on_idle": item.terminate_on_idle,
                "idle_and_billed": idle_and_billed(item),
            }
            for state in snapshot.exporters
            for item in state.clusters or ()
        ]
    return document
