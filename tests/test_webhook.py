"""The web hook doorbell, over HTTP: real hooks (as `requests` and `http.client` send them) to the exporter's own
listener, which refreshes through the simulated Integrate.io API on loopback. No mocks.

What a user relies on: a failure shows on /metrics one API round trip after its hook; a hook without the right
basic auth (or with a hash that does not match the salt) does nothing but count; a flood of genuine or replayed
hooks costs a bounded number of credits and never a 429; /metrics answers all the while.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from exporter.app import App
from exporter.config import parse_config, parse_configs
from exporter.errors import ConfigError
from exporter.simulator import SimJob, Simulator
from exporter.webhook import BURST, parse_hook
from tests.support import API_KEY, Samples, make_config, scrape, scrape_when

USER = "integrateio"
PASSWORD = "hook-password-5b1f"
SALT = "2db5b8725e2d86aba40d43f6e403bdf483b8535a3d0011d34b3687140b52bc8c"  # the docs' example salt
RUNNING = [11, 12, 13, 14, 15, 16, 17, 18, 19, 20]


@pytest.fixture
def secrets(tmp_path: Path) -> dict[str, str]:
    password = tmp_path / "password"
    password.write_text(PASSWORD + "\n")  # as an editor saves it: the newline is dropped
    salt = tmp_path / "salt"
    salt.write_text(SALT)
    return {"password_file": str(password), "salt_file": str(salt)}


@pytest.fixture
def hooked(sim: Simulator, secrets: dict[str, str]) -> Iterator[Callable[..., App]]:
    """Exporters polling every 10 minutes (so what changes fast came through a hook), with the doorbell on."""
    apps: list[App] = []

    def start(
        *,
        salt: bool = False,
        interval: float = 600.0,
        credits: int = 5000,
        reserve: float = 0.1,
        **options: Any,
    ) -> App:
        webhook: dict[str, Any] = {
            "enabled": True,
            "path": "/webhook",
            "basic_auth": {"username": USER, "password_file": secrets["password_file"]},
            **options,
        }
        if salt:
            webhook["salt_file"] = secrets["salt_file"]
        app = App(
            make_config(sim, RUNNING, interval=interval, credits=credits, reserve=reserve, webhook=webhook),
            ("127.0.0.1", 0),
        )
        app.start()
        apps.append(app)
        scrape_when(app, lambda m: all(m.status(job) == "running" for job in RUNNING), "the first cycle")
        return app

    for job_id in RUNNING:
        sim.add_job(SimJob(id=job_id, status="running", package_id=job_id))
    yield start
    for app in apps:
        app.stop()


def post(app: App, body: Any, auth: tuple[str, str] | None = (USER, PASSWORD), path: str = "/webhook") -> int:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = requests.post(app.url(path), data=data, auth=auth, timeout=10)
    return response.status_code


def outcomes(metrics: Samples) -> dict[str, float]:
    return {
        labels["outcome"]: metrics.get("integrateio_webhook_requests_total", **labels) or 0.0
        for labels in metrics.labelsets("integrateio_webhook_requests_total")
    }


def charged_since(sim: Simulator, start: float) -> list[str]:
    return [record.endpoint for record in sim.requests if record.time >= start and record.charged]


def test_a_failure_hook_puts_the_failure_on_metrics_within_a_round_trip(sim: Simulator, hooked: Any) -> None:
    app = hooked()
    sim.update_job(13, status="failed")
    start = time.monotonic()
    assert post(app, {"event": "job.failed", "job": {"id": 13}}) == 202
    metrics = scrape_when(app, lambda m: m.status(13) == "failed", "job 13 failed on /metrics", timeout=10)
    assert charged_since(sim, start) == ["get_job"]  # one credit: the named job, nothing else
    assert outcomes(metrics)["accepted"] == 1.0
    assert metrics["integrateio_webhook_last_accepted_timestamp_seconds"] == pytest.approx(time.time(), abs=5)


@pytest.mark.parametrize(
    "auth", [None, (USER, "wrong"), ("someone", PASSWORD), (USER, PASSWORD + "x"), (USER.upper(), PASSWORD)]
)
def test_a_hook_without_the_right_basic_auth_is_401_and_nothing_else(
    sim: Simulator, hooked: Any, auth: tuple[str, str] | None
) -> None:
    app = hooked()
    before = scrape(app)["integrateio_webhook_last_accepted_timestamp_seconds"]
    sim.update_job(13, status="failed")
    start = time.monotonic()
    response = requests.post(
        app.url("/webhook"), json={"event": "job.failed", "job_id": 13}, auth=auth, timeout=5
    )
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic ")
    metrics = scrape(app)
    assert outcomes(metrics) == {
        "accepted": 0.0,
        "unauthorized": 1.0,
        "invalid": 0.0,
        "coalesced": 0.0,
        "throttled": 0.0,
    }
    assert metrics["integrateio_webhook_last_accepted_timestamp_seconds"] == before
    time.sleep(
        0.5
    )  # the doorbell would have asked within a few milliseconds: give it the chance to misbehave
    assert charged_since(sim, start) == []
    assert scrape(app).status(13) == "running"


def test_with_a_salt_a_hash_must_match_and_a_forged_one_is_refused(sim: Simulator, hooked: Any) -> None:
    app = hooked(salt=True, url="https://exporter.example.com/webhook")
    event, url = "job.failed", "https://exporter.example.com/webhook"
    good = hashlib.sha1(f"13{event}{url}{SALT}".encode()).hexdigest()
    forged = hashlib.sha1(f"13{event}{url}not-the-salt".encode()).hexdigest()
    sim.update_job(13, status="failed")
    assert post(app, {"id": 13, "event": event, "hash": forged}) == 401
    time.sleep(0.3)
    assert scrape(app).status(13) == "running"
    assert post(app, {"id": 13, "event": event, "hash": good}) == 202
    metrics = scrape_when(app, lambda m: m.status(13) == "failed", "job 13 failed after the genuine hook")
    assert outcomes(metrics)["unauthorized"] == 1.0
    assert outcomes(metrics)["accepted"] == 1.0
    # The docs make the hash optional: a body without one is accepted on its basic auth alone.
    assert post(app, {"event": "job.started", "job_id": 14}) == 202


def test_ping_and_unknown_events_are_answered_2xx_counted_and_cost_nothing(
    sim: Simulator, hooked: Any
) -> None:
    app = hooked()
    start = time.monotonic()
    assert post(app, {"event": "ping", "id": 1}) == 200
    assert post(app, {"event": "cluster.available", "cluster_id": 5}) == 200
    assert post(app, {"event": "something.new"}) == 200
    assert post(app, {"hello": "world"}, path="/webhook") in (200, 202)
    metrics = scrape(app)
    assert outcomes(metrics)["accepted"] == 4.0
    time.sleep(0.3)
    assert "get_job" not in charged_since(sim, start)


def test_unreadable_oversized_and_lengthless_hooks_are_invalid(sim: Simulator, hooked: Any) -> None:
    app = hooked(max_body_bytes=1024)
    assert post(app, b"\xff\xfe not text") == 400
    assert post(app, b"{not json and not a form") == 400
    assert post(app, {"event": "job.failed", "pad": "x" * 2000}) == 413
    connection = http.client.HTTPConnection("127.0.0.1", app.server.port, timeout=5)
    connection.putrequest("POST", "/webhook")
    connection.putheader("Authorization", requests.auth._basic_auth_str(USER, PASSWORD))
    connection.putheader("Transfer-Encoding", "chunked")
    connection.endheaders()
    assert connection.getresponse().status == 411
    connection.close()
    for length in ("9" * 5000, "١٢"):  # past int()'s digit limit; Arabic-Indic digits
        connection = http.client.HTTPConnection("127.0.0.1", app.server.port, timeout=5)
        connection.putrequest("POST", "/webhook")
        connection.putheader("Authorization", requests.auth._basic_auth_str(USER, PASSWORD))
        connection.putheader("Content-Length", length.encode())  # UTF-8 on the wire, as a hostile client may
        connection.endheaders()
        assert connection.getresponse().status in (411, 413)
        connection.close()
    assert outcomes(scrape(app))["invalid"] == 6.0
    # A GET on the hook path, or a POST anywhere else, is not a hook.
    assert requests.get(app.url("/webhook"), timeout=5).status_code == 404
    assert post(app, {"event": "job.failed"}, path="/metrics") == 404


def test_a_replayed_hook_for_a_final_job_costs_nothing(sim: Simulator, hooked: Any) -> None:
    app = hooked()
    sim.update_job(13, status="failed")
    hook = {"event": "job.failed", "job": {"id": 13}}
    assert post(app, hook) == 202
    scrape_when(app, lambda m: m.status(13) == "failed", "job 13 failed")
    time.sleep(2.5)  # past the coalescing window: only finality protects now
    start = time.monotonic()
    for _ in range(20):
        assert post(app, hook) == 200
    time.sleep(0.3)
    assert charged_since(sim, start) == []
    assert scrape(app).status(13) == "failed"


def test_a_hook_without_a_job_id_starts_a_cycle_now(sim: Simulator, hooked: Any) -> None:
    app = hooked()
    for job_id in (11, 12):
        sim.update_job(job_id, status="completed")
    assert post(app, {"event": "job.completed"}) == 202
    metrics = scrape_when(
        app, lambda m: m.status(11) == m.status(12) == "completed", "a cycle that saw both jobs complete"
    )
    assert outcomes(metrics)["accepted"] == 1.0


def test_a_flood_of_a_thousand_hooks_costs_a_bounded_number_of_credits_and_no_429(
    sim: Simulator, hooked: Any
) -> None:
    app = hooked()
    start = time.monotonic()
    bodies = [
        json.dumps({"event": "job.failed", "job": {"id": RUNNING[n % len(RUNNING)]}}) for n in range(1000)
    ]
    auth = requests.auth._basic_auth_str(USER, PASSWORD)
    scrape_times: list[float] = []

    def send(chunk: list[str]) -> list[int]:
        connection = http.client.HTTPConnection("127.0.0.1", app.server.port, timeout=10)
        statuses = []
        for body in chunk:
            connection.request("POST", "/webhook", body=body, headers={"Authorization": auth})
            response = connection.getresponse()
            response.read()
            statuses.append(response.status)
        connection.close()
        return statuses

    def scrape_during() -> None:
        while time.monotonic() - start < 1.0:
            began = time.monotonic()
            scrape(app)
            scrape_times.append(time.monotonic() - began)

    with ThreadPoolExecutor(9) as pool:
        scraping = pool.submit(scrape_during)
        results = [pool.submit(send, bodies[n::8]) for n in range(8)]
        statuses = [status for future in results for status in future.result()]
        scraping.result()
    elapsed = time.monotonic() - start
    assert statuses.count(202) == 1000
    counted = outcomes(scrape(app))
    assert counted["accepted"] + counted["coalesced"] + counted["throttled"] == 1000
    assert counted["throttled"] > 0
    time.sleep(0.5)
    records = [record for record in sim.requests if record.time >= start]
    assert [record for record in records if record.status == 429] == []
    # The doorbell's bucket: 10 at once, then 10% of 4,500 credits an hour (0.125 a second).
    bound = BURST + 0.125 * (time.monotonic() - start)
    assert sum(1 for record in records if record.charged) <= bound, (elapsed, len(records))
    assert scrape_times  # /metrics kept answering during the flood (how fast: bench/webhook.py, not a test)


def test_the_doorbell_leaves_polling_its_share_of_the_budget(sim: Simulator, hooked: Any) -> None:
    """With 20 credits an hour and half of them for hooks, polling paces itself on the other half: its cycle
    (the running list, one credit) every 360 s, not every 180 s."""
    app = hooked(interval=1.0, budget_share=0.5, credits=20, reserve=0.0)
    metrics = scrape_when(
        app, lambda m: m["integrateio_refresh_interval_seconds"] > 1.0, "a stretched interval"
    )
    assert metrics["integrateio_refresh_interval_seconds"] == 360.0


def test_the_configuration_names_the_key_and_hides_the_secrets(
    secrets: dict[str, str], tmp_path: Path
) -> None:
    def load(webhook: Any) -> Any:
        document = {"api": {"account_id": "acme"}, "jobs": [1], "webhook": webhook}
        return parse_config(document, base_dir=tmp_path, environ={"INTEGRATEIO_API_KEY": API_KEY})

    auth = {"username": USER, "password_file": secrets["password_file"]}
    config = load({"enabled": True, "basic_auth": auth, "salt_file": secrets["salt_file"]})
    assert config.webhook.password == PASSWORD
    assert PASSWORD not in repr(config) and SALT not in repr(config)
    empty = tmp_path / "empty"
    empty.write_text("\ufeff \n")
    bad = tmp_path / "bad"
    bad.write_text("pass\u2019word")
    cases = {
        "webhook.basic_auth": {"enabled": True},
        "webhook.path": {"enabled": True, "basic_auth": auth, "path": "/metrics"},
        "webhook.basic_auth.password_file": {
            "enabled": True,
            "basic_auth": {**auth, "password_file": str(empty)},
        },
        "webhook.salt_file": {"enabled": True, "basic_auth": auth, "salt_file": str(bad)},
        "webhook.budget_share": {"enabled": True, "basic_auth": auth, "budget_share": 0},
        "webhook.enabled": {"enabled": "yes"},
        "webhook.basic_auth.username": {"enabled": True, "basic_auth": {**auth, "username": "a:b"}},
    }
    for key, webhook in cases.items():
        with pytest.raises(ConfigError) as raised:
            load(webhook)
        assert raised.value.key == key, (key, str(raised.value))


@pytest.mark.parametrize(
    ("body", "event", "job_id"),
    [
        (b'{"event": "job.failed", "job": {"id": 42, "status": "failed"}}', "job.failed", 42),
        (b'{"event_name": "job.completed", "job_id": "42"}', "job.completed", 42),
        (b'{"id": 7, "event": "job.started", "data": {"id": 42}}', "job.started", 42),
        (b'{"event": "job.failed", "id": 42}', "job.failed", 42),
        (b"event=job.failed&job_id=42", "job.failed", 42),
        (b'payload={"event":"job.failed","job":{"id":42}}', "job.failed", 42),
        (b'[{"event": "job.stopped", "job_id": 42}]', "job.stopped", 42),
        (b'{"event": "cluster.error", "id": 42}', "cluster.error", None),
        (b'{"event": "job.failed", "job_id": "\xd9\xa4\xd9\xa2"}', "job.failed", None),  # Arabic-Indic digits
        (b'{"event": "job.failed", "job_id": -1}', "job.failed", None),
        (b'{"event": "job.failed", "job_id": true}', "job.failed", None),
        (b'{"event": "DROP TABLE", "job_id": 42}', None, 42),
        (b'{"event": "job.renamed", "job_id": 42}', "job.renamed", 42),
        (b"", None, None),
    ],
)
def test_bodies_are_read_tolerantly_and_never_believed_beyond_an_id(
    body: bytes, event: str | None, job_id: int | None
) -> None:
    hook = parse_hook(body)
    assert hook is not None
    assert (hook.event, hook.job_id) == (event, job_id)


def test_a_body_nested_deeply_is_unreadable_not_a_crash() -> None:
    assert parse_hook(b"[" * 100_000 + b"]" * 100_000) is None
    assert parse_hook(b'{"a":' * 50 + b'{"job_id": 1}' + b"}" * 50) is not None


def test_the_status_page_has_a_web_hook_line(sim: Simulator, hooked: Any) -> None:
    app = hooked()
    assert "Web hooks: last accepted" in requests.get(app.url("/"), timeout=5).text
    assert "(none yet)" in requests.get(app.url("/"), timeout=5).text
    post(app, {"event": "ping"})
    post(app, {"event": "ping"}, auth=None)
    page = requests.get(app.url("/"), timeout=5).text
    assert '<span class="warn">(1 accepted, 1 unauthorized)</span>' in page


def test_a_reload_rotates_the_password(
    sim: Simulator, hooked: Any, secrets: dict[str, str], tmp_path: Path
) -> None:
    app = hooked()
    rotated = tmp_path / "rotated"
    rotated.write_text("a-new-hook-password")
    webhook = {"enabled": True, "basic_auth": {"username": USER, "password_file": str(rotated)}}
    assert app.reload(make_config(sim, RUNNING, interval=600.0, webhook=webhook))
    assert post(app, {"event": "ping"}) == 401
    assert post(app, {"event": "ping"}, auth=(USER, "a-new-hook-password")) == 200
    assert not app.reload(make_config(sim, RUNNING, interval=600.0))  # switching hooks off needs a restart


def test_with_accounts_each_has_its_own_path_and_labelled_series(
    make_sim: Callable[..., Simulator], secrets: dict[str, str], stop_apps: list[App]
) -> None:
    sims = {name: make_sim() for name in ("prod", "staging")}
    for each in sims.values():
        each.add_job(SimJob(id=7, status="running"))
    auth = {"username": USER, "password_file": secrets["password_file"]}
    document = {
        "accounts": [
            {
                "name": name,
                "api": {"account_id": "acme", "base_url": each.base_url, "timeout_seconds": 2},
                "jobs": [7],
                "polling": {"interval_seconds": 600},
                "webhook": {"enabled": True, "path": f"/hooks/{name}", "basic_auth": auth},
            }
            for name, each in sims.items()
        ]
    }
    configs = parse_configs(document, base_dir=Path("."), environ={"INTEGRATEIO_API_KEY": API_KEY})
    app = App(configs, ("127.0.0.1", 0))
    app.start()
    stop_apps.append(app)
    running = {"prod": "running", "staging": "running"}
    scrape_when(app, lambda m: statuses(m) == running, "both accounts' first cycle")
    sims["staging"].update_job(7, status="failed")
    sims["prod"].update_job(7, status="failed")  # prod's hook never comes: prod stays running until its poll
    assert post(app, {"event": "job.failed", "job_id": 7}, path="/hooks/staging") == 202
    metrics = scrape_when(app, lambda m: statuses(m)["staging"] == "failed", "staging's job 7 failed")
    assert statuses(metrics) == {"prod": "running", "staging": "failed"}
    assert metrics.get("integrateio_webhook_requests_total", account="staging", outcome="accepted") == 1.0
    assert metrics.get("integrateio_webhook_requests_total", account="prod", outcome="accepted") == 0.0
    document["accounts"][1]["webhook"]["path"] = "/hooks/prod"  # type: ignore[index]
    with pytest.raises(ConfigError, match="is used by two accounts"):
        parse_configs(document, base_dir=Path("."), environ={"INTEGRATEIO_API_KEY": API_KEY})


def statuses(metrics: Samples) -> dict[str, str]:
    return {
        labels["account"]: labels["status"]
        for labels in metrics.labelsets("integrateio_job_status")
        if metrics.get("integrateio_job_status", **labels) == 1.0
    }
