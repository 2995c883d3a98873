"""Injected faults: what can go wrong, which requests it hits, and how many times.

Faults act on well-formed requests only (right key, right Accept header): they model the service or the
network misbehaving, not the client being wrong. The newest matching fault wins, so a test can layer a
one-off fault over a standing one.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

NETWORK_KINDS: Final = frozenset({"reset", "reset_mid_body", "trickle", "trickle_head", "hang"})
"""Faults below HTTP: no status (or a truncated answer); never charged, no rate-limit headers."""

ENDPOINTS: Final = frozenset({"get_job", "list_jobs", "list_schedules", "list_clusters", "rate_limit_status"})
SHAPES: Final = ("list", "nulls", "null_outputs", "strings")
REDIRECT_CODES: Final = frozenset({301, 302, 303, 307, 308})


def _positive_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"expected a positive number, got {value!r}")
    return float(value)


def _positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"expected a positive integer, got {value!r}")
    return value


def _offset_seconds(value: Any) -> int:
    """Whole seconds, since that is all the API's timestamps carry; negative for a clock that runs behind."""
    if isinstance(value, bool) or not isinstance(value, int) or value == 0:
        raise ValueError(f"expected a non-zero whole number of seconds, got {value!r}")
    return value


def _optional_job_id(value: Any) -> int | None:
    return None if value is None else _positive_int(value)


def _status_code(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 599:
        raise ValueError(f"expected an HTTP status code, got {value!r}")
    return value


def _optional_str(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValueError(f"expected a string or None, got {value!r}")
    return value


def _required_str(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected a non-empty string, got {value!r}")
    return value


def _header_value(value: Any) -> str | None:
    """A header value the server can send as is: Latin-1 (HTTP's historical charset, so ``"²"`` is fine) and
    one line. None leaves the healthy value in place."""
    if value is None:
        return None
    if not isinstance(value, str) or "\r" in value or "\n" in value:
        raise ValueError(f"expected a one-line string or None, got {value!r}")
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"expected a Latin-1 header value, got {value!r}") from None
    return value


def _shape(value: Any) -> str:
    if value not in SHAPES:
        raise ValueError(f"expected one of {', '.join(SHAPES)}, got {value!r}")
    return str(value)


def _redirect_code(value: Any) -> int:
    if value not in REDIRECT_CODES:
        raise ValueError(f"expected a redirect status ({sorted(REDIRECT_CODES)}), got {value!r}")
    return int(value)


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected True or False, got {value!r}")
    return value


_MISSING: Final = object()
_Param = tuple[Callable[[Any], Any], Any]  # validator, default (_MISSING = required)

KINDS: Final[Mapping[str, Mapping[str, _Param]]] = {
    "reset": {},
    "reset_mid_body": {},
    "trickle": {"interval": (_positive_float, 1.0)},
    # The status line and headers one byte per interval (then the body): a read timeout never fires.
    "trickle_head": {"interval": (_positive_float, 1.0)},
    "hang": {},
    "status": {"code": (_status_code, 500), "message": (_optional_str, None), "body": (_optional_str, None)},
    "rate_limited": {"retry_after": (_optional_str, None)},
    "not_json": {},
    "wrong_shape": {"shape": (_shape, "list")},
    "oversized": {"size_bytes": (_positive_int, 20_000_000), "chunked": (_flag, False)},
    "redirect": {"location": (_required_str, _MISSING), "code": (_redirect_code, 302)},
    # The healthy answer with other X-RateLimit-* values ("²", 400 digits...).
    "rate_headers": {"limit": (_header_value, None), "remaining": (_header_value, None)},
    # A body of `depth` nested arrays: valid JSON that exhausts a recursive parser.
    "deep_json": {"depth": (_positive_int, 100_000)},
    # The healthy answer whose Link names this URL as the next page (itself, another host, another path).
    "link": {"url": (_required_str, _MISSING)},
    # The healthy answer with its Link under another origin (`https://gateway:8443`), as behind a proxy.
    "proxied_links": {"origin": (_required_str, _MISSING)},
    # The healthy answer dated by an API clock `offset_seconds` ahead (or behind, when negative): see `clock`.
    "clock": {"offset_seconds": (_offset_seconds, _MISSING)},
    # The healthy answer with `updated_at` set to `value` ("2999-01-01T00:00:00Z"), on every job or on `only_job`.
    "updated_at": {"value": (_required_str, _MISSING), "only_job": (_optional_job_id, None)},
}


def _validated(kind: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Fill defaults and check every parameter, so a misspelt fault fails at ``set_fault``, not mid-test."""
    if kind not in KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; expected one of {', '.join(sorted(KINDS))}")
    spec = KINDS[kind]
    unknown = set(params) - set(spec)
    if unknown:
        raise ValueError(f"fault {kind!r} takes no parameter(s) {', '.join(sorted(unknown))}")
    result: dict[str, Any] = {}
    for name, (check, default) in spec.items():
        if name in params:
            try:
                result[name] = check(params[name])
            except ValueError as exc:
                raise ValueError(f"fault {kind!r} parameter {name!r}: {exc}") from None
        elif default is _MISSING:
            raise ValueError(f"fault {kind!r} needs parameter {name!r}")
        else:
            result[name] = default
    return result


@dataclass(frozen=True)
class Fault:
    """One armed fault. ``job_id``/``endpoint`` ``None`` match everything."""

    id: int
    kind: str
    job_id: int | None
    endpoint: str | None
    params: Mapping[str, Any]

    @property
    def charged(self) -> bool:
        """Whether a request answered by this fault costs a credit: answers do, except 401, 429 and network."""
        if self.kind in NETWORK_KINDS or self.kind == "rate_limited":
            return False
        return not (self.kind == "status" and self.params["code"] == 401)

    def matches(self, endpoint: str, job_id: int | None) -> bool:
        """A job-specific fault hits GET /jobs/{that id} only; an endpoint-specific one that endpoint only."""
        if self.endpoint is not None and self.endpoint != endpoint:
            return False
        return self.job_id is None or (endpoint == "get_job" and job_id == self.job_id)


class FaultBook:
    """The armed faults and how often each may still fire. Thread-safe.

    Matching is two-phase (``peek`` then ``consume``) because whether a fault may fire can depend on the
    credit ledger; ``consume`` tells the caller if another request used up the last firing in between.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._faults: dict[int, Fault] = {}
        self._left: dict[int, int | None] = {}
        self._fired: dict[int, int] = {}

    def add(
        self,
        kind: str,
        *,
        job_id: int | None,
        endpoint: str | None,
        times: int | None,
        params: Mapping[str, Any],
    ) -> Fault:
        """Validate and arm a fault; ``times`` ``None`` means until cleared."""
        if endpoint is not None and endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r}; expected one of {', '.join(sorted(ENDPOINTS))}")
        if times is not None and times < 1:
            raise ValueError(f"times must be at least 1 (or None for unlimited), got {times}")
        fault = Fault(next(self._ids), kind, job_id, endpoint, _validated(kind, params))
        with self._lock:
            self._faults[fault.id] = fault
            self._left[fault.id] = times
            self._fired[fault.id] = 0
        return fault

    def peek(self, endpoint: str, job_id: int | None) -> Fault | None:
        """The newest armed fault matching this request, without using it up."""
        with self._lock:
            for fault in reversed(self._faults.values()):
                if fault.matches(endpoint, job_id):
                    return fault
            return None

    def consume(self, fault: Fault) -> bool:
        """Use up one firing; ``False`` if the fault was cleared or exhausted since ``peek``."""
        with self._lock:
            if fault.id not in self._faults:
                return False
            self._fired[fault.id] += 1
            left = self._left[fault.id]
            if left is not None:
                if left <= 1:
                    del self._faults[fault.id]
                else:
                    self._left[fault.id] = left - 1
            return True

    def fired(self, fault_id: int) -> int:
        """How many requests this fault has answered so far."""
        with self._lock:
            return self._fired.get(fault_id, 0)

    def active(self, fault_id: int) -> bool:
        """Whether the fault is still armed."""
        with self._lock:
            return fault_id in self._faults

    def remove(self, fault_id: int) -> None:
        """Disarm one fault (no error if it is already gone)."""
        with self._lock:
            self._faults.pop(fault_id, None)

    def clear(self) -> None:
        """Disarm every fault."""
        with self._lock:
            self._faults.clear()


class FaultHandle:
    """What ``set_fault`` returns: see whether and how often the fault fired, and disarm it."""

    def __init__(self, book: FaultBook, fault: Fault) -> None:
        self._book = book
        self.fault = fault

    @property
    def fired(self) -> int:
        """Requests answered by this fault so far."""
        return self._book.fired(self.fault.id)

    @property
    def active(self) -> bool:
        """``False`` once cleared or once ``times`` firings are used up."""
        return self._book.active(self.fault.id)

    def clear(self) -> None:
        """Disarm this fault only."""
        self._book.remove(self.fault.id)
