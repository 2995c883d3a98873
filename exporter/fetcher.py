"""Budget-gated API calls: wait for a credit, send one request, count its outcome, feed the ledger.

Every request the exporter sends goes through here, so the budget guarantee holds by construction: a request
is sent only after `CreditBudget.try_spend()` said yes. What an answer teaches is recorded here too — the API's
view of the key's credits (`X-RateLimit-*`), a 429 or a refused key (pause everything), and the outcome counted
per endpoint for `integrateio_api_requests_total` and `integrateio_api_up`. The poller above decides *what* to
ask; this decides *when*, and keeps the books.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import TypeVar

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
)
from exporter.client import Timeout as ApiTimeout
from exporter.model import InvalidPayload, Job, parse_job, parse_job_list
from exporter.planner import PAGE_SIZE

log = logging.getLogger(__name__)

T = TypeVar("T")

# Outcomes that say the API could not be reached or would not serve us: integrateio_api_up goes to 0.
DOWN_ERRORS = (Unauthorized, Forbidden, ConnectionFailed, ApiTimeout, ServerError)


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
        *,
        on_wait: Callable[[], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self._budget = budget
        self._cache = cache
        self._interrupt = interrupt
        self._on_wait = on_wait
        self._clock = clock
        self._last_rate_check = float("-inf")

    def get_job(self, job_id: int) -> Job:
        return self._call("get_job", partial(self.client.get_job, job_id), _job)

    def pages(self, **params: str | int) -> Iterator[list[Job]]:
        """The pages of `GET /jobs` (newest first, 100 a page), each one credit, read as the caller goes."""
        query: dict[str, str | int] = {"limit": PAGE_SIZE, "sort": "created", "direction": "desc", **params}
        jobs, next_url = self._call("list_jobs", partial(self.client.list_jobs, **query), _page)
        yield jobs
        while next_url is not None:
            jobs, next_url = self._call("list_jobs", partial(self.client.list_jobs_page, next_url), _page)
            yield jobs

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
        self._cache.record_request("rate_limit_status", "success")
        self._budget.observe_api(answer.rate_limit, answer.rate_limit_remaining)

    def _call(self, endpoint: str, request: Callable[[], ApiAnswer], parse: Callable[[ApiAnswer], T]) -> T:
        """Wait for a credit, send one request, count its outcome, feed the budget; raise ApiError on failure."""
        self._acquire()
        try:
            answer = request()
        except ApiError as error:
            self._after_error(endpoint, error)
            raise
        except BaseException:
            self._budget.record_accepted()  # not a refusal: never leave a probe hanging and the poller stuck
            raise
        self._budget.observe_api(answer.rate_limit, answer.rate_limit_remaining)
        self._budget.record_accepted()
        try:
            value = parse(answer)
        except InvalidPayload as error:
            self._cache.record_request(endpoint, InvalidResponse.outcome)
            self._cache.update_exporter(api_up=True)
            raise InvalidResponse(str(error)) from None
        self._cache.record_request(endpoint, "success")
        self._cache.update_exporter(api_up=True)
        return value

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

    def _acquire(self) -> None:
        """Block until the budget allows one request; raise Stopping on stop() or reload()."""
        while not self._budget.try_spend():
            if self._budget.held_by_api():
                self.refresh_rate_limit_status()
            self._on_wait()
            if self._interrupt.wait(min(max(self._budget.wait_seconds(), 0.01), 1.0)):
                raise Stopping
            self._on_wait()


def _job(answer: ApiAnswer) -> Job:
    return parse_job(answer.body)


def _page(answer: ApiAnswer) -> tuple[list[Job], str | None]:
    return parse_job_list(answer.body), answer.next_url
