"""The change feed (issue 13, item 6): `polling.change_feed` reads the jobs updated since the last cycle first."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest

from exporter.app import App
from exporter.config import API_KEY_ENV, parse_config
from exporter.errors import ConfigError
from exporter.simulator import SimJob, Simulator
from exporter.simulator.timestamps import parse_timestamp
from tests.support import API_KEY, make_config, scrape, wait_until


def feed_reads(sim: Simulator) -> list[dict[str, str]]:
    return [r.query for r in sim.requests if r.endpoint == "list_jobs" and r.query.get("sort") == "updated"]


def test_a_job_that_left_the_running_list_is_found_on_the_feed_without_a_get(
    sim: Simulator, stop_apps: list[App], local_time_not_utc: None
) -> None:
    """`since` is UTC on the wire: written in local time (5 h 45 min east here) it would ask for the jobs
    updated in the future, and the feed would never show one."""
    started = int(time.time())
    for job_id in range(1, 6):
        sim.add_job(SimJob(id=job_id, status="running", progress=0.2))
    config = make_config(sim, list(range(1, 6)), interval=0.3, credits=100_000)
    app = App(replace(config, polling=replace(config.polling, change_feed=True)), ("127.0.0.1", 0))
    stop_apps.append(app)
    app.start()
    wait_until(lambda: len(feed_reads(sim)) >= 2, 10, "two reads of the feed")
    sim.clear_requests()
    sim.update_job(3, status="failed")
    wait_until(lambda: scrape(app).status(3) == "failed", 10, "job 3 failed on /metrics")
    found = len(feed_reads(sim))  # the read that showed job 3 failed is one of these
    wait_until(lambda: len(feed_reads(sim)) >= max(3, found + 1), 10, "another read of the feed")
    # The feed told: no confirming GET of job 3, which is no longer on the running list.
    assert [r.path for r in sim.requests if r.endpoint == "get_job"] == []
    query = feed_reads(sim)[-1]
    assert (query["status"], query["sort"], query["direction"]) == ("all", "updated", "desc")
    # Each read asks from the newest update the one before it showed (or from the feed's start): never before
    # the exporter started nor in the future, and the last one, after the read that showed job 3 failed, from
    # that update on, to the second.
    sinces = [parse_timestamp(read["since"]) for read in feed_reads(sim)]
    assert all(started <= since <= time.time() for since in sinces)
    assert sinces[-1] >= parse_timestamp(sim.job_payload(3)["updated_at"])


def test_the_feed_is_off_unless_asked_for_and_takes_only_a_boolean() -> None:
    def parse(polling: dict[str, object]) -> object:
        document = {"api": {"account_id": "acme"}, "jobs": [1], "polling": polling}
        return parse_config(document, base_dir=Path("."), environ={API_KEY_ENV: API_KEY})

    assert parse({}).polling.change_feed is False  # type: ignore[attr-defined]
    assert parse({"change_feed": True}).polling.change_feed is True  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match=r"polling\.change_feed.*must be true or false, got a string"):
        parse({"change_feed": "yes"})
