"""Schedules and clusters in the state file: a restart serves the same `integrateio_schedule_*` and
`integrateio_cluster_*` series, and the time of their last read, before it lists them; the first listing
replaces them (what was deleted meanwhile leaves); a version 2 file still loads; a section that cannot be read
is ignored alone, in one log line.

The exporter is held at its first request (the free rate-limit read at start) by a simulated API that does not
answer it: whatever it serves until then came from the state file, and the simulator's request log says no
listing was asked for.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import pytest
import requests

from exporter.app import App
from exporter.pipelines import Cluster, Schedule
from exporter.pipelinestate import CLUSTERS, SCHEDULES
from exporter.simulator import FaultHandle, SimCluster, Simulator
from exporter.state import FORMAT_VERSION, load_state
from exporter.tasks.listed import MAX_LISTED_ITEMS
from tests.support import scrape, scrape_when, wait_until
from tests.test_clusters import clusters
from tests.test_schedules import schedules

LISTED = {"enabled": True, "interval_seconds": 3600}  # one read per process: the first, due at start
LISTINGS = ("list_schedules", "list_clusters")

Start = Callable[..., App]


@pytest.fixture
def start(sim: Simulator, exporter_for: Start) -> Start:
    """Start exporters with schedules, clusters and a state file (stopped at teardown; stopping one earlier is
    harmless)."""
    return lambda state, **options: exporter_for(
        sim, [], state_file=str(state), schedules=LISTED, clusters=LISTED, **options
    )


@pytest.fixture
def found(sim: Simulator) -> list[SimCluster]:
    """The schedules of `tests.test_schedules` and the clusters of `tests.test_clusters` in the simulator; the
    clusters."""
    schedules(sim)
    return clusters(sim)


def held(sim: Simulator, start: Start, state: Path, **options: Any) -> tuple[App, FaultHandle]:
    """An exporter held at its first request (the free rate-limit read at start) until its timeout, or until
    the returned fault is cleared: by then it has restored its state file, and listed nothing."""
    sim.clear_requests()
    gate = sim.set_fault("hang", endpoint="rate_limit_status")
    app = start(state, **options)
    wait_until(
        lambda: any(r.endpoint == "rate_limit_status" for r in sim.requests),
        10,
        "the exporter's first request",
    )
    return app, gate


def listed_lines(app: App) -> list[str]:
    """The schedule, cluster and listing families exactly as served: HELP, TYPE and every sample, in order."""
    text = requests.get(app.url("/metrics"), timeout=10).text
    prefixes = ("integrateio_schedule_", "integrateio_cluster_", "integrateio_listing_")
    return [line for line in text.splitlines() if any(prefix in line for prefix in prefixes)]


def listings(sim: Simulator) -> list[str]:
    return [r.endpoint for r in sim.requests if r.endpoint in LISTINGS]


def saved_ids(state: Path, resource: str) -> list[int]:
    section = json.loads(state.read_text()).get(resource)
    return [] if section is None else [item["id"] for item in section["items"]]


def first_run(state: Path, start: Start) -> list[str]:
    """Run an exporter until the state file holds its first listing; what it served of the listed families."""
    app = start(state)
    wait_until(
        lambda: state.exists() and saved_ids(state, "schedules") and saved_ids(state, "clusters"),
        10,
        "the first listing in the state file",
    )
    served = listed_lines(app)
    app.stop()
    return served


def test_a_restart_serves_the_same_series_before_it_lists_and_the_first_listing_replaces_them(
    sim: Simulator, tmp_path: Path, start: Start, found: list[SimCluster]
) -> None:
    state = tmp_path / "state.json"
    before = first_run(state, start)
    assert 'integrateio_schedule_last_run_status{schedule_id="5",status="failed"} 1.0' in before
    assert 'integrateio_cluster_status{cluster_id="54",status="error"} 1.0' in before
    assert any(line.startswith("integrateio_listing_last_success_timestamp_seconds{") for line in before)
    read_at = json.loads(state.read_text())["schedules"]["last_success"]

    # While no exporter runs, a schedule and a cluster are deleted and a cluster grows.
    sim.remove_listed("schedules", 4)
    sim.remove_listed("clusters", 54)
    sim.put_cluster(replace(found[0], nodes=8))

    second, gate = held(sim, start, state)
    after = listed_lines(second)
    assert listings(sim) == []  # read after the scrape: nothing served above came from a listing
    assert after == before  # the time of the last read included: the old one, not the restart's

    gate.clear()
    metrics = scrape_when(
        second, lambda m: m.get("integrateio_cluster_nodes", cluster_id="52") == 8.0, "the first listing"
    )
    assert sorted(listings(sim)) == sorted(LISTINGS)
    assert metrics.get("integrateio_schedule_enabled", schedule_id="4") is None
    assert not [
        labels for labels in metrics.labelsets("integrateio_cluster_status") if labels["cluster_id"] == "54"
    ]
    assert metrics.get("integrateio_schedule_enabled", schedule_id="5") == 1.0
    assert metrics.get("integrateio_listing_last_success_timestamp_seconds", resource="schedules") > read_at
    wait_until(
        lambda: saved_ids(state, "schedules") == [2, 3, 5] and saved_ids(state, "clusters") == [52, 53, 55],
        10,
        "the deleted items gone from the state file",
    )


VERSION_2 = {
    "version": 2,
    "account_id": "acme",
    "jobs": {},
    "followed": {},
    "packages": {
        "434": {
            "name": "orders",
            "last_run": None,
            "last_success": 1_764_000_000.0,
            "last_failure": None,
            "history": [],
        }
    },
}


@pytest.mark.usefixtures("found")
def test_a_version_2_file_loads_and_is_rewritten_with_the_schedules_and_clusters(
    sim: Simulator, tmp_path: Path, start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "state.json"
    state.write_text(json.dumps(VERSION_2))
    caplog.set_level(logging.INFO, logger="exporter")
    app, gate = held(sim, start, state, discover={"package_ids": [434]})
    metrics = scrape(app)
    assert listings(sim) == []
    assert metrics.get("integrateio_package_last_success_timestamp_seconds", package_id="434") == 1.764e9
    assert metrics.get("integrateio_schedule_enabled", schedule_id="2") is None  # version 2 kept none
    assert [message for message in caplog.messages if "ignored" in message] == []

    gate.clear()
    wait_until(
        lambda: (
            json.loads(state.read_text())["version"] == FORMAT_VERSION
            and saved_ids(state, "schedules") == [2, 3, 4, 5]
            and saved_ids(state, "clusters") == [52, 53, 54, 55]
        ),
        10,
        "the file rewritten with both sections",
    )
    assert json.loads(state.read_text())["packages"]["434"]["last_success"] == 1.764e9


@pytest.mark.usefixtures("found")
def test_a_section_that_cannot_be_read_is_ignored_alone_in_one_log_line(
    sim: Simulator, tmp_path: Path, start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "state.json"
    first_run(state, start)
    document = json.loads(state.read_text())
    item = document["schedules"]["items"][0]
    document["schedules"]["items"] = [item] * (MAX_LISTED_ITEMS + 1)
    state.write_text(json.dumps(document))

    caplog.set_level(logging.INFO, logger="exporter")
    app, gate = held(sim, start, state)
    metrics = scrape(app)
    assert listings(sim) == []
    assert [message for message in caplog.messages if "ignored" in message] == [
        f"state file {state}: its schedules ignored: {MAX_LISTED_ITEMS + 1} schedules, more than one read holds"
        f" ({MAX_LISTED_ITEMS})"
    ]
    assert metrics.get("integrateio_schedule_enabled", schedule_id="2") is None
    assert metrics.get("integrateio_cluster_nodes", cluster_id="52") == 4.0  # the other section is good
    gate.clear()
    scrape_when(
        app, lambda m: m.get("integrateio_schedule_enabled", schedule_id="2") == 1.0, "the schedules listed"
    )
    wait_until(lambda: saved_ids(state, "schedules") == [2, 3, 4, 5], 10, "the section rewritten whole")


def corrupt(section: dict[str, Any], change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    changed = copy.deepcopy(section)
    change(changed)
    return changed


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda s: s.update(items="all of them"), "expected a list of schedules, got str"),
        (lambda s: s["items"][0].pop("enabled"), "malformed (missing 'enabled')"),
        (lambda s: s["items"][0].update(last_run_status="exploded"), "'exploded' is not a valid JobStatus"),
        (lambda s: s["items"][0].update(enabled="yes"), "expected true, false or null, got 'yes'"),
        (lambda s: s["items"][0].update(package_ids=["434"]), "expected a count, got '434'"),
        (lambda s: s["items"][0].update(id=0), "expected an id, got 0"),
        (lambda s: s["items"][0].update(url="javascript:x"), "expected an http(s) URL, got 'javascript:x'"),
        (lambda s: s.update(last_success="now"), "could not convert string to float: 'now'"),
    ],
)
def test_a_corrupt_section_is_ignored_with_its_reason(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, change: Callable[[dict[str, Any]], Any], reason: str
) -> None:
    state = tmp_path / "state.json"
    good = {
        "last_success": 1_764_000_000.0,
        "items": [
            {**{each.name: None for each in fields(Schedule)}, "id": 2, "package_ids": [434], "unusable": []}
        ],
    }
    state.write_text(
        json.dumps(
            {**VERSION_2, "version": FORMAT_VERSION, "schedules": corrupt(good, change), "clusters": None}
        )
    )
    with caplog.at_level(logging.INFO, logger="exporter"):
        saved = load_state(str(state), "acme")
    assert caplog.messages == [f"state file {state}: its schedules ignored: {reason}"]
    assert (saved.schedules, saved.clusters) == (None, None)
    assert list(saved.packages) == [434]  # the rest of the file is good

    state.write_text(json.dumps({**VERSION_2, "version": FORMAT_VERSION, "schedules": good}))
    schedule = load_state(str(state), "acme").schedules
    assert schedule is not None and schedule.items == (Schedule(id=2, package_ids=(434,)),)


def test_a_file_written_before_the_web_pages_loads_without_them(tmp_path: Path) -> None:
    """Schedules, clusters and packages saved before they had a `url` (their web page) load, without one; the
    first listing or job brings it."""
    state = tmp_path / "state.json"
    web = "https://integrate.example/acme"
    items: dict[str, dict[str, Any]] = {
        "schedules": {
            **{each.name: None for each in fields(Schedule)},
            "id": 2,
            "package_ids": [],
            "unusable": [],
        },
        "clusters": {
            **{each.name: None for each in fields(Cluster)},
            "id": 52,
            "status": "error",
            "unusable": [],
        },
    }
    for item in items.values():
        del item["url"]
    document = {
        **copy.deepcopy(VERSION_2),
        "version": FORMAT_VERSION,
        **{resource: {"last_success": None, "items": [item]} for resource, item in items.items()},
    }
    state.write_text(json.dumps(document))
    saved = load_state(str(state), "acme")
    assert saved.schedules is not None and saved.clusters is not None
    assert [item.url for item in (*saved.schedules.items, *saved.clusters.items)] == [None, None]
    assert saved.packages[434].url is None

    items["schedules"]["url"] = f"{web}/schedules/2"
    items["clusters"]["url"] = f"{web}/clusters/52"
    document["packages"]["434"]["url"] = f"{web}/packages/434"
    document.update({resource: {"last_success": None, "items": [item]} for resource, item in items.items()})
    state.write_text(json.dumps(document))
    saved = load_state(str(state), "acme")
    assert saved.schedules is not None and saved.clusters is not None
    assert [item.url for item in (*saved.schedules.items, *saved.clusters.items)] == [
        f"{web}/schedules/2",
        f"{web}/clusters/52",
    ]
    assert saved.packages[434].url == f"{web}/packages/434"


def test_every_field_of_a_schedule_and_a_cluster_is_kept() -> None:
    """A field added to `Schedule` or `Cluster` must be added to the state file's readers, or a restart would
    serve it as None."""
    assert list(SCHEDULES.readers) == [each.name for each in fields(Schedule)]
    assert list(CLUSTERS.readers) == [each.name for each in fields(Cluster)]
