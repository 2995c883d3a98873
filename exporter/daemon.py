"""The exporter as a process: the configuration the flags name (or the demo's), one `App`, signals applied.

`cli` imports this only after its signal handlers are installed, because importing it loads everything else.

`load` is the whole validation of a start: listen address, web config (certificates loaded), shard, every
account's config and its share of the credits. `--check-config` runs exactly `load`, so what it accepts starts
and what it refuses would not have started, with the same one line (tests/test_check_config.py holds them to it).
"""

from __future__ import annotations

import argparse
import logging
import platform
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from exporter import __version__
from exporter.app import App
from exporter.cli import Signals, parse_shard
from exporter.config import (
    ApiConfig,
    ClustersConfig,
    Config,
    PollingConfig,
    SchedulesConfig,
    Shard,
    WebhookConfig,
    load_configs,
)
from exporter.errors import ConfigError
from exporter.server import parse_listen_address
from exporter.webconfig import WebConfig, load_web_config

if TYPE_CHECKING:
    from exporter.simulator import Simulator

log = logging.getLogger("exporter")


@dataclass(frozen=True)
class Setup:
    """What a start needs from the flags and files, all validated."""

    address: tuple[str, int]
    web: WebConfig
    shard: Shard
    configs: tuple[Config, ...]


def load(args: argparse.Namespace, demo: Config | None = None) -> Setup:
    """Validate everything a start reads (`demo` stands in for --config); ConfigError names the first bad key."""
    address = parse_listen_address(args.listen_address)
    web = load_web_config(args.web_config_file) if args.web_config_file else WebConfig()
    shard = parse_shard(args.shard, socket.gethostname()) if args.shard else Shard()
    configs = (demo.sharded(shard),) if demo is not None else _load_configs(args.config, shard)
    return Setup(address, web, shard, configs)


def _load_configs(path: str, shard: Shard) -> tuple[Config, ...]:
    return tuple(config.sharded(shard) for config in load_configs(path))


def check_config(args: argparse.Namespace) -> str:
    """The line `--check-config` prints when a start would accept the flags and files (else ConfigError)."""
    setup = load(args)
    accounts = ", ".join(
        f"{len(each.jobs)} jobs{listed_sections(each)}, account {each.api.account_id}"
        for each in setup.configs
    )
    return f"{args.config}: OK ({accounts})"


def run(args: argparse.Namespace, signals: Signals) -> int:
    """Serve until SIGTERM or SIGINT; 0 after a clean stop, 1 when the address cannot be bound."""
    simulator: Simulator | None = None
    demo: Config | None = None
    if args.demo:
        demo, simulator = _demo_config()
    try:
        setup = load(args, demo)
    except ConfigError:
        if simulator is not None:
            simulator.stop()
        raise
    configs = setup.configs
    try:
        app = App(configs, setup.address, setup.web)
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
    if simulator is not None:
        _ring_from_the_demo(simulator, app, configs[0])
    config_path = None if args.demo else args.config
    signals.attach(lambda: _reload(app, config_path, setup.shard))
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
        configs = _load_configs(config_path, shard)
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
            "target interval %gs%s%s",
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
            listed_sections(config),
        )


def listed_sections(config: Config) -> str:
    """` + schedules every 300s + clusters every 300s`: the list sections a config turns on, for one line."""
    return "".join(
        f" + {name} every {section.interval_seconds:g}s"
        for name, section in (("schedules", config.schedules), ("clusters", config.clusters))
        if section.enabled
    )


def _demo_config() -> tuple[Config, Simulator]:
    """Start the built-in simulator and a config pointing at it: no account, no key needed. Its web hook
    doorbell is on, with a password made up for this run, so the demo shows push as well as polling."""
    from exporter.simulator import DEMO_API_KEY, DEMO_JOB_IDS, Simulator

    simulator = Simulator.demo()
    simulator.start()
    config = Config(
        api=ApiConfig(account_id=simulator.account_id, api_key=DEMO_API_KEY, base_url=simulator.base_url),
        jobs=tuple(DEMO_JOB_IDS),
        polling=PollingConfig(interval_seconds=5.0),
        webhook=WebhookConfig(enabled=True, username="demo", password=secrets.token_hex(16)),
        # Read once a minute: every 10 s they would take 720 credits an hour, and the demo's 5 s refreshes (about
        # 5 credits a cycle) would no longer fit the budget beside the doorbell's share: a stretched interval and
        # a warning in a demo that is meant to show a healthy exporter.
        schedules=SchedulesConfig(enabled=True, interval_seconds=60.0),
        clusters=ClustersConfig(enabled=True, interval_seconds=60.0),
    )
    return config, simulator


def _ring_from_the_demo(simulator: Simulator, app: App, config: Config) -> None:
    """The simulated account fires its hooks at this exporter (plain HTTP only: the demo's CA is not ours)."""
    from exporter.simulator import HookTarget

    if app.web.tls_enabled:
        log.info("demo: web hooks off (the listener speaks TLS); polling only")
        return
    hooks = config.webhook
    simulator.send_hooks(HookTarget(app.url(hooks.path), hooks.username, hooks.password))
    log.info("demo: the simulated account fires web hooks at %s", app.url(hooks.path))
