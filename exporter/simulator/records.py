"""What the simulator saw: one record per HTTP request, for tests and benchmarks to assert on.

Records are written when the response is decided, before anything is sent, so a test can wait for a request
that will hang forever to show up in the log.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class RequestRecord:
    """One request. ``status`` is 0 when no status line was sent (``reset``, ``hang``).

    ``time`` is ``time.monotonic()`` at arrival; ``endpoint`` is ``get_job``, ``list_jobs``,
    ``rate_limit_status`` or ``other``; ``charged`` says whether a credit was spent on it.
    """

    time: float
    method: str
    path: str
    query: dict[str, str]
    status: int
    charged: bool
    accept: str | None
    authorization_ok: bool
    endpoint: str


class RequestLog:
    """A bounded, thread-safe log; the oldest records fall off so week-long benchmarks stay in memory."""

    def __init__(self, max_records: int = 500_000) -> None:
        self._lock = threading.Lock()
        self._records: deque[RequestRecord] = deque(maxlen=max_records)

    def append(self, record: RequestRecord) -> None:
        """Add one record."""
        with self._lock:
            self._records.append(record)

    def snapshot(self) -> list[RequestRecord]:
        """A copy of the log, oldest first."""
        with self._lock:
            return list(self._records)

    def clear(self) -> None:
        """Forget everything logged so far."""
        with self._lock:
            self._records.clear()
