"""Helpers the tests share: building configs, scraping /metrics, waiting with a deadline, ports, certificates,
and the system tools some tests need.

Every helper lives here once (fixtures built on them are in conftest.py); a test file that needs one imports it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final, NoReturn, TypeVar

import bcrypt
import pytest
import requests
import trustme
from prometheus_client.parser import text_string_to_metric_families

from exporter.app import App
from exporter.config import API_KEY_ENV, Config, parse_config
from exporter.simulator import SimJob, SimOutput, Simulator
from exporter.webconfig import load_web_config

API_KEY = "test-key-7c1e2b9d"  # recognisable, so tests can search every output for it
NOT_UTC: Final = "NPT-05:45"
"""A POSIX TZ needing no tz database, 5 h 45 min east of UTC: no whole-hour slip hides, and a machine whose
local time is UTC (CI's, a container's) cannot make a local-time bug look right (conftest's
`local_time_not_utc`)."""
REQUIRED_ENV: Final = "INTEGRATEIO_E2E_REQUIRED"
"""Set to 1 by .ci/run, which installs every tool: there a missing tool fails its tests instead of skipping them."""

DEBIAN_PACKAGES: Final = {
    "promtool": "prometheus",
    "prometheus": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "chromium": "chromium",
    "chromedriver": "chromium-driver",
    "systemd-analyze": "systemd",
}
"""Every system tool a test runs, and the Debian package that has it (what .ci/run installs)."""

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
    polling: dict[str, Any] | None = None,
    webhook: dict[str, Any] | None = None,
    schedules: dict[str, Any] | None = None,
    clusters: dict[str, Any] | None = None,
    **api: Any,
) -> Config:
    """A config for the simulator, written as a user would and read by the real parser; `polling` adds keys."""
    document: dict[str, Any] = {
        "api": {"account_id": sim.account_id, "base_url": sim.base_url, "timeout_seconds": timeout, **api},
        "jobs": jobs,
        "polling": {"interval_seconds": interval, "missing_recheck_seconds": 3600, **(polling or {})},
        "rate_limit": {"credits": credits, "window_seconds": window, "reserve": reserve},
    }
    if discover is not None:
        document["discover"] = discover
    if state_file is not None:
        document["state_file"] = state_file
    if webhook is not None:
        document["webhook"] = webhook
    for key, section in (("schedules", schedules), ("clusters", clusters)):
        if section is not None:
            document[key] = section
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


def wait_until(
    check: Callable[[], T | None], timeout: float, what: str | Callable[[], str], step: float = 0.05
) -> T:
    """Poll `check` until it returns something truthy and return that, or fail after `timeout` seconds.

    `what` names the awaited condition in the failure; a callable is called only then, so it can add the latest
    state or a log tail.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            described = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout:g}s waiting for {described}")
        time.sleep(step)


def scrape_when(
    app: App, condition: Callable[[Samples], object], what: str, timeout: float = 10.0
) -> Samples:
    """Scrape until `condition` holds for the scrape; return that scrape."""

    def check() -> Samples | None:
        metrics = scrape(app)
        return metrics if condition(metrics) else None

    return wait_until(check, timeout, what)


def free_port() -> int:
    """A loopback port nobody listens on right now: bound, then closed. A connection to it is refused; a process
    told to listen on it usually gets it (the caller retries when another process took it first)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def missing_requirement(reason: str) -> NoReturn:
    """Skip a test that needs something this machine lacks, saying what to install; in CI fail it instead.

    `make test` must pass on a fresh machine with only Python and make, so a missing tool is a skip there; CI
    installs everything and sets INTEGRATEIO_E2E_REQUIRED=1, where a missing tool is a broken setup that must
    not pass quietly as fewer tests.
    """
    if os.environ.get(REQUIRED_ENV) == "1":
        pytest.fail(f"{reason}; {REQUIRED_ENV}=1, so this is an error, not a skip", pytrace=False)
    pytest.skip(reason)


def require_tools(*names: str) -> dict[str, str]:
    """Each system tool's (keys of DEBIAN_PACKAGES) absolute path by name; when any is not on PATH the test skips
    (fails in CI) with `needs promtool (Debian package prometheus)`, naming every missing one."""
    found = {name: shutil.which(name) for name in names}
    missing = [f"{name} (Debian package {DEBIAN_PACKAGES[name]})" for name, path in found.items() if not path]
    if missing:
        missing_requirement("needs " + ", ".join(missing))
    return {name: path for name, path in found.items() if path}


def require_tool(name: str) -> str:
    """`require_tools` for one tool."""
    return require_tools(name)[name]


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


_LOGFMT_KEY = r'[^\x00-\x20="\x7f]+'
_LOGFMT_PAIR = re.compile(
    rf'({_LOGFMT_KEY})=({_LOGFMT_KEY}|"(?:[^"\\\x00-\x1f\x7f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{{4}}))*")'
)


def parse_logfmt(line: str) -> dict[str, str]:
    """One logfmt line, strictly: `key=value` pairs separated by single spaces, a value bare (no space, `=`, `"`
    or control character) or quoted with JSON's escapes — go-logfmt's grammar, without its tolerance for bare
    keys and empty values. Raises ValueError naming the position of the first thing that does not fit."""
    if not line.isprintable():
        raise ValueError(f"not one printable line: {line!r}")
    fields: dict[str, str] = {}
    position = 0
    while True:
        pair = _LOGFMT_PAIR.match(line, position)
        if pair is None:
            raise ValueError(f"no key=value at column {position}: {line!r}")
        key, value = pair.groups()
        if key in fields:
            raise ValueError(f"{key} twice: {line!r}")
        fields[key] = json.loads(value) if value.startswith('"') else value
        position = pair.end()
        if position == len(line):
            return fields
        if line[position] != " " or line[position + 1 : position + 2] in ("", " "):
            raise ValueError(f"pairs must be separated by one space, column {position}: {line!r}")
        position += 1


EXPORTER_COMMAND = (sys.executable, "-m", "exporter")
EXPORTER_SCRIPT = (str(Path(sys.executable).parent / "integrateio-exporter"),)
"""The console script pip installed beside this Python: `integrateio-exporter` exactly as users run it."""


class Daemon:
    """The exporter as a real process, its output (stdout and stderr) collected line by line in a thread.

    With `serving=True` the constructor returns once the process has logged the address it serves; otherwise
    right after starting it, for tests of what happens before that."""

    def __init__(
        self,
        *args: str,
        env: dict[str, str],
        command: tuple[str, ...] = EXPORTER_COMMAND,
        serving: bool = True,
    ) -> None:
        self.process = subprocess.Popen(
            [*command, "--web.listen-address", "127.0.0.1:0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.base = ""
        if serving:
            self.wait_serving()

    def __enter__(self) -> Daemon:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def wait_serving(self) -> None:
        line = wait_until(lambda: self.find(r"serving (http://\S+)/metrics"), 15, "the serving line")
        self.base = line.group(1)

    def find(self, pattern: str) -> re.Match[str] | None:
        for line in list(self.lines):
            match = re.search(pattern, line)
            if match:
                return match
        return None

    def caught_signals(self) -> set[int]:
        """The signals the process has a handler for now, from the SigCgt mask in /proc."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        mask = int(re.search(r"^SigCgt:\s*([0-9a-f]+)$", status, re.MULTILINE).group(1), 16)  # type: ignore[union-attr]
        return {number for number in range(1, 65) if mask >> (number - 1) & 1}

    def metrics(self) -> Samples:
        return Samples(requests.get(f"{self.base}/metrics", timeout=5).text)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=10)
        self._reader.join(timeout=5)
        return code

    @property
    def output(self) -> str:
        return "".join(self.lines)


@dataclass(frozen=True)
class Pki:
    """Certificates for the TLS tests, as files in `directory`: the server's (`server.crt`, `server.key`, for
    127.0.0.1 and localhost), its CA (`ca.crt`), a client certificate that CA issued (`client.pem`) and one issued
    by a CA nobody trusts (`stranger.pem`). Made by the `pki` fixture (conftest.py), once per test module."""

    directory: Path
    client: trustme.LeafCert
    stranger: trustme.LeafCert

    def path(self, name: str) -> str:
        return str(self.directory / name)


def make_pki(directory: Path) -> Pki:
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    server.cert_chain_pems[0].write_to_path(directory / "server.crt")
    server.private_key_pem.write_to_path(directory / "server.key")
    ca.cert_pem.write_to_path(directory / "ca.crt")
    client = ca.issue_cert("scraper@example.com")
    client.private_key_and_cert_chain_pem.write_to_path(directory / "client.pem")
    stranger = trustme.CA().issue_cert("scraper@example.com")
    stranger.private_key_and_cert_chain_pem.write_to_path(directory / "stranger.pem")
    return Pki(directory, client, stranger)


def bcrypt_hash(password: str) -> str:
    """A `basic_auth_users` hash at bcrypt's lowest cost (4): checking a password is most of a TLS test's time."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()


WEB_API_JOB: Final = 157
"""The one job of conftest's `api` simulator, which the exporters of `serving` watch."""

Serve = Callable[[str], App]
"""Start an exporter with this `--web.config.file` text (see `serving`)."""


@contextlib.contextmanager
def serving(api: Simulator, directory: Path, *, wait_ready: bool = False) -> Iterator[Serve]:
    """Start exporters against `api` (conftest's fixture), one a web config text, in-process on a free port; all
    stop on exit. Each text is written into `directory`, where its relative paths (certificates) resolve.

    For the tests of the web server (auth, TLS, health paths), which need a scrape target, not particular jobs.
    With `wait_ready`, an exporter is handed over after its first refresh, so /readyz answers as it will stay.
    """
    apps: list[App] = []

    def start(web_config: str) -> App:
        path = directory / f"web-{len(apps)}.yml"
        path.write_text(web_config, encoding="utf-8")
        app = App(make_config(api, [WEB_API_JOB], interval=5.0), ("127.0.0.1", 0), web=load_web_config(path))
        app.start()
        apps.append(app)
        if wait_ready:
            wait_until(lambda: app.site.ready(), 10, "the first refresh")
        return app

    try:
        yield start
    finally:
        for app in apps:
            app.stop()


def client_context(pki: Pki, cert: trustme.LeafCert | None = None) -> ssl.SSLContext:
    """A client that trusts the pki's CA and presents `cert`, or no certificate."""
    context = ssl.create_default_context(cafile=pki.path("ca.crt"))
    if cert is not None:
        cert.configure_cert(context)
    return context


def run_in_process(*argv: str) -> tuple[int, str]:
    """The exit code and stderr of `cli.execute` — what `main` runs once its signal handlers are installed — with
    a stop already requested: `--check-config` validates and returns; a start validates with the same function,
    binds 127.0.0.1:0, starts its threads and stops them at once."""
    import io

    from exporter.cli import Signals, build_parser, execute

    args = build_parser().parse_args(["--web.listen-address", "127.0.0.1:0", *argv])
    signals = Signals()
    signals.stop.set()
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        code = execute(args, signals)
    return code, stderr.getvalue()
