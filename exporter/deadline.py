"""One deadline for a whole HTTP request (connect, headers and body), kept by a watchdog thread.

requests and urllib3 time out each *wait for the next byte*, not the request: a server or a half-dead proxy that
sends its status line and then one header byte a second keeps a request, and the poller behind it, busy forever.
requests' maintainers say a total timeout "is not something that we can provide" (psf/requests#4276), and
urllib3's `Timeout(total=...)` only shortens the per-read timeout. So one watchdog thread keeps the deadline of
every request in flight; when one passes it shuts the request's socket down, the read blocked in http.client or
urllib3 fails at once, and the caller, seeing `Deadline.passed`, reports a timeout whatever the failure looked like.

The socket is found through the connections of `WatchedAdapter`'s pools: a connection notes which request's
deadline it serves each time it connects, sends or reads an answer, so a pooled connection that went on to serve
another request is never cut for the previous request's deadline. What this cannot interrupt is name resolution
(`getaddrinfo` holds no socket yet): a hung resolver is bounded only by its own timeouts.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import socket
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.poolmanager import PoolManager, ProxyManager


class Deadline:
    """The deadline of one request, and the connection serving it (to cut when the deadline passes)."""

    def __init__(self, at: float) -> None:
        self.at = at
        self._lock = threading.Lock()
        self._expired = False
        self._finished = False
        self._connection: _Watched | None = None

    @property
    def passed(self) -> bool:
        """Whether the request has outlived its deadline (cut by the watchdog, or noticed late by the caller)."""
        return self._expired or time.monotonic() >= self.at

    def serve(self, connection: _Watched) -> None:
        """`connection` carries this request now; cut at once if the deadline already passed (while connecting)."""
        with self._lock:
            self._connection = connection
            late = self._expired and not self._finished
        if late:
            _cut(connection)

    def expire(self) -> None:
        """Called by the watchdog at the deadline: cut the connection, unless the request is already done."""
        with self._lock:
            if self._finished:
                return
            self._expired = True
            connection = self._connection
        if connection is not None and connection.serving is self:
            _cut(connection)

    def finish(self) -> None:
        """The request is over: from now on its connection belongs to the pool, not to this deadline."""
        with self._lock:
            self._finished = True
            self._connection = None


def _cut(connection: _Watched) -> None:
    """Shut the connection's socket down in both directions: a read blocked on it returns or fails now.

    The base class's shutdown is called even on a TLS socket: it acts on the file descriptor without touching
    the TLS state another thread is using. The pool then discards the connection, since it is dead.
    """
    sock = connection.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Watchdog:
    """One daemon thread for the process, sleeping until the earliest deadline in flight."""

    def __init__(self) -> None:
        self._wake = threading.Condition()
        self._heap: list[tuple[float, int, Deadline]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, deadline: Deadline) -> None:
        with self._wake:
            heapq.heappush(self._heap, (deadline.at, next(self._order), deadline))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="request-watchdog", daemon=True)
                self._thread.start()
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    self._wake.wait(None if not self._heap else self._heap[0][0] - time.monotonic())
                _, _, due = heapq.heappop(self._heap)
            due.expire()  # outside the lock: cutting a socket must not hold up new requests


_WATCHDOG = _Watchdog()
_current = threading.local()


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[Deadline]:
    """Run one request of this thread under a deadline `seconds` from now.

    Only requests sent through a session with `WatchedAdapter` mounted can be cut; `Deadline.passed` tells the
    caller afterwards whether the deadline passed, however the request ended.
    """
    current = Deadline(time.monotonic() + seconds)
    _WATCHDOG.arm(current)
    _current.deadline = current
    try:
        yield current
    finally:
        _current.deadline = None
        current.finish()


if TYPE_CHECKING:
    _ConnectionBase = HTTPConnection
else:
    _ConnectionBase = object


class _Watched(_ConnectionBase):
    """A urllib3 connection that tells its thread's current deadline it is the one carrying the request."""

    serving: Deadline | None = None

    def _adopt(self) -> None:
        self.serving = getattr(_current, "deadline", None)
        if self.serving is not None:
            self.serving.serve(self)

    def connect(self) -> None:
        self._adopt()  # before connecting: a TLS handshake dripping byte by byte is cut too
        super().connect()

    def request(self, *args: Any, **kwargs: Any) -> None:
        self._adopt()
        super().request(*args, **kwargs)

    def getresponse(self) -> Any:
        self._adopt()
        return super().getresponse()


class _WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class WatchedAdapter(HTTPAdapter):
    """requests' adapter with connections the watchdog can cut, directly or through an HTTP(S) proxy."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> PoolManager:
        manager: PoolManager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if isinstance(manager, ProxyManager):  # a SOCKS proxy has pools of its own; its requests are not cut
            manager.pool_classes_by_scheme = _POOLS
        return manager
