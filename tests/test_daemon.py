"""The exporter as users run it: a real subprocess, real signals, logs read from its stderr."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from exporter.simulator import SimJob, Simulator
from tests.support import API_KEY, Daemon, wait_until


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for daemon in started:
        if daemon.process.poll() is None:
            daemon.process.kill()
            daemon.process.wait()


def write_config(path: Path, sim: Simulator, jobs: list[int], interval: float = 1.0) -> Path:
    path.write_text(
        f"api:\n  account_id: {sim.account_id}\n  base_url: {sim.base_url}\n  timeout_seconds: 2\n"
        f"jobs: {jobs}\npolling:\n  interval_seconds: {interval}\n"
    )
    return path


def test_sigterm_stops_cleanly_with_exit_code_0(
    sim: Simulator, tmp_path: Path, daemons: list[Daemon]
) -> None:
    sim.add_job(SimJob(id=1, status="running"))
    daemon = Daemon(
        "--config", str(write_config(tmp_path / "c.yaml", sim, [1])), env={"INTEGRATEIO_API_KEY": API_KEY}
    )
    daemons.append(daemon)
    wait_until(lambda: daemon.metrics().status(1) == "running", 10, "job 1 on /metrics")
    assert requests.get(f"{daemon.base}/healthz", timeout=5).status_code == 200
    assert requests.get(f"{daemon.base}/readyz", timeout=5).status_code == 200
    sent = time.monotonic()
    assert daemon.stop() == 0
    assert time.monotonic() - sent < 5.0
    assert daemon.find(r"^ts=\S+Z level=info caller=daemon\.py:\d+ msg=stopped$")


def test_sigint_stops_too(sim: Simulator, tmp_path: Path, daemons: list[Daemon]) -> None:
    sim.add_job(SimJob(id=1, status="running"))
    daemon = Daemon(
        "--config", str(write_config(tmp_path / "c.yaml", sim, [1])), env={"INTEGRATEIO_API_KEY": API_KEY}
    )
    daemons.append(daemon)
    daemon.process.send_signal(signal.SIGINT)
    assert daemon.process.wait(timeout=10) == 0


def test_sighup_reloads_and_a_bad_new_config_keeps_the_old(
    sim: Simulator, tmp_path: Path, daemons: list[Daemon]
) -> None:
    sim.add_job(SimJob(id=1, status="running"))
    sim.add_job(SimJob(id=2, status="queued"))
    config = write_config(tmp_path / "c.yaml", sim, [1])
    daemon = Daemon("--config", str(config), env={"INTEGRATEIO_API_KEY": API_KEY})
    daemons.append(daemon)
    wait_until(lambda: daemon.metrics().status(1) == "running", 10, "job 1")

    write_config(config, sim, [2])
    daemon.process.send_signal(signal.SIGHUP)
    wait_until(lambda: daemon.metrics().status(2) == "queued", 10, "job 2 after reload")
    metrics = daemon.metrics()
    assert metrics.status(1) is None  # unwatched jobs leave /metrics
    assert metrics["integrateio_watched_jobs"] == 1.0
    assert metrics["integrateio_config_last_reload_success"] == 1.0

    config.write_text("api: {account_id: acme}\njobs: [2, -1]\n")
    daemon.process.send_signal(signal.SIGHUP)
    wait_until(
        lambda: daemon.metrics()["integrateio_config_last_reload_success"] == 0.0, 10, "reload failure"
    )
    assert daemon.find(
        r'level=error caller=\S+ msg="reload failed, keeping the running configuration: jobs\[1\]: must be a'
    )
    assert daemon.metrics().status(2) == "queued"
    assert daemon.stop() == 0


def test_the_key_never_appears_in_logs_errors_or_metrics(tmp_path: Path, daemons: list[Daemon]) -> None:
    """Debug logging, a refused key, server errors, a redirect: the key shows nowhere."""
    sim = Simulator(account_id="acme", api_key="the-right-key", credits=5000, window_seconds=3600.0)
    sim.start()
    try:
        sim.add_job(SimJob(id=1, status="running"))
        daemon = Daemon(
            "--log.level",
            "debug",
            "--config",
            str(write_config(tmp_path / "c.yaml", sim, [1, 2])),
            env={"INTEGRATEIO_API_KEY": API_KEY},  # the wrong key: 401
        )
        daemons.append(daemon)
        wait_until(lambda: daemon.find("API refused the key"), 10, "the 401 to be logged")
        body = requests.get(f"{daemon.base}/metrics", timeout=5).text
        assert 'integrateio_api_requests_total{endpoint="get_job",outcome="unauthorized"}' in body
        assert "integrateio_api_up 0.0" in body
        assert daemon.stop() == 0
        assert API_KEY not in daemon.output
        assert API_KEY not in body
    finally:
        sim.stop()


def test_a_refused_key_is_not_retried_in_a_tight_loop(tmp_path: Path, daemons: list[Daemon]) -> None:
    sim = Simulator(account_id="acme", api_key="the-right-key", credits=5000, window_seconds=3600.0)
    sim.start()
    try:
        for job_id in range(1, 6):
            sim.add_job(SimJob(id=job_id, status="running"))
        daemon = Daemon(
            "--config",
            str(write_config(tmp_path / "c.yaml", sim, [1, 2, 3, 4, 5], interval=0.5)),
            env={"INTEGRATEIO_API_KEY": API_KEY},
        )
        daemons.append(daemon)
        wait_until(lambda: daemon.find("API refused the key"), 10, "the 401")
        first = min(r.time for r in sim.requests if r.status == 401)
        wait_until(lambda: time.monotonic() > first + 4.5 and daemon.metrics(), 10, "four seconds")
        later = [r.time - first for r in sim.requests if r.status == 401 and r.time > first + 0.5]
        # The first cycle's GETs went out together (polling.concurrency); their 401s pause every request for
        # a sixtieth of the hour-long window, so nothing more is sent for a minute: no tight loop.
        assert later == []
        assert daemon.metrics()["integrateio_api_backoff_seconds"] > 50.0
    finally:
        daemon.stop()
        sim.stop()


def start_until_handled(config: Path, signum: int, daemons: list[Daemon]) -> Daemon:
    """A daemon the moment it has a handler for `signum`: the earliest a signal can reach it and be handled
    (before that, only the interpreter's own start-up runs)."""
    daemon = Daemon("--config", str(config), env={"INTEGRATEIO_API_KEY": API_KEY}, serving=False)
    daemons.append(daemon)
    wait_until(lambda: signum in daemon.caught_signals(), 10, f"a handler for {signum}", step=0.001)
    return daemon


def test_a_sighup_right_after_start_is_remembered_and_applied_once_running(
    sim: Simulator, tmp_path: Path, daemons: list[Daemon]
) -> None:
    """`systemctl reload` right after `systemctl start`: the SIGHUP arrives while the process is still importing
    and reading its configuration. It used to kill the process (3 tries in 5); now the handler is in place as soon
    as our code runs, and the reload happens once the exporter is serving."""
    sim.add_job(SimJob(id=1, status="running"))
    config = write_config(tmp_path / "c.yaml", sim, [1])
    for _ in range(5):
        sighup_during_start_up(config, daemons)


def sighup_during_start_up(config: Path, daemons: list[Daemon]) -> None:
    daemon = start_until_handled(config, signal.SIGHUP, daemons)
    daemon.process.send_signal(signal.SIGHUP)
    daemon.wait_serving()
    wait_until(lambda: daemon.find("SIGHUP received during start-up: reloading now"), 10, "the reload")
    wait_until(lambda: daemon.output.count("watching 1 jobs of account") == 2, 10, "the reloaded summary")
    wait_until(lambda: daemon.metrics().status(1) == "running", 10, "job 1 on /metrics")
    assert daemon.metrics()["integrateio_config_last_reload_success"] == 1.0
    assert daemon.stop() == 0


def test_a_sigterm_right_after_start_stops_promptly_with_exit_code_0(
    sim: Simulator, tmp_path: Path, daemons: list[Daemon]
) -> None:
    sim.add_job(SimJob(id=1, status="running"))
    config = write_config(tmp_path / "c.yaml", sim, [1])
    for _ in range(3):
        daemon = start_until_handled(config, signal.SIGTERM, daemons)
        sent = time.monotonic()
        daemon.process.send_signal(signal.SIGTERM)
        assert daemon.process.wait(timeout=10) == 0
        assert time.monotonic() - sent < 3.0
