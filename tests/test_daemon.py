"""The exporter as users run it: a real subprocess, real signals, logs read from its stderr."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from exporter.simulator import SimJob, Simulator
from tests.support import API_KEY, Samples, wait_until


class Daemon:
    """`python -m exporter` with its stderr collected line by line in a thread."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "exporter", "--web.listen-address", "127.0.0.1:0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        line = wait_until(lambda: self.find(r"serving (http://\S+)/metrics"), 15, "the serving line")
        self.base = line.group(1)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def find(self, pattern: str) -> re.Match[str] | None:
        for line in list(self.lines):
            match = re.search(pattern, line)
            if match:
                return match
        return None

    def metrics(self) -> Samples:
        return Samples(requests.get(f"{self.base}/metrics", timeout=5).text)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=10)
        self._reader.join(timeout=5)
        return code

    @property
    def output(self) -> str:
        return "".join(self.lines)


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
    assert daemon.find(r"level=INFO logger=exporter msg=stopped")


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
        r"level=ERROR .*reload failed, keeping the running configuration: jobs\[1\]: must be a"
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
