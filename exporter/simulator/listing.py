"""GET /jobs query parameters and RFC 5988 pagination links.

Kept apart from the HTTP layer so the parameter rules (what is a 400, what is clamped) read in one place.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlencode

from exporter.simulator.statuses import STATUSES
from exporter.simulator.timestamps import parse_timestamp

DEFAULT_LIMIT: Final = 20
MAX_LIMIT: Final = 100
_DIGITS = re.compile(r"\A[0-9]+\Z")
# What a GET /jobs item carries. The documentation (xplenty/xplenty-api-doc-v2, sections/list-jobs.md) lists
# `outputs` among "the details returned for each job" (and no `package` object), but no recorded real list answer
# confirms `outputs` is there: "lean" leaves it out, as a list endpoint that skips a per-item join would; "nulls"
# sends it and the other fields a list may not fill (progress, runtime, package) as null. GET /jobs/{id} stays
# full in every mode.
LIST_ITEM_MODES: Final = ("full", "lean", "nulls")
_LEAN_FIELDS: Final = ("outputs", "outputs_count")
_NULL_FIELDS: Final = ("outputs", "outputs_count", "progress", "runtime_in_seconds", "package")


class BadQuery(ValueError):
    """A parameter value the API rejects with 400; the message is what the client sees."""


@dataclass(frozen=True)
class ListQuery:
    """A validated GET /jobs query. ``status`` ``None`` means all statuses."""

    status: str | None = None
    sort: str = "created"
    descending: bool = True
    since: int | None = None
    package_id: int | None = None
    offset: int = 0
    limit: int = DEFAULT_LIMIT


def _natural(name: str, value: str, *, minimum: int) -> int:
    if not _DIGITS.match(value) or int(value) < minimum:
        raise BadQuery(f"Invalid value for {name}: {value!r}")
    return int(value)


def parse_list_query(params: Mapping[str, str], statuses: Collection[str] = STATUSES) -> ListQuery:
    """Validate the documented parameters; unknown parameters are ignored like the real API does.

    ``statuses`` are those the list filters by: the job statuses, or a schedule's or a cluster's.
    ``limit`` above 100 is clamped rather than refused: that is how the API treats it, and a client that asks
    for 500 must be able to notice it got 100 (by the ``next`` link).
    """
    status = params.get("status", "all")
    if status != "all" and status not in statuses:
        raise BadQuery(f"Invalid value for status: {status!r}")
    sort = params.get("sort", "created")
    if sort not in ("created", "updated"):
        raise BadQuery(f"Invalid value for sort: {sort!r}")
    direction = params.get("direction", "desc")
    if direction not in ("asc", "desc"):
        raise BadQuery(f"Invalid value for direction: {direction!r}")
    since = None
    if "since" in params:
        try:
            since = parse_timestamp(params["since"])
        except ValueError:
            raise BadQuery(f"Invalid value for since: {params['since']!r}") from None
    package_id = _natural("package_id", params["package_id"], minimum=0) if "package_id" in params else None
    offset = _natural("offset", params["offset"], minimum=0) if "offset" in params else 0
    limit = _natural("limit", params["limit"], minimum=1) if "limit" in params else DEFAULT_LIMIT
    return ListQuery(
        status=None if status == "all" else status,
        sort=sort,
        descending=direction == "desc",
        since=since,
        package_id=package_id,
        offset=offset,
        limit=min(limit, MAX_LIMIT),
    )


def list_item(job: dict[str, Any], mode: str) -> dict[str, Any]:
    """One job as a GET /jobs item in `mode` (one of `LIST_ITEM_MODES`)."""
    if mode == "lean":
        return {key: value for key, value in job.items() if key not in _LEAN_FIELDS}
    if mode == "nulls":
        return {key: None if key in _NULL_FIELDS else value for key, value in job.items()}
    return job


def link_header(page_url: str, params: Mapping[str, str], query: ListQuery, total: int) -> str | None:
    """``<url>; rel="next", <url>; rel="prev"`` for the pages around this one, or ``None`` if there are none.

    ``page_url`` is the absolute URL without query string; other parameters are carried over in their order
    and ``offset``/``limit`` (the clamped limit) are set last.
    """

    def url_at(offset: int) -> str:
        kept = [(k, v) for k, v in params.items() if k not in ("offset", "limit")]
        return f"{page_url}?{urlencode([*kept, ('offset', str(offset)), ('limit', str(query.limit))])}"

    links = []
    if query.offset + query.limit < total:
        links.append(f'<{url_at(query.offset + query.limit)}>; rel="next"')
    if query.offset > 0:
        links.append(f'<{url_at(max(0, query.offset - query.limit))}>; rel="prev"')
    return ", ".join(links) or None
