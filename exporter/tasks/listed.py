"""The part schedules and clusters share: a resource read whole from its list pages, on an interval of its own.

`GET /schedules` and `GET /clusters` cost a credit a page of 100, whatever changed, so each is read every
`interval_seconds` of its section (in the first refresh cycle due after that), not every cycle; an account's
schedules and clusters are few, so that is one or two credits per read. When a resource has so many pages that
reading it that often would take more than `planner.LISTED_SHARE` of the budget, its interval stretches.

A read that fails (5xx, timeout, a body that is not a list) keeps every item's last good values and is counted
in `integrateio_listing_errors_total{resource, error}` by the fetcher's error class; an item without a usable id
is skipped and counted `invalid_item`; an item with a field the API should always send usably (null, garbage) is
counted `invalid_field` and keeps that field's previous value. Items missing from a complete read were deleted
and leave /metrics.

With a state file, a restart serves the items of the last good read, and when it was (`restore`), until the
first read of the new process replaces them (`exporter.pipelinestate`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from types import MappingProxyType
from typing import Any, Generic, Protocol, Self, TypeVar

from exporter.budget import CreditBudget
from exporter.cache import ExporterFields, JobCache, ListingHealth
from exporter.client import ApiError
from exporter.fetcher import Fetcher
from exporter.paging import read_pages
from exporter.pipelines import Listed, parse_list
from exporter.planner import PAGE_SIZE, listed_interval
from exporter.tasks import Cost, Cycle

log = logging.getLogger(__name__)

MAX_LISTED_PAGES = 50  # 5,000 schedules or clusters in one account is far beyond any real one
MAX_LISTED_ITEMS = MAX_LISTED_PAGES * PAGE_SIZE  # the most one read holds: also the state file's cap
DUE_SLACK_SECONDS = 1.0  # a cycle that starts a moment before the read is due still reads it


class Item(Protocol):
    @property
    def id(self) -> int: ...

    @property
    def unusable(self) -> tuple[str, ...]: ...

    def filled_from(self, previous: Self) -> Self: ...


ItemT = TypeVar("ItemT", bound=Item)


class Section(Protocol):
    @property
    def interval_seconds(self) -> float: ...


class ListedTask(Generic[ItemT]):
    """Reads one listed resource; subclasses name it, parse its items and publish them to the cache."""

    resource = ""  # the path below the API root, and the `resource` label: "schedules", "clusters"
    what = ""  # for parse errors: "schedules"

    def __init__(
        self,
        section: Section,
        fetch: Fetcher,
        cache: JobCache,
        budget: CreditBudget,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._section = section
        self._fetch = fetch
        self._cache = cache
        self._budget = budget
        self._clock = clock
        self._wall_clock = wall_clock
        self._items: dict[int, ItemT] = {}
        self._health = ListingHealth()
        self._pages = 1
        self._due = float("-inf")
        self._publish()

    @staticmethod
    def parse(payload: Any) -> ItemT:
        raise NotImplementedError

    def fields(self, items: tuple[ItemT, ...] | None) -> ExporterFields:
        """What to publish: the items under this resource's ExporterState field (None: the section is off)."""
        raise NotImplementedError

    def configure(self, section: Section) -> None:
        """A reload: new interval from now on; the last good values and the error counts stay."""
        self._section = section

    @property
    def interval(self) -> float:
        """The configured interval, or longer while reading every page that often would strain the budget."""
        return listed_interval(
            self._pages, self._section.interval_seconds, self._budget.limit, self._budget.window_seconds
        )

    def run(self, cycle: Cycle) -> None:
        now = self._clock()
        if now < self._due - DUE_SLACK_SECONDS:
            return
        self._due = now + self.interval
        read: dict[int, ItemT] = {}
        skipped = 0

        def take(page: Listed[ItemT]) -> bool:
            nonlocal skipped
            skipped += page.skipped
            read.update((item.id, item) for item in page.items)
            return False  # every page: an item on no page was deleted

        try:
            pages = read_pages(
                self._fetch.listed(self.resource, self._parse_page), take, max_pages=MAX_LISTED_PAGES
            )
        except ApiError as error:
            self._count(error.outcome)
            log.debug("%s: read failed (%s); last good values kept", self.resource, error.outcome)
            self._publish()
            return
        self._pages = max(1, pages)
        complete = pages < MAX_LISTED_PAGES
        items = {} if complete else dict(self._items)
        for item_id, item in read.items():
            previous = self._items.get(item_id)
            if item.unusable:
                self._count("invalid_field")
            items[item_id] = item if previous is None else item.filled_from(previous)
        if skipped:
            self._count("invalid_item", skipped)
        self._items = self.kept(items)
        self._health = replace(self._health, last_success=self._wall_clock())
        self._publish()

    def restore(self, items: tuple[ItemT, ...], last_success: float | None) -> None:
        """Serve what the state file kept, before the first API call: the items of the last good read, and when
        that was (not now: they were not just read). The first read, due at once, replaces them whole; one that
        fails keeps them, as it keeps any last good values."""
        self._items = {item.id: item for item in items}
        self._health = replace(self._health, last_success=last_success)
        self._publish()
        log.info("%s: %d restored from the state file", self.resource, len(items))

    def kept(self, items: dict[int, ItemT]) -> dict[int, ItemT]:
        """The items to keep showing; clusters drop those terminated long ago."""
        return items

    def next_cost(self, cycle: Cycle) -> Cost:
        return Cost(credits=self._pages, jobs=0, every_seconds=self.interval)

    def _parse_page(self, payload: Any) -> Listed[ItemT]:
        return parse_list(payload, self.parse, self.what)

    def _count(self, error: str, times: int = 1) -> None:
        errors = dict(self._health.errors)
        errors[error] = errors.get(error, 0) + times
        self._health = replace(self._health, errors=MappingProxyType(errors))

    def withdraw(self) -> None:
        """The section was turned off (reload): its series leave /metrics."""
        self._cache.publish_listing(self.resource, None, self.fields(None))

    def _publish(self) -> None:
        items = tuple(self._items[key] for key in sorted(self._items))
        self._cache.publish_listing(self.resource, self._health, self.fields(items))
