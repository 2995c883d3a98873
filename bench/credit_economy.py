"""The credit economy of issue 3: what the exporter spends and how fresh it stays, next to a naive poller.

    python -m bench.credit_economy                  # every case, about 30 minutes on 2 cores
    python -m bench.credit_economy --quick          # smoke run, under 3 minutes
    python -m bench.credit_economy --cases 100x0,1000x5000,neighbour,abrupt,neighbour+feed

A benchmark, not a test: it measures and prints a Markdown table and the targets check; it asserts nothing.

What runs
---------
Per case, two pollers side by side, each against its own ``Simulator`` holding identical jobs (so they never
share credits), both over real HTTP on loopback:

* ``exporter``: the real ``exporter.app.App``, in-process, serving /metrics;
* ``naive``: what an honest plain implementation does — one ``GET /{account}/api/jobs/{id}`` per job per
  interval (``NaivePoller`` below, plain ``requests``). When the budget cannot pay for that, it stretches its
  interval to ``jobs × window / allowed`` (``allowed = credits × (1 − reserve)``) and spreads the GETs evenly
  over it. It does not read the rate-limit headers and does not retry a 429 (the job waits for its next turn).

Cases: 10, 100 and 1,000 watched running jobs, with 0 and 5,000 unrelated completed jobs in the account
(``Simulator.add_unrelated_jobs``); and three with another client of the same key (``Simulator.start_neighbour``),
over several budget windows of a tight key (``--neighbour-credits``, default 150 an hour, of which the exporter
alone would use about 120 of its 135): ``neighbour`` spends a third of the key, ``neighbour2`` two thirds, and
``abrupt`` nothing for the first window of the measured period, then two thirds. Those three watch 100 flipping
jobs and 10 more running jobs that each fail once, at a seeded random moment. Any case name may end in ``+feed``:
the exporter then reads the change feed (``polling.change_feed``), with the same change schedule as without.

Time compression
----------------
Real time is compressed by ``--scale S`` (default 20; the neighbour case uses ``--neighbour-scale``, default 60,
so that several windows fit in minutes): interval 60/S s, window 3600/S s, 5,000 credits per window, reserve
0.1. **Every number printed is in real-world (unscaled) units**: credits per real hour (charged requests ÷
compressed seconds × 3600/S) and staleness in real seconds (measured × S). The exporter's own fixed periods do
not compress (its 1 s budget publication, HTTP timeouts), and nor does the machine: a render that takes 50 ms
counts as S × 50 ms of real-world delay, so compression is harsh on the exporter, not kind to it.

Status changes
--------------
The watched list is fixed and each case should keep "N watched running jobs" true, so the change stream is
made of *flips*: a running job goes to ``queued`` (a non-final status) and back to ``running`` after a dwell;
both transitions are changes and both are measured. For the exporter, a job leaving ``running`` costs what a
job finishing costs — it is missing from the running list and gets a confirming GET — so flips exercise the
path a completion takes without shrinking the set. Flip start times are random (seeded, identical for both
pollers) over the measured period, at ``--changes-per-hour`` (real-world; default 120 — one job leaving and one
returning per minute — whatever N, so that each case gets enough samples for a p95). The dwell is 1.25–1.75 ×
the naive poller's (stretched) interval so that both pollers can see the queued state before it ends, and a
job rests another 1.25 × that interval before it may flip again, so one change is never mistaken for the one
before. The run prints the resulting average share of queued jobs per case (a few per cent; up to ~20 % with
10 jobs).

Measurement (``time.monotonic`` throughout)
-------------------------------------------
* credits per hour: charged requests in the simulator's request log (``sim.requests``, ``r.charged``) from the
  end of the warm-up (two intervals) to the end of the case; split into list pages and single GETs;
* 429s: answers with status 429 over the whole case, warm-up included;
* maximum gap: the longest time between two refreshes of one watched job within the measured period — for the
  exporter, two successive values of its ``integrateio_job_last_success_timestamp_seconds`` seen on /metrics
  (the exporter's own clock, so scrape timing adds nothing); for the naive poller, two successful GETs of the
  job. It is printed next to the longest refresh interval in use during the period (the exporter's
  ``integrateio_refresh_interval_seconds`` as scraped, the naive poller's stretched interval): the target is a
  gap of at most twice that;
* failure delay: from a job failing in the simulator to ``failed`` showing (as for staleness below); the
  neighbour cases report the slowest of their 10 failures;
* staleness of a status change: from just before ``sim.update_job`` to the change's appearance. For the
  exporter: the end of the first scrape of its /metrics whose ``integrateio_job_status{job_id,status}`` state
  set shows the new status; the bench scrapes every 0.15 s (compressed), which adds up to 0.15 × S s (about
  half that on average) to every exporter sample. For the naive poller: the moment its own in-memory dict
  holds the new status — it has no exposition and nobody scrapes it, a bias in the naive poller's favour.
  Percentiles are nearest-rank. A change that never showed (superseded, or not seen by the end of the drain)
  is counted as missed and left out of the percentiles: the table shows seen/total.

Everything (two simulators, the exporter, the naive poller, the scraper) runs in one Python process and shares
the GIL; the numbers include that contention.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import math
import random
import re
import statistics
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import requests

from exporter.app import App
from exporter.config import API_KEY_ENV, Config, RateLimitConfig, parse_config
from exporter.simulator import Simulator
from exporter.simulator.demo import add_running_jobs

REAL_INTERVAL = 60.0
REAL_WINDOW = 3600.0
CREDITS = 5000
RESERVE = 0.1
ALLOWED = RateLimitConfig(CREDITS, REAL_WINDOW, RESERVE).allowed
BUDGET_TOLERANCE = 1.01  # "inside the budget": no 429s and at most 1 % over `allowed` per hour, as measured
NEIGHBOUR_JOBS = 100
NEIGHBOUR_CREDITS = 150  # a tight key: the exporter alone wants about 120 credits an hour of its 135
NEIGHBOUR_FAILURES = 10  # extra watched running jobs in the neighbour cases, each failing once
NEIGHBOURS = {  # case name: (share of the key the neighbour spends, idle for the first window)
    "neighbour": (1 / 3, False),
    "neighbour2": (2 / 3, False),
    "abrupt": (2 / 3, True),
}
ABRUPT_FEW = 3
NEIGHBOURS_NOTE = (
    "neighbour: a third of the key; neighbour2: two thirds; abrupt: idle for the first window, then two thirds. "
    f"{NEIGHBOUR_JOBS} running jobs flip as in the other cases and {NEIGHBOUR_FAILURES} more fail once each."
)  # "at most a few" 429s when the neighbour changes pace abruptly
WARMUP_INTERVALS = 2
SCRAPE_PERIOD = 0.15
ACCOUNT = "bench"
API_KEY = "bench-key-3"
ACCEPT = "application/vnd.xplenty+json; version=2"
FIRST_JOB_ID = 1000
DEFAULT_CASES = (
    "10x0,10x5000,100x0,100x5000,1000x0,1000x5000,neighbour,neighbour2,abrupt,100x5000+feed,neighbour+feed"
)
QUICK_CASES = "10x0,100x5000,neighbour"
POLLERS = ("exporter", "naive")
STATUS_LINE = re.compile(r'^integrateio_job_status\{job_id="(\d+)",status="([a-z_]+)"\} 1\.0$', re.MULTILINE)
SUCCESS_LINE = re.compile(
    r'^integrateio_job_last_success_timestamp_seconds\{job_id="(\d+)"\} (\S+)$', re.MULTILINE
)
INTERVAL_LINE = re.compile(r"^integrateio_refresh_interval_seconds (\S+)$", re.MULTILINE)

log = logging.getLogger("bench.credit_economy")


# --- what a case is --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    jobs: int
    unrelated: int = 0
    neighbour: str = ""  # a key of NEIGHBOURS: another client of the key spends part of it
    feed: bool = False  # the exporter reads the change feed (polling.change_feed)

    @property
    def name(self) -> str:
        return (self.neighbour or f"{self.jobs}x{self.unrelated}") + ("+feed" if self.feed else "")

    @property
    def share(self) -> float:
        """The share of the key the neighbour spends (0 without one)."""
        return NEIGHBOURS[self.neighbour][0] if self.neighbour else 0.0

    @property
    def abrupt(self) -> bool:
        """The neighbour idles for the first window of the measured period, then spends its share."""
        return NEIGHBOURS[self.neighbour][1] if self.neighbour else False

    def describe(self) -> str:
        if not self.neighbour:
            return self.name
        share = "a third" if self.share < 0.5 else "two thirds"
        return f"{self.name} ({share} of the key{', after a first idle window' if self.abrupt else ''})"


@dataclass(frozen=True)
class Settings:
    scale: float
    neighbour_scale: float
    neighbour_credits: int
    intervals: int
    neighbour_windows: float
    changes_per_hour: float
    seed: int
    verbose: bool = False


@dataclass(frozen=True)
class Change:
    """One scripted status change, ``at`` real-world seconds after the measured period starts."""

    at: float
    job_id: int
    status: str


@dataclass(frozen=True)
class Applied:
    """A change as applied to one simulator: ``when`` is ``time.monotonic()`` just before the update."""

    when: float
    change: Change


def naive_interval(jobs: int, allowed: int = ALLOWED) -> float:
    """The naive poller's real-world interval: 60 s, or stretched until one GET per job fits the budget."""
    return max(REAL_INTERVAL, jobs * REAL_WINDOW / allowed)


def plan_changes(
    job_ids: Sequence[int], span: float, rest: float, changes_per_hour: float, rng: random.Random
) -> list[Change]:
    """Flips running → queued → running over ``span`` real seconds; ``rest`` is the naive poller's interval."""
    flips = round(changes_per_hour / 2 * span / 3600.0)
    free_at = dict.fromkeys(job_ids, 0.0)
    changes: list[Change] = []
    for start in sorted(rng.uniform(0.0, span) for _ in range(flips)):
        free = [job_id for job_id, at in free_at.items() if at <= start]
        if not free:
            continue
        job_id = rng.choice(free)
        dwell = rng.uniform(1.25, 1.75) * rest
        changes += [Change(start, job_id, "queued"), Change(start + dwell, job_id, "running")]
        free_at[job_id] = start + dwell + 1.25 * rest
    return sorted(changes, key=lambda change: change.at)


def plan_failures(job_ids: Sequence[int], span: float, rng: random.Random) -> list[Change]:
    """Each of ``job_ids`` fails once, at a random moment of the measured span (not in its last tenth)."""
    return [Change(rng.uniform(0.0, 0.9 * span), job_id, "failed") for job_id in job_ids]


def queued_share(changes: Sequence[Change], jobs: int, span: float) -> float:
    """Time-averaged share of the watched jobs that are queued (not running) during the measured span."""
    queued_since: dict[int, float] = {}
    queued_time = 0.0
    for change in changes:
        if change.status == "queued":
            queued_since[change.job_id] = change.at
        else:
            queued_time += min(change.at, span) - min(queued_since.pop(change.job_id), span)
    queued_time += sum(span - min(at, span) for at in queued_since.values())
    return queued_time / (span * jobs) if span > 0 and jobs > 0 else 0.0


# --- observers -------------------------------------------------------------------------------------------


class Sightings:
    """When an observer showed each status of each job: a new entry only when the shown status changes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: dict[int, str] = {}
        self._log: dict[int, list[tuple[float, str]]] = defaultdict(list)

    def show(self, job_id: int, status: str, at: float) -> None:
        with self._lock:
            if self._current.get(job_id) != status:
                self._current[job_id] = status
                self._log[job_id].append((at, status))

    def of(self, job_id: int) -> list[tuple[float, str]]:
        with self._lock:
            return list(self._log.get(job_id, ()))


class Refreshes:
    """When an observer refreshed each job (wall-clock times, distinct), for the gaps between refreshes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._times: dict[int, set[float]] = defaultdict(set)

    def add(self, job_id: int, at: float) -> None:
        with self._lock:
            self._times[job_id].add(at)

    def max_gap(self, start: float, end: float) -> float | None:
        """The longest time between two refreshes of one job, both within [start, end]."""
        with self._lock:
            series = [sorted(t for t in times if start <= t <= end) for times in self._times.values()]
        gaps = [b - a for times in series for a, b in itertools.pairwise(times)]
        return max(gaps) if gaps else None


class NaivePoller:
    """The plain way: GET every job once per interval, stretched only as far as the budget forces it."""

    def __init__(
        self, base_url: str, job_ids: Sequence[int], interval: float, window: float, allowed: int = ALLOWED
    ) -> None:
        self.interval = max(interval, len(job_ids) * window / allowed)
        self.sightings = Sightings()
        self.refreshes = Refreshes()
        self._jobs = list(job_ids)
        self._url = f"{base_url}/{ACCOUNT}/api/jobs/"
        self._session = requests.Session()
        self._session.auth = (API_KEY, "")
        self._session.headers["Accept"] = ACCEPT
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="naive-poller", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=15.0)
        self._session.close()

    def _run(self) -> None:
        spacing = self.interval / len(self._jobs)
        cycle = time.monotonic()
        while not self._stop.is_set():
            for n, job_id in enumerate(self._jobs):
                if self._stop.wait(max(0.0, cycle + n * spacing - time.monotonic())):
                    return
                self._poll(job_id)
            cycle = max(cycle + self.interval, time.monotonic())

    def _poll(self, job_id: int) -> None:
        try:
            response = self._session.get(f"{self._url}{job_id}", timeout=10.0)
        except requests.RequestException:
            return
        if response.status_code != 200:
            return  # a 429 or an error: the job waits for its next turn
        status = response.json().get("status")
        if isinstance(status, str):
            self.sightings.show(job_id, status, time.monotonic())
            self.refreshes.add(job_id, time.time())


class MetricsWatcher:
    """Scrapes the exporter's /metrics every ``period`` seconds and notes each job's status state set."""

    def __init__(self, url: str, period: float) -> None:
        self.sightings = Sightings()
        self.refreshes = Refreshes()  # the exporter's integrateio_job_last_success_timestamp_seconds values
        self.intervals: list[tuple[float, float]] = []  # (monotonic, integrateio_refresh_interval_seconds)
        self.scrapes = 0
        self.failures = 0
        self.busy = 0.0
        self.started = 0.0
        self.last_body = ""
        self._url = url
        self._period = period
        self._session = requests.Session()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="metrics-watcher", daemon=True)

    def start(self) -> None:
        self.started = time.monotonic()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=15.0)
        self._session.close()

    def mean_period(self, until: float) -> float:
        return (until - self.started) / max(1, self.scrapes)

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.wait(max(0.0, next_at - time.monotonic())):
            began = time.monotonic()
            try:
                body = self._session.get(self._url, timeout=10.0).content.decode()
            except requests.RequestException:
                self.failures += 1
                next_at = began + self._period
                continue
            done = time.monotonic()
            for job_id, status in STATUS_LINE.findall(body):
                self.sightings.show(int(job_id), status, done)
            for job_id, at in SUCCESS_LINE.findall(body):
                self.refreshes.add(int(job_id), float(at))
            interval = INTERVAL_LINE.search(body)
            if interval is not None:
                self.intervals.append((done, float(interval.group(1))))
            self.scrapes += 1
            self.busy += done - began
            self.last_body = body
            next_at = max(began + self._period, done)


class LogTally(logging.Handler):
    """Counts the exporter's warnings and errors by message template, keeping one formatted example each."""

    def __init__(self, echo: bool) -> None:
        super().__init__(logging.WARNING)
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, str] = {}
        self._echo = echo

    def emit(self, record: logging.LogRecord) -> None:
        key = f"{record.levelname} {record.name}: {record.msg}"
        self.counts[key] += 1
        example = f"{record.levelname} {record.name}: {record.getMessage()}"
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            where = traceback.extract_tb(error.__traceback__)[-1]
            example += f" ({type(error).__name__}: {error} at {Path(where.filename).name}:{where.lineno})"
        self.examples.setdefault(key, example)
        if self._echo:
            print(f"    [exporter] {example}", file=sys.stderr)


# --- results ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    case: Case
    poller: str
    credits_per_hour: float
    list_per_hour: float
    get_per_hour: float
    rate_limited: int
    staleness: tuple[float, ...]
    changes: int
    missed: int
    max_gap: float | None = None  # real seconds: the longest time between two refreshes of a job
    interval: float | None = None  # real seconds: the longest (stretched) interval in use while measured
    failures: tuple[float, ...] = ()  # real seconds from a job failing to the failure showing
    failures_total: int = 0

    @property
    def median(self) -> float | None:
        return statistics.median(self.staleness) if self.staleness else None

    @property
    def p95(self) -> float | None:
        return percentile(self.staleness, 0.95)


@dataclass
class CaseResult:
    case: Case
    scale: float
    rows: list[Row]
    notes: list[str] = field(default_factory=list)
    wall: float = 0.0


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def staleness(
    applied: Sequence[Applied], sightings: Sightings, scale: float
) -> tuple[list[tuple[float, Applied]], int]:
    """Real-world seconds from each change to its first sighting (with the change); and how many never showed.

    A sighting counts for a change if it shows the change's status after the change and before that job
    next returns to the same status (so a late sighting still counts; one of an earlier episode never does).
    """
    by_job: dict[int, list[Applied]] = defaultdict(list)
    for item in applied:
        by_job[item.change.job_id].append(item)
    delays: list[tuple[float, Applied]] = []
    missed = 0
    for job_id, items in by_job.items():
        seen = sightings.of(job_id)
        for n, item in enumerate(items):
            until = next(
                (later.when for later in items[n + 1 :] if later.change.status == item.change.status),
                math.inf,
            )
            hit = next(
                (at for at, status in seen if status == item.change.status and item.when <= at < until), None
            )
            if hit is None:
                missed += 1
            else:
                delays.append(((hit - item.when) * scale, item))
    return delays, missed


def charged_rates(sim: Simulator, start: float, end: float, scale: float) -> tuple[float, float, float, int]:
    """Credits per real hour in [start, end] (all, list pages, single GETs) and the 429s of the whole run."""
    log_ = sim.requests
    hours = (end - start) * scale / 3600.0
    charged = [r for r in log_ if r.charged and start <= r.time <= end]
    lists = sum(1 for r in charged if r.endpoint == "list_jobs")
    gets = sum(1 for r in charged if r.endpoint == "get_job")
    too_many = sum(1 for r in log_ if r.status == 429)
    return len(charged) / hours, lists / hours, gets / hours, too_many


def cycle_starts(sim: Simulator, start: float, end: float) -> list[float]:
    """When the exporter read the first page of the running list: the start of each of its cycles."""
    return [
        r.time
        for r in sim.requests
        if r.endpoint == "list_jobs"
        and r.query.get("status") == "running"
        and "offset" not in r.query
        and start <= r.time <= end
    ]


def describe(item: Applied, cycles: Sequence[float], start: float, scale: float) -> str:
    """A change, placed in the exporter's cycles: how long after a cycle began, and how many began since."""
    before = [at for at in cycles if at <= item.when]
    since = f", {(item.when - before[-1]) * scale:.0f} s into a cycle" if before else ""
    return f"job {item.change.job_id} → {item.change.status} at +{(item.when - start) * scale / 60:.1f} min{since}"


# --- one case --------------------------------------------------------------------------------------------


def exporter_config(
    sim: Simulator, job_ids: Sequence[int], scale: float, credits: int = CREDITS, feed: bool = False
) -> Config:
    document = {
        "api": {"account_id": ACCOUNT, "base_url": sim.base_url},
        "jobs": list(job_ids),
        "polling": {
            "interval_seconds": REAL_INTERVAL / scale,
            "missing_recheck_seconds": REAL_WINDOW / scale,
            "change_feed": feed,
        },
        "rate_limit": {"credits": credits, "window_seconds": REAL_WINDOW / scale, "reserve": RESERVE},
    }
    return parse_config(document, base_dir=Path("."), environ={API_KEY_ENV: API_KEY})


def build_simulator(case: Case, scale: float, credits: int) -> tuple[Simulator, list[int]]:
    sim = Simulator(ACCOUNT, API_KEY, credits, REAL_WINDOW / scale)
    jobs = case.jobs + (NEIGHBOUR_FAILURES if case.neighbour else 0)
    job_ids = add_running_jobs(sim, jobs, first_id=FIRST_JOB_ID)
    if case.unrelated:
        sim.add_unrelated_jobs(case.unrelated, status="completed")
    return sim, job_ids


def run_case(case: Case, settings: Settings) -> CaseResult:
    began = time.monotonic()
    scale = settings.neighbour_scale if case.neighbour else settings.scale
    credits = settings.neighbour_credits if case.neighbour else CREDITS
    allowed = RateLimitConfig(credits, REAL_WINDOW, RESERVE).allowed
    span = settings.neighbour_windows * REAL_WINDOW if case.neighbour else settings.intervals * REAL_INTERVAL
    built = {name: build_simulator(case, scale, credits) for name in POLLERS}
    job_ids = built["exporter"][1]
    rest = naive_interval(len(job_ids), allowed)
    sims = {name: sim for name, (sim, _) in built.items()}
    rng = random.Random(f"{settings.seed}:{case.jobs}:{case.neighbour}")
    flipping, failing = job_ids[: case.jobs], job_ids[case.jobs :]
    flips = plan_changes(flipping, span, rest, settings.changes_per_hour, rng)
    changes = sorted([*flips, *plan_failures(failing, span, rng)], key=lambda change: change.at)
    applied: dict[str, list[Applied]] = {name: [] for name in POLLERS}
    tally = LogTally(settings.verbose)
    exporter_log = logging.getLogger("exporter")
    exporter_log.addHandler(tally)
    app: App | None = None
    naive: NaivePoller | None = None
    watcher: MetricsWatcher | None = None
    neighbour_spend = case.share * credits * scale  # its share of every (compressed) window

    def start_neighbours() -> None:
        for sim in sims.values():
            sim.start_neighbour(neighbour_spend)

    late_neighbour = threading.Timer(
        WARMUP_INTERVALS * REAL_INTERVAL / scale + REAL_WINDOW / scale, start_neighbours
    )
    try:
        for sim in sims.values():
            sim.start()
            if case.neighbour and not case.abrupt:
                sim.start_neighbour(neighbour_spend)
        app = App(exporter_config(sims["exporter"], job_ids, scale, credits, case.feed), ("127.0.0.1", 0))
        naive = NaivePoller(
            sims["naive"].base_url, job_ids, REAL_INTERVAL / scale, REAL_WINDOW / scale, allowed
        )
        watcher = MetricsWatcher(app.url("/metrics"), SCRAPE_PERIOD)
        observers = {"exporter": watcher.sightings, "naive": naive.sightings}
        app.start()
        naive.start()
        watcher.start()
        if case.abrupt:
            late_neighbour.start()
        time.sleep(WARMUP_INTERVALS * REAL_INTERVAL / scale)

        start, start_wall = time.monotonic(), time.time()
        for change in changes:
            time.sleep(max(0.0, start + change.at / scale - time.monotonic()))
            for name, sim in sims.items():
                applied[name].append(Applied(time.monotonic(), change))
                sim.update_job(change.job_id, status=change.status)
        time.sleep(max(0.0, start + span / scale - time.monotonic()))
        deadline = time.monotonic() + (1.25 * rest + 2 * REAL_INTERVAL) / scale
        while time.monotonic() < deadline:
            if all(staleness(applied[name], observers[name], scale)[1] == 0 for name in POLLERS):
                break
            time.sleep(0.25)
        end, end_wall = time.monotonic(), time.time()
    finally:
        late_neighbour.cancel()
        for stoppable in (watcher, naive, app):
            if stoppable is not None:
                stoppable.stop()
        for sim in sims.values():
            sim.stop()
        exporter_log.removeHandler(tally)

    rows = []
    delays: dict[str, list[tuple[float, Applied]]] = {}
    refreshes = {"exporter": watcher.refreshes, "naive": naive.refreshes}
    in_use = [value for at, value in watcher.intervals if start <= at <= end]
    intervals = {"exporter": max(in_use, default=REAL_INTERVAL / scale), "naive": naive.interval}
    for name in POLLERS:
        total, lists, gets, too_many = charged_rates(sims[name], start, end, scale)
        delays[name], missed = staleness(applied[name], observers[name], scale)
        values = tuple(delay for delay, item in delays[name] if item.change.status != "failed")
        failed = tuple(delay for delay, item in delays[name] if item.change.status == "failed")
        gap = refreshes[name].max_gap(start_wall, end_wall)
        rows.append(
            Row(
                case,
                name,
                total,
                lists,
                gets,
                too_many,
                values,
                sum(1 for item in applied[name] if item.change.status != "failed"),
                missed - (len(failing) - len(failed)),
                max_gap=None if gap is None else gap * scale,
                interval=intervals[name] * scale,
                failures=failed,
                failures_total=len(failing),
            )
        )
    result = CaseResult(case, scale, rows, wall=time.monotonic() - began)
    if case.neighbour:
        result.notes.append(
            f"key of {credits:,} credits/hour; neighbour {neighbour_spend / scale:,.0f} credits/hour"
            + (f", from {REAL_WINDOW / 60:.0f} min into the measured period" if case.abrupt else "")
            + f"; {len(failing)} more watched running jobs fail once each"
        )
    result.notes.append(
        f"scale {scale:g}; measured {(end - start) * scale / 60:.0f} real min; {len(changes)} changes; "
        f"on average {100 * queued_share(flips, case.jobs, span):.1f} % of the watched jobs queued; "
        f"naive interval {naive.interval * scale:.0f} s"
    )
    refresh = re.search(r"^integrateio_refresh_interval_seconds (\S+)$", watcher.last_body, re.MULTILINE)
    shown = f"{float(refresh.group(1)) * scale:.0f} s" if refresh else "?"
    result.notes.append(
        f"exporter: list pages {rows[0].list_per_hour:.0f}/h + single GETs {rows[0].get_per_hour:.0f}/h; "
        f"refresh interval at the end {shown}; /metrics scraped every {watcher.mean_period(end) * scale:.1f} real s "
        f"on average ({watcher.scrapes} scrapes, mean {1000 * watcher.busy / max(1, watcher.scrapes):.0f} ms"
        f" each, {watcher.failures} failed)"
    )
    cycles = cycle_starts(sims["exporter"], start, end)
    gaps = [(b - a) * scale for a, b in itertools.pairwise(cycles)]
    if gaps:
        result.notes.append(
            f"exporter cycles (first page of the running list): {len(cycles)}, every {statistics.mean(gaps):.1f} s "
            f"on average, longest gap {max(gaps):.1f} s"
        )
    slowest = sorted(delays["exporter"], key=lambda pair: pair[0], reverse=True)[:3]
    worst = [f"{delay:.0f} s ({describe(item, cycles, start, scale)})" for delay, item in slowest]
    result.notes.append(f"exporter's slowest changes: {'; '.join(worst) or '–'}")
    for key, count in tally.counts.most_common():
        result.notes.append(f"exporter log ×{count}: {tally.examples[key]}")
    return result


# --- report ----------------------------------------------------------------------------------------------


def seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f} s"


def table(rows: Sequence[Row]) -> list[str]:
    lines = [
        "| case | jobs | unrelated | poller | credits/hour | 429s | staleness median | staleness p95 | changes seen "
        "| max gap (interval) | failure delay max | failures seen |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        failures = f"{len(row.failures)}/{row.failures_total}" if row.failures_total else "–"
        lines.append(
            f"| {row.case.name} | {row.case.jobs:,} | {row.case.unrelated:,} | {row.poller} "
            f"| {row.credits_per_hour:,.0f} | {row.rate_limited:,} | {seconds(row.median)} | {seconds(row.p95)} "
            f"| {row.changes - row.missed}/{row.changes} | {seconds(row.max_gap)} ({seconds(row.interval)}) "
            f"| {seconds(max(row.failures, default=None))} | {failures} |"
        )
    return lines


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def targets(results: Sequence[CaseResult]) -> list[str]:
    """The issue's targets, checked against the rows of the cases that ran."""
    lines: list[str] = []
    rows = [row for result in results for row in result.rows]
    plain = [row for row in rows if not row.case.neighbour]
    budget_per_hour = ALLOWED * 3600.0 / REAL_WINDOW
    p95_100 = REAL_INTERVAL + 5.0
    for row in (r for r in plain if r.case.jobs == 100):
        p95 = row.p95 if row.p95 is not None else math.inf
        where = f"100 jobs, {row.case.unrelated:,} unrelated, {row.poller}{' +feed' if row.case.feed else ''}"
        if row.poller == "exporter":
            lines.append(
                f"- {where}: credits/hour {row.credits_per_hour:,.0f} ≤ 150: "
                f"{verdict(row.credits_per_hour <= 150)}; p95 staleness {seconds(row.p95)} ≤ {p95_100:.0f} s: "
                f"{verdict(p95 <= p95_100)}"
            )
        else:
            over = row.credits_per_hour - 150
            late = p95 - p95_100
            lines.append(
                f"- {where} (shortfall): credits/hour {row.credits_per_hour:,.0f}, "
                f"{over:+,.0f} over 150 ({row.credits_per_hour / 150:.0f}×); p95 staleness {seconds(row.p95)}, "
                + (f"misses {p95_100:.0f} s by {late:.0f} s" if late > 0 else f"within {p95_100:.0f} s")
            )
    for row in (r for r in plain if r.case.jobs == 1000):
        p95 = row.p95 if row.p95 is not None else math.inf
        # The naive poller is built to spend exactly the budget: allow for where the measured span cuts a cycle.
        inside = row.credits_per_hour <= BUDGET_TOLERANCE * budget_per_hour and row.rate_limited == 0
        where = (
            f"1,000 jobs, {row.case.unrelated:,} unrelated, {row.poller}{' +feed' if row.case.feed else ''}"
        )
        check = (
            f"p95 staleness {seconds(row.p95)} ≤ {2 * REAL_INTERVAL:.0f} s: {verdict(p95 <= 2 * REAL_INTERVAL)}; "
            f"inside the budget ({row.credits_per_hour:,.0f} ≤ {budget_per_hour:,.0f} credits/hour, "
            f"{row.rate_limited} 429s): {verdict(inside)}"
        )
        if row.poller == "naive" and p95 > 2 * REAL_INTERVAL:
            check += f" — misses {2 * REAL_INTERVAL:.0f} s by {p95 - 2 * REAL_INTERVAL:.0f} s"
        lines.append(f"- {where}: {check}")
    for row in (r for r in rows if r.case.neighbour and r.poller == "exporter"):
        gap = row.max_gap if row.max_gap is not None else math.inf
        interval = row.interval or REAL_INTERVAL
        check = f"max gap {seconds(row.max_gap)} ≤ 2 × {seconds(interval)}: {verdict(gap <= 2 * interval)}; "
        if row.case.abrupt:
            check += f"{row.rate_limited} 429s ≤ {ABRUPT_FEW}: {verdict(row.rate_limited <= ABRUPT_FEW)}"
        elif row.case.share < 0.5:
            check += f"{row.rate_limited} 429s, target zero: {verdict(row.rate_limited == 0)}"
        else:
            check += f"{row.rate_limited} 429s (no target)"
        slowest = max(row.failures, default=None)
        check += (
            f"; failures seen {len(row.failures)}/{row.failures_total}, the slowest after {seconds(slowest)}"
            " (reported, no target)"
        )
        lines.append(f"- {row.case.describe()}, exporter: {check}")
    return lines or ["- (no case of the targets ran)"]


def report(results: Sequence[CaseResult], settings: Settings, wall: float, tree: str) -> str:
    plain = [row for result in results for row in result.rows if not row.case.neighbour]
    neighbour = [row for result in results for row in result.rows if row.case.neighbour]
    out = [
        "## Credit economy (issue 3)",
        "",
        f"Real-world units: credits per real hour, staleness in real seconds (time compressed {settings.scale:g}×"
        f", neighbour case {settings.neighbour_scale:g}×). Interval 60 s, budget {CREDITS:,} credits/hour, "
        f"reserve {RESERVE:g}; {settings.changes_per_hour:g} status changes/hour (running ⇄ queued flips). "
        "Exporter staleness is measured on its /metrics (scraped every 0.15 compressed s), the naive poller's "
        "on its own in-memory state (no scrape: a bias in its favour).",
        "",
    ]
    if plain:
        out += [*table(plain), ""]
    if neighbour:
        windows = f"{settings.neighbour_windows:g} window{'' if settings.neighbour_windows == 1 else 's'}"
        out += [
            f"Another client of the key spending part of it, on a tight key of {settings.neighbour_credits:,} "
            f"credits/hour (so that the exporter's own demand is close to its budget), {windows} of 1 hour; "
            f"{NEIGHBOURS_NOTE}",
            "",
        ]
        out += [*table(neighbour), ""]
    out += ["Targets:", "", *targets(results), "", "Notes per case:", ""]
    for result in results:
        out.append(f"- {result.case.name} ({result.wall:.0f} s wall):")
        out += [f"  - {note}" for note in result.notes]
    out += ["", f"Exporter code: {tree} at start. Wall time: {wall / 60:.1f} min ({wall:.0f} s)."]
    return "\n".join(out)


def tree_version() -> str:
    """The commit the exporter code was run from, with -dirty when the tree had uncommitted changes."""
    try:
        done = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip() or "unknown"


# --- command line ----------------------------------------------------------------------------------------


def parse_cases(text: str) -> list[Case]:
    cases = []
    for token in (part.strip().lower() for part in text.split(",") if part.strip()):
        named = token.replace("neighbor", "neighbour").removesuffix("+feed")
        feed = token.endswith("+feed")
        if named in NEIGHBOURS:
            cases.append(Case(NEIGHBOUR_JOBS, 0, neighbour=named, feed=feed))
            continue
        match = re.fullmatch(r"(\d+)x(\d+)", named)
        if match is None or int(match.group(1)) < 1:
            raise argparse.ArgumentTypeError(
                f"bad case {token!r}: use JOBSxUNRELATED (e.g. 100x5000) or one of {', '.join(NEIGHBOURS)}, "
                "each optionally with +feed (the exporter reads the change feed)"
            )
        cases.append(Case(int(match.group(1)), int(match.group(2)), feed=feed))
    if not cases:
        raise argparse.ArgumentTypeError("no cases given")
    return cases


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.credit_economy",
        description="Credits and staleness of the exporter next to a naive poller (issue 3).",
    )
    parser.add_argument(
        "--quick", action="store_true", help=f"short smoke run (cases {QUICK_CASES}, fewer intervals)"
    )
    parser.add_argument(
        "--cases",
        type=parse_cases,
        help=f"comma-separated JOBSxUNRELATED or {', '.join(NEIGHBOURS)} (default {DEFAULT_CASES})",
    )
    parser.add_argument(
        "--scale", type=float, default=20.0, help="time compression of the plain cases (default 20)"
    )
    parser.add_argument(
        "--neighbour-scale",
        type=float,
        default=60.0,
        help="time compression of the neighbour cases (default 60)",
    )
    parser.add_argument(
        "--neighbour-credits",
        type=int,
        default=NEIGHBOUR_CREDITS,
        help=f"the key's credits per hour in the neighbour cases (default {NEIGHBOUR_CREDITS})",
    )
    parser.add_argument(
        "--intervals", type=int, help="measured intervals of changes per plain case (default 15, quick 5)"
    )
    parser.add_argument(
        "--neighbour-windows", type=float, help="budget windows in the neighbour case (default 3, quick 1)"
    )
    parser.add_argument(
        "--changes-per-hour",
        type=float,
        default=120.0,
        help="real-world status changes per hour (default 120)",
    )
    parser.add_argument("--seed", type=int, default=3, help="seed of the change schedule (default 3)")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="echo the exporter's warnings as they happen"
    )
    args = parser.parse_args(argv)
    settings = Settings(
        scale=args.scale,
        neighbour_scale=args.neighbour_scale,
        neighbour_credits=args.neighbour_credits,
        intervals=args.intervals or (5 if args.quick else 15),
        neighbour_windows=args.neighbour_windows or (1.0 if args.quick else 3.0),
        changes_per_hour=args.changes_per_hour,
        seed=args.seed,
        verbose=args.verbose,
    )
    cases = args.cases or parse_cases(QUICK_CASES if args.quick else DEFAULT_CASES)
    began = time.monotonic()
    tree = tree_version()
    results = []
    for case in cases:
        print(f"case {case.name} ...", file=sys.stderr, flush=True)
        result = run_case(case, settings)
        results.append(result)
        print(f"case {case.name}: done in {result.wall:.0f} s", file=sys.stderr, flush=True)
    print(report(results, settings, time.monotonic() - began, tree))
    return 0


if __name__ == "__main__":
    sys.exit(main())
