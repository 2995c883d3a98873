"""Scrape benchmark (issue 6): /metrics of the exporter against a plain prometheus_client exporter.

    python -m bench.scrape            # 1,000 / 10,000 / 50,000 watched jobs (about 10 minutes)
    python -m bench.scrape --quick    # 1,000 / 5,000 jobs, fewer scrapes (about 2 minutes)

Every party runs in a process of its own, so memory and CPU are each process's own, read from /proc:

- the simulated Integrate.io API holds the jobs, three outputs each, statuses mixed like a real account
  (70 % completed, 10 % failed, 10 % running, 5 % queued, 5 % idle), with a credit budget of 10,000,000 per
  hour so that the cold fill measures the exporter, not the budget;
- the exporter is `exporter.app.App` with default polling (interval 60 s, 4 concurrent GETs) and the same
  10,000,000 credits, polling the simulator — its poller keeps running while it is scraped, as in production;
- the baseline is the way most exporters are written: labelled `Gauge`s in their own `CollectorRegistry`, set
  once from the same job payloads (the simulator's renderer, parsed by the exporter's parser), served by
  `prometheus_client.start_http_server`; it renders every series on every scrape.

Per case and exporter: the time from start until every job is on /metrics (for the exporter: /readyz is 200
and every job has its info series), then sequential scrapes on fresh connections, timed by this process up to
the last body byte, in two modes: plain text (no Accept header) and the way Prometheus asks (its Accept header
and gzip; the compressed body is not decompressed). A mode stops after `--scrapes` scrapes or
`--seconds-per-mode` seconds, whichever comes first (but never fewer than 3 scrapes): the baseline needs
seconds per scrape at 10,000 jobs. CPU is the server process's utime + stime over the plain scrapes (for the
exporter, that includes its poller), per 100 scrapes. RSS is VmRSS after the scrapes, and its growth over the
process right after its imports.
"""

from __future__ import annotations

import argparse
import gc
import http.client
import itertools
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

ACCOUNT = "bench"
API_KEY = "bench-key"
CREDITS = 10_000_000
OUTPUT_NAMES = ("orders_out", "customers_out", "events_out")
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
    "application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,"
    "text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)
MIN_SCRAPES = 3
FILL_TIMEOUT_SECONDS = 900.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --- the jobs -------------------------------------------------------------------------------------------------


def job_status(job_id: int) -> str:
    """70 % completed, 10 % failed, 10 % running, 5 % queued, 5 % idle, interleaved across ids."""
    slot = job_id % 20
    if slot < 14:
        return "completed"
    if slot < 16:
        return "failed"
    if slot < 18:
        return "running"
    return "queued" if slot == 18 else "idle"


def sim_job(job_id: int) -> Any:
    """Job `job_id` as the simulator is told about it; deterministic, so every process builds the same one."""
    from exporter.simulator import SimJob, SimOutput

    status = job_status(job_id)
    package_id = 1 + job_id % 50
    return SimJob(
        id=job_id,
        status=status,
        progress=(job_id % 100) / 100 if status == "running" else None,
        runtime_in_seconds=60 + (job_id * 37) % 3600,
        package_id=package_id,
        package_name=f"package_{package_id}",
        errors="disk full" if status == "failed" else "",
        outputs=[
            SimOutput(id=3 * job_id + k, name=name, records_count=(job_id * 7919 + k * 104729) % 1_000_000)
            for k, name in enumerate(OUTPUT_NAMES)
        ],
    )


# --- the processes ------------------------------------------------------------------------------------------


def serve_simulator(jobs: int) -> None:
    from exporter.simulator import Simulator

    announce("imported")
    await_go()
    started = time.perf_counter()
    sim = Simulator(account_id=ACCOUNT, api_key=API_KEY, credits=CREDITS)
    for job_id in range(1, jobs + 1):  # one by one: the simulator has no bulk add for described jobs
        sim.add_job(sim_job(job_id))
    sim.start()
    announce(f"url {sim.base_url} {time.perf_counter() - started:.2f}")
    sys.stdin.read()
    sim.stop()


def serve_exporter(jobs: int, simulator_url: str) -> None:
    from exporter.app import App
    from exporter.config import API_KEY_ENV, parse_config

    announce("imported")
    await_go()
    document = {
        "api": {"account_id": ACCOUNT, "base_url": simulator_url, "timeout_seconds": 30},
        "jobs": list(range(1, jobs + 1)),
        "rate_limit": {"credits": CREDITS, "window_seconds": 3600},
    }
    config = parse_config(document, base_dir=Path("."), environ={API_KEY_ENV: API_KEY})
    app = App(config, ("127.0.0.1", 0))
    app.start()
    announce(f"url {app.url()}")
    sys.stdin.read()
    app.stop()


def serve_baseline(jobs: int) -> None:
    from prometheus_client import CollectorRegistry, Gauge, start_http_server

    from exporter.model import JobStatus, parse_job
    from exporter.simulator import Simulator

    announce("imported")
    await_go()
    registry = CollectorRegistry()

    def gauge(name: str, documentation: str, *labels: str) -> Gauge:
        return Gauge(name, documentation, labelnames=labels, registry=registry)

    status = gauge("integrateio_job_status", "Current status of the job.", "job_id", "status")
    progress = gauge("integrateio_job_progress_ratio", "Progress of the job, 0 to 1.", "job_id")
    runtime = gauge("integrateio_job_runtime_seconds", "Runtime of the job.", "job_id")
    records = gauge(
        "integrateio_job_output_records", "Records written.", "job_id", "output_id", "output_name"
    )
    info = gauge("integrateio_job_info", "Package of the job.", "job_id", "package_id", "package_name", "url")
    started = gauge("integrateio_job_started_timestamp_seconds", "When the job started.", "job_id")
    last_success = gauge("integrateio_job_last_success_timestamp_seconds", "Last refresh.", "job_id")
    poll_success = gauge("integrateio_job_poll_success", "1 if the last refresh succeeded.", "job_id")
    missing = gauge("integrateio_job_missing", "1 while the API answers 404.", "job_id")
    gauge("integrateio_watched_jobs", "Jobs the exporter watches.").set(jobs)

    # The simulator only renders payloads here (it serves nothing): each job is added, rendered, parsed and
    # dropped again, so the process ends up holding the Gauges and nothing else.
    renderer = Simulator(account_id=ACCOUNT, api_key=API_KEY)
    now = time.time()
    for job_id in range(1, jobs + 1):
        renderer.add_job(sim_job(job_id))
        job = parse_job(renderer.job_payload(job_id))
        renderer.remove_job(job_id)
        key = str(job_id)
        for value in JobStatus:
            status.labels(key, value.value).set(1.0 if job.status is value else 0.0)
        if job.progress is not None:
            progress.labels(key).set(job.progress)
        if job.runtime_seconds is not None:
            runtime.labels(key).set(job.runtime_seconds)
        for output in job.outputs:
            if output.records_count is not None:
                records.labels(key, str(output.id), output.name or "").set(output.records_count)
        info.labels(key, str(job.package_id), job.package_name or "", job.html_url or "").set(1)
        if job.started_at is not None:
            started.labels(key).set(job.started_at)
        last_success.labels(key).set(now)
        poll_success.labels(key).set(1)
        missing.labels(key).set(0)
    del renderer
    gc.collect()
    server, _ = start_http_server(0, addr="127.0.0.1", registry=registry)
    announce(f"url http://127.0.0.1:{server.server_port}/")
    sys.stdin.read()
    server.shutdown()


def announce(line: str) -> None:
    print(line, flush=True)


def await_go() -> None:
    """Wait for the bench to have read this process's RSS after its imports."""
    sys.stdin.readline()


@dataclass
class Child:
    """One party of the benchmark in its own process, told when to start and stopped by closing its stdin."""

    process: subprocess.Popen[str]

    @classmethod
    def start(cls, *args: str) -> Child:
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.scrape", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        child = cls(process)
        child.expect("imported")
        return child

    @property
    def pid(self) -> int:
        return self.process.pid

    def go(self) -> list[str]:
        """Let it start; returns the words of its `url ...` line once it is serving."""
        self._stdin.write("go\n")
        self._stdin.flush()
        return self.expect("url").split()[1:]

    def expect(self, word: str) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith(word):
            raise RuntimeError(
                f"{self.process.args!r}: expected {word!r}, got {line!r} (exit {self.process.poll()})"
            )
        return line

    def stop(self) -> None:
        if self.process.poll() is None:
            self._stdin.close()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()

    @property
    def _stdin(self) -> IO[str]:
        assert self.process.stdin is not None
        return self.process.stdin


@contextmanager
def child(*args: str) -> Iterator[Child]:
    started = Child.start(*args)
    try:
        yield started
    finally:
        started.stop()


# --- measuring ----------------------------------------------------------------------------------------------


def rss_bytes(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} for {pid}")


def cpu_seconds(pid: int) -> float:
    # Fields after the command name (which may hold spaces, hence the split at the last parenthesis).
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def get(url: str, headers: dict[str, str] | None = None, timeout: float = 600.0) -> tuple[int, bytes]:
    """One GET on a fresh connection, the body read to its last byte."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    try:
        connection.request("GET", parts.path or "/", headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@dataclass
class Mode:
    name: str
    headers: dict[str, str]


PLAIN = Mode("text", {})
PROMETHEUS = Mode("prometheus", {"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip"})


@dataclass
class Scrapes:
    latencies: list[float]
    body_bytes: int
    cpu_per_100: float

    @property
    def median_ms(self) -> float:
        return statistics.median(self.latencies) * 1000

    @property
    def p99_ms(self) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))] * 1000


def scrape_series(pid: int, url: str, mode: Mode, count: int, seconds: float) -> Scrapes:
    latencies: list[float] = []
    body = b""
    cpu_before = cpu_seconds(pid)
    deadline = time.perf_counter() + seconds
    while len(latencies) < count and (len(latencies) < MIN_SCRAPES or time.perf_counter() < deadline):
        started = time.perf_counter()
        status, body = get(url, mode.headers)
        latencies.append(time.perf_counter() - started)
        if status != 200:
            raise RuntimeError(f"{url}: HTTP {status}")
    cpu = cpu_seconds(pid) - cpu_before
    return Scrapes(latencies, len(body), cpu / len(latencies) * 100)


@dataclass
class Result:
    jobs: int
    exporter: str
    fill_seconds: float
    scrapes: dict[str, Scrapes]
    rss: int
    rss_growth: int


def series_of_every_job(body: bytes, jobs: int) -> bool:
    return body.count(b"\nintegrateio_job_info{") == jobs


def measure(
    name: str, jobs: int, role: list[str], options: argparse.Namespace, ready_path: str | None
) -> Result:
    with child("--jobs", str(jobs), *role) as party:
        before = rss_bytes(party.pid)
        started = time.perf_counter()
        url = party.go()[0]
        metrics = url.rstrip("/") + "/metrics"
        deadline = started + FILL_TIMEOUT_SECONDS
        while True:
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{name}: {jobs} jobs not on /metrics after {FILL_TIMEOUT_SECONDS:.0f}s")
            if ready_path is None or get(url.rstrip("/") + ready_path)[0] == 200:
                status, body = get(metrics)
                if status == 200 and series_of_every_job(body, jobs):
                    break
            time.sleep(0.5)
        fill = time.perf_counter() - started
        print(f"  {name}: {jobs} jobs on /metrics after {fill:.1f}s", file=sys.stderr, flush=True)
        scrapes = {
            mode.name: scrape_series(party.pid, metrics, mode, options.scrapes, options.seconds_per_mode)
            for mode in (PLAIN, PROMETHEUS)
        }
        rss = rss_bytes(party.pid)
    return Result(jobs, name, fill, scrapes, rss, rss - before)


def run_case(jobs: int, options: argparse.Namespace) -> list[Result]:
    print(f"{jobs} jobs:", file=sys.stderr, flush=True)
    with child("--role", "simulator", "--jobs", str(jobs)) as simulator:
        simulator_url, built = simulator.go()
        print(f"  simulator: {jobs} jobs added one by one in {built}s", file=sys.stderr, flush=True)
        ours = measure(
            "integrateio-exporter",
            jobs,
            ["--role", "exporter", "--simulator", simulator_url],
            options,
            "/readyz",
        )
    baseline = measure(
        "labelled Gauges",
        jobs,
        ["--role", "baseline"],
        options,
        None,
    )
    return [ours, baseline]


# --- reporting ----------------------------------------------------------------------------------------------


def table(results: list[Result]) -> str:
    mib = 1024 * 1024
    lines = [
        "| jobs | exporter | cold fill s | text body MB | text median ms | text p99 ms | text n | CPU s/100 "
        "scrapes | Prometheus (gzip) body MB | gzip median ms | gzip p99 ms | gzip n | RSS MiB | RSS growth "
        "MiB | growth bytes/job |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        text, gz = r.scrapes[PLAIN.name], r.scrapes[PROMETHEUS.name]
        lines.append(
            f"| {r.jobs:,} | {r.exporter} | {r.fill_seconds:.1f} | {text.body_bytes / 1e6:.1f} | "
            f"{text.median_ms:.1f} | {text.p99_ms:.1f} | {len(text.latencies)} | {text.cpu_per_100:.2f} | "
            f"{gz.body_bytes / 1e6:.2f} | {gz.median_ms:.1f} | {gz.p99_ms:.1f} | {len(gz.latencies)} | "
            f"{r.rss / mib:.0f} | {r.rss_growth / mib:.0f} | {r.rss_growth / r.jobs:,.0f} |"
        )
    return "\n".join(lines)


def checks(results: list[Result]) -> list[str]:
    """The issue's targets, each as one line with the numbers it was decided on."""
    ours = {r.jobs: r for r in results if r.exporter == "integrateio-exporter"}
    theirs = {r.jobs: r for r in results if r.exporter == "labelled Gauges"}
    lines = []

    def verdict(ok: bool) -> str:
        return "MET" if ok else "NOT MET"

    if 10_000 in ours:
        a, b = ours[10_000], theirs[10_000]
        for mode in (PLAIN.name, PROMETHEUS.name):
            ratio = a.scrapes[mode].median_ms / b.scrapes[mode].median_ms
            lines.append(
                f"- 10,000 jobs, {mode}: our median {a.scrapes[mode].median_ms:.1f} ms is {ratio:.3f}× the "
                f"labelled-Gauge exporter's {b.scrapes[mode].median_ms:.0f} ms (target ≤ 0.2×): {verdict(ratio <= 0.2)}"
            )
        lines.append(
            f"- 10,000 jobs: our RSS {a.rss / 2**20:.0f} MiB vs {b.rss / 2**20:.0f} MiB (target: no higher): "
            f"{verdict(a.rss <= b.rss)}"
        )
    if 50_000 in ours:
        a = ours[50_000]
        for mode in (PLAIN.name, PROMETHEUS.name):
            median = a.scrapes[mode].median_ms
            lines.append(
                f"- 50,000 jobs, {mode}: our median {median:.1f} ms (target < 100 ms): {verdict(median < 100)}"
            )
    counts = sorted(ours)
    if len(counts) >= 3:
        slopes = [
            (ours[high].rss_growth - ours[low].rss_growth) / (high - low)
            for low, high in itertools.pairwise(counts)
        ]
        spread = max(slopes) / min(slopes) if min(slopes) > 0 else float("inf")
        described = ", ".join(
            f"{low:,}→{high:,}: {slope:,.0f}"
            for (low, high), slope in zip(itertools.pairwise(counts), slopes, strict=True)
        )
        lines.append(
            f"- memory growth per added job (bytes) {described}; linear if these agree within 1.5×: "
            f"{verdict(spread <= 1.5)} (spread {spread:.2f}×)"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scrape", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 and 5,000 jobs, 30 scrapes per mode")
    parser.add_argument("--jobs", help="comma-separated job counts (default 1000,10000,50000)")
    parser.add_argument("--scrapes", type=int, help="scrapes per mode (default 100; 30 with --quick)")
    parser.add_argument(
        "--seconds-per-mode", type=float, default=30.0, help="stop a mode's scrapes after this long (30)"
    )
    parser.add_argument("--role", choices=("simulator", "exporter", "baseline"), help=argparse.SUPPRESS)
    parser.add_argument("--simulator", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)

    if options.role == "simulator":
        serve_simulator(int(options.jobs))
        return 0
    if options.role == "exporter":
        serve_exporter(int(options.jobs), options.simulator)
        return 0
    if options.role == "baseline":
        serve_baseline(int(options.jobs))
        return 0

    counts = [
        int(n) for n in (options.jobs or ("1000,5000" if options.quick else "1000,10000,50000")).split(",")
    ]
    options.scrapes = options.scrapes or (30 if options.quick else 100)
    started = time.perf_counter()
    results = [result for jobs in counts for result in run_case(jobs, options)]
    wall = time.perf_counter() - started
    print(
        f"\nPython {platform.python_version()}, {os.cpu_count()} CPUs, load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; simulator and exporter budget "
        f"{CREDITS:,} credits per hour\n"
    )
    print(table(results))
    print()
    print("\n".join(checks(results)))
    print(f"\nwall time {wall:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
