"""Take docs/status-page.png: the status page of an exporter watching the demo simulator, in mixed states.

Rerunnable by anyone with Debian's chromium (`apt-get install chromium`): it starts the demo simulator at a
speed where jobs queue, run, fail and complete within seconds, an exporter in-process against it, waits until
the jobs are in a telling mix of states (one failed, several running, one waiting, some final), freezes the
exporter's cache there by stopping its poller (so the picture does not depend on how fast Chromium starts), and
has headless Chromium render the page. Nothing is fetched from the network.

    python scripts/screenshot.py [--output docs/status-page.png] [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from exporter.app import App  # noqa: E402
from exporter.config import ApiConfig, Config, PollingConfig, RateLimitConfig  # noqa: E402
from exporter.simulator import DEMO_API_KEY, DEMO_JOB_IDS, Simulator  # noqa: E402

SPEED = 5.0
"""Demo seconds per real second: the states wanted (demo seconds 110 to 150) come after about 25 s."""
INTERVAL_SECONDS = 5.0
"""The demo's own refresh interval, which the default budget allows without stretching it."""
MISSING_JOB_ID = 108
"""Watched but not in the simulator: the API answers 404 and the page shows it as missing."""
WIDTH, HEIGHT = 1360, 660

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
)


def find_chromium(explicit: str | None) -> str:
    """The Chromium binary: the one asked for, else Debian's `chromium` (or a `chromium-browser`) on PATH."""
    for candidate in (explicit, "chromium", "chromium-browser", "google-chrome"):
        if candidate and (path := shutil.which(candidate)):
            return path
    raise SystemExit("chromium not found: apt-get install chromium (or pass --chromium PATH)")


def mixed_states(app: App) -> bool:
    """102 has failed, 107 still runs and 103 waits to (demo seconds 110 to 140): one row of every kind."""
    statuses = {state.job_id: state.job.status.value for state in app.cache.snapshot().jobs if state.job}
    waiting = statuses.get(103) in ("idle", "pending", "queued")
    return statuses.get(102) == "failed" and statuses.get(107) == "running" and waiting


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "status-page.png")
    parser.add_argument("--chromium", help="path of the Chromium binary (default: chromium on PATH)")
    args = parser.parse_args(argv)
    chromium = find_chromium(args.chromium)
    logging.getLogger("exporter").setLevel(
        logging.ERROR
    )  # the story's warnings are the picture, not the output

    sim = Simulator.demo(speed=SPEED).start()
    # One 503 for job 106's first GET, so the "Last error" column shows what a recovered error looks like.
    sim.set_fault("status", job_id=106, times=1, code=503)
    config = Config(
        api=ApiConfig(account_id=sim.account_id, api_key=DEMO_API_KEY, base_url=sim.base_url),
        jobs=(*DEMO_JOB_IDS, MISSING_JOB_ID),
        polling=PollingConfig(interval_seconds=INTERVAL_SECONDS),
        rate_limit=RateLimitConfig(credits=5000, window_seconds=3600.0, reserve=0.1),
    )
    app = App(config, ("127.0.0.1", 0))
    app.start()
    try:
        deadline = time.monotonic() + 300 / SPEED
        while not mixed_states(app):
            if time.monotonic() > deadline:
                raise SystemExit("the demo never reached the mixed states; is the machine very busy?")
            time.sleep(0.1)
        app.poller.stop()  # freeze the cache; the HTTP server keeps serving it
        args.output.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="screenshot-chromium-") as profile:
            subprocess.run(
                [
                    chromium,
                    *CHROMIUM_FLAGS,
                    f"--user-data-dir={profile}",
                    f"--window-size={WIDTH},{HEIGHT}",
                    f"--screenshot={args.output.resolve()}",
                    app.url("/"),
                ],
                check=True,
                capture_output=True,
                timeout=60,
            )
    finally:
        app.stop()
        sim.stop()
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
