"""One running exporter: config → client → poller → cache → exposition → HTTP, started and stopped as a unit.

The command line wraps this with flags, logging and signals; tests and benchmarks run it in-process the same
way, so what they measure is what users run.
"""

from __future__ import annotations

import threading
import time

from exporter.budget import CreditBudget
from exporter.cache import JobCache
from exporter.client import ApiClient
from exporter.config import Config
from exporter.exposition import Exposition
from exporter.poller import Poller
from exporter.server import ExporterHTTPServer, Site, serve_in_background
from exporter.webconfig import WebConfig


class App:
    """Binds the listening socket at construction (so a taken port fails early); `start()` begins polling."""

    def __init__(self, config: Config, address: tuple[str, int], web: WebConfig | None = None) -> None:
        self.web = web or WebConfig()
        self.cache = JobCache()
        self.budget = CreditBudget(config.rate_limit)
        self.poller = Poller(config, ApiClient(config.api), self.budget, self.cache)
        self.cache.update_exporter(config_reload_ok=True, config_reload_time=time.time())
        health_grace = max(30.0, 3 * config.api.timeout_seconds)
        self.site = Site(
            exposition=Exposition(self.cache),
            cache=self.cache,
            healthy=lambda: self.poller.alive(health_grace),
            ready=lambda: self.cache.snapshot().exporter.ready,
            web=self.web,
        )
        self.server = ExporterHTTPServer(address, self.site)
        self._poll_thread = threading.Thread(target=self.poller.run, name="poller", daemon=True)

    def url(self, path: str = "/") -> str:
        scheme = "https" if self.web.tls_enabled else "http"
        host = str(self.server.server_address[0])
        shown = "localhost" if host in ("0.0.0.0", "::", "") else host
        shown = f"[{shown}]" if ":" in shown else shown
        return f"{scheme}://{shown}:{self.server.port}{path}"

    def start(self) -> None:
        serve_in_background(self.server)
        self._poll_thread.start()

    def reload(self, config: Config) -> None:
        self.poller.reload(config, ApiClient(config.api))
        self.cache.update_exporter(config_reload_ok=True, config_reload_time=time.time())

    def reload_failed(self) -> None:
        self.cache.update_exporter(config_reload_ok=False)

    def stop(self, timeout: float = 5.0) -> None:
        self.poller.stop()
        self.server.shutdown()
        self.server.server_close()
        if self._poll_thread.is_alive():
            self._poll_thread.join(timeout)
