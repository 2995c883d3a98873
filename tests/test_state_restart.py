"""Issue 11 item 2: a restart with a state file keeps every package series, byte for byte, before the API answers;
followed runs are followed to their end across a restart and a reload; the typical duration comes from history."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from exporter.app import App
from exporter.model import parse_job
from exporter.simulator import SimJob, Simulator
from tests.support import make_config, scrape, wait_until

MAX_AGE = 8.0  # long enough for the first cycle to see runs that finished 2 s before the start
RUNNING_RUN = 1


@pytest.fixture
def silent_api() -> Iterator[str]:
    """An API that accepts connections and never answers a byte: whatever the exporter serves while pointed at
    it came from the state file, not from an answer. Its base URL."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def hold() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            held.append(connection)

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    listener.close()
    thread.join(timeout=5)
    for connection in held:
        connection.close()


def start(sim: Simulator, state: Path, **api: Any) -> App:
    config = make_config(
        sim,
        [],
        discover={"package_ids": [434, 500], "max_age_seconds": MAX_AGE},
        state_file=str(state),
        credits=100_000,
        interval=0.5,
        **api,
    )
    app = App(config, ("127.0.0.1", 0))
    app.start()
    return app


def package_lines(app: App) -> list[str]:
    """The package families exactly as served: HELP, TYPE and every sample line, in order."""
    text = requests.get(app.url("/metrics"), timeout=10).text
    return [line for line in text.splitlines() if "integrateio_package_" in line]


def add_finished(
    sim: Simulator, job_id: int, package_id: int, status: str, runtime: int, finished: int
) -> None:
    """A run that finished at `finished`, after `runtime` seconds."""
    sim.add_job(
        SimJob(
            id=job_id,
            status=status,
            runtime_in_seconds=runtime,
            package_id=package_id,
            package_name=f"package-{package_id}",
            created_at=finished - runtime,
        )
    )


def test_a_restart_serves_the_same_package_series_before_the_api_answers(
    sim: Simulator, tmp_path: Path, silent_api: str
) -> None:
    now = int(time.time())
    sim.add_job(
        SimJob(
            id=RUNNING_RUN,
            status="running",
            package_id=434,
            package_name="package-434",
            created_at=now - 7200,
        )
    )
    for job_id, runtime in ((2, 100), (3, 200), (4, 300), (5, 900)):
        add_finished(sim, job_id, 434, "completed", runtime, now - 2)
    add_finished(sim, 6, 434, "failed", 50, now - 1)  # the last run of package 434 failed
    add_finished(sim, 7, 500, "completed", 30, now - 1)
    state = tmp_path / "state.json"

    first = start(sim, state)
    try:
        # Every finished run ages out of discovery (max_age 8 s); only the running one stays followed. Package
        # 500 then has no watched run at all: only what the exporter remembers keeps its series.
        wait_until(
            lambda: state.exists() and list(json.loads(state.read_text())["followed"]) == [str(RUNNING_RUN)],
            20,
            "the finished runs aged out and the state file written",
        )
        before = package_lines(first)
    finally:
        first.stop()
    metrics = {line.split(" ")[0]: line.split(" ")[1] for line in before if not line.startswith("#")}
    assert metrics['integrateio_package_typical_duration_seconds{package_id="434"}'] == "250.0"
    assert metrics['integrateio_package_running_jobs{package_id="434"}'] == "1.0"
    assert metrics['integrateio_package_last_job_status{package_id="434",status="failed"}'] == "1.0"
    assert metrics['integrateio_package_last_job_status{package_id="500",status="completed"}'] == "1.0"
    assert (
        'integrateio_package_typical_duration_seconds{package_id="500"}' not in metrics
    )  # one run is not "usual"
    # Each package's page in the web UI, from its jobs' `package.html_url`: package 500's only from the state
    # file after the restart below, since none of its runs is watched any more.
    web = f"{sim.base_url}/acme/packages"
    for package_id in (434, 500):
        info = f'integrateio_package_info{{package_id="{package_id}",package_name="package-{package_id}",'
        assert metrics[f'{info}url="{web}/{package_id}"}}'] == "1.0"

    # The run ends while no exporter watches; by the next start it finished longer ago than max_age_seconds, so
    # discovery would never pick it up again: only the followed runs in the state file bring its end.
    sim.update_job(RUNNING_RUN, status="completed", runtime_in_seconds=7000)
    sim.clear_requests()

    silent = start(sim, state, base_url=silent_api, timeout=1.0)
    try:
        assert package_lines(silent) == before
        # The first request times out: an unreachable API changes nothing either.
        wait_until(
            lambda: scrape(silent).get("integrateio_api_up") == 0.0, 10, "the first request to time out"
        )
        assert package_lines(silent) == before
    finally:
        silent.stop()
    assert sim.requests == []

    finished = parse_job(sim.job_payload(RUNNING_RUN)).finished_at
    assert finished is not None
    wait_until(lambda: time.time() > finished + MAX_AGE + 1, 10, "the run to be older than max_age_seconds")
    again = start(sim, state)
    try:
        wait_until(
            lambda: (
                scrape(again).get("integrateio_package_last_job_status", package_id="434", status="completed")
                == 1.0
            ),
            10,
            "the followed run's end",
        )
        metrics_again = scrape(again)
        assert (
            metrics_again.get("integrateio_package_last_success_timestamp_seconds", package_id="434")
            == finished
        )
        # runtimes 100, 200, 300, 900 and now 7000: the median moves to 300, the long run does not drag it.
        assert metrics_again.get("integrateio_package_typical_duration_seconds", package_id="434") == 300.0
        assert metrics_again.get("integrateio_package_running_jobs", package_id="434") == 0.0
        assert (
            metrics_again.get(
                "integrateio_package_info",
                package_id="500",
                package_name="package-500",
                url=f"{sim.base_url}/acme/packages/500",
            )
            == 1.0
        )
    finally:
        again.stop()


def test_a_reload_keeps_following_a_run_that_is_off_the_newest_page(
    sim: Simulator, exporter_for: Any
) -> None:
    now = int(time.time())
    sim.add_job(SimJob(id=1, status="running", package_id=7, created_at=now - 7200))
    options: dict[str, Any] = {"discover": {"package_ids": [7], "max_age_seconds": 60}, "credits": 100_000}
    app: App = exporter_for(sim, [], interval=0.5, **options)
    wait_until(lambda: scrape(app).status(1) == "running", 5, "run 1 discovered")
    # A hundred newer runs, all finished long ago, fill the newest page: run 1 is on page 2 now, which discovery
    # does not read (that page is older than max_age_seconds). Only what it follows keeps run 1.
    for job_id in range(2, 102):
        sim.add_job(SimJob(id=job_id, status="completed", package_id=7, created_at=now - 7000 + job_id))

    app.reload(make_config(sim, [], interval=0.6, **options))
    wait_until(lambda: scrape(app).get("integrateio_refresh_interval_target_seconds") == 0.6, 5, "the reload")
    refreshed = scrape(app)["integrateio_last_full_refresh_timestamp_seconds"]
    wait_until(
        lambda: scrape(app)["integrateio_last_full_refresh_timestamp_seconds"] > refreshed + 1,
        10,
        "two cycles with the new configuration",
    )
    metrics = scrape(app)
    assert metrics.status(1) == "running"
    assert metrics["integrateio_discovered_jobs"] == 1.0
    assert (
        metrics.get("integrateio_package_typical_duration_seconds", package_id="7") is None
    )  # no run finished

    sim.update_job(1, status="completed")
    wait_until(lambda: scrape(app).status(1) == "completed", 5, "run 1 followed to its end")
