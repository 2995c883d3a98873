"""``Simulator``: the one object tests, benchmarks and ``--demo`` hold. It wires world, ledger, faults, request
log and HTTP server together and owns their threads; all logic lives in those modules."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from exporter.simulator.api import Api
from exporter.simulator.faults import FaultBook, FaultHandle
from exporter.simulator.hooks import HookSender, HookTarget
from exporter.simulator.http import SimServer
from exporter.simulator.ledger import CreditLedger, Neighbour
from exporter.simulator.pipelines import PipelineStore, SimCluster, SimSchedule
from exporter.simulator.records import RequestLog, RequestRecord
from exporter.simulator.tls import TlsMaterial, make_tls
from exporter.simulator.world import UNSET, SimJob, SimOutput, Step, Unset, World

TICK_SECONDS: Final = 0.2


class Simulator:
    """A simulated Integrate.io API v2 for one account and one API key, served over real HTTP on loopback.

    ``speed`` multiplies how fast scripted jobs advance (``Simulator.demo(speed=60)`` plays minutes in
    seconds). ``retry_after_on_429`` adds a ``Retry-After`` header (seconds until a credit frees up) to
    ledger 429s; the real API sends none, hence off by default. ``list_items`` is what GET /jobs items carry:
    ``full`` (as documented), ``lean`` (no ``outputs``) or ``nulls`` (``outputs``, progress, runtime and package
    null); single GETs stay full.
    """

    def __init__(
        self,
        account_id: str = "acme",
        api_key: str = "sim-key",
        credits: int = 5000,
        window_seconds: float = 3600.0,
        *,
        speed: float = 1.0,
        retry_after_on_429: bool = False,
        max_records: int = 500_000,
        list_items: str = "full",
    ) -> None:
        self.account_id = account_id
        self._world = World(speed=speed)
        self._pipelines = PipelineStore()
        self._ledger = CreditLedger(credits, window_seconds)
        self._faults = FaultBook()
        self._log = RequestLog(max_records)
        self._api = Api(
            world=self._world,
            pipelines=self._pipelines,
            ledger=self._ledger,
            faults=self._faults,
            account_id=account_id,
            api_key=api_key,
            retry_after_on_429=retry_after_on_429,
        )
        self._api.list_items = list_items
        self._lock = threading.Lock()
        self._server: SimServer | None = None
        self._serve_thread: threading.Thread | None = None
        self._ticker: threading.Thread | None = None
        self._ticker_stop = threading.Event()
        self._neighbour: Neighbour | None = None
        self._tls: TlsMaterial | None = None
        self._base_url: str | None = None
        self._hooks: HookSender | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------

    def start(self, port: int = 0, *, host: str = "127.0.0.1", tls: bool = False) -> Simulator:
        """Bind ``host:port`` (0 = a free port), serve in a daemon thread and start the job ticker.

        With ``tls`` the server speaks HTTPS with a certificate from a fresh CA (see ``ca_pem_path``).
        Returns ``self`` so ``sim = Simulator().start()`` reads naturally.
        """
        with self._lock:
            if self._server is not None:
                raise RuntimeError("simulator already started")
            public_host = "127.0.0.1" if host in ("", "0.0.0.0") else host
            if tls:
                self._tls = make_tls(sorted({"127.0.0.1", "localhost", public_host}))
            try:
                server = SimServer(
                    (host, port),
                    api=self._api,
                    log=self._log,
                    ssl_context=self._tls.context if self._tls else None,
                )
            except OSError:
                if self._tls is not None:
                    self._tls.cleanup()
                    self._tls = None
                raise
            scheme = "https" if tls else "http"
            self._base_url = f"{scheme}://{public_host}:{server.server_address[1]}"
            self._api.base_url = self._base_url
            self._world.set_url_root(f"{self._base_url}/{self.account_id}")
            self._pipelines.set_url_root(f"{self._base_url}/{self.account_id}")
            self._server = server
            self._serve_thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="sim-http", daemon=True
            )
            self._serve_thread.start()
            self._ticker_stop.clear()
            self._ticker = threading.Thread(target=self._tick_forever, name="sim-ticker", daemon=True)
            self._ticker.start()
            return self

    def _tick_forever(self) -> None:
        last = time.monotonic()
        while not self._ticker_stop.wait(TICK_SECONDS):
            now = time.monotonic()
            self._world.tick(now - last)
            last = now

    def stop(self) -> None:
        """Stop serving, cut open connections (even hanging or trickling ones), stop all threads. Idempotent."""
        self.stop_neighbour()
        self.stop_hooks()
        with self._lock:
            server, self._server = self._server, None
            self._ticker_stop.set()
            if server is not None:
                server.stopping.set()
                server.shutdown()
                server.close_connections()
                server.server_close()
            for thread in (self._serve_thread, self._ticker):
                if thread is not None and thread.is_alive():
                    thread.join(timeout=2.0)
            self._serve_thread = self._ticker = None
            if self._tls is not None:
                self._tls.cleanup()
                self._tls = None

    def __enter__(self) -> Simulator:
        if self._server is None:
            self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (or ``https://``); clients append ``/{account_id}/api``."""
        if self._base_url is None:
            raise RuntimeError("simulator not started")
        return self._base_url

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self.base_url.rsplit(":", 1)[1])

    @property
    def ca_pem_path(self) -> Path:
        """The CA certificate a client must trust to verify ``start(tls=True)``; only while started with TLS."""
        if self._tls is None:
            raise RuntimeError("simulator not started with tls=True")
        return self._tls.ca_pem_path

    # -- jobs --------------------------------------------------------------------------------------------

    def add_job(
        self,
        job: SimJob,
        *,
        script: Sequence[Step] = (),
        progress_per_second: float = 0.0,
        records_per_second: float = 0.0,
    ) -> None:
        """Add a job. ``script`` steps fire ``after_seconds`` (simulated) after this call; while the job is
        running, progress and every output's records grow at the given rates (progress stops at 0.99 until
        the job completes). Without script or rates the job changes only through ``update_job``."""
        self._world.add(
            job, script=script, progress_per_second=progress_per_second, records_per_second=records_per_second
        )

    def update_job(
        self,
        job_id: int,
        *,
        status: str | None = None,
        progress: float | None = None,
        runtime_in_seconds: int | None = None,
        errors: str | Unset | None = UNSET,
        outputs: Sequence[SimOutput] | None = None,
        bump_updated: bool = False,
    ) -> None:
        """Change a job. A status change always moves ``updated_at`` (strictly forward) and sets
        ``started_at``/``completed_at``/``failed_at`` as the real service would; ``bump_updated`` moves
        ``updated_at`` without a status change. ``errors=None`` sets a JSON null."""
        self._world.update(
            job_id,
            status=status,
            progress=progress,
            runtime_in_seconds=runtime_in_seconds,
            errors=errors,
            outputs=outputs,
            bump_updated=bump_updated,
        )

    def job_payload(self, job_id: int) -> dict[str, Any]:
        """Exactly the JSON ``GET /jobs/{job_id}`` would return now; ``KeyError`` if there is no such job."""
        payload = self._world.payload(job_id)
        if payload is None:
            raise KeyError(job_id)
        return payload

    def job_status(self, job_id: int) -> str:
        """The job's current status (cheaper than ``job_payload`` for wait loops)."""
        return self._world.status_of(job_id)

    def job_ids(self) -> list[int]:
        """Every job id, ascending."""
        return self._world.ids()

    def remove_job(self, job_id: int) -> None:
        """Delete a job; the API answers 404 for it afterwards."""
        self._world.remove(job_id)

    def add_unrelated_jobs(self, count: int, status: str = "completed") -> list[int]:
        """Bulk-add jobs nobody watches (ids from 100000 up, packages 9000-9009); returns their ids."""
        return self._world.add_unrelated(count, status)

    # -- web hooks ---------------------------------------------------------------------------------------

    def send_hooks(self, target: HookTarget) -> HookSender:
        """Fire a web hook at ``target`` on every job transition from now on (see ``exporter.simulator.hooks``);
        replaces a previous target. Returns the sender, whose ``sent`` lists what was fired."""
        self.stop_hooks()
        sender = HookSender(target, self._world.payload)
        self._hooks = sender
        self._world.on_transition = sender.transition
        return sender

    def ping_hook(self) -> None:
        """Fire a test notification, as the API's ``GET /hooks/{id}/ping`` does."""
        if self._hooks is not None:
            self._hooks.ping()

    def stop_hooks(self) -> None:
        sender, self._hooks = self._hooks, None
        self._world.on_transition = None
        if sender is not None:
            sender.stop()

    # -- schedules and clusters (`exporter.simulator.pipelines`) ---------------------------------------------

    def put_schedule(self, schedule: SimSchedule) -> None:
        """Add or replace a schedule (served by `GET /schedules`)."""
        self._pipelines.put_schedule(schedule)

    def put_cluster(self, cluster: SimCluster) -> None:
        """Add or replace a cluster (served by `GET /clusters`)."""
        self._pipelines.put_cluster(cluster)

    def remove_listed(self, resource: str, item_id: int) -> None:
        """Delete a schedule (`resource` "schedules") or a cluster ("clusters")."""
        self._pipelines.remove(resource, item_id)

    def schedule_payload(self, schedule_id: int) -> dict[str, Any]:
        """Exactly the JSON `GET /schedules` serves for this schedule now; `KeyError` if there is none."""
        return self._pipelines.schedule_payload(schedule_id)

    def cluster_payload(self, cluster_id: int) -> dict[str, Any]:
        """Exactly the JSON `GET /clusters` serves for this cluster now; `KeyError` if there is none."""
        return self._pipelines.cluster_payload(cluster_id)

    # -- requests and credits ----------------------------------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        """A copy of the request log, oldest first."""
        return self._log.snapshot()

    def clear_requests(self) -> None:
        """Empty the request log."""
        self._log.clear()

    def credits_remaining(self) -> int:
        """Credits left in the key's sliding window right now."""
        return self._ledger.remaining()

    def start_neighbour(self, credits_per_hour: float) -> None:
        """Another client of the same key spending ``credits_per_hour`` (times ``window_seconds/3600`` per
        window), evenly; replaces a running neighbour."""
        self.stop_neighbour()
        neighbour = Neighbour(self._ledger, credits_per_hour)
        with self._lock:
            self._neighbour = neighbour
        neighbour.start()

    def stop_neighbour(self) -> None:
        """Stop the neighbour, if any."""
        with self._lock:
            neighbour, self._neighbour = self._neighbour, None
        if neighbour is not None:
            neighbour.stop()

    def set_list_items(self, mode: str) -> None:
        """Switch what GET /jobs items carry (``full``, ``lean``, ``nulls``) while serving."""
        self._api.list_items = mode

    # -- faults ------------------------------------------------------------------------------------------

    def set_fault(
        self,
        kind: str,
        job_id: int | None = None,
        endpoint: str | None = None,
        times: int | None = None,
        **params: Any,
    ) -> FaultHandle:
        """Arm a fault (kinds and parameters: ``faults.KINDS``) for one job, one endpoint or everything,
        ``times`` times or until cleared. ``ValueError`` for unknown kinds or parameters."""
        return FaultHandle(
            self._faults,
            self._faults.add(kind, job_id=job_id, endpoint=endpoint, times=times, params=params),
        )

    def clear_faults(self) -> None:
        """Disarm every fault."""
        self._faults.clear()

    # -- scenarios ---------------------------------------------------------------------------------------

    @classmethod
    def demo(cls, speed: float = 1.0) -> Simulator:
        """An un-started simulator playing the demo scenario (see ``exporter.simulator.demo``)."""
        from exporter.simulator.demo import build_demo

        return build_demo(speed)
