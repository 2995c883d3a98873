"""The simulated account's schedules and clusters, rendered in the documented shapes.

Shapes follow the official API documentation (repository `xplenty/xplenty-api-doc-v2`):

- a schedule: `resources/schedule.md` and the example of `sections/list-schedules.md` — `id`, `name`,
  `description`, `owner_id`, `status` (`enabled`/`disabled`), `start_at`, `next_run_at`, `last_run_at`,
  `last_run_status` (null until it ran), `execution_count`, `interval_amount`, `interval_unit` (`minutes` …
  `years`), `task` with `nodes`, `packages: [{package_id, variables}]` (the example sends `package_id` as a
  string, and so do we), `terminate_on_idle`, `time_to_idle`; `reuse_cluster_strategy`, `created_at`,
  `updated_at`, `url`, `html_url` (its page in the web UI: `resources/schedule.md`, "the schedule resource URL
  (Web UI)");
- a cluster: `resources/cluster.md` and the example of `sections/list-clusters.md` — `id`, `name`,
  `description`, `status`, `owner_id`, `plan_id`, `nodes`, `type` (`sandbox`/`production`), `created_at`,
  `updated_at`, `available_since`, `terminated_at`, `running_jobs_count`, `terminate_on_idle`, `time_to_idle`,
  `terminated_on_idle`, `region`, `zone`, `url`, `html_url` (its page in the web UI, as the cluster examples of
  `sections/terminate-cluster.md` and `sections/search-clusters.md` show it; `resources/cluster.md` does not list
  it), `creator` (`type`, `id`, `url`).

Both lists take the job list's `status` (here `all` or one of `SCHEDULE_STATUSES` / `CLUSTER_STATUSES`),
`sort`, `direction`, `since`, `offset` and `limit` (`sections/list-schedules.md`, `sections/list-clusters.md`).

A schedule that `runs` starts its due runs by itself as time passes (`last_run_at` moves to the due time,
`next_run_at` on by one interval, `execution_count` up, `last_run_status` = `outcome`); one that does not stays
as it is, so its `next_run_at` slides into the past: a missed run.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from exporter.simulator.listing import ListQuery
from exporter.simulator.statuses import STATUSES
from exporter.simulator.timestamps import format_timestamp

SCHEDULE_STATUSES: Final = ("enabled", "disabled")
CLUSTER_STATUSES: Final = (
    "pending",
    "creating",
    "available",
    "scaling",
    "pending_terminate",
    "terminating",
    "terminated",
    "error",
)
# Calendar units stepped as fixed lengths: the simulator only needs a plausible next run.
_UNIT_SECONDS: Final = {
    "minutes": 60,
    "hours": 3600,
    "days": 86400,
    "weeks": 7 * 86400,
    "months": 30 * 86400,
    "years": 365 * 86400,
}


@dataclass
class SimSchedule:
    """A schedule as a test describes it; timestamps are epoch seconds (None: JSON null)."""

    id: int
    name: str = "schedule"
    status: str = "enabled"
    interval_amount: int = 1
    interval_unit: str = "days"
    next_run_at: int | None = None
    last_run_at: int | None = None
    last_run_status: str | None = None
    execution_count: int = 0
    package_ids: tuple[int, ...] = (1,)
    nodes: int = 1
    terminate_on_idle: bool = True
    time_to_idle: int = 3600
    runs: bool = False
    outcome: str = "completed"
    created_at: int | None = None
    updated_at: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # raw fields over the rendered ones (bad answers)


@dataclass
class SimCluster:
    """A cluster as a test describes it; timestamps are epoch seconds (None: JSON null)."""

    id: int
    name: str = "cluster"
    status: str = "available"
    nodes: int = 1
    type: str = "production"
    running_jobs_count: int = 0
    available_since: int | None = None
    terminated_at: int | None = None
    terminate_on_idle: bool = True
    time_to_idle: int = 3600
    terminated_on_idle: bool = False
    creator_schedule_id: int | None = None
    created_at: int | None = None
    updated_at: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # raw fields over the rendered ones (bad answers)


Item = TypeVar("Item", SimSchedule, SimCluster)


class PipelineStore:
    """The schedules and clusters of the simulated account. Thread-safe; holds copies of what tests hand over."""

    def __init__(self, wall_clock: Callable[[], float] = time.time) -> None:
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._schedules: dict[int, SimSchedule] = {}
        self._clusters: dict[int, SimCluster] = {}
        self._root = "http://127.0.0.1:0/account"

    def set_url_root(self, root: str) -> None:
        with self._lock:
            self._root = root

    def put_schedule(self, schedule: SimSchedule) -> None:
        """Add or replace a schedule; `ValueError` for a status or unit the API does not have."""
        if schedule.status not in SCHEDULE_STATUSES or schedule.interval_unit not in _UNIT_SECONDS:
            raise ValueError(f"schedule {schedule.id}: bad status or interval_unit")
        if schedule.last_run_status is not None and schedule.last_run_status not in STATUSES:
            raise ValueError(f"schedule {schedule.id}: unknown last_run_status {schedule.last_run_status!r}")
        stored = self._stamped(schedule)
        with self._lock:
            self._schedules[schedule.id] = stored

    def put_cluster(self, cluster: SimCluster) -> None:
        """Add or replace a cluster; `ValueError` for a status the simulator does not know (use `extra` to
        send one on purpose)."""
        if cluster.status not in CLUSTER_STATUSES:
            raise ValueError(f"cluster {cluster.id}: unknown status {cluster.status!r}")
        stored = self._stamped(cluster)
        with self._lock:
            self._clusters[cluster.id] = stored

    def _stamped(self, item: Item) -> Item:
        """A copy of what a test handed over (it may change its own object later), created and updated now unless
        it says when."""
        now = int(self._wall_clock())
        stored = copy.deepcopy(item)
        stored.created_at = stored.created_at or now
        stored.updated_at = stored.updated_at or now
        return stored

    def remove(self, resource: str, item_id: int) -> None:
        with self._lock:
            (self._schedules if resource == "schedules" else self._clusters).pop(item_id, None)

    def schedule_payload(self, schedule_id: int) -> dict[str, Any]:
        """What the list serves for this schedule now; `KeyError` if there is none."""
        with self._lock:
            self._roll(self._schedules[schedule_id])
            return _schedule(self._schedules[schedule_id], self._root)

    def cluster_payload(self, cluster_id: int) -> dict[str, Any]:
        with self._lock:
            return _cluster(self._clusters[cluster_id], self._root)

    def select(self, resource: str, query: ListQuery) -> tuple[list[dict[str, Any]], int]:
        """One page of `GET /schedules` or `GET /clusters` and the total matching."""
        with self._lock:
            items: list[SimSchedule | SimCluster]
            if resource == "schedules":
                for schedule in self._schedules.values():
                    self._roll(schedule)
                items = list(self._schedules.values())
            else:
                items = list(self._clusters.values())
            matches = [
                item
                for item in items
                if (query.status is None or item.status == query.status)
                and (query.since is None or (item.updated_at or 0) >= query.since)
            ]

            def key(item: SimSchedule | SimCluster) -> tuple[int, int]:
                moment = item.created_at if query.sort == "created" else item.updated_at
                return (moment or 0, item.id)

            matches.sort(key=key, reverse=query.descending)
            page = matches[query.offset : query.offset + query.limit]
            render = _schedule if resource == "schedules" else _cluster
            return [render(item, self._root) for item in page], len(matches)  # type: ignore[arg-type]

    def _roll(self, schedule: SimSchedule) -> None:
        """Start the runs a running schedule has due by now (see the module's docstring)."""
        if not schedule.runs or schedule.status != "enabled" or schedule.next_run_at is None:
            return
        now = int(self._wall_clock())
        step = schedule.interval_amount * _UNIT_SECONDS[schedule.interval_unit]
        while schedule.next_run_at <= now and step > 0:
            schedule.last_run_at = schedule.next_run_at
            schedule.last_run_status = schedule.outcome
            schedule.execution_count += 1
            schedule.next_run_at += step
            schedule.updated_at = now


def _time(value: int | None) -> str | None:
    return None if value is None else format_timestamp(value)


def _schedule(schedule: SimSchedule, root: str) -> dict[str, Any]:
    return {
        "id": schedule.id,
        "name": schedule.name,
        "description": f"{schedule.name} ({schedule.interval_amount} {schedule.interval_unit})",
        "owner_id": 1,
        "status": schedule.status,
        "start_at": _time(schedule.created_at),
        "next_run_at": _time(schedule.next_run_at),
        "last_run_at": _time(schedule.last_run_at),
        "last_run_status": schedule.last_run_status,
        "execution_count": schedule.execution_count,
        "interval_amount": schedule.interval_amount,
        "interval_unit": schedule.interval_unit,
        "task": {
            "nodes": schedule.nodes,
            "packages": [
                {"package_id": str(package_id), "variables": {}} for package_id in schedule.package_ids
            ],
            "terminate_on_idle": schedule.terminate_on_idle,
            "time_to_idle": schedule.time_to_idle,
        },
        "reuse_cluster_strategy": "self",
        "created_at": _time(schedule.created_at),
        "updated_at": _time(schedule.updated_at),
        "url": f"{root}/api/schedules/{schedule.id}",
        "html_url": f"{root}/schedules/{schedule.id}",  # the schedule in the web UI: resources/schedule.md
        **schedule.extra,
    }


def _cluster(cluster: SimCluster, root: str) -> dict[str, Any]:
    creator = (
        None
        if cluster.creator_schedule_id is None
        else {
            "type": "Schedule",
            "id": cluster.creator_schedule_id,
            "url": f"{root}/api/schedules/{cluster.creator_schedule_id}",
        }
    )
    return {
        "id": cluster.id,
        "name": cluster.name,
        "description": cluster.name,
        "status": cluster.status,
        "owner_id": 1,
        "plan_id": 1,
        "nodes": cluster.nodes,
        "type": cluster.type,
        "created_at": _time(cluster.created_at),
        "updated_at": _time(cluster.updated_at),
        "available_since": _time(cluster.available_since),
        "terminated_at": _time(cluster.terminated_at),
        "running_jobs_count": cluster.running_jobs_count,
        "terminate_on_idle": cluster.terminate_on_idle,
        "time_to_idle": cluster.time_to_idle,
        "terminated_on_idle": cluster.terminated_on_idle,
        "region": "amazon-web-services::us-east-1",
        "zone": "us-east-1b",
        "url": f"{root}/api/clusters/{cluster.id}",
        # the cluster in the web UI: resources/cluster.md lists only `url`, but the cluster examples of
        # sections/terminate-cluster.md and sections/search-clusters.md carry `html_url`
        "html_url": f"{root}/clusters/{cluster.id}",
        "creator": creator,
        **cluster.extra,
    }
