"""Command line, logging, signals, and the wiring of config → client → poller → cache → exposition → HTTP.

This is the only module that knows all the others. Exit codes: 0 after a clean stop (SIGTERM, SIGINT) or a
good `--check-config`; 2 for a bad configuration or flag, always as one line naming the key and no traceback;
1 when the process cannot start for another reason (the port is taken).
"""

from __future__ import annotations

import argparse
import logging
import platform
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType
from typing import TYPE_CHECKING

from exporter import __version__
from exporter.app import App
from exporter.config import ApiConfig, Config, PollingConfig, RateLimitConfig, Shard, load_configs
from exporter.errors import ConfigError
from exporter.server import parse_listen_address
from exporter.webconfig import WebConfig, load_web_config

if TYPE_CHECKING:
    from exporter.simulator import Simulator

log = logging.getLogger("exporter")

DEFAULT_LISTEN_ADDRESS = ":9863"
LOG_LEVELS = ("debug", "info", "warning", "error")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="integrateio-exporter",
        description="Prometheus exporter for Integrate.io (Xplenty) ETL jobs.",
    )
    parser.add_argument("--config", default="config.yaml", metavar="PATH", help="YAML configuration file")
    parser.add_argument(
        "--web.listen-address",
        dest="listen_address",
        default=DEFAULT_LISTEN_ADDRESS,
        metavar="HOST:PORT",
        help=f"address to serve /metrics on (default {DEFAULT_LISTEN_ADDRESS}, all interfaces)",
    )
    parser.add_argument(
        "--web.config.file",
        dest="web_config_file",
        metavar="PATH",
        help="exporter-toolkit web config: TLS and basic auth for scrapers",
    )
    parser.add_argument(
        "--shard",
        metavar="INDEX/COUNT",
        help="watch only the jobs whose id hashes to INDEX of COUNT replicas, with 1/COUNT of the credits; "
        "INDEX 'auto' takes the trailing number of the hostname (a StatefulSet pod's ordinal)",
    )
    parser.add_argument("--log.level", dest="log_level", choices=LOG_LEVELS, default="info")
    parser.add_argument("--check-config", action="store_true", help="validate the configuration and exit")
    parser.add_argument(
        "--demo", action="store_true", help="run against a built-in simulated Integrate.io API"
    )
    parser.add_argument("--version", action="version", version=f"integrateio-exporter {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    try:
        if args.check_config:
            configs = load_configs(args.config)
            accounts = ", ".join(f"{len(each.jobs)} jobs, account {each.api.account_id}" for each in configs)
            print(f"{args.config}: OK ({accounts})")
            return 0
        return run(args)
    except ConfigError as error:
        print(f"integrateio-exporter: {error}", file=sys.stderr)
        return 2


def parse_shard(text: str, hostname: str) -> Shard:
    """`1/3`, or `auto/3` with the index from the hostname's trailing `-N` (pod `exporter-2` is shard 2)."""
    index_text, sep, count_text = text.partition("/")
    if not sep or not count_text.isdigit() or int(count_text) < 1:
        raise ConfigError("--shard", f"must be INDEX/COUNT, like 0/3 or auto/3, got {text!r}")
    count = int(count_text)
    if index_text == "auto":
        match = re.search(r"-(\d+)$", hostname)
        if match is None:
            raise ConfigError(
                "--shard", f"auto needs a hostname ending in -N (a StatefulSet pod), got {hostname!r}"
            )
        index_text = match.group(1)
    if not index_text.isdigit() or int(index_text) >= count:
        raise ConfigError("--shard", f"the index must be a number from 0 to {count - 1}, got {index_text!r}")
    return Shard(int(index_text), count)


def setup_logging(level: str) -> None:
    """One line per event, UTC timestamps, a level; urllib3 stays quiet below warnings."""
    handler = logging.StreamHandler(sys.stderr)
    formatter = logging.Formatter("%(asctime)s level=%(levelname)s logger=%(name)s msg=%(message)s")
    formatter.converter = time.gmtime
    formatter.default_time_format = "%Y-%m-%dT%H:%M:%S"
    formatter.default_msec_format = "%s.%03dZ"
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("urllib3").setLevel(logging.WARNING)


def run(args: argparse.Namespace) -> int:
    address = parse_listen_address(args.listen_address)
    web = load_web_config(args.web_config_file) if args.web_config_file else WebConfig()
    shard = parse_shard(args.shard, socket.gethostname()) if args.shard else Shard()
    simulator: Simulator | None = None
    if args.demo:
        demo, simulator = _demo_config()
        configs: tuple[Config, ...] = (demo,)
    else:
        configs = load_configs(args.config)
    configs = tuple(config.sharded(shard) for config in configs)
    try:
        app = App(configs, address, web)
    except OSError as error:
        log.error("cannot listen on %s: %s", args.listen_address, error.strerror or error)
        return 1
    stop = threading.Event()
    _install_signal_handlers(app, stop, None if args.demo else args.config, shard)
    log.info(
        "integrateio-exporter %s (Python %s) serving %s",
        __version__,
        platform.python_version(),
        app.url("/metrics"),
    )
    _log_summary(configs, demo=simulator is not None)
    app.start()
    stop.wait()
    log.info("stopping")
    app.stop()
    if simulator is not None:
        simulator.stop()
    log.info("stopped")
    return 0


def _install_signal_handlers(app: App, stop: threading.Event, config_path: str | None, shard: Shard) -> None:
    def on_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    def on_reload(signum: int, frame: FrameType | None) -> None:
        # Loading runs in its own thread: a signal handler must not block on file or lock I/O.
        threading.Thread(target=_reload, args=(app, config_path, shard), name="reload", daemon=True).start()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_reload)


def _reload(app: App, config_path: str | None, shard: Shard) -> None:
    if config_path is None:
        log.info("SIGHUP ignored: the demo has no configuration file")
        return
    try:
        configs = tuple(config.sharded(shard) for config in load_configs(config_path))
    except ConfigError as error:
        log.error("reload failed, keeping the running configuration: %s", error)
        app.reload_failed()
        return
    if app.reload(configs):
        _log_summary(configs, demo=False)


def _log_summary(configs: Sequence[Config], *, demo: bool) -> None:
    for config in configs:
        budget = config.rate_limit
        discover = config.discover
        log.info(
            "%swatching %d jobs%s of account %s at %s; budget %d of %d credits per %gs (reserve %g%%); "
            "target interval %gs%s",
            "demo: " if demo else "",
            len(config.jobs),
            f" and the runs of packages {', '.join(map(str, discover.package_ids))}" if discover else "",
            config.api.account_id,
            config.api.base_url,
            budget.allowed,
            budget.credits,
            budget.window_seconds,
            budget.reserve * 100,
            config.polling.interval_seconds,
            f"; shard {config.shard.index} of {config.shard.count}" if config.shard.count > 1 else "",
        )


def _demo_config() -> tuple[Config, Simulator]:
    """Start the built-in simulator and a config pointing at it: no account, no key needed."""
    from exporter.simulator import DEMO_API_KEY, DEMO_JOB_IDS, Simulator

    simulator = Simulator.demo()
    simulator.start()
    config = Config(
        api=ApiConfig(account_id=simulator.account_id, api_key=DEMO_API_KEY, base_url=simulator.base_url),
        jobs=tuple(DEMO_JOB_IDS),
        polling=PollingConfig(interval_seconds=5.0),
        rate_limit=RateLimitConfig(credits=5000, window_seconds=3600.0, reserve=0.1),
    )
    return config, simulator
