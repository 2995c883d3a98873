"""``python -m exporter.simulator``: serve the simulated API until SIGTERM/SIGINT.

Prints one line, ``simulator listening on http://HOST:PORT account=... jobs=...`` (never the key), which
scripts and end-to-end tests wait for; ``--port 0`` picks a free port and the line tells which.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from exporter.credentials import read_key_file
from exporter.errors import ConfigError
from exporter.simulator.demo import DEMO_JOB_IDS, add_running_jobs, build_demo
from exporter.simulator.hooks import HookTarget
from exporter.simulator.simulator import Simulator


def build_parser() -> argparse.ArgumentParser:
    """The command line; defaults match ``--demo`` so the exporter's demo config works against it."""
    parser = argparse.ArgumentParser(prog="python -m exporter.simulator", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=8090, help="port to bind, 0 for any free port (default 8090)"
    )
    parser.add_argument("--account-id", default="demo", help="account id in the URL path (default demo)")
    parser.add_argument(
        "--api-key", default="demo-key", help="the API key clients must send (default demo-key)"
    )
    parser.add_argument("--credits", type=int, default=5000, help="credits per window (default 5000)")
    parser.add_argument(
        "--window-seconds", type=float, default=3600.0, help="rate-limit window (default 3600)"
    )
    parser.add_argument("--demo", action="store_true", help="play the demo scenario (jobs 101-107)")
    parser.add_argument(
        "--speed", type=float, default=1.0, help="time multiplier for scripted jobs (default 1)"
    )
    parser.add_argument(
        "--running-jobs", type=int, default=0, metavar="N", help="N ever-running jobs from id 1000"
    )
    parser.add_argument(
        "--unrelated-jobs", type=int, default=0, metavar="M", help="M completed jobs nobody watches"
    )
    parser.add_argument(
        "--neighbour-credits-per-hour",
        type=float,
        default=0.0,
        metavar="X",
        help="another client of the same key spending X credits per hour",
    )
    parser.add_argument("--tls", action="store_true", help="serve HTTPS with a throw-away CA (path printed)")
    parser.add_argument("--job-ids-file", type=Path, help="write the watched job ids here, one per line")
    parser.add_argument("--hook-url", help="fire a web hook at this URL on every job transition")
    parser.add_argument("--hook-username", help="basic auth user name of the web hook")
    parser.add_argument(
        "--hook-password-file", type=Path, help="file holding the web hook's basic auth password"
    )
    parser.add_argument(
        "--hook-salt-file", type=Path, help="file holding the web hook's salt (adds its hash)"
    )
    return parser


def hook_target(args: argparse.Namespace) -> HookTarget | None:
    """The web hook the flags describe; secrets come from files (read like the exporter's key files)."""
    if args.hook_url is None:
        return None
    password = args.hook_password_file and read_key_file(args.hook_password_file, "--hook-password-file")
    salt = args.hook_salt_file and read_key_file(args.hook_salt_file, "--hook-salt-file")
    return HookTarget(args.hook_url, args.hook_username, password or None, salt or None)


def main(argv: Sequence[str] | None = None) -> int:
    """Build, start, announce, wait for a signal, stop. Returns the exit status (0)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        target = hook_target(args)
    except ConfigError as error:
        parser.error(str(error))
    sim = (
        build_demo(
            args.speed,
            account_id=args.account_id,
            api_key=args.api_key,
            credits=args.credits,
            window_seconds=args.window_seconds,
        )
        if args.demo
        else Simulator(args.account_id, args.api_key, args.credits, args.window_seconds, speed=args.speed)
    )
    watched = list(DEMO_JOB_IDS) if args.demo else []
    watched += add_running_jobs(sim, args.running_jobs)
    if args.unrelated_jobs:
        sim.add_unrelated_jobs(args.unrelated_jobs)
    if args.job_ids_file is not None:
        args.job_ids_file.write_text("".join(f"{job_id}\n" for job_id in watched))

    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    sim.start(args.port, host=args.host, tls=args.tls)
    try:
        if args.neighbour_credits_per_hour > 0:
            sim.start_neighbour(args.neighbour_credits_per_hour)
        if target is not None:
            sim.send_hooks(target)
        extra = f" ca={sim.ca_pem_path}" if args.tls else ""
        print(
            f"simulator listening on {sim.base_url} account={args.account_id} jobs={len(sim.job_ids())}{extra}",
            flush=True,
        )
        while not stop.wait(0.5):
            pass
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
