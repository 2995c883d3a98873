"""Schedules and clusters in the state file (version 3): each resource's last good listing, and when it was read.

Without them a restart serves no `integrateio_schedule_*` or `integrateio_cluster_*` series until its first
listing, which an unreachable API or a paused key can put off: their alerts' `for:` timers start over and
dashboards show a gap. With them the tasks
(`tasks.listed`) serve the same series at once, and the first read replaces them whole, as any read does. The
time of the last read is kept as it was, never the restart's: `integrateio_listing_last_success_timestamp_seconds`
stays honest, and `IntegrateioScheduleMissedRun`, which waits for a recent read, does not page on values a long
outage left stale.

Each resource is one section, `{"last_success": t, "items": [...]}`, an item an object of its fields by name.
`state` reads a section apart from the rest of the file: one it cannot read is ignored in one log line, and the
jobs and packages are restored all the same. A section of more than `tasks.listed.MAX_LISTED_ITEMS` items (5,000:
more than one read holds, far beyond any real account) is ignored the same way, so a damaged or foreign file
cannot make the exporter serve series without bound.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Generic, TypeVar

from exporter.model import JobStatus
from exporter.pipelines import Cluster, ClusterStatus, Schedule
from exporter.statevalues import (
    identifier,
    identifiers,
    optional_flag,
    optional_float,
    optional_text,
    optional_web_url,
    texts,
)
from exporter.tasks.listed import MAX_LISTED_ITEMS

T = TypeVar("T", Schedule, Cluster)
Reader = Callable[[Any], Any]


@dataclass(frozen=True)
class SavedListing(Generic[T]):
    """A listed resource as last read whole: its items (by id) and when that read succeeded."""

    items: tuple[T, ...]
    last_success: float | None


@dataclass(frozen=True)
class Section(Generic[T]):
    """How one resource is kept: its key in the file, what it holds, and a strict reader for each field.

    `later` names the fields a version 3 file written before they existed lacks: read as null when absent.
    """

    resource: str
    kind: Callable[..., T]
    readers: Mapping[str, Reader]
    later: frozenset[str] = frozenset()


def _optional_job_status(value: Any) -> JobStatus | None:
    return None if value is None else JobStatus(value)


SCHEDULES = Section(
    "schedules",
    Schedule,
    {
        "id": identifier,
        "name": optional_text,
        "enabled": optional_flag,
        "next_run_at": optional_float,
        "last_run_at": optional_float,
        "last_run_status": _optional_job_status,
        "execution_count": optional_float,
        "interval_seconds": optional_float,
        "package_ids": identifiers,
        "url": optional_web_url,
        "unusable": texts,
    },
    later=frozenset({"url"}),
)
CLUSTERS = Section(
    "clusters",
    Cluster,
    {
        "id": identifier,
        "status": ClusterStatus,
        "name": optional_text,
        "type": optional_text,
        "nodes": optional_float,
        "running_jobs": optional_float,
        "available_since": optional_float,
        "terminated_at": optional_float,
        "terminate_on_idle": optional_flag,
        "url": optional_web_url,
        "unusable": texts,
    },
    later=frozenset({"url"}),
)


def listing_document(listing: SavedListing[Any]) -> dict[str, Any]:
    """The section as JSON: every field of every item, enums by value, tuples as lists."""
    return {
        "last_success": listing.last_success,
        "items": [
            {each.name: _plain(getattr(item, each.name)) for each in fields(item)} for item in listing.items
        ],
    }


def listing_from(document: Any, section: Section[T]) -> SavedListing[T]:
    """The section back; KeyError, TypeError or ValueError when it is not what `listing_document` writes."""
    if not isinstance(document, dict):
        raise TypeError(f"expected an object, got {type(document).__name__}")
    items = document["items"]
    if not isinstance(items, list):
        raise TypeError(f"expected a list of {section.resource}, got {type(items).__name__}")
    if len(items) > MAX_LISTED_ITEMS:
        raise ValueError(f"{len(items)} {section.resource}, more than one read holds ({MAX_LISTED_ITEMS})")
    return SavedListing(
        items=tuple(_item_from(item, section) for item in items),
        last_success=optional_float(document["last_success"]),
    )


def _item_from(document: Any, section: Section[T]) -> T:
    if not isinstance(document, dict):
        raise TypeError(f"expected an object, got {type(document).__name__}")
    return section.kind(
        **{
            name: read(document.get(name) if name in section.later else document[name])
            for name, read in section.readers.items()
        }
    )


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    return list(value) if isinstance(value, tuple) else value
