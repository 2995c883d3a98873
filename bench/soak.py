"""Soak (issue 5, item 6): thousands of poll cycles with churn and faults, and the exporter's memory meanwhile.

    python -m bench.soak                                  # 2,500 cycles (at most 290 s): under 5 minutes
    python -m bench.soak --quick                          # 400 cycles (at most 45 s): under a minute
    python -m bench.soak --cycles 5000 --max-seconds 600  # 5,000 cycles: about 9 minutes

A benchmark, not a test: it measures and prints Markdown tables; it asserts nothing.

What runs
---------
* this process: a ``Simulator`` (credits far above what is spent, window ``--window`` 20 s: the budget never
  binds, and its sliding window fills and turns over many times) holding 100 watched jobs — 50 running
  (progress and records growing), 10 queued, 6 pending, 6 idle, 1 stopping and 1 pending_stoppage (each alone
  in its status, so fetched with a GET every cycle), 10 completed, 5 failed, 6 stopped, and 5 ids the account
  does not have (404: shown as missing, rechecked every 2 s) — and three drivers, seeded (``--seed``):
  - churn: every 0.25 s one of the running/queued/pending/idle jobs moves on (idle → pending → queued ⇄
    running: always to another non-final status, so the set polled stays the same size), and every 2 s a
    running job's output is replaced by one with a new id and name (its old series must leave /metrics, and
    label values never seen before keep arriving);
  - faults: every 0.3 s one fault is armed with ``sim.set_fault(..., times=1..3)`` and cleared after 3 s if it
    has not fired by then: for one of the jobs fetched alone, a 500, a 404, a body that is not JSON or has the
    wrong shape; for every GET or list, 502/503 answers and connection resets (before and in the middle of a
    body); rarely a 429 (the poller pauses), an oversized body (3 MB against a 1 MB cap) and a hanging answer
    (cut by the 1 s API timeout);
  - a scraper: GET /metrics every 0.5 s, alternately gzip and plain; every answer must be a 200.
* the exporter, as a subprocess: ``exporter.cli.main`` exactly as ``python -m exporter`` runs it, started with
  ``python -c`` so that it can count refresh cycles — it wraps ``Poller._run_cycle`` and writes the count of
  completed cycles into an 8-byte shared-memory file (no thread, no I/O per cycle). Polling interval
  ``--interval`` 0.05 s. The poller's tick is at least 0.05 s and the next tick is scheduled when a cycle ends,
  so a cycle takes 0.05 s plus its own work: about 9 cycles per second here, which is why 5,000 cycles take
  about 9 minutes and the default run stops at 2,500.

What is measured
----------------
RSS: ``VmRSS`` of the exporter from ``/proc/PID/status``, read each time the cycle count passes a multiple of
``cycles / 100``; peak: ``VmHWM``. Growth: a least-squares line of RSS against cycles over the samples after the
warm-up (the first 20 % of cycles, and at least 1.5 budget windows, since the credit ledger fills over one
window), per 1,000 cycles with its standard error; and the same over the second half of the run only, which
tells a slope that keeps going from one that is flattening out. Series on /metrics at the start and the end (a
leak of label sets would show there first). Requests by outcome: the exporter's own
``integrateio_api_requests_total`` at the end.
"""

from __future__ import annotations

import argparse
import gzip
import math
import mmap
import random
import statistics
import struct
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.load import ACCOUNT, API_KEY, free_port, rss_kib, series_of, start_exporter, write_config
from exporter.simulator import SimJob, SimOutput, Simulator
from exporter.simulator.faults import FaultHandle

CREDITS = 10_000_000
MISSING_RECHECK_SECONDS = 2.0
API_TIMEOUT_SECONDS = 1.0
MAX_RESPONSE_BYTES = 1_000_000
FIRST_ID = 1000
FLIP_EVERY = 0.25
NEW_OUTPUT_EVERY = 2.0
FAULT_EVERY = 0.3
FAULT_LIFETIME = 3.0
SCRAPE_EVERY = 0.5
FLIPS = {
    "running": "queued",
    "queued": "running",
    "pending": "queued",
    "idle": "pending",
}
# (status, how many): 100 watched ids, the last 5 not in the account at all
MIX = (
    ("running", 50),
    ("queued", 10),
    ("pending", 6),
    ("idle", 6),
    ("stopping", 1),
    ("pending_stoppage", 1),
    ("completed", 10),
    ("failed", 5),
    ("stopped", 6),
    ("absent", 5),
)

# Runs in the exporter's process: the CLI as `python -m exporter` runs it, plus a cycle counter in shared memory.
COUNTED_EXPORTER = """
import mmap, os, struct, sys
from exporter import cli
from exporter.poller import Poller

counter = mmap.mmap(os.open(sys.argv[1], os.O_RDWR), 8)
run_cycle = Poller._run_cycle
cycles = 0

def counted(self):
    global cycles
    run_cycle(self)
    cycles += 1
    struct.pack_into("<Q", counter, 0, cycles)

Poller._run_cycle = counted
sys.exit(cli.main(sys.argv[2:]))
"""


# --- the world ---------------------------------------------------------------------------------------------


def populate(sim: Simulator) -> tuple[list[int], list[int], list[int]]:
    """Add the job mix; returns watched ids, ids of jobs whose status may flip, and ids the exporter GETs one
    by one every cycle or every missing recheck (alone in their status, or absent): job-specific faults hit
    only single GETs, listed jobs are never fetched one by one."""
    watched: list[int] = []
    flippable: list[int] = []
    fetched_alone: list[int] = []
    job_id = FIRST_ID
    for status, count in MIX:
        for _ in range(count):
            watched.append(job_id)
            if status in ("absent", "stopping", "pending_stoppage"):
                fetched_alone.append(job_id)
            if status != "absent":
                sim.add_job(
                    SimJob(
                        id=job_id,
                        status=status,
                        package_id=700 + job_id % 20,
                        package_name=f"soak_package_{job_id % 20}",
                        runtime_in_seconds=600 if status in ("completed", "failed", "stopped") else 0,
                        outputs=[SimOutput(id=job_id * 100, name=f"soak_output_{job_id}")],
                    ),
                    progress_per_second=1 / 600 if status == "running" else 0.0,
                    records_per_second=250 if status == "running" else 0.0,
                )
                if status in FLIPS:
                    flippable.append(job_id)
            job_id += 1
    return watched, flippable, fetched_alone


@dataclass
class Drivers:
    """Churn, faults and a scraper, each a thread, all stopped by one event."""

    sim: Simulator
    flippable: list[int]
    fetched_alone: list[int]
    metrics_url: str
    seed: int
    stop: threading.Event = field(default_factory=threading.Event)
    flips: int = 0
    new_outputs: int = 0
    faults_armed: Counter[str] = field(default_factory=Counter)
    fault_handles: list[tuple[str, FaultHandle]] = field(default_factory=list)
    scrapes: int = 0
    scrape_failures: Counter[str] = field(default_factory=Counter)
    bodies: list[bytes] = field(default_factory=lambda: [b"", b""])  # the first and the latest /metrics
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for target in (self._churn, self._faults, self._scrape):
            thread = threading.Thread(target=target, name=target.__name__, daemon=True)
            thread.start()
            self.threads.append(thread)

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(10.0)

    def _every(self, seconds: float, action: Callable[[], None]) -> None:
        due = time.monotonic()
        while not self.stop.wait(max(0.0, due - time.monotonic())):
            action()
            due += seconds

    def _churn(self) -> None:
        rng = random.Random(self.seed)
        running = [job_id for job_id in self.flippable if self.sim.job_status(job_id) == "running"]
        next_output = 10_000_000
        last_output = time.monotonic()

        def step() -> None:
            nonlocal next_output, last_output
            job_id = rng.choice(self.flippable)
            self.sim.update_job(job_id, status=FLIPS[self.sim.job_status(job_id)])
            self.flips += 1
            if time.monotonic() - last_output >= NEW_OUTPUT_EVERY:
                last_output = time.monotonic()
                next_output += 1
                target = rng.choice(running)
                self.sim.update_job(
                    target, outputs=[SimOutput(id=next_output, name=f"renamed_{next_output}")]
                )
                self.new_outputs += 1

        self._every(FLIP_EVERY, step)

    def _faults(self) -> None:
        rng = random.Random(self.seed + 1)
        shapes = ("list", "nulls", "null_outputs", "strings")
        armed: list[tuple[float, FaultHandle]] = []

        def arm() -> None:
            now = time.monotonic()
            while armed and now - armed[0][0] > FAULT_LIFETIME:
                armed.pop(0)[1].clear()  # unfired faults do not pile up in the simulator
            job_id = rng.choice(self.fetched_alone)
            times = rng.randint(1, 3)
            roll = rng.random()
            choices: list[tuple[str, dict[str, Any]]] = [
                ("500 on one job", {"kind": "status", "job_id": job_id, "code": 500}),
                ("404 for a job that exists", {"kind": "status", "job_id": job_id, "code": 404}),
                ("not JSON", {"kind": "not_json", "job_id": job_id}),
                ("wrong shape", {"kind": "wrong_shape", "job_id": job_id, "shape": rng.choice(shapes)}),
                ("502 on get_job", {"kind": "status", "endpoint": "get_job", "code": 502}),
                ("503 on list_jobs", {"kind": "status", "endpoint": "list_jobs", "code": 503}),
                ("reset on list_jobs", {"kind": "reset", "endpoint": "list_jobs"}),
                ("reset mid body", {"kind": "reset_mid_body", "endpoint": "get_job"}),
            ]
            name: str
            fault: dict[str, Any]
            if roll < 0.03:
                name, fault = "429", {"kind": "rate_limited"}
                times = 1
            elif roll < 0.06:
                name, fault = (
                    "oversized 3 MB",
                    {"kind": "oversized", "endpoint": "get_job", "size_bytes": 3_000_000},
                )
            elif roll < 0.08:
                name, fault = "hang (1 s timeout)", {"kind": "hang", "endpoint": "get_job"}
                times = 1
            else:
                name, fault = rng.choice(choices)
            kind = fault.pop("kind")
            handle = self.sim.set_fault(kind, times=times, **fault)
            armed.append((now, handle))
            self.fault_handles.append((name, handle))
            self.faults_armed[name] += 1

        self._every(FAULT_EVERY, arm)

    def _scrape(self) -> None:
        count = 0

        def scrape() -> None:
            nonlocal count
            count += 1
            headers = {"Accept-Encoding": "gzip"} if count % 2 else {}
            try:
                request = urllib.request.Request(self.metrics_url, headers=headers)
                with urllib.request.urlopen(request, timeout=10.0) as answer:
                    body = answer.read()
                    if answer.headers.get("Content-Encoding") == "gzip":
                        body = gzip.decompress(body)
                if b"integrateio_job_status" not in body:
                    self.scrape_failures["no integrateio_job_status"] += 1
                    return
                self.scrapes += 1
                self.bodies[min(1, self.scrapes - 1)] = body
            except OSError as error:
                self.scrape_failures[type(error).__name__] += 1

        self._every(SCRAPE_EVERY, scrape)

    def faults_fired(self) -> Counter[str]:
        fired: Counter[str] = Counter()
        for name, handle in self.fault_handles:
            fired[name] += handle.fired
        return fired


# --- measurement -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    seconds: float
    cycles: int
    rss_kib: int


@dataclass(frozen=True)
class Fit:
    slope_kib_per_1000: float
    stderr_kib_per_1000: float
    samples: int


def fit_line(samples: Sequence[Sample]) -> Fit:
    """Least squares RSS = a + b × cycles; b and its standard error, per 1,000 cycles."""
    n = len(samples)
    if n < 3:
        return Fit(math.nan, math.nan, n)
    xs = [float(s.cycles) for s in samples]
    ys = [float(s.rss_kib) for s in samples]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sxx
    intercept = mean_y - slope * mean_x
    residual = sum((y - intercept - slope * x) ** 2 for x, y in zip(xs, ys, strict=True))
    stderr = math.sqrt(residual / (n - 2) / sxx)
    return Fit(slope * 1000, stderr * 1000, n)


def read_cycles(counter: mmap.mmap) -> int:
    value: int = struct.unpack_from("<Q", counter, 0)[0]
    return value


def families(body: bytes) -> Counter[str]:
    """Series per metric family (the name before the labels) of a text exposition."""
    names: Counter[str] = Counter()
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            names[line.split("{", 1)[0].split(" ", 1)[0]] += 1
    return names


def requests_by_outcome(metrics_url: str) -> Counter[str]:
    with urllib.request.urlopen(metrics_url, timeout=10.0) as answer:
        text = answer.read().decode()
    outcomes: Counter[str] = Counter()
    for name, labels, value in series_of(text):
        if name == "integrateio_api_requests_total":
            outcomes[labels["outcome"]] += int(value)
    return outcomes


def soak(args: argparse.Namespace) -> int:
    began = time.monotonic()
    every = max(1, args.cycles // 100)
    with (
        tempfile.TemporaryDirectory(prefix="bench-soak-") as temp,
        Simulator(ACCOUNT, API_KEY, credits=CREDITS, window_seconds=args.window) as sim,
    ):
        directory = Path(temp)
        watched, flippable, fetched_alone = populate(sim)
        config = write_config(
            directory,
            sim.base_url,
            watched,
            interval=args.interval,
            credits=CREDITS,
            window=args.window,
            timeout=API_TIMEOUT_SECONDS,
            extra_api={"max_response_bytes": MAX_RESPONSE_BYTES},
            extra_polling={"missing_recheck_seconds": MISSING_RECHECK_SECONDS},
        )
        counter_path = directory / "cycles"
        counter_path.write_bytes(bytes(8))
        port = free_port()
        metrics_url = f"http://127.0.0.1:{port}/metrics"
        exporter = start_exporter(
            config, port, directory / "exporter.log", module=("-c", COUNTED_EXPORTER, str(counter_path))
        )
        drivers = Drivers(sim, flippable, fetched_alone, metrics_url, args.seed)
        samples: list[Sample] = []
        with counter_path.open("r+b") as handle, mmap.mmap(handle.fileno(), 8) as counter:
            try:
                start = time.monotonic()
                start_cycles = read_cycles(counter)
                samples.append(Sample(0.0, start_cycles, rss_kib(exporter.pid)))
                drivers.start()
                print(
                    f"exporter pid {exporter.pid} ready; soaking {args.cycles} cycles (at most "
                    f"{args.max_seconds:g} s), RSS every {every} cycles",
                    file=sys.stderr,
                )
                next_sample = (start_cycles // every + 1) * every
                cycles = start_cycles
                while cycles < args.cycles and time.monotonic() - start < args.max_seconds:
                    exporter.check_alive("the exporter")
                    cycles = read_cycles(counter)
                    if cycles >= next_sample:
                        samples.append(Sample(time.monotonic() - start, cycles, rss_kib(exporter.pid)))
                        next_sample = (cycles // every + 1) * every
                    time.sleep(0.01)
                seconds = time.monotonic() - start
                cycles = read_cycles(counter)
                samples.append(Sample(seconds, cycles, rss_kib(exporter.pid)))
                peak = rss_kib(exporter.pid, "VmHWM")
                drivers.finish()
                outcomes = requests_by_outcome(metrics_url)
                warnings = sum("level=warn" in line for line in exporter.log.read_text().splitlines())
                errors = sum("level=error" in line for line in exporter.log.read_text().splitlines())
            finally:
                drivers.finish()
                exporter.stop()
        fired = drivers.faults_fired()
        api_requests = len(sim.requests)

    warm_cycles = max(cycles * 0.2, start_cycles)
    warm_seconds = 1.5 * args.window
    steady = [s for s in samples if s.cycles >= warm_cycles and s.seconds >= warm_seconds]
    fit = fit_line(steady)
    late = fit_line([s for s in samples if s.cycles >= (start_cycles + cycles) / 2])
    warm_rss = steady[0].rss_kib if steady else samples[-1].rss_kib
    steady_rate = (
        (steady[-1].cycles - steady[0].cycles) / (steady[-1].seconds - steady[0].seconds)
        if len(steady) > 1
        else math.nan
    )

    mib = 1024.0
    print(
        f"\n## Soak: {cycles - start_cycles} refresh cycles, interval {args.interval:g} s, 100 jobs, churn and "
        f"faults (seed {args.seed}; Python {sys.version.split()[0]})\n"
    )
    print(
        "| cycles | seconds | cycles/s | cycles/s after warm-up | RSS start MiB | RSS after warm-up MiB "
        "| RSS end MiB | peak (VmHWM) MiB | growth KiB per 1,000 cycles after warm-up (± s.e., samples) "
        "| same, second half only |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {cycles - start_cycles} | {seconds:.0f} | {(cycles - start_cycles) / seconds:.1f} "
        f"| {steady_rate:.1f} | {samples[0].rss_kib / mib:.1f} | {warm_rss / mib:.1f} "
        f"| {samples[-1].rss_kib / mib:.1f} | {peak / mib:.1f} "
        f"| {fit.slope_kib_per_1000:+.1f} (± {fit.stderr_kib_per_1000:.1f}, {fit.samples}) "
        f"| {late.slope_kib_per_1000:+.1f} (± {late.stderr_kib_per_1000:.1f}, {late.samples}) |"
    )
    print("\n### What happened meanwhile\n")
    print("| what | count |")
    print("|---|---:|")
    first, last = (families(body) for body in drivers.bodies)
    print(
        f"| series on /metrics: first scrape / last scrape | {sum(first.values())} / {sum(last.values())} |"
    )
    for name in sorted(set(first) | set(last)):
        if first[name] != last[name]:
            print(f"| series of `{name}`: first / last | {first[name]} / {last[name]} |")
    print(f"| API requests the simulator answered | {api_requests} |")
    for outcome, count in sorted(outcomes.items()):
        print(f"| exporter: API requests with outcome `{outcome}` | {count} |")
    for name, count in sorted(fired.items()):
        print(f"| fault fired: {name} (armed {drivers.faults_armed[name]}×) | {count} |")
    print(f"| status flips | {drivers.flips} |")
    print(f"| outputs replaced by new ones | {drivers.new_outputs} |")
    print(f"| /metrics scrapes OK | {drivers.scrapes} |")
    print(
        f"| /metrics scrapes failed | {sum(drivers.scrape_failures.values())} {dict(drivers.scrape_failures)} |"
    )
    print(f"| exporter log lines: warning / error | {warnings} / {errors} |")
    print("\n### RSS samples (every 10th)\n")
    print("| seconds | cycles | RSS MiB |")
    print("|---:|---:|---:|")
    for sample in [*samples[::10], samples[-1]]:
        print(f"| {sample.seconds:.1f} | {sample.cycles} | {sample.rss_kib / mib:.2f} |")
    print(f"\nwall time {time.monotonic() - began:.0f} s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=2500, help="refresh cycles to run (default 2500)")
    parser.add_argument("--max-seconds", type=float, default=290.0, help="stop after this long (default 290)")
    parser.add_argument("--interval", type=float, default=0.05, help="polling interval, s (default 0.05)")
    parser.add_argument("--window", type=float, default=20.0, help="budget window, s (default 20)")
    parser.add_argument("--seed", type=int, default=5, help="seed of churn and faults (default 5)")
    parser.add_argument("--quick", action="store_true", help="400 cycles, at most 45 s, window 5 s")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.quick:
        args.cycles, args.max_seconds, args.window = 400, 45.0, 5.0
    return soak(args)


if __name__ == "__main__":
    sys.exit(main())
