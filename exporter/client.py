"""The Integrate.io API client: one requests.Session, typed errors, and nothing about Prometheus.

Every call returns an `ApiAnswer` or raises an `ApiError` subclass whose `outcome` is a short, bounded label
(`not_found`, `rate_limited`, `timeout`, ...) — the poller counts by it and never has to look at exceptions from
requests or urllib3. Messages never carry the API key: requests' own exceptions can include URLs and headers,
so they are not passed on, only their class.

No retries happen here. Whether and when to try again is the credit budget's decision, not the HTTP adapter's:
urllib3's Retry would honour a Retry-After of hours and spend credits the ledger does not know about.

Whatever the network sends is bounded before it is used: one deadline on the whole request (`deadline.py`), a
size cap and a nesting cap on the body, rate-limit numbers of at most a dozen ASCII digits, and a next-page link
followed only below our own API root, on our own `base_url` (the key is never sent anywhere else).
"""

from __future__ import annotations

import base64
import json
import math
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

import requests
import urllib3

from exporter import __version__
from exporter.config import ApiConfig
from exporter.deadline import Deadline, WatchedAdapter, deadline
from exporter.retry_after import parse_retry_after

ACCEPT = "application/vnd.xplenty+json; version=2"
USER_AGENT = f"integrateio-exporter/{__version__}"
DEADLINE_MARGIN = 0.5  # seconds past timeout_seconds before a request still in progress is cut
MAX_JSON_DEPTH = 32  # a job list is 4 deep; 100,000 brackets would exhaust the parser's recursion
MAX_COUNT = 10**12  # rate-limit numbers: a key's credits are thousands, never a trillion
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_INNERMOST = re.compile(r"\[\]|\{\}")


@dataclass(frozen=True)
class ApiAnswer:
    """A successful answer: the parsed JSON body, and what the API said about the key's credits.

    `url` is where the answer came from; `next_url` the next page on our own API root, if the answer named one
    that stays below it (rewritten onto `base_url` when a proxy named another origin); `link_refused` says the
    answer named a next page outside the API root, which is not followed.
    """

    body: Any
    rate_limit: int | None
    rate_limit_remaining: int | None
    next_url: str | None = None
    url: str = ""
    link_refused: bool = False


class ApiError(Exception):
    """A call that did not produce a usable answer. `outcome` is the metric label; `charged` says if it cost."""

    outcome = "error"
    charged = True

    def __init__(
        self, message: str, *, rate_limit: int | None = None, rate_limit_remaining: int | None = None
    ):
        super().__init__(message)
        self.rate_limit = rate_limit
        self.rate_limit_remaining = rate_limit_remaining


class NotFound(ApiError):
    outcome = "not_found"


class Unauthorized(ApiError):
    """401: the key is wrong. Retrying soon cannot help, so the poller slows right down."""

    outcome = "unauthorized"
    charged = False


class Forbidden(ApiError):
    outcome = "forbidden"


class RateLimited(ApiError):
    """429: the key's credits are spent. Carries the server's Retry-After in seconds, if it sent a usable one."""

    outcome = "rate_limited"
    charged = False

    def __init__(self, message: str, retry_after: float | None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ClientError(ApiError):
    outcome = "client_error"


class ServerError(ApiError):
    outcome = "server_error"


class Timeout(ApiError):
    outcome = "timeout"
    charged = False


class ConnectionFailed(ApiError):
    outcome = "connection_error"
    charged = False


class InvalidResponse(ApiError):
    """200 with a body that is not the JSON we asked for: not JSON, too large or too deep, or a redirect we
    refused."""

    outcome = "invalid_response"


class Unexpected(ApiError):
    """Something nobody foresaw escaped a request (a bug, or a library raising outside its documented errors):
    the fetcher turns it into this, so the poller counts and retries it like any failed request."""

    outcome = "unexpected_error"


class ApiClient:
    """Talks to one account's API root with one key; thread-safe for concurrent GETs."""

    def __init__(self, config: ApiConfig, session: requests.Session | None = None) -> None:
        self._config = config
        self._root = config.api_root
        self._session = session or requests.Session()
        for prefix in ("http://", "https://"):
            self._session.mount(prefix, WatchedAdapter())
        self._session.auth = (config.api_key, "")
        self._session.headers.update({"Accept": ACCEPT, "User-Agent": USER_AGENT})
        # Redirects are refused outright: requests strips Authorization on a cross-host redirect, but a
        # same-host redirect to a plain-http URL, or any redirect's extra credit, is not worth following.
        self._session.verify = config.ca_file or True
        self._timeout = (min(config.timeout_seconds, 5.0), config.timeout_seconds)
        self._deadline_seconds = config.timeout_seconds + DEADLINE_MARGIN
        root = urlsplit(self._root)
        self._origin = (root.scheme, root.netloc)
        self._root_path = root.path
        self._base_path = urlsplit(config.base_url.rstrip("/")).path
        self._account_path = f"/{config.account_id}/api/"

    def close(self) -> None:
        self._session.close()

    def get_job(self, job_id: int) -> ApiAnswer:
        return self._get(f"{self._root}/jobs/{job_id}")

    def list_jobs(self, **params: str | int) -> ApiAnswer:
        """One page of `GET /jobs`; `next_url` is the Link rel="next" page, if any."""
        return self._get(f"{self._root}/jobs", params=params)

    def list_resource(self, resource: str, **params: str | int) -> ApiAnswer:
        """One page of `GET /schedules` or `GET /clusters` (`resource`), paged like the job list."""
        return self._get(f"{self._root}/{resource}", params=params)

    def list_jobs_page(self, url: str) -> ApiAnswer:
        """A page named by a Link header, as `ApiAnswer.next_url` gave it: already checked and on our root."""
        return self._get(url)

    def redact(self, text: str) -> str:
        """`text` without the key, plain or as the Basic credential requests builds from it, for a log line."""
        credential = base64.b64encode(f"{self._config.api_key}:".encode("latin-1", "replace")).decode()
        return text.replace(self._config.api_key, "<api key>").replace(credential, "<api key>")

    def rate_limit_status(self) -> ApiAnswer:
        """`GET /rate_limit_status`: documented as free, so it is safe to ask when credits run low."""
        answer = self._get(f"{self._root}/rate_limit_status")
        limits = answer.body.get("limits") if isinstance(answer.body, dict) else None
        if not isinstance(limits, dict):
            raise InvalidResponse("rate_limit_status without a limits object")
        return ApiAnswer(
            body=answer.body,
            rate_limit=_count(limits.get("limit")),
            rate_limit_remaining=_count(limits.get("remaining")),
        )

    def _get(self, url: str, params: dict[str, str | int] | None = None) -> ApiAnswer:
        """One request under one deadline: whatever the server does byte by byte, it ends by then, as a timeout."""
        with deadline(self._deadline_seconds) as limit:
            try:
                answer = self._exchange(url, params, limit)
            except Exception:
                if limit.passed:
                    raise self._too_late() from None
                raise
            if limit.passed:
                raise self._too_late()
            return answer

    def _too_late(self) -> Timeout:
        return Timeout(f"request not complete within {self._deadline_seconds:g} s")

    def _exchange(self, url: str, params: dict[str, str | int] | None, limit: Deadline) -> ApiAnswer:
        try:
            response = self._session.get(
                url,
                params=params,
                timeout=self._timeout,
                stream=True,
                allow_redirects=False,
                verify=self._session.verify,
            )
        except requests.exceptions.Timeout:
            raise Timeout(f"no answer within {self._config.timeout_seconds:g} s") from None
        except requests.exceptions.SSLError:
            raise ConnectionFailed("TLS handshake failed (certificate not trusted?)") from None
        except requests.exceptions.RequestException as error:
            raise ConnectionFailed(f"cannot reach the API ({type(error).__name__})") from None
        with response:
            return self._interpret(response, limit)

    def _interpret(self, response: requests.Response, limit: Deadline) -> ApiAnswer:
        rate_limit = _count(response.headers.get("X-RateLimit-Limit"))
        remaining = _count(response.headers.get("X-RateLimit-Remaining"))
        status = response.status_code
        seen = {"rate_limit": rate_limit, "rate_limit_remaining": remaining}
        if status == 200:
            raw = self._read_body(response, seen, limit)
            link = response.links.get("next", {}).get("url")
            next_url = self._own_page(urljoin(response.url, link)) if link else None
            return ApiAnswer(
                body=_parse_json(raw, seen),
                rate_limit=rate_limit,
                rate_limit_remaining=remaining,
                next_url=next_url,
                url=response.url,
                link_refused=link is not None and next_url is None,
            )
        reason = f"HTTP {status}"
        if status == 401:
            raise Unauthorized(f"{reason}: the API key was refused", **seen)
        if status == 403:
            raise Forbidden(f"{reason}: the key may not read this account", **seen)
        if status == 404:
            raise NotFound(f"{reason}: not found", **seen)
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("Retry-After"), now=time.time())
            raise RateLimited(f"{reason}: rate limited", retry_after, **seen)
        if 300 <= status < 400:
            target = urlsplit(response.headers.get("Location", "")).netloc or "the same host"
            raise InvalidResponse(f"{reason}: redirect to {target} not followed", **seen)
        if status >= 500:
            raise ServerError(reason, **seen)
        raise ClientError(reason, **seen)

    def _own_page(self, link: str) -> str | None:
        """A next-page link on our own `base_url`, or None when its path leaves `/{account_id}/api/`.

        Behind a corporate proxy or an API gateway the API may name its pages under another scheme or host
        than the one we were configured with; the path tells whether the link is still the API. It is followed
        on `base_url`, never where it points, so the key goes nowhere else. Dot segments (plain or
        percent-encoded) are refused outright rather than resolved: no API page needs them.
        """
        try:
            parts = urlsplit(link)
        except ValueError:  # e.g. an unbalanced IPv6 bracket in the host
            return None
        segments = unquote(parts.path).split("/")
        if parts.scheme.lower() not in ("http", "https") or "." in segments or ".." in segments:
            return None
        for prefix in (self._base_path + self._account_path, self._account_path):
            if parts.path.startswith(prefix):
                rest = parts.path[len(prefix) :]
                return urlunsplit((*self._origin, f"{self._root_path}/{rest}", parts.query, ""))
        return None

    def _read_body(self, response: requests.Response, seen: dict[str, int | None], limit: Deadline) -> bytes:
        """Read the body with a size cap, within the request's deadline.

        The read timeout only bounds the wait for the *next* byte; the watchdog cuts a body that trickles past
        the deadline, and the loop checks it too, for the requests the watchdog cannot reach (a SOCKS proxy).
        """
        cap = self._config.max_response_bytes
        chunks: list[bytes] = []
        size = 0
        try:
            while chunk := response.raw.read1(65536, decode_content=True):
                size += len(chunk)
                if size > cap:
                    raise InvalidResponse(f"body larger than {cap} bytes", **seen)
                if limit.passed:
                    raise self._too_late()
                chunks.append(chunk)
        except (urllib3.exceptions.HTTPError, OSError) as error:
            kind = (
                Timeout
                if isinstance(error, urllib3.exceptions.TimeoutError | TimeoutError)
                else ConnectionFailed
            )
            raise kind(f"connection lost while reading the body ({type(error).__name__})", **seen) from None
        return b"".join(chunks)


def _parse_json(raw: bytes, seen: dict[str, int | None]) -> Any:
    """The body as JSON, refusing nesting deeper than `MAX_JSON_DEPTH` before the parser recurses into it."""
    try:
        text = raw.decode(json.detect_encoding(raw), "surrogatepass")
    except UnicodeDecodeError:
        raise InvalidResponse("body is not JSON", **seen) from None
    if _too_deep(text):
        raise InvalidResponse(f"body is not JSON nested at most {MAX_JSON_DEPTH} deep", **seen)
    try:
        return json.loads(text)
    except ValueError:
        raise InvalidResponse("body is not JSON", **seen) from None


def _too_deep(text: str) -> bool:
    """Whether the brackets outside strings nest deeper than `MAX_JSON_DEPTH` (or do not pair up).

    Each pass removes the innermost pairs, so `MAX_JSON_DEPTH` passes empty any body nested no deeper; every
    pass is a C-speed regex over the brackets alone, so a 10 MB body costs milliseconds, not a Python loop.
    """
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    for _ in range(MAX_JSON_DEPTH):
        if not brackets:
            return False
        brackets = _INNERMOST.sub("", brackets)
    return bool(brackets)


def _count(value: Any) -> int | None:
    """A rate-limit number from a header or a body, or None when absent or garbled.

    Bounded and ASCII only: `"²".isdigit()` is true and `int("²")` raises, and a 400-digit number parses but
    overflows the first float it meets (the budget's arithmetic, the exposition).
    """
    if isinstance(value, str):
        text = value.strip()
        value = int(text) if text.isascii() and text.isdigit() and len(text) <= 12 else None
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 <= value < MAX_COUNT else None
