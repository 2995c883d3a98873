"""Issue 15: how long a failed run takes to reach /metrics with polling at 60 s, with and without web hooks.

    python -m bench.webhook              # 24 failures per variant over 8 minutes (about 9 minutes)
    python -m bench.webhook --quick      # 8 failures over 3 minutes

A benchmark, not a test: it measures and prints a Markdown table; it asserts nothing.

Two exporters run side by side, in-process (`exporter.app.App`, as users run it), each against its own
`Simulator` over HTTP on loopback, both with `polling.interval_seconds: 60` and 5,000 credits an hour (reserve
0.1), both watching the same 30 running jobs:

* `polling`: the doorbell off;
* `hooks`: the doorbell on (basic auth and salt), and the simulated account fires a web hook at it on every job
  transition (`exporter.simulator.hooks`: the hook's POST, one at a time, as Integrate.io would).

No time compression: a poll every 60 real seconds. The same seeded random moments (uniform over the measured
period, after a first full cycle) fail the same jobs in both simulators (`sim.update_job(status="failed")`).

Measured (`time.monotonic`):
* delay: from just before `update_job` to the end of the first scrape of the exporter's /metrics showing the job
  `failed` (a watcher scrapes each exporter every 0.1 s, which adds up to 0.1 s, 0.05 s on average);
* credits per hour: the simulator's charged requests over the measured period (from the first failure's earliest
  possible moment to the end), scaled to an hour; 429s over the whole run.

Polling's delay is the wait for the next cycle (uniform over the interval: median about 30 s); with hooks it is
the hook's POST plus one GET. Credits: a failure costs polling a confirming GET (the job left the running list);
with hooks the same GET comes earlier, and the next cycle knows the job is final already.
"""

from __future__ import annotations

import argparse
import logging
import random
import re
import statistics
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import requests

from exporter.app import App
from exporter.config import API_KEY_ENV, parse_config
from exporter.simulator import HookTarget, SimJob, Simulator

INTERVAL = 60.0
JOBS = list(range(1001, 1031))
KEY = "bench-key"
USER, PASSWORD, SALT = "integrateio", "bench-hook-password", "bench-salt-2db5b872"
SCRAPE_PERIOD = 0.1
FAILED = re.compile(r'^integrateio_job_status\{job_id="(\d+)",status="failed"\} 1\.0$', re.MULTILINE)


@dataclass
class Variant:
    """One exporter and its simulator, and what the watcher saw."""

    name: str
    sim: Simulator
    app: App
    seen: dict[int, float] = field(default_factory=dict)  # job id -> monotonic time it first showed failed


def start_variant(name: str, hooks: bool, secrets: Path) -> Variant:
    sim = Simulator(account_id="bench", api_key=KEY, credits=5000, window_seconds=3600.0)
    sim.start()
    for job_id in JOBS:
        sim.add_job(SimJob(id=job_id, status="running", package_id=job_id))
    document: dict[str, object] = {
        "api": {"account_id": "bench", "base_url": sim.base_url},
        "jobs": JOBS,
        "polling": {"interval_seconds": INTERVAL},
        "rate_limit": {"credits": 5000, "window_seconds": 3600, "reserve": 0.1},
    }
    if hooks:
        document["webhook"] = {
            "enabled": True,
            "basic_auth": {"username": USER, "password_file": str(secrets / "password")},
            "salt_file": str(secrets / "salt"),
        }
    config = parse_config(document, base_dir=Path("."), environ={API_KEY_ENV: KEY})
    app = App(config, ("127.0.0.1", 0))
    app.start()
    if hooks:
        sim.send_hooks(HookTarget(app.url("/webhook"), USER, PASSWORD, SALT))
    return Variant(name, sim, app)


def watch(variant: Variant, stop: threading.Event) -> None:
    """Scrape /metrics every SCRAPE_PERIOD and note when each job first shows failed."""
    session = requests.Session()
    while not stop.is_set():
        try:
            text = session.get(variant.app.url("/metrics"), timeout=5).text
        except requests.RequestException:
            continue
        now = time.monotonic()
        for match in FAILED.finditer(text):
            variant.seen.setdefault(int(match.group(1)), now)
        stop.wait(SCRAPE_PERIOD)


def nearest_rank(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(share * len(ordered) + 0.999999) - 1))]


def run(failures: int, measured: float, seed: int, secrets: Path) -> list[str]:
    (secrets / "password").write_text(PASSWORD)
    (secrets / "salt").write_text(SALT)
    variants = [start_variant("polling", False, secrets), start_variant("hooks", True, secrets)]
    stop = threading.Event()
    watchers = [threading.Thread(target=watch, args=(each, stop), daemon=True) for each in variants]
    for thread in watchers:
        thread.start()
    time.sleep(INTERVAL / 6)  # the first cycle: every job known running
    rng = random.Random(seed)
    moments = sorted(rng.uniform(0, measured) for _ in range(failures))
    victims = rng.sample(JOBS, failures)
    began = time.monotonic()
    failed_at: dict[int, float] = {}
    for moment, job_id in zip(moments, victims, strict=True):
        time.sleep(max(0.0, began + moment - time.monotonic()))
        failed_at[job_id] = time.monotonic()
        for variant in variants:
            variant.sim.update_job(job_id, status="failed")
    drain_until = time.monotonic() + INTERVAL + 5  # the last failure's next poll
    while time.monotonic() < drain_until and not all(set(failed_at) <= set(v.seen) for v in variants):
        time.sleep(0.5)
    end = time.monotonic()
    stop.set()
    rows = ["| polling | web hooks | failures seen | delay median | p95 | max | credits/hour | 429s |"]
    rows.append("|---|---|---:|---:|---:|---:|---:|---:|")
    for variant in variants:
        delays = [variant.seen[job] - at for job, at in failed_at.items() if job in variant.seen]
        records = variant.sim.requests
        charged = sum(1 for r in records if r.charged and began <= r.time <= end)
        throttled = sum(1 for r in records if r.status == 429)
        per_hour = charged * 3600.0 / (end - began)
        hooks = "on" if variant.name == "hooks" else "off"
        median = statistics.median(delays) if delays else float("nan")
        rows.append(
            f"| every {INTERVAL:g} s | {hooks} | {len(delays)}/{failures} | {median:.2f} s | "
            f"{nearest_rank(delays, 0.95):.2f} s | {max(delays):.2f} s | {per_hour:.0f} | {throttled} |"
        )
        variant.app.stop()
        variant.sim.stop()
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.webhook", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 failures over 3 minutes")
    parser.add_argument("--failures", type=int, default=24, help="failures per variant (default 24)")
    parser.add_argument("--minutes", type=float, default=8.0, help="measured period (default 8)")
    parser.add_argument("--seed", type=int, default=15)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # the exporters' transition lines would drown the table
    failures, minutes = (8, 3.0) if args.quick else (args.failures, args.minutes)
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as secrets:
        rows = run(min(failures, len(JOBS)), minutes * 60.0, args.seed, Path(secrets))
    print("\n".join(rows))
    print(
        f"\n{failures} failures over {minutes:g} min per variant; wall time {time.monotonic() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
