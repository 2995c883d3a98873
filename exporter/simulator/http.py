"""Sending what ``api.Api`` decided: a threaded HTTP/1.1 server that also knows how to misbehave.

Standard library only. Each connection gets a daemon thread; keep-alive works like the real service so a
client's connection pooling is exercised. Every open connection is tracked so ``close`` can cut them all,
which is what keeps ``Simulator.stop()`` prompt while a fault holds a connection open.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import struct
import sys
import threading
import time
from collections.abc import Iterable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final, cast
from urllib.parse import parse_qsl, urlsplit

from exporter.simulator.api import Api, Reply, Sabotage
from exporter.simulator.records import RequestLog, RequestRecord

_WAIT_STEP: Final = 0.25  # how often a hanging connection checks whether its client has gone
_MAX_DISCARDED_BODY: Final = 1 << 20
_TLS_HANDSHAKE_TIMEOUT: Final = 10.0


class SimServer(ThreadingHTTPServer):
    """The listening socket, its connection threads, and what they share (api, log, stop flag)."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        *,
        api: Api,
        log: RequestLog,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(address, _Handler)
        self.api = api
        self.log = log
        self.ssl_context = ssl_context
        self.stopping = threading.Event()
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Runs in the connection's thread: the TLS handshake happens here, not in the accept loop, so a
        client that connects and never says hello cannot stall everyone else."""
        conn = cast(socket.socket, request)
        if self.ssl_context is not None:
            conn.settimeout(_TLS_HANDSHAKE_TIMEOUT)
            try:
                conn = self.ssl_context.wrap_socket(conn, server_side=True)
            except (OSError, ValueError):
                return
        with self._open_lock:
            if self.stopping.is_set():
                conn.close()
                return
            self._open.add(conn)
        try:
            _Handler(conn, client_address, self)
        finally:
            with self._open_lock:
                self._open.discard(conn)
            if conn is not request:
                conn.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hanging up mid-answer is normal under fault injection; only report real bugs."""
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)

    def close_connections(self) -> None:
        """Cut every open connection (idle keep-alives, hangs, trickles) so their threads end now."""
        with self._open_lock:
            conns = list(self._open)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    """One connection. Decides via the api, logs, then sends the reply or carries out the sabotage."""

    protocol_version = "HTTP/1.1"
    server_version = "IntegrateIOSimulator/1.0"
    timeout = 60  # idle keep-alive connections are dropped after this long

    def setup(self) -> None:
        """Disable Nagle: headers and body go out in separate writes, and with Nagle plus the client's delayed
        ACK every response would stall ~40 ms, which would make benchmarks measure the simulator."""
        super().setup()
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def version_string(self) -> str:
        return self.server_version

    @property
    def _sim(self) -> SimServer:
        return cast(SimServer, self.server)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the request log is the record, and test output stays readable."""

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _discard_request_body(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_DISCARDED_BODY:
            self.close_connection = True
        elif length > 0:
            self.rfile.read(length)

    def _serve(self) -> None:
        arrived = time.monotonic()
        self._discard_request_body()
        split = urlsplit(self.path)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        accept = self.headers.get("Accept")
        decision = self._sim.api.decide(
            self.command, split.path, query, accept=accept, authorization=self.headers.get("Authorization")
        )
        self._sim.log.append(
            RequestRecord(
                time=arrived,
                method=self.command,
                path=split.path,
                query=query,
                status=decision.logged_status,
                charged=decision.charged,
                accept=accept,
                authorization_ok=decision.authorization_ok,
                endpoint=decision.endpoint,
            )
        )
        try:
            if isinstance(decision.outcome, Sabotage):
                self._sabotage(decision.outcome)
            else:
                self._send(decision.outcome)
        except OSError:
            self.close_connection = True

    def _send_head(self, reply: Reply, framing: tuple[str, str]) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        self.send_header(*framing)
        self.end_headers()

    def _send(self, reply: Reply) -> None:
        if reply.stream is None:
            self._send_head(reply, ("Content-Length", str(len(reply.body))))
            self.wfile.write(reply.body)
        elif reply.length is not None:
            self._send_head(reply, ("Content-Length", str(reply.length)))
            self._write_all(reply.stream, chunked=False)
        else:
            self._send_head(reply, ("Transfer-Encoding", "chunked"))
            self._write_all(reply.stream, chunked=True)

    def _write_all(self, chunks: Iterable[bytes], *, chunked: bool) -> None:
        """Stream a body, giving up as soon as the simulator stops (a 20 MB body must not delay ``stop``)."""
        for chunk in chunks:
            if self._sim.stopping.is_set():
                self._abort()
                return
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")

    def _sabotage(self, sabotage: Sabotage) -> None:
        self.close_connection = True
        reply = sabotage.reply
        if sabotage.kind == "reset":
            self._abort()
        elif sabotage.kind == "reset_mid_body":
            self._send_head(reply, ("Content-Length", str(len(reply.body))))
            self.wfile.write(reply.body[: max(1, len(reply.body) // 2)])  # then a plain close (FIN)
        elif sabotage.kind == "trickle":
            self._trickle(reply, sabotage.interval)
        elif sabotage.kind == "trickle_head":
            self._trickle_head(reply, sabotage.interval)
        else:
            self._wait_until_stopped_or_gone()

    def _trickle(self, reply: Reply, interval: float) -> None:
        """One byte per ``interval``: the body, then JSON-legal trailing spaces, forever (chunked framing, so
        no byte count ever tells the client it is done)."""
        self._send_head(reply, ("Transfer-Encoding", "chunked"))
        position = 0
        while True:
            byte = reply.body[position : position + 1] or b" "
            position += 1
            self.wfile.write(b"1\r\n%s\r\n" % byte)
            if self._sim.stopping.wait(interval):
                return

    def _trickle_head(self, reply: Reply, interval: float) -> None:
        """The whole answer, status line and headers included, one byte per ``interval``: a client whose only
        limit is a read timeout (the wait for the *next* byte) never gives up on it."""
        lines = [f"HTTP/1.1 {reply.status} {HTTPStatus(reply.status).phrase}"]
        lines += [f"{name}: {value}" for name, value in reply.headers]
        lines += [f"Content-Length: {len(reply.body)}", "", ""]
        answer = "\r\n".join(lines).encode("latin-1") + reply.body
        for position in range(len(answer)):
            self.wfile.write(answer[position : position + 1])
            if self._sim.stopping.wait(interval):
                return

    def _wait_until_stopped_or_gone(self) -> None:
        while not self._sim.stopping.wait(_WAIT_STEP):
            if self._peer_gone():
                return

    def _peer_gone(self) -> bool:
        """Whether the client closed its end (readable with nothing to read). TLS sockets cannot peek, so a
        hanging TLS connection just waits for ``stop``."""
        conn = self.connection
        if isinstance(conn, ssl.SSLSocket):
            return False
        try:
            readable, _, _ = select.select([conn], [], [], 0)
            return bool(readable) and conn.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    def _abort(self) -> None:
        """Close with a TCP RST (SO_LINGER 0) rather than a polite FIN: what a crashing proxy looks like."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass
