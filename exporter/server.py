"""HTTP serving: /metrics, /healthz, /readyz, the status page on / and /api/jobs, with TLS and basic auth, and
`POST` on the web hook path (`exporter.webhook`), which answers at once and never waits for the API.

prometheus_client's own `start_http_server` has TLS but no basic auth, and renders on every scrape; this server
serves the bytes the exposition already rendered, negotiates OpenMetrics and gzip the way prometheus_client
does, and applies the exporter-toolkit web config (`--web.config.file`) to every path. TLS handshakes happen in
the connection's own thread, so one slow or hostile client cannot hold up the others.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from exporter import __version__, statuspage
from exporter.cache import CacheGroup, JobCache
from exporter.errors import ConfigError
from exporter.exposition import Exposition
from exporter.webconfig import WebConfig
from exporter.webhook import INVALID, UNAUTHORIZED, Doorbell

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Site:
    """What the server serves; the callables read state others keep, and never call the API."""

    exposition: Exposition
    cache: JobCache | CacheGroup
    healthy: Callable[[], bool]
    ready: Callable[[], bool]
    web: WebConfig
    doorbell: Callable[[str], Doorbell | None] = lambda path: None


def parse_listen_address(address: str) -> tuple[str, int]:
    """`HOST:PORT`, `:PORT` (all interfaces) or `[v6]:PORT`, as Go exporters accept it."""
    key = "--web.listen-address"
    host, sep, port_text = address.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError(key, f"must be HOST:PORT or :PORT, got {address!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ConfigError(key, f"an IPv6 address needs brackets, like [::1]:9863, got {address!r}")
    return host, int(port_text)


class ExporterHTTPServer(ThreadingHTTPServer):
    """A threading server that knows its Site and does TLS per connection thread."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], site: Site) -> None:
        host, port = address
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, _, _, _, sockaddr = infos[0]
        self.address_family = family
        self.site = site
        self._tls = site.web.ssl_context()
        super().__init__((str(sockaddr[0]), int(sockaddr[1])), _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self._tls is not None:
            request.settimeout(HANDSHAKE_TIMEOUT_SECONDS)
            try:
                request = self._tls.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as error:
                log.debug("TLS handshake with %s failed: %s", client_address[0], error)
                return
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s ended with an error", client_address[0], exc_info=True)

    @property
    def port(self) -> int:
        return int(self.server_address[1])


def serve_in_background(server: ExporterHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    thread.start()
    return thread


class _Handler(BaseHTTPRequestHandler):
    server: ExporterHTTPServer
    protocol_version = "HTTP/1.1"
    server_version = f"integrateio-exporter/{__version__}"
    timeout = 30.0  # an idle keep-alive connection is closed after this
    # TCP_NODELAY: headers and body go out in two writes, and without it every keep-alive answer would wait
    # ~40 ms for the client's delayed ACK (measured by bench/load.py: median 44 ms → 0.2 ms).
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._dispatch(send_body=True)

    def do_HEAD(self) -> None:
        self._dispatch(send_body=False)

    def do_POST(self) -> None:
        """Only the web hook takes a POST. It has its own basic auth (Integrate.io's hook settings), not the web
        config's users; a refused or oversized hook is answered without reading its body, and the connection
        closed."""
        doorbell = self.server.site.doorbell(self.path.split("?", 1)[0])
        if doorbell is None:
            self.close_connection = True
            self._reply(HTTPStatus.NOT_FOUND, b"Not Found\n", "text/plain; charset=utf-8", True)
            return
        if not doorbell.authorized(self.headers.get("Authorization")):
            doorbell.refuse(UNAUTHORIZED)
            self._plain(HTTPStatus.UNAUTHORIZED, close=True)
            return
        length = self.headers.get("Content-Length", "")
        # ASCII digits only, and not thousands of them (int() refuses more than 4,300 digits: a crash, not a 413)
        size = int(length) if length.isascii() and length.isdigit() and len(length) <= 18 else None
        if size is None or size > doorbell.config.max_body_bytes:
            doorbell.refuse(INVALID)
            too_large = length.isascii() and length.isdigit()
            self._plain(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE if too_large else HTTPStatus.LENGTH_REQUIRED, close=True
            )
            return
        body = self.rfile.read(size)
        self._plain(doorbell.ring(body, self.headers.get("Host")), close=False)

    def _plain(self, status: HTTPStatus, *, close: bool) -> None:
        self.close_connection = close
        extra = {"Connection": "close"} if close else {}
        if status is HTTPStatus.UNAUTHORIZED:
            extra["WWW-Authenticate"] = 'Basic realm="integrateio-exporter web hook", charset="UTF-8"'
        body = f"{status.value} {status.phrase}\n".encode()
        self._reply(status, body, "text/plain; charset=utf-8", True, extra=extra)

    def _dispatch(self, *, send_body: bool) -> None:
        site = self.server.site
        path = self.path.split("?", 1)[0]
        if not site.web.authorize(self.headers.get("Authorization"), path):
            self._reply(
                HTTPStatus.UNAUTHORIZED,
                b"Unauthorized\n",
                "text/plain; charset=utf-8",
                send_body,
                extra={"WWW-Authenticate": 'Basic realm="integrateio-exporter", charset="UTF-8"'},
            )
            return
        if path == "/metrics":
            gzip_ok = "gzip" in self.headers.get("Accept-Encoding", "")
            rendered = site.exposition.render(self.headers.get("Accept"), gzip_ok=gzip_ok)
            extra = {"Content-Encoding": "gzip", "Vary": "Accept-Encoding"} if gzip_ok else {}
            self._reply(HTTPStatus.OK, rendered.body, rendered.content_type, send_body, extra=extra)
        elif path == "/healthz":
            self._probe(site.healthy(), send_body)
        elif path == "/readyz":
            self._probe(site.ready(), send_body)
        elif path == "/":
            page = statuspage.render_page(site.cache.snapshot())
            self._reply(HTTPStatus.OK, page, statuspage.HTML_CONTENT_TYPE, send_body)
        elif path == "/api/jobs":
            document = statuspage.render_json(site.cache.snapshot())
            self._reply(HTTPStatus.OK, document, statuspage.JSON_CONTENT_TYPE, send_body)
        else:
            self._reply(HTTPStatus.NOT_FOUND, b"Not Found\n", "text/plain; charset=utf-8", send_body)

    def _probe(self, ok: bool, send_body: bool) -> None:
        status = HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE
        self._reply(status, b"ok\n" if ok else b"not ok\n", "text/plain; charset=utf-8", send_body)

    def _reply(
        self,
        status: HTTPStatus,
        body: bytes,
        content_type: str,
        send_body: bool,
        extra: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in {**self.server.site.web.response_headers, **(extra or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)
