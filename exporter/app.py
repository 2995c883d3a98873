"""One running exporter: config → client → poller → cache → exposition → HTTP, started and stopped as a unit.

`daemon` runs it as the process users start (configuration file, demo, signals, with flags and logging from
`cli`); tests and benchmarks run it in-process the same way, so what they measure is what users run. Each configured account has its own client, credit budget, poller
and cache; the HTTP side reads them together (`CacheGroup`), with an `account` label when there are several.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from exporter.budget import CreditBudget
from exporter.cache import CacheGroup, JobCache
from exporter.client import ApiClient
from exporter.config import Config
from exporter.exposition import Exposition
from exporter.poller import Poller
from exporter.server import ExporterHTTPServer, Site, serve_in_background
from exporter.webconfig import WebConfig
from exporter.webhook import Doorbell

log = logging.getLogger(__name__)


@dataclass
class Account:
    """The parts that poll one account."""

    config: Config
    cache: JobCache
    budget: CreditBudget
    poller: Poller
    thread: threading.Thread
    doorbell: Doorbell | None = None


class App:
    """Binds the listening socket at construction (so a taken port fails early); `start()` begins serving and
    polling.

    `config` is one account's Config or several (from `accounts:`). With one account, `cache`, `budget` and
    `poller` are that account's; with several, `cache` is the read-only view of all of them, while `budget` and
    `poller` are still the first account's (`accounts` holds each one's parts).
    """

    def __init__(
        self, config: Config | Sequence[Config], address: tuple[str, int], web: WebConfig | None = None
    ) -> None:
        configs = [config] if isinstance(config, Config) else list(config)
        self.web = web or WebConfig()
        self.accounts = [self._account(each) for each in configs]
        first = self.accounts[0]
        self.budget, self.poller = first.budget, first.poller
        labelled = any(each.labelled for each in configs)
        self.cache: JobCache | CacheGroup = (
            first.cache if len(self.accounts) == 1 else CacheGroup([each.cache for each in self.accounts])
        )
        health_grace = max(30.0, 3 * max(each.api.timeout_seconds for each in configs))
        self.site = Site(
            exposition=Exposition(self.cache, labelled=labelled),
            cache=self.cache,
            healthy=lambda: all(each.poller.alive(health_grace) for each in self.accounts),
            ready=lambda: self.cache.snapshot().ready,
            web=self.web,
            doorbell=self.doorbell,
        )
        self.server = ExporterHTTPServer(address, self.site)

    @staticmethod
    def _account(config: Config) -> Account:
        cache = JobCache(account=config.name if config.labelled else None)
        budget = CreditBudget(config.rate_limit)
        poller = Poller(config, ApiClient(config.api), budget, cache)
        cache.update_exporter(config_reload_ok=True, config_reload_time=time.time())
        name = f"poller-{config.name}" if config.labelled else "poller"
        return Account(
            config,
            cache,
            budget,
            poller,
            threading.Thread(target=poller.run, name=name, daemon=True),
            App._doorbell(config, None, cache, poller),
        )

    @staticmethod
    def _doorbell(
        config: Config, current: Doorbell | None, cache: JobCache, poller: Poller
    ) -> Doorbell | None:
        """The account's doorbell when `webhook.enabled`: the current one reconfigured, or a new one."""
        if not config.webhook.enabled:
            return None
        limit, window = config.rate_limit.allowed, config.rate_limit.window_seconds
        everything = config.discover is not None
        if current is None:
            return Doorbell(config.webhook, limit, window, cache, poller, watching_all_runs=everything)
        current.configure(config.webhook, limit, window, watching_all_runs=everything)
        return current

    def doorbell(self, path: str) -> Doorbell | None:
        """The doorbell listening on `path`, if any (paths are distinct across accounts)."""
        return next(
            (
                each.doorbell
                for each in self.accounts
                if each.doorbell is not None and each.doorbell.config.path == path
            ),
            None,
        )

    def url(self, path: str = "/") -> str:
        scheme = "https" if self.web.tls_enabled else "http"
        host = str(self.server.server_address[0])
        shown = "localhost" if host in ("0.0.0.0", "::", "") else host
        shown = f"[{shown}]" if ":" in shown else shown
        return f"{scheme}://{shown}:{self.server.port}{path}"

    def start(self) -> None:
        serve_in_background(self.server)
        for account in self.accounts:
            account.thread.start()
            if account.doorbell is not None:
                account.doorbell.start()

    def reload(self, config: Config | Sequence[Config]) -> bool:
        """Apply a reloaded configuration to the running accounts, matched by name. Adding or removing an
        account needs a restart (its poller, budget and series are set up at start): refused, False."""
        configs = [config] if isinstance(config, Config) else list(config)
        if [each.name for each in configs] != [account.config.name for account in self.accounts]:
            log.error("reload refused: the list of accounts changed; restart the exporter to apply it")
            self.reload_failed()
            return False
        if any(
            bool(each.webhook.enabled) != (account.doorbell is not None)
            for each, account in zip(configs, self.accounts, strict=True)
        ):
            log.error("reload refused: webhook.enabled changed; restart the exporter to apply it")
            self.reload_failed()
            return False
        for account, new in zip(self.accounts, configs, strict=True):
            account.poller.reload(new, ApiClient(new.api))
            account.doorbell = self._doorbell(new, account.doorbell, account.cache, account.poller)
            account.config = new
            account.cache.update_exporter(config_reload_ok=True, config_reload_time=time.time())
        return True

    def reload_failed(self) -> None:
        for account in self.accounts:
            account.cache.update_exporter(config_reload_ok=False)

    def stop(self, timeout: float = 5.0) -> None:
        for account in self.accounts:
            account.poller.stop()
            if account.doorbell is not None:
                account.doorbell.stop(timeout)
        self.server.shutdown()
        self.server.server_close()
        for account in self.accounts:
            if account.thread.is_alive():
                account.thread.join(timeout)
