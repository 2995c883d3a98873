"""What a schedule and a cluster are, parsed as tolerantly as a job (`exporter.model`).

Both come from list pages (`GET /schedules`, `GET /clusters`, see the API documentation's
`resources/schedule.md` and `resources/cluster.md`). Only a missing `id` makes an item unusable; a status nobody
documented becomes `unknown`, a number sent as a string (the documented schedule example sends `package_id` as
`"1"`) is read as the number, and a field sent as null keeps the value the last good answer had
(`filled_from`): a schedule's next run or a cluster's node count never legitimately turns null, so a null
means "the API did not say", and it is counted (`unusable`). Each one's page in the web UI (`html_url`, kept only
as an http(s) URL) keeps its last good value the same way, but is never counted: the documented list examples
leave it out.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any, Generic, TypeVar

from exporter.fields import as_integer, as_non_negative, as_object, as_text, as_web_url
from exporter.model import InvalidPayload, JobStatus, parse_timestamp

T = TypeVar("T")

# `interval_unit` in seconds. Months and years have no fixed length: a month is taken as 30 days and a year as
# 365 days, so `integrateio_schedule_interval_seconds` of a monthly schedule is 2,592,000 (off by up to a day).
INTERVAL_UNIT_SECONDS = {
    "minutes": 60.0,
    "hours": 3600.0,
    "days": 86400.0,
    "weeks": 7 * 86400.0,
    "months": 30 * 86400.0,
    "years": 365 * 86400.0,
}


class ClusterStatus(enum.Enum):
    """A cluster's lifecycle, as the API reports it, plus UNKNOWN for anything else."""

    PENDING = "pending"
    CREATING = "creating"
    AVAILABLE = "available"
    SCALING = "scaling"
    PENDING_TERMINATE = "pending_terminate"
    TERMINATING = "terminating"
    TERMINATED = "terminated"
    ERROR = "error"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Schedule:
    """The parts of a schedule the exporter shows; None where the API did not say usably.

    `last_run_status` is None until the schedule first ran (documented as null then); a status that is not a
    job status is `JobStatus.UNKNOWN`.
    """

    id: int
    name: str | None = None
    enabled: bool | None = None
    next_run_at: float | None = None
    last_run_at: float | None = None
    last_run_status: JobStatus | None = None
    execution_count: float | None = None
    interval_seconds: float | None = None
    package_ids: tuple[int, ...] = ()
    url: str | None = None  # its page in the web UI (`html_url`)
    unusable: tuple[str, ...] = ()

    def filled_from(self, previous: Schedule) -> Schedule:
        """This answer, with what it left out taken from the previous one (see the module's docstring)."""
        return _filled(self, previous)


@dataclass(frozen=True)
class Cluster:
    """The parts of a cluster the exporter shows; None where the API did not say usably."""

    id: int
    status: ClusterStatus
    name: str | None = None
    type: str | None = None
    nodes: float | None = None
    running_jobs: float | None = None
    available_since: float | None = None
    terminated_at: float | None = None
    terminate_on_idle: bool | None = None
    url: str | None = None  # its page in the web UI (`html_url`)
    unusable: tuple[str, ...] = ()

    def filled_from(self, previous: Cluster) -> Cluster:
        """As `Schedule.filled_from`; a missing status (not an unknown one) keeps the previous status too."""
        filled = _filled(self, previous)
        return replace(filled, status=previous.status) if "status" in self.unusable else filled


R = TypeVar("R", "Schedule", "Cluster")


def _filled(fresh: R, previous: R) -> R:
    """`fresh` with every field it left out (None, or no packages) taken from `previous`."""
    values = {
        item.name: getattr(previous, item.name)
        for item in fields(fresh)
        if item.name != "unusable" and getattr(fresh, item.name) in (None, ())
    }
    return replace(fresh, **values)


def parse_schedule(payload: Any) -> Schedule:
    """One schedule object, or InvalidPayload when it has no usable id."""
    schedule_id = _id(payload, "schedule")
    task = as_object(payload.get("task"))
    packages = task.get("packages")
    package_ids = tuple(
        dict.fromkeys(
            package_id
            for package_id in (
                as_integer(as_object(item).get("package_id"))
                for item in (packages if isinstance(packages, list) else [])
            )
            if package_id is not None and package_id > 0
        )
    )
    raw_last = payload.get("last_run_status")
    status = as_text(payload.get("status"))
    amount = as_non_negative(payload.get("interval_amount"))
    unit = INTERVAL_UNIT_SECONDS.get(str(payload.get("interval_unit")).strip().lower())
    schedule = Schedule(
        id=schedule_id,
        name=as_text(payload.get("name")),
        enabled=None if status is None else status.strip().lower() == "enabled",
        next_run_at=parse_timestamp(payload.get("next_run_at")),
        last_run_at=parse_timestamp(payload.get("last_run_at")),
        last_run_status=None if raw_last is None else JobStatus.parse(str(raw_last)),
        execution_count=as_non_negative(payload.get("execution_count")),
        interval_seconds=None if amount is None or unit is None else amount * unit,
        package_ids=package_ids,
        url=as_web_url(payload.get("html_url")),
    )
    unusable = [
        name
        for name, value in (
            ("status", schedule.enabled),
            ("next_run_at", schedule.next_run_at if schedule.enabled else 0.0),
            ("execution_count", schedule.execution_count),
            ("interval", schedule.interval_seconds),
        )
        if value is None
    ]
    return replace(schedule, unusable=tuple(unusable))


def parse_cluster(payload: Any) -> Cluster:
    """One cluster object, or InvalidPayload when it has no usable id."""
    cluster_id = _id(payload, "cluster")
    raw_status = as_text(payload.get("status"))
    try:
        status = ClusterStatus(raw_status.strip().lower()) if raw_status else ClusterStatus.UNKNOWN
    except ValueError:
        status = ClusterStatus.UNKNOWN
    idle = payload.get("terminate_on_idle")
    cluster = Cluster(
        id=cluster_id,
        status=status,
        name=as_text(payload.get("name")),
        type=as_text(payload.get("type")),
        nodes=as_non_negative(payload.get("nodes")),
        running_jobs=as_non_negative(payload.get("running_jobs_count")),
        available_since=parse_timestamp(payload.get("available_since")),
        terminated_at=parse_timestamp(payload.get("terminated_at")),
        terminate_on_idle=idle if isinstance(idle, bool) else None,
        url=as_web_url(payload.get("html_url")),
    )
    unusable = [
        name
        for name, value in (
            ("status", raw_status),
            ("nodes", cluster.nodes),
            ("running_jobs_count", cluster.running_jobs),
        )
        if value is None
    ]
    return replace(cluster, unusable=tuple(unusable))


def _id(payload: Any, what: str) -> int:
    if not isinstance(payload, dict):
        raise InvalidPayload(f"expected a {what} object, got {type(payload).__name__}")
    value = as_integer(payload.get("id"))
    if value is None or value <= 0:
        raise InvalidPayload(f"{what} object without a usable id")
    return value


@dataclass(frozen=True)
class Listed(Generic[T]):
    """A list page's usable items, and how many items were skipped as unusable (counted by the caller)."""

    items: list[T]
    skipped: int

    def __len__(self) -> int:
        """Items on the page, usable or not: an empty page ends the paging."""
        return len(self.items) + self.skipped


def parse_list(payload: Any, parse: Callable[[Any], T], what: str) -> Listed[T]:
    """A list answer; an item that is not usable is skipped and counted, since it must not hide the rest."""
    if not isinstance(payload, list):
        raise InvalidPayload(f"expected a list of {what}, got {type(payload).__name__}")
    items = []
    for item in payload:
        try:
            items.append(parse(item))
        except InvalidPayload:
            continue
    return Listed(items, len(payload) - len(items))
