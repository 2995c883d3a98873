"""Push end to end over loopback: the simulated account fires web hooks on job transitions (basic auth, salt and
hash as `resources/hooks/web-hook.md` describes), the exporter's doorbell refreshes, /metrics shows the change
long before the next poll. And `--demo` shows push out of the box.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from exporter.app import App
from exporter.simulator import HookTarget, SimJob, Simulator
from exporter.simulator.hooks import HookSender
from tests.support import API_KEY, Daemon, make_config, scrape, scrape_when, wait_until

USER = "integrateio"
PASSWORD = "hook-password-5b1f"
SALT = "2db5b8725e2d86aba40d43f6e403bdf483b8535a3d0011d34b3687140b52bc8c"


@pytest.fixture
def pushed(sim: Simulator, tmp_path: Path, stop_apps: list[App]) -> tuple[App, HookSender]:
    """An exporter polling every 10 minutes, with hooks (and their salt) on; the simulator rings it."""
    (tmp_path / "password").write_text(PASSWORD)
    (tmp_path / "salt").write_text(SALT)
    webhook: dict[str, Any] = {
        "enabled": True,
        "basic_auth": {"username": USER, "password_file": str(tmp_path / "password")},
        "salt_file": str(tmp_path / "salt"),
    }
    for job_id in (1, 2, 3):
        sim.add_job(SimJob(id=job_id, status="queued", package_id=job_id))
    app = App(make_config(sim, [1, 2, 3], interval=600.0, webhook=webhook), ("127.0.0.1", 0))
    app.start()
    stop_apps.append(app)
    scrape_when(app, lambda m: m.status(1) == "queued", "the first cycle")
    return app, sim.send_hooks(HookTarget(app.url("/webhook"), USER, PASSWORD, SALT))


def test_transitions_fired_by_the_simulator_reach_metrics_in_seconds(
    sim: Simulator, pushed: tuple[App, HookSender]
) -> None:
    app, sender = pushed
    sim.update_job(1, status="running")
    scrape_when(app, lambda m: m.status(1) == "running", "job 1 running", timeout=5)
    sim.update_job(1, status="failed")
    # Polling alone would take up to 10 minutes; the wait's deadline leaves room for a loaded machine (the
    # delay itself is measured in bench/webhook.py, not asserted here).
    scrape_when(app, lambda m: m.status(1) == "failed", "job 1 failed", timeout=10)
    assert [(hook.event, hook.job_id, hook.status) for hook in sender.sent] == [
        ("job.started", 1, 202),
        ("job.failed", 1, 202),
    ]
    metrics = scrape(app)
    assert metrics.get("integrateio_webhook_requests_total", outcome="accepted") == 2.0
    assert metrics.get("integrateio_webhook_requests_total", outcome="unauthorized") == 0.0


def test_the_ping_is_accepted_and_a_wrong_salt_is_refused(
    sim: Simulator, pushed: tuple[App, HookSender]
) -> None:
    app, sender = pushed
    sim.ping_hook()
    wait_until(lambda: sender.sent, 5, "the ping")
    assert sender.sent[-1].status == 200
    forger = sim.send_hooks(HookTarget(app.url("/webhook"), USER, PASSWORD, "a guessed salt"))
    sim.update_job(2, status="failed")
    wait_until(lambda: forger.sent, 5, "the forged hook")
    assert forger.sent[-1].status == 401
    time.sleep(0.3)
    metrics = scrape(app)
    assert metrics.status(2) == "queued"  # the forged hook did nothing; the next poll will tell
    assert metrics.get("integrateio_webhook_requests_total", outcome="unauthorized") == 1.0
    assert metrics.get("integrateio_webhook_requests_total", outcome="accepted") == 1.0


def test_the_demo_shows_push() -> None:
    with Daemon("--demo", env={"INTEGRATEIO_API_KEY": API_KEY}) as daemon:
        assert daemon.find(r"demo: the simulated account fires web hooks at http://\S+/webhook")
        metrics = wait_until(
            lambda: (
                (m := daemon.metrics()).get("integrateio_webhook_requests_total", outcome="accepted") and m
            ),
            30,
            lambda: f"a hook from the demo's first transition (5 s in):\n{daemon.output}",
        )
        assert metrics.get("integrateio_webhook_requests_total", outcome="unauthorized") == 0.0
        assert daemon.stop() == 0
