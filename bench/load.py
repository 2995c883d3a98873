"""Scrape load (issue 5, item 4): many scrapers on /metrics while the exporter keeps polling, and a reference.

    python -m bench.load                     # 200 jobs, interval 2 s, 50 scrapers, 30 s per phase: about 2 min
    python -m bench.load --quick             # 10 s per phase, under a minute
    python -m bench.load --jobs 200 --scrapers 50 --duration 30 --interval 2

A benchmark, not a test: it measures and prints Markdown tables; it asserts nothing.

Processes (so that no two of them share a GIL)
----------------------------------------------
* this process: a ``Simulator`` with ``--jobs`` running jobs that keep progressing (every job's progress and
  records change between two polls, so every cycle re-renders every job), and the measurement;
* the exporter: ``python -m exporter --config <tmp>/config.yaml`` (polling interval ``--interval``, a credit
  budget far above what it spends so the budget never stretches the interval);
* the scrapers: ``python -m bench.load --role scrape``, one asyncio process holding ``--scrapers`` connections,
  each sending the next request as soon as the last answer is in (closed loop, no think time), HTTP/1.1
  keep-alive, with Prometheus' own ``Accept`` header and ``Accept-Encoding: gzip``;
* the reference: ``python -m bench.load --role reference``: ``prometheus_client.start_http_server`` serving
  labelled Gauges holding the same series as the exporter's /metrics at the start of the load (same names,
  labels and values; counters as gauges), from a registry of their own. It renders on every scrape, as every
  exporter built on ``start_http_server`` does; it polls nothing. Its server (wsgiref) answers HTTP/1.0 and
  closes the connection after each answer, so its scrapers reconnect every time: that is what a scraper gets
  from it, and it is counted (``connects``).

Phases, one after the other in the same run: the exporter polling with no scraper (``no load``), the same
duration with the scrapers on it (``load``), then the scrapers on the reference.

What is measured (``time.monotonic``/``perf_counter``; CLOCK_MONOTONIC is one clock for all processes)
-------------------------------------------------------------------------------------------------------
* per scrape: from writing the request (after connecting, if the connection had to be opened) to the last byte
  of the body; a scrape fails on any exception, a status other than 200, a body shorter than Content-Length,
  or no answer within 10 s (Prometheus' default scrape timeout). Every 20th body is decompressed and checked
  (it must hold ``integrateio_job_status``); its ``integrateio_last_full_refresh_timestamp_seconds`` gives the
  age of the data a scraper saw (wall clock at receipt minus that timestamp).
* latency: median, p99 (nearest rank) and max over every scrape of the phase; throughput; CPU used by the
  server process (``/proc/PID/stat`` utime+stime) and by the scraper process (``os.times``), in cores.
* polling cadence, from the simulator's request log: the exporter's refresh cycle starts with the first page
  of ``GET /jobs?status=running`` (all watched jobs are running: one list of ``ceil(jobs/100)`` pages is the
  whole cycle), so cycles = first pages in the phase; their spacing (mean, max) against the configured
  interval; API requests per second. During ``no load`` this process reads /metrics once a second, with the
  same parser, for the data age (a scrape a second is no load).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import itertools
import json
import math
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from exporter.simulator import Simulator
from exporter.simulator.demo import add_running_jobs

ACCOUNT = "bench"
API_KEY = "bench-load-key"
SCRAPE_TIMEOUT = 10.0
CHECK_EVERY = 20
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
FRESHNESS = re.compile(rb"^integrateio_last_full_refresh_timestamp_seconds ([0-9.e+]+)$", re.MULTILINE)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
REPO = Path(__file__).resolve().parent.parent


# --- helpers shared with bench.soak ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_config(
    directory: Path,
    base_url: str,
    jobs: Sequence[int],
    *,
    interval: float,
    credits: int,
    window: float,
    timeout: float = 5.0,
    extra_api: dict[str, Any] | None = None,
    extra_polling: dict[str, Any] | None = None,
) -> Path:
    """The exporter's config.yaml (and key file) for the simulator at ``base_url``."""
    (directory / "api-key").write_text(API_KEY + "\n", encoding="utf-8")
    document = {
        "api": {
            "account_id": ACCOUNT,
            "base_url": base_url,
            "api_key_file": "api-key",
            "timeout_seconds": timeout,
            **(extra_api or {}),
        },
        "jobs": list(jobs),
        "polling": {"interval_seconds": interval, **(extra_polling or {})},
        "rate_limit": {"credits": credits, "window_seconds": window, "reserve": 0.1},
    }
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


@dataclass
class Child:
    """A subprocess with its stderr in a file (read back when it dies)."""

    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def check_alive(self, what: str) -> None:
        if self.process.poll() is not None:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise SystemExit(f"{what} exited with {self.process.returncode}:\n{tail}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10.0)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_child(command: list[str], log: Path, stdout: int | None = subprocess.DEVNULL) -> Child:
    handle = log.open("wb")
    process = subprocess.Popen(command, cwd=REPO, stdout=stdout, stderr=handle, stdin=subprocess.DEVNULL)
    handle.close()
    return Child(process, log)


def start_exporter(
    config: Path, port: int, log: Path, module: Sequence[str] = ("-m", "exporter"), level: str = "warning"
) -> Child:
    """``python -m exporter --config ...`` on 127.0.0.1:port; returns once /readyz answers 200."""
    command = [
        sys.executable,
        *module,
        "--config",
        str(config),
        f"--web.listen-address=127.0.0.1:{port}",
        f"--log.level={level}",
    ]
    child = start_child(command, log)
    deadline = time.monotonic() + 60.0
    while True:
        child.check_alive("the exporter")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2.0) as answer,
        ):
            if answer.status == 200:
                return child
        if time.monotonic() > deadline:
            child.stop()
            raise SystemExit("the exporter did not become ready within 60 s")
        time.sleep(0.1)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_kib(pid: int, key: str = "VmRSS") -> int:
    """VmRSS (or VmHWM, ...) of a process in KiB, from /proc/PID/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def nearest_rank(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)] if ordered else float("nan")


def fetch(url: str, accept: str = "text/plain", timeout: float = 10.0) -> bytes:
    request = urllib.request.Request(url, headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        body: bytes = answer.read()
        return body


def freshness_age(body: bytes, received_wall: float) -> float | None:
    """Seconds from the last full refresh the body reports to when it was received."""
    found = FRESHNESS.search(body)
    return received_wall - float(found.group(1)) if found else None


# --- the scraper process -----------------------------------------------------------------------------------


@dataclass
class ScrapeResult:
    """What one scraper process reports (JSON on stdout)."""

    scrapes: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    connects: int = 0
    body_bytes: int = 0
    started: float = 0.0
    ended: float = 0.0
    cpu_seconds: float = 0.0
    median_ms: float = float("nan")
    p99_ms: float = float("nan")
    max_ms: float = float("nan")
    mean_ms: float = float("nan")
    checked: int = 0
    ages: list[float] = field(default_factory=list)


class BadAnswer(Exception):
    pass


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    version, status_text = lines[0].split(" ", 2)[:2]
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    if version == "HTTP/1.0" and "connection" not in headers:
        headers["connection"] = "close"
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            parts.append(await reader.readexactly(size + 2))
            if size == 0:
                break
        body = b"".join(part[:-2] for part in parts)
    else:
        body = await reader.read()
        headers["connection"] = "close"
    return int(status_text), headers, body


async def _scraper(
    host: str, port: int, path: str, deadline: float, latencies: list[float], result: ScrapeResult
) -> None:
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: bench.load\r\n"
        f"Accept: {PROMETHEUS_ACCEPT}\r\nAccept-Encoding: gzip\r\n\r\n"
    ).encode()
    failures: Counter[str] = Counter()
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    while time.monotonic() < deadline:
        began = time.perf_counter()
        try:
            async with asyncio.timeout(SCRAPE_TIMEOUT):
                if writer is None or reader is None:
                    reader, writer = await asyncio.open_connection(host, port)
                    result.connects += 1
                writer.write(request)
                status, headers, body = await _read_answer(reader)
            if status != 200:
                raise BadAnswer(f"status {status}")
            if headers.get("connection", "").lower() == "close":
                writer.close()
                reader = writer = None
            latencies.append(time.perf_counter() - began)
            result.scrapes += 1
            result.body_bytes += len(body)
            if result.scrapes % CHECK_EVERY == 0:
                text = gzip.decompress(body) if headers.get("content-encoding") == "gzip" else body
                if b"integrateio_job_status" not in text:
                    raise BadAnswer("body without integrateio_job_status")
                result.checked += 1
                age = freshness_age(text, time.time())
                if age is not None:
                    result.ages.append(age)
        except (
            OSError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            TimeoutError,
            BadAnswer,
        ) as error:
            failures[type(error).__name__ if not isinstance(error, BadAnswer) else str(error)] += 1
            if writer is not None:
                writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()
    for name, count in failures.items():
        result.failures[name] = result.failures.get(name, 0) + count


async def _scrape_all(url: str, scrapers: int, duration: float) -> ScrapeResult:
    match = re.fullmatch(r"http://([^:/]+):(\d+)(/.*)", url)
    if match is None:
        raise SystemExit(f"need http://HOST:PORT/PATH, got {url}")
    host, port, path = match.group(1), int(match.group(2)), match.group(3)
    result = ScrapeResult()
    latencies: list[float] = []
    times_before = os.times()
    result.started = time.monotonic()
    deadline = result.started + duration
    await asyncio.gather(*(_scraper(host, port, path, deadline, latencies, result) for _ in range(scrapers)))
    result.ended = time.monotonic()
    times_after = os.times()
    result.cpu_seconds = (times_after.user + times_after.system) - (times_before.user + times_before.system)
    if latencies:
        result.median_ms = statistics.median(latencies) * 1000
        result.p99_ms = nearest_rank(latencies, 0.99) * 1000
        result.max_ms = max(latencies) * 1000
        result.mean_ms = statistics.fmean(latencies) * 1000
    return result


def scrape_main(url: str, scrapers: int, duration: float) -> int:
    result = asyncio.run(_scrape_all(url, scrapers, duration))
    print(json.dumps(asdict(result)), flush=True)
    return 0


def run_scrapers(url: str, scrapers: int, duration: float, log: Path) -> ScrapeResult:
    command = [sys.executable, "-m", "bench.load", "--role", "scrape", "--url", url]
    command += ["--scrapers", str(scrapers), "--duration", str(duration)]
    child = start_child(command, log, stdout=subprocess.PIPE)
    out, _ = child.process.communicate(timeout=duration + 120)
    if child.process.returncode != 0:
        raise SystemExit(f"scraper exited {child.process.returncode}:\n{log.read_text()[-3000:]}")
    return ScrapeResult(**json.loads(out))


# --- the reference process ---------------------------------------------------------------------------------


def series_of(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Every sample of a text exposition: (sample name, labels, value)."""
    from prometheus_client.parser import text_string_to_metric_families

    return [
        (sample.name, dict(sample.labels), float(sample.value))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def reference_main(series_file: Path, port: int) -> int:
    from prometheus_client import CollectorRegistry, Gauge, start_http_server

    series = json.loads(series_file.read_text(encoding="utf-8"))
    registry = CollectorRegistry()
    gauges: dict[str, Gauge] = {}
    for name, labels, value in series:
        if name not in gauges:
            gauges[name] = Gauge(name, f"reference copy of {name}", sorted(labels), registry=registry)
        gauge = gauges[name]
        (gauge.labels(**labels) if labels else gauge).set(value)
    server, _ = start_http_server(port, addr="127.0.0.1", registry=registry)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    stop.wait()
    server.shutdown()
    return 0


def start_reference(series: list[tuple[str, dict[str, str], float]], directory: Path) -> tuple[Child, int]:
    series_file = directory / "series.json"
    series_file.write_text(json.dumps(series), encoding="utf-8")
    port = free_port()
    command = [sys.executable, "-m", "bench.load", "--role", "reference", "--series", str(series_file)]
    child = start_child([*command, "--port", str(port)], directory / "reference.log")
    deadline = time.monotonic() + 30.0
    while True:
        child.check_alive("the reference server")
        with contextlib.suppress(OSError):
            fetch(f"http://127.0.0.1:{port}/metrics")
            return child, port
        if time.monotonic() > deadline:
            raise SystemExit("the reference server did not start within 30 s")
        time.sleep(0.1)


# --- the orchestrator --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cadence:
    phase: str
    seconds: float
    cycles: int
    mean_gap: float
    max_gap: float
    list_per_second: float
    get_per_second: float
    ages: list[float]


def cadence(sim: Simulator, phase: str, start: float, end: float, ages: list[float]) -> Cadence:
    records = [record for record in sim.requests if start <= record.time < end]
    starts = [
        record.time
        for record in records
        if record.endpoint == "list_jobs"
        and record.query.get("status") == "running"
        and record.query.get("offset", "0") == "0"
    ]
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    seconds = end - start
    return Cadence(
        phase=phase,
        seconds=seconds,
        cycles=len(starts),
        mean_gap=statistics.fmean(gaps) if gaps else float("nan"),
        max_gap=max(gaps) if gaps else float("nan"),
        list_per_second=sum(r.endpoint == "list_jobs" for r in records) / seconds,
        get_per_second=sum(r.endpoint == "get_job" for r in records) / seconds,
        ages=ages,
    )


def sample_freshness(url: str, until: float) -> list[float]:
    """Read /metrics (gzip, like a scraper) once a second until ``until``; the data age of each."""
    ages: list[float] = []
    while time.monotonic() < until:
        request = urllib.request.Request(
            url, headers={"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip"}
        )
        with urllib.request.urlopen(request, timeout=SCRAPE_TIMEOUT) as answer:
            body = answer.read()
            if answer.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
        age = freshness_age(body, time.time())
        if age is not None:
            ages.append(age)
        time.sleep(max(0.0, min(1.0, until - time.monotonic())))
    return ages


@dataclass(frozen=True)
class LoadRow:
    target: str
    series: int
    result: ScrapeResult
    server_cpu: float


def count_series(text: str) -> int:
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))


def orchestrate(args: argparse.Namespace) -> int:
    began = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="bench-load-") as temp,
        Simulator(ACCOUNT, API_KEY, credits=10_000_000, window_seconds=3600.0) as sim,
    ):
        directory = Path(temp)
        jobs = add_running_jobs(sim, args.jobs)
        config = write_config(
            directory, sim.base_url, jobs, interval=args.interval, credits=10_000_000, window=3600.0
        )
        port = free_port()
        exporter = start_exporter(config, port, directory / "exporter.log")
        url = f"http://127.0.0.1:{port}/metrics"
        try:
            time.sleep(2 * args.interval)  # warm-up: past the cold first cycle
            print(f"exporter ready ({args.jobs} jobs); no-load phase, {args.duration:g} s", file=sys.stderr)
            start = time.monotonic()
            ages = sample_freshness(url, start + args.duration)
            quiet = cadence(sim, "no load", start, time.monotonic(), ages)

            text = fetch(url).decode()
            series = series_of(text)
            print(f"load phase: {args.scrapers} scrapers, {args.duration:g} s", file=sys.stderr)
            cpu_before = cpu_seconds(exporter.pid)
            loaded = run_scrapers(url, args.scrapers, args.duration, directory / "scrape-exporter.log")
            exporter_cpu = cpu_seconds(exporter.pid) - cpu_before
            exporter.check_alive("the exporter")
            busy = cadence(sim, f"{args.scrapers} scrapers", loaded.started, loaded.ended, loaded.ages)
        finally:
            exporter.stop()

        print("reference phase: prometheus_client.start_http_server", file=sys.stderr)
        reference, reference_port = start_reference(series, directory)
        try:
            reference_url = f"http://127.0.0.1:{reference_port}/metrics"
            reference_series = count_series(fetch(reference_url).decode())
            cpu_before = cpu_seconds(reference.pid)
            versus = run_scrapers(reference_url, args.scrapers, args.duration, directory / "scrape-ref.log")
            reference_cpu = cpu_seconds(reference.pid) - cpu_before
        finally:
            reference.stop()

    rows = [
        LoadRow("exporter (`python -m exporter`)", count_series(text), loaded, exporter_cpu),
        LoadRow("reference (`prometheus_client.start_http_server`)", reference_series, versus, reference_cpu),
    ]
    print_report(args, rows, [quiet, busy], time.monotonic() - began)
    return 0


def print_report(args: argparse.Namespace, rows: list[LoadRow], phases: list[Cadence], wall: float) -> None:
    print(
        f"\n## Scrape load: {args.scrapers} scrapers for {args.duration:g} s, {args.jobs} running jobs, "
        f"polling every {args.interval:g} s ({os.cpu_count()} CPUs, Python {sys.version.split()[0]})\n"
    )
    print(
        "| target | series | scrapes | scrapes/s | failed | median ms | p99 ms | max ms | connects "
        "| MB/s | server CPU (cores) | scraper CPU (cores) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        r = row.result
        seconds = r.ended - r.started
        failed = sum(r.failures.values())
        kinds = f" ({', '.join(f'{k}: {v}' for k, v in sorted(r.failures.items()))})" if failed else ""
        print(
            f"| {row.target} | {row.series} | {r.scrapes} | {r.scrapes / seconds:.0f} | {failed}{kinds} "
            f"| {r.median_ms:.1f} | {r.p99_ms:.1f} | {r.max_ms:.1f} | {r.connects} "
            f"| {r.body_bytes / seconds / 1e6:.1f} | {row.server_cpu / seconds:.2f} "
            f"| {r.cpu_seconds / seconds:.2f} |"
        )
    print(
        "\nLatency is over the scrapes that completed: a failed one (its kind in parentheses; a timeout is 10 s) "
        "counts in `failed`, not in the percentiles. CPU: process CPU time over the phase's wall time."
    )
    print(f"\n## Polling cadence of the exporter (target interval {args.interval:g} s), same run\n")
    print(
        "| phase | seconds | refresh cycles | cycles/min | mean gap s | max gap s | list req/s | get req/s "
        "| data age median s | data age max s | age samples |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for phase in phases:
        print(
            f"| {phase.phase} | {phase.seconds:.1f} | {phase.cycles} | {phase.cycles / phase.seconds * 60:.1f} "
            f"| {phase.mean_gap:.3f} | {phase.max_gap:.3f} | {phase.list_per_second:.2f} "
            f"| {phase.get_per_second:.2f} | {statistics.median(phase.ages) if phase.ages else math.nan:.2f} "
            f"| {max(phase.ages, default=math.nan):.2f} | {len(phase.ages)} |"
        )
    print(f"\nwall time {wall:.0f} s")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200, help="watched running jobs (default 200)")
    parser.add_argument("--interval", type=float, default=2.0, help="polling interval, s (default 2)")
    parser.add_argument("--scrapers", type=int, default=50, help="concurrent scrapers (default 50)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per phase (default 30)")
    parser.add_argument("--quick", action="store_true", help="10 s per phase")
    parser.add_argument(
        "--role", choices=("run", "scrape", "reference"), default="run", help=argparse.SUPPRESS
    )
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--series", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.role == "scrape":
        return scrape_main(args.url, args.scrapers, args.duration)
    if args.role == "reference":
        return reference_main(args.series, args.port)
    if args.quick:
        args.duration = 10.0
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
