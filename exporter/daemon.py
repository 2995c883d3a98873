"""The exporter as a process: the configuration the flags name (or the demo's), one `App`, signals applied.

`cli` imports this only after its signal handlers are installed, because importing it loads everything else.
"""

from __future__ import annotations

import argparse
import logging
import platform
import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING

from exporter import __version__
from exporter.app import App
from exporter.cli import Signals, parse_shard
from exporter.config import ApiConfig, Config, PollingConfig, RateLimitConfig, Shard, load_configs
from exporter.errors import ConfigError
from exporter.server import parse_listen_address
from exporter.webconfig import WebConfig, load_web_config

if TYPE_CHECKING:
    from exporter.simulator import Simulator

log = logging.getLogger("exporter")


def check_config(path: str) -> str:
    """The line `--check-config` prints for a valid file (an invalid one raises ConfigError)."""
    configs = load_configs(path)
    accounts = ", ".join(f"{len(each.jobs)} jobs, account {each.api.account_id}" for each in configs)
    return f"{path}: OK ({accounts})"


def run(args: argparse.Namespace, signals: Signals) -> int:
    """Serve until SIGTERM or SIGINT; 0 after a clean stop, 1 when the address cannot be bound."""
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
    log.info(
        "integrateio-exporter %s (Python %s) serving %s",
        __version__,
        platform.python_version(),
        app.url("/metrics"),
    )
    _log_summary(configs, demo=simulator is not None)
    app.start()
    config_path = None if args.demo else args.config
    signals.attach(lambda: _reload(app, config_path, shard))
    signals.stop.wait()
    log.info("stopping")
    app.stop()
    if simulator is not None:
        simulator.stop()
    log.info("stopped")
    return 0


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
