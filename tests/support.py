"""Helpers the tests share: building configs, scraping /metrics, and waiting with a deadline."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import requests
from prometheus_client.parser import text_string_to_metric_families

from exporter.app import App
from exporter.config import API_KEY_ENV, Config, parse_config
from exporter.simulator import SimJob, SimOutput, Simulator

API_KEY = "test-key-7c1e2b9d"  # recognisable, so tests can search every output for it

T = TypeVar("T")


def make_config(
    sim: Simulator,
    jobs: list[int],
    *,
    interval: float = 1.0,
    credits: int = 5000,
    window: float = 3600.0,
    reserve: float = 0.1,
    timeout: float = 2.0,
    discover: dict[str, Any] | None = None,
    state_file: str | None = None,
    **api: Any,
) -> Config:
    """A config for the simulator, written as a user would and read by the real parser."""
    document: dict[str, Any] = {
        "api": {"account_id": sim.account_id, "base_url": sim.base_url, "timeout_seconds": timeout, **api},
        "jobs": jobs,
        "polling": {"interval_seconds": interval, "missing_recheck_seconds": 3600},
        "rate_limit": {"credits": credits, "window_seconds": window, "reserve": reserve},
    }
    if discover is not None:
        document["discover"] = discover
    if state_file is not None:
        document["state_file"] = state_file
    return parse_config(document, base_dir=Path("."), environ={API_KEY_ENV: API_KEY})


class Samples:
    """One scrape, parsed by prometheus_client's own parser: (name, labels) -> value."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.values: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                self.values[(sample.name, frozenset(sample.labels.items()))] = sample.value

    def get(self, name: str, **labels: str) -> float | None:
        return self.values.get((name, frozenset(labels.items())))

    def __getitem__(self, key: str) -> float:
        value = self.get(key)
        assert value is not None, f"{key} not on /metrics"
        return value

    def labelsets(self, name: str) -> list[dict[str, str]]:
        return [dict(labels) for (sample, labels) in self.values if sample == name]

    def status(self, job_id: int) -> str | None:
        """The status whose state-set series is 1, checking that exactly one is."""
        ones = [
            dict(labels)["status"]
            for (name, labels), value in self.values.items()
            if name == "integrateio_job_status" and dict(labels)["job_id"] == str(job_id) and value == 1.0
        ]
        assert len(ones) <= 1, ones
        return ones[0] if ones else None


def scrape(app: App, **headers: str) -> Samples:
    response = requests.get(app.url("/metrics"), headers=headers, timeout=10)
    response.raise_for_status()
    return Samples(response.text)


def wait_until(check: Callable[[], T | None], timeout: float, what: str, step: float = 0.05) -> T:
    """Poll `check` until it returns something truthy, or fail after `timeout` seconds saying `what`."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(step)


def max_requests_in_any_window(times: list[float], window: float) -> int:
    """The most requests any sliding window of `window` seconds holds."""
    times = sorted(times)
    best = start = 0
    for end, moment in enumerate(times):
        while times[start] <= moment - window:
            start += 1
        best = max(best, end - start + 1)
    return best


def add_two_jobs(sim: Simulator) -> None:
    """Job 1 (the one faults hit) and job 2 (the healthy clock), in different statuses so that each is
    refreshed by its own GET in every cycle rather than by one list call."""
    sim.add_job(
        SimJob(
            id=1,
            status="running",
            progress=0.25,
            runtime_in_seconds=100,
            outputs=[SimOutput(id=9, name="out", records_count=50)],
        )
    )
    sim.add_job(SimJob(id=2, status="queued", progress=0.1))


def handshake_error(port: int, context: ssl.SSLContext) -> str:
    """The reason OpenSSL gives the client when the server refuses it.

    With TLS 1.3 the server checks the client certificate after the client has finished its side of the
    handshake, so the refusal arrives as an alert on the first read rather than from the handshake itself. The
    client sends nothing: unread request bytes would make the server's close a reset that can beat the alert.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        try:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                data = tls.recv(1024)
        except ssl.SSLError as error:
            return str(error.reason)
    raise AssertionError(f"the server answered instead of refusing: {data[:40]!r}")


class _Recorder(BaseHTTPRequestHandler):
    """Another host's server: records every request's headers and answers with a plausible job."""

    server: RecordingServer

    def do_GET(self) -> None:
        self.server.seen.append(dict(self.headers.items()))
        body = json.dumps({"id": 1, "status": "completed", "progress": 1.0, "runtime_in_seconds": 1}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


class RecordingServer(ThreadingHTTPServer):
    """A host the exporter must never send a request (and so its key) to; `seen` holds what reached it."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Recorder)
        self.seen: list[dict[str, str]] = []

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    @classmethod
    @contextlib.contextmanager
    def serving(cls) -> Iterator[RecordingServer]:
        server = cls()
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        try:
            yield server
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
