"""Shared fixtures: a simulated Integrate.io API on loopback, and exporters running against it in-process."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from exporter.app import App
from exporter.simulator import SimJob, Simulator
from tests.support import API_KEY, NOT_UTC, WEB_API_JOB, Pki, make_config, make_pki, require_tool


@pytest.fixture
def local_time_not_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process's local time is `NOT_UTC` for the test: a timestamp written or read in local time instead
    of UTC is then 5 h 45 min off, even on a machine whose own zone is UTC. Time zones are per process, so the
    exporters and simulators a test runs in-process see it too."""
    monkeypatch.setenv("TZ", NOT_UTC)
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def make_sim() -> Iterator[Callable[..., Simulator]]:
    """Start simulators (account "acme", key API_KEY); all are stopped at teardown."""
    sims: list[Simulator] = []

    def start(credits: int = 5000, window_seconds: float = 3600.0, **kwargs: Any) -> Simulator:
        simulator = Simulator(
            account_id="acme", api_key=API_KEY, credits=credits, window_seconds=window_seconds
        )
        simulator.start(**kwargs)
        sims.append(simulator)
        return simulator

    yield start
    for simulator in sims:
        simulator.stop()


@pytest.fixture
def sim(make_sim: Callable[..., Simulator]) -> Simulator:
    return make_sim()


@pytest.fixture(scope="module")
def api() -> Iterator[Simulator]:
    """A simulated API with one running job (WEB_API_JOB), for a module's web server tests (see
    tests/support.py's `serving`): their exporters need something to scrape, never changed, so one serves the
    module."""
    simulator = Simulator(account_id="acme", api_key=API_KEY)
    simulator.add_job(SimJob(id=WEB_API_JOB, status="running", progress=0.5))
    simulator.start()
    yield simulator
    simulator.stop()


@pytest.fixture
def exporter_for() -> Iterator[Callable[..., App]]:
    """Start exporters in-process on a free loopback port; all are stopped at teardown."""
    apps: list[App] = []

    def start(sim: Simulator, jobs: list[int], **options: Any) -> App:
        app = App(make_config(sim, jobs, **options), ("127.0.0.1", 0))
        app.start()
        apps.append(app)
        return app

    yield start
    for app in apps:
        app.stop()


@pytest.fixture(scope="session")
def promtool() -> str:
    """promtool from Debian's `prometheus` package: the test skips without it, except in CI (see require_tools)."""
    return require_tool("promtool")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """Server, CA and client certificates for one test module (tests may add files beside them)."""
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def stop_apps() -> Iterator[list[App]]:
    """Apps a test starts itself; stopped at teardown."""
    apps: list[App] = []
    yield apps
    for app in apps:
        app.stop()
