"""Budget-gated API calls: wait for a credit, send one request, count its outcome, feed the ledger.

Every request the exporter sends goes through here, so the budget guarantee holds by construction: a request
is sent only after `CreditBudget.try_spend()` said yes. What an answer teaches is recorded here too — the API's
view of the key's credits (`X-RateLimit-*`), a 429 or a refused key (pause everything), and the outcome counted
per endpoint for `integrateio_api_requests_total` and `integrateio_api_up`. The poller above decides *what* to
ask; this decides *when*, and keeps the books.

This is also the request boundary: whatever escapes a request that the client did not turn into an `ApiError`
(a bug, a library raising outside its documented errors, such as requests' `UnicodeEncodeError` for a key it
cannot encode) becomes an `Unexpected` error here, counted as `unexpected_error`, logged on one line without the
key, and the poller goes on as after any failed request.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qsl, urlsplit

from exporter.budget import CreditBudget
from exporter.cache import JobCache
from exporter.client import (
    ApiAnswer,
    ApiClient,
    ApiError,
    ConnectionFailed,
    Forbidden,
    InvalidResponse,
    RateLimited,
    ServerError,
    Unauthorized,
    Unexpected,
)
from exporter.client import Timeout as ApiTimeout
from exporter.list_items import ListItems
from exporter.model import InvalidPayload, Job, parse_job, parse_job_list
from exporter.planner import PAGE_SIZE

log = logging.getLogger(__name__)

T = TypeVar("T")

# Outcomes that say the API could not be reached or would not serve us: integrateio_api_up goes to 0.
DOWN_ERRORS = (Unauthorized, Forbidden, ConnectionFailed, ApiTimeout, ServerError)
# How long, as a share of the budget's window, a cycle waits to read its lists together (`Fetcher.gather`).
GATHER_PATIENCE = 0.2
LINK_REFUSED = (
    "link_refused"  # a list page answered, but its next-page link leaves the API root: not followed
)


class Stopping(Exception):
    """Raised while waiting for a credit when the poller is asked to stop or reload."""


class Fetcher:
    """Sends the poller's requests one credit at a time; `client` is swapped on reload."""

    def __init__(
        self,
        client: ApiClient,
        budget: CreditBudget,
        cache: JobCache,
        interrupt: threading.Event,
        list_items: ListItems,
        *,
        on_wait: Callable[[], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self._budget = budget
        self._cache = cache
        self._interrupt = interrupt
        self._list_items = list_items
        self._on_wait = on_wait
        self._clock = clock
        self._last_rate_check = float("-inf")
        self._told: set[str] = set()  # what was already logged at warning level: said once, then at debug

    @property
    def pace(self) -> float:
        """Credits per second the budget allows the exporter on average."""
        return self._budget.limit / self._budget.window_seconds

    def get_job(self, job_id: int) -> Job:
        return self._call("get_job", partial(self.client.get_job, job_id), _job)

    def pages(self, **params: str | int) -> Iterator[list[Job]]:
        """The pages of `GET /jobs` (newest first, 100 a page), each one credit, read as the caller goes.

        Paging follows the answers' next-page links, which the client has already checked and put on our
        `base_url`. It ends at the last page, at a link the client refused (counted as `link_refused`), and at a
        page already read in this run: a page that links to itself, or two that link to each other, would
        otherwise be read again and again, a credit each.
        """
        query: dict[str, str | int] = {"limit": PAGE_SIZE, "sort": "created", "direction": "desc", **params}
        return self._pages("list_jobs", partial(self.client.list_jobs, **query), self._observed_jobs)

    def _observed_jobs(self, answer: ApiAnswer) -> list[Job]:
        """A page of jobs, parsed; `list_items` learns from it whether the API's lists carry outputs."""
        jobs = _jobs(answer)
        self._list_items.observe_page(jobs)
        return jobs

    def listed(self, resource: str, parse: Callable[[Any], T]) -> Iterator[T]:
        """The pages of `GET /schedules` or `GET /clusters` (`resource`; all statuses, 100 a page, oldest
        first so that a resource created while we page shows up on the last page rather than shifting every
        page), each one credit and parsed by `parse`, paged as `pages` is; counted as `list_{resource}`."""
        query: dict[str, str | int] = {
            "limit": PAGE_SIZE,
            "sort": "created",
            "direction": "asc",
            "status": "all",
        }
        request = partial(self.client.list_resource, resource, **query)
        return self._pages(f"list_{resource}", request, lambda answer: parse(answer.body))

    def _pages(
        self, endpoint: str, first: Callable[[], ApiAnswer], parse: Callable[[ApiAnswer], T]
    ) -> Iterator[T]:
        page = self._page(endpoint, first, parse)
        read = {_page_key(page.url)}
        yield page.items
        while page.next_url is not None:
            if _page_key(page.next_url) in read:
                self._say_once(
                    f"loop:{endpoint}",
                    f"{endpoint}: a next-page link names a page already read; paging stops there",
                )
                return
            page = self._page(endpoint, partial(self.client.list_jobs_page, page.next_url), parse)
            read.add(_page_key(page.url))
            yield page.items

    def refresh_rate_limit_status(self) -> None:
        """Read the key's real remaining credits: free, so done at start, after a 429 and while held."""
        now = self._clock()
        if now - self._last_rate_check < self._budget.recheck_seconds:
            return
        self._last_rate_check = now
        try:
            answer = self.client.rate_limit_status()
        except ApiError as error:
            self._cache.record_request("rate_limit_status", error.outcome)
            return
        except Exception as error:  # the request boundary: see the module's docstring
            self._unexpected("rate_limit_status", error)
            return
        self._cache.record_request("rate_limit_status", "success")
        self._budget.observe_api(answer.rate_limit, answer.rate_limit_remaining)

    def _call(self, endpoint: str, request: Callable[[], ApiAnswer], parse: Callable[[ApiAnswer], T]) -> T:
        """Wait for a credit, send one request, count its outcome, feed the budget; raise ApiError on failure."""
        value = self._parse(endpoint, self._send(endpoint, request), parse)
        self._answered(endpoint, "success")
        return value

    def _page(
        self, endpoint: str, request: Callable[[], ApiAnswer], parse: Callable[[ApiAnswer], T]
    ) -> _Page[T]:
        """One list page, counted `link_refused` when it names a next page we will not follow."""
        answer = self._send(endpoint, request)
        items = self._parse(endpoint, answer, parse)
        if answer.link_refused:
            self._answered(endpoint, LINK_REFUSED)
            self._say_once(
                f"{LINK_REFUSED}:{endpoint}",
                f"{endpoint}: a next-page link leaves the API root; not followed (the key goes nowhere else), "
                f"counted as {LINK_REFUSED}",
            )
            return _Page(items, answer.url, None)
        self._answered(endpoint, "success")
        return _Page(items, answer.url, answer.next_url)

    def _send(self, endpoint: str, request: Callable[[], ApiAnswer]) -> ApiAnswer:
        """Wait for a credit and send one request; a failure is counted here and raised as an ApiError."""
        self._acquire()
        try:
            answer = request()
        except ApiError as error:
            self._after_error(endpoint, error)
            raise
        except Exception as error:  # the request boundary: see the module's docstring
            self._budget.record_accepted()  # not a refusal: never leave a probe hanging and the poller stuck
            raise self._unexpected(endpoint, error) from None
        self._budget.observe_api(answer.rate_limit, answer.rate_limit_remaining)
        self._budget.record_accepted()
        return answer

    def _parse(self, endpoint: str, answer: ApiAnswer, parse: Callable[[ApiAnswer], T]) -> T:
        try:
            return parse(answer)
        except InvalidPayload as error:
            self._answered(endpoint, InvalidResponse.outcome)
            raise InvalidResponse(str(error)) from None
        except Exception as error:  # a bug in parsing must cost this answer, not the poller
            raise self._unexpected(endpoint, error) from None

    def _answered(self, endpoint: str, outcome: str) -> None:
        self._cache.record_request(endpoint, outcome)
        self._cache.update_exporter(api_up=True)

    def _unexpected(self, endpoint: str, error: Exception) -> Unexpected:
        """Count an exception nobody foresaw, log it on one line without the key, and return it as an ApiError."""
        self._cache.record_request(endpoint, Unexpected.outcome)
        frames = traceback.extract_tb(error.__traceback__)
        where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
        detail = " ".join(self.client.redact(str(error)).split())[:200]
        message = f"{type(error).__name__}{where}: {detail}"
        self._say_once(
            f"{Unexpected.outcome}:{type(error).__name__}",
            f"{endpoint}: request failed unexpectedly ({message}); counted as {Unexpected.outcome}, polling goes on",
            level=logging.ERROR,
        )
        return Unexpected(message)

    def _say_once(self, topic: str, message: str, level: int = logging.WARNING) -> None:
        """Log `message` at `level` the first time `topic` comes up, at debug afterwards: once is news, every
        cycle is noise; the counters carry the repetitions."""
        log.log(level if topic not in self._told else logging.DEBUG, message)
        self._told.add(topic)

    def _after_error(self, endpoint: str, error: ApiError) -> None:
        self._budget.observe_api(error.rate_limit, error.rate_limit_remaining)
        self._cache.record_request(endpoint, error.outcome)
        self._cache.update_exporter(api_up=not isinstance(error, DOWN_ERRORS))
        if isinstance(error, RateLimited):
            pause = self._budget.record_refused(error.retry_after)
            log.warning("API answered 429 (rate limited): pausing all requests for %.1fs", pause)
            self.refresh_rate_limit_status()
        elif isinstance(error, Unauthorized):
            pause = self._budget.record_refused()
            log.error(
                "API refused the key (401): check api.api_key_file / INTEGRATEIO_API_KEY; "
                "pausing all requests for %.1fs",
                pause,
            )
        else:
            self._budget.record_accepted()

    def gather(self, credits: int) -> None:
        """Wait, at most `GATHER_PATIENCE` of the window, until `credits` requests (at most the budget's burst) can go back
        to back; raise Stopping on stop() or reload().

        A cycle's status lists are one picture of the account only when they are read together. Read a credit
        at a time while the key trickles back (a neighbour took all but the reserve), they would be minutes
        apart: a job moving from one list to another in between is on neither, costs a confirming GET, and those
        GETs stretch the next cycle further. Waiting for the credits first costs no freshness — the lists could
        not have been read sooner — and the patience keeps a key that never recovers that far from stopping
        the reads."""
        credits = max(1, min(credits, self._budget.burst_credits))
        deadline = self._clock() + GATHER_PATIENCE * self._budget.window_seconds
        while self._budget.wait_seconds(credits) > 0.0 and self._clock() < deadline:
            self._pause(credits, deadline - self._clock())

    def _acquire(self) -> None:
        """Block until the budget allows one request; raise Stopping on stop() or reload()."""
        while not self._budget.try_spend():
            self._pause(1, 1.0)

    def _pause(self, credits: int, longest: float) -> None:
        """One wait for `credits`, at most `longest` (and 1 s, to stay responsive), reading the key's real
        credits while the reserve holds us; the poller hears that it is alive but waiting."""
        if self._budget.held_by_api(credits):
            self.refresh_rate_limit_status()
        self._on_wait()
        if self._interrupt.wait(min(max(self._budget.wait_seconds(credits), 0.01), 1.0, max(longest, 0.01))):
            raise Stopping
        self._on_wait()


@dataclass(frozen=True)
class _Page(Generic[T]):
    items: T
    url: str
    next_url: str | None


def _job(answer: ApiAnswer) -> Job:
    return parse_job(answer.body)


def _jobs(answer: ApiAnswer) -> list[Job]:
    return parse_job_list(answer.body)


def _page_key(url: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """A page's identity: its path and its parameters in any order (the host is always ours)."""
    parts = urlsplit(url)
    return parts.path, tuple(sorted(parse_qsl(parts.query, keep_blank_values=True)))
