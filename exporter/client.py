"""The Integrate.io API client: one requests.Session, typed errors, and nothing about Prometheus.

Every call returns an `ApiAnswer` or raises an `ApiError` subclass whose `outcome` is a short, bounded label
(`not_found`, `rate_limited`, `timeout`, ...) — the poller counts by it and never has to look at exceptions from
requests or urllib3. Messages never carry the API key: requests' own exceptions can include URLs and headers,
so they are not passed on, only their class.

No retries happen here. Whether and when to try again is the credit budget's decision, not the HTTP adapter's:
urllib3's Retry would honour a Retry-After of hours and spend credits the ledger does not know about.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3

from exporter import __version__
from exporter.config import ApiConfig
from exporter.retry_after import parse_retry_after

ACCEPT = "application/vnd.xplenty+json; version=2"
USER_AGENT = f"integrateio-exporter/{__version__}"


@dataclass(frozen=True)
class ApiAnswer:
    """A successful answer: the parsed JSON body, and what the API said about the key's credits."""

    body: Any
    rate_limit: int | None
    rate_limit_remaining: int | None
    next_url: str | None = None


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
    """200 with a body that is not the JSON we asked for: not JSON, too large, or a redirect we refused."""

    outcome = "invalid_response"


class ApiClient:
    """Talks to one account's API root with one key; thread-safe for concurrent GETs."""

    def __init__(self, config: ApiConfig, session: requests.Session | None = None) -> None:
        self._config = config
        self._root = config.api_root
        self._session = session or requests.Session()
        self._session.auth = (config.api_key, "")
        self._session.headers.update({"Accept": ACCEPT, "User-Agent": USER_AGENT})
        # Redirects are refused outright: requests strips Authorization on a cross-host redirect, but a
        # same-host redirect to a plain-http URL, or any redirect's extra credit, is not worth following.
        self._session.verify = config.ca_file or True
        self._timeout = (min(config.timeout_seconds, 5.0), config.timeout_seconds)

    def close(self) -> None:
        self._session.close()

    def get_job(self, job_id: int) -> ApiAnswer:
        return self._get(f"{self._root}/jobs/{job_id}")

    def list_jobs(self, **params: str | int) -> ApiAnswer:
        """One page of `GET /jobs`; `next_url` is the Link rel="next" page, if any."""
        return self._get(f"{self._root}/jobs", params=params)

    def list_jobs_page(self, url: str) -> ApiAnswer:
        """A page named by a Link header; only URLs below our own API root are followed, to keep the key home."""
        if not url.startswith(self._root + "/"):
            raise InvalidResponse("Link header points outside the API root")
        return self._get(url)

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
            return self._interpret(response)

    def _interpret(self, response: requests.Response) -> ApiAnswer:
        limit = _count(response.headers.get("X-RateLimit-Limit"))
        remaining = _count(response.headers.get("X-RateLimit-Remaining"))
        status = response.status_code
        seen = {"rate_limit": limit, "rate_limit_remaining": remaining}
        if status == 200:
            body = self._read_json(response, seen)
            next_link = response.links.get("next", {}).get("url")
            return ApiAnswer(body=body, rate_limit=limit, rate_limit_remaining=remaining, next_url=next_link)
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

    def _read_json(self, response: requests.Response, seen: dict[str, int | None]) -> Any:
        """Read the body with a size cap and an overall deadline, then parse it.

        The read timeout only bounds the wait for the *next* byte, so a server trickling a byte a second would
        hold the poller forever; `read1` returns whatever arrived, letting the loop check a total deadline.
        """
        cap = self._config.max_response_bytes
        deadline = time.monotonic() + self._config.timeout_seconds
        chunks: list[bytes] = []
        size = 0
        try:
            while chunk := response.raw.read1(65536, decode_content=True):
                size += len(chunk)
                if size > cap:
                    raise InvalidResponse(f"body larger than {cap} bytes", **seen)
                if time.monotonic() > deadline:
                    raise Timeout(f"body not complete within {self._config.timeout_seconds:g} s", **seen)
                chunks.append(chunk)
        except (urllib3.exceptions.HTTPError, OSError) as error:
            kind = (
                Timeout
                if isinstance(error, urllib3.exceptions.TimeoutError | TimeoutError)
                else ConnectionFailed
            )
            raise kind(f"connection lost while reading the body ({type(error).__name__})", **seen) from None
        try:
            return json.loads(b"".join(chunks))
        except (ValueError, UnicodeDecodeError):
            raise InvalidResponse("body is not JSON", **seen) from None


def _count(value: Any) -> int | None:
    """A rate-limit number from a header or a body, or None when absent or garbled."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None
