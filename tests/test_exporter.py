"""The exporter against the simulated API over real HTTP: values, lifecycle, bad answers, the budget."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
import requests
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families

from exporter.app import App
from exporter.model import parse_timestamp
from exporter.simulator import SimJob, SimOutput, Simulator, Step
from tests.support import API_KEY, add_two_jobs, max_requests_in_any_window, scrape, wait_until

Start = Callable[..., App]


def ready(app: App) -> bool:
    return requests.get(app.url("/readyz"), timeout=5).status_code == 200


def test_every_value_matches_the_api(sim: Simulator, exporter_for: Start) -> None:
    sim.add_job(
        SimJob(
            id=157,
            status="running",
            progress=0.42,
            runtime_in_seconds=1234,
            package_id=434,
            package_name="orders",
            outputs=[
                SimOutput(id=3, name="orders_out", records_count=10415),
                SimOutput(id=4, name="rejects", records_count=7),
            ],
        )
    )
    sim.add_job(
        SimJob(
            id=158,
            status="failed",
            progress=0.5,
            runtime_in_seconds=60,
            package_id=435,
            package_name="customers",
            errors="disk full",
        )
    )
    sim.add_job(SimJob(id=159, status="queued"))
    app = exporter_for(sim, [157, 158, 159], interval=5.0)
    wait_until(lambda: ready(app), 10, "/readyz")
    metrics = scrape(app)
    for job_id in (157, 158, 159):
        truth = sim.job_payload(job_id)
        labels = {"job_id": str(job_id)}
        assert metrics.status(job_id) == truth["status"]
        assert metrics.get("integrateio_job_progress_ratio", **labels) == truth["progress"]
        assert metrics.get("integrateio_job_runtime_seconds", **labels) == truth["runtime_in_seconds"]
        started = parse_timestamp(truth["started_at"])
        assert metrics.get("integrateio_job_started_timestamp_seconds", **labels) == started
        assert (
            metrics.get(
                "integrateio_job_info",
                package_id=str(truth["package_id"]),
                package_name=truth["package"]["name"],
                url=truth["html_url"],
                **labels,
            )
            == 1.0
        )
        for output in truth["outputs"]:
            assert (
                metrics.get(
                    "integrateio_job_output_records",
                    output_id=str(output["id"]),
                    output_name=output["name"],
                    **labels,
                )
                == output["records_count"]
            )
        assert metrics.get("integrateio_job_poll_success", **labels) == 1.0
        assert metrics.get("integrateio_job_missing", **labels) == 0.0
    # The web UI's pages of the runs and of their packages, as the simulator sends them (`html_url`, and the
    # `html_url` of each job's `package`), are the `url` labels of the job and package info series.
    web = f"{sim.base_url}/acme"
    assert [sim.job_payload(job_id)["html_url"] for job_id in (157, 158)] == [
        f"{web}/jobs/157",
        f"{web}/jobs/158",
    ]
    for package_id, name in ((434, "orders"), (435, "customers")):
        assert (
            metrics.get(
                "integrateio_package_info",
                package_id=str(package_id),
                package_name=name,
                url=f"{web}/packages/{package_id}",
            )
            == 1.0
        )
    # The state set has one series per documented status plus unknown, exactly one of them 1.
    assert sorted(
        s["status"] for s in metrics.labelsets("integrateio_job_status") if s["job_id"] == "157"
    ) == sorted(
        [
            "idle",
            "pending",
            "queued",
            "running",
            "completed",
            "failed",
            "pending_stoppage",
            "stopping",
            "stopped",
            "unknown",
        ]
    )
    assert metrics["integrateio_watched_jobs"] == 3.0
    assert metrics["integrateio_budget_limit_credits"] == 4500.0
    assert metrics["integrateio_api_up"] == 1.0
    assert metrics["integrateio_refresh_interval_seconds"] == 5.0
    assert metrics["integrateio_refresh_interval_target_seconds"] == 5.0
    assert metrics["integrateio_api_rate_limit_credits"] == 5000.0
    charged = sum(1 for r in sim.requests if r.charged)
    assert metrics["integrateio_budget_spent_credits"] <= charged
    assert (
        metrics.get(
            "integrateio_exporter_build_info",
            version="0.1.0",
            python_version=__import__("platform").python_version(),
        )
        == 1.0
    )


def test_every_request_carries_the_key_and_the_version_header(sim: Simulator, exporter_for: Start) -> None:
    sim.add_job(SimJob(id=1, status="running"))
    app = exporter_for(sim, [1])
    wait_until(lambda: ready(app), 10, "/readyz")
    log = sim.requests
    assert log
    assert all(r.authorization_ok for r in log)
    assert all(r.accept == "application/vnd.xplenty+json; version=2" for r in log)


def test_a_failure_shows_within_seconds_and_final_jobs_cost_nothing_more(
    sim: Simulator, exporter_for: Start
) -> None:
    sim.add_job(SimJob(id=1, status="running", progress=0.1))
    sim.add_job(SimJob(id=2, status="completed"))
    app = exporter_for(sim, [1, 2])
    wait_until(lambda: scrape(app).status(1) == "running", 10, "job 1 running")
    sim.update_job(1, status="failed", errors="boom")
    wait_until(lambda: scrape(app).status(1) == "failed", 4, "job 1 failed on /metrics")
    sim.clear_requests()
    # Three more interval lengths: nothing is asked about either job, both final now.
    wait_until(lambda: scrape(app).get("integrateio_last_full_refresh_timestamp_seconds"), 5, "a cycle")
    metrics_before = scrape(app)
    wait_until(
        lambda: (
            scrape(app)["integrateio_last_full_refresh_timestamp_seconds"]
            >= metrics_before["integrateio_last_full_refresh_timestamp_seconds"] + 3
        ),
        10,
        "three more cycles",
    )
    assert [r.path for r in sim.requests if r.endpoint in ("get_job", "list_jobs")] == []
    assert scrape(app).status(2) == "completed"


def test_a_missing_job_is_shown_asked_rarely_and_does_not_disturb_others(
    sim: Simulator, exporter_for: Start
) -> None:
    sim.add_job(SimJob(id=1, status="running", progress=0.1))
    app = exporter_for(sim, [1, 404])
    wait_until(lambda: scrape(app).get("integrateio_job_missing", job_id="404") == 1.0, 10, "job 404 missing")
    sim.update_job(1, progress=0.6)
    wait_until(lambda: scrape(app).get("integrateio_job_progress_ratio", job_id="1") == 0.6, 5, "job 1 fresh")
    wait_until(
        lambda: len([r for r in sim.requests if r.path.endswith("/jobs/1")]) >= 4, 10, "four refreshes of 1"
    )
    assert len([r for r in sim.requests if r.path.endswith("/jobs/404")]) == 1
    assert scrape(app).get("integrateio_job_status", job_id="404", status="running") is None


def _good_then(sim: Simulator, exporter_for: Start) -> App:
    add_two_jobs(sim)
    app = exporter_for(sim, [1, 2])
    wait_until(
        lambda: scrape(app).get("integrateio_job_progress_ratio", job_id="1") == 0.25, 10, "first values"
    )
    return app


BAD_ANSWERS = [
    ({"kind": "status", "code": 500}, "server_error"),
    ({"kind": "status", "code": 503}, "server_error"),
    ({"kind": "not_json"}, "invalid_response"),
    ({"kind": "wrong_shape", "shape": "list"}, "invalid_response"),
    ({"kind": "wrong_shape", "shape": "nulls"}, "invalid_field"),
    ({"kind": "reset"}, "connection_error"),
    ({"kind": "reset_mid_body"}, "connection_error"),
    ({"kind": "hang"}, "timeout"),
    ({"kind": "trickle", "interval": 0.2}, "timeout"),
    ({"kind": "oversized", "size_bytes": 11_000_000}, "invalid_response"),
    (
        {
            "kind": "status",
            "code": 200,
            "body": json.dumps({"id": 1, "status": "exploded", "progress": 0.25}),
        },
        "unknown_status",
    ),
]


@pytest.mark.parametrize(("fault", "error"), BAD_ANSWERS, ids=[f"{f['kind']}-{e}" for f, e in BAD_ANSWERS])
def test_a_bad_answer_keeps_the_last_good_values_and_is_counted(
    sim: Simulator, exporter_for: Start, fault: dict[str, object], error: str
) -> None:
    app = _good_then(sim, exporter_for)
    params = dict(fault)
    sim.set_fault(str(params.pop("kind")), job_id=1, **params)
    sim.update_job(2, progress=0.9)
    after = wait_until(
        lambda: (m := scrape(app)).get("integrateio_job_poll_errors_total", job_id="1", error=error) and m,
        15,
        f"an {error} counted for job 1",
    )
    assert after.get("integrateio_job_poll_success", job_id="1") == 0.0
    assert after.get("integrateio_job_progress_ratio", job_id="1") == 0.25
    assert after.get("integrateio_job_runtime_seconds", job_id="1") == 100.0
    assert after.get("integrateio_job_output_records", job_id="1", output_id="9", output_name="out") == 50.0
    expected_status = "unknown" if error == "unknown_status" else "running"
    assert after.status(1) == expected_status
    # The other job went on being refreshed.
    wait_until(
        lambda: scrape(app).get("integrateio_job_progress_ratio", job_id="2") == 0.9, 10, "job 2 fresh"
    )


def test_the_exposition_passes_promtool(sim: Simulator, exporter_for: Start, promtool: str) -> None:
    import subprocess

    sim.add_job(
        SimJob(id=1, status="running", outputs=[SimOutput(id=1, name='we"ird\\name\nx', records_count=1)])
    )
    sim.add_job(SimJob(id=2, status="failed"))
    app = exporter_for(sim, [1, 2, 3])
    wait_until(lambda: ready(app), 10, "/readyz")
    body = requests.get(app.url("/metrics"), timeout=5).content
    result = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=30)
    assert (result.returncode, result.stdout.decode(), result.stderr.decode()) == (0, "", "")
    assert 'output_name="we\\"ird\\\\name\\nx"' in body.decode()


def test_openmetrics_and_gzip_are_negotiated(sim: Simulator, exporter_for: Start) -> None:
    """promtool reads only the text format; OpenMetrics is checked by prometheus_client's strict parser."""
    sim.add_job(SimJob(id=1, status="running", progress=0.5))
    app = exporter_for(sim, [1])
    wait_until(lambda: ready(app), 10, "/readyz")
    response = requests.get(
        app.url("/metrics"),
        headers={"Accept": "application/openmetrics-text; version=1.0.0", "Accept-Encoding": "gzip"},
        timeout=5,
    )
    assert response.headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    assert response.headers["Content-Encoding"] == "gzip"
    families = {f.name: f for f in openmetrics_families(response.text)}
    assert families["integrateio_api_requests"].type == "counter"
    assert [s.value for s in families["integrateio_job_progress_ratio"].samples] == [0.5]
    plain = requests.get(app.url("/metrics"), headers={"Accept-Encoding": "identity"}, timeout=5)
    assert plain.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "Content-Encoding" not in plain.headers


def test_the_budget_holds_against_a_small_api(
    make_sim: Callable[..., Simulator], exporter_for: Start
) -> None:
    """Issue 2's acceptance case: an API admitting 40 requests per 30 s, a dozen jobs of every kind."""
    sim = make_sim(credits=40, window_seconds=30.0)
    for job_id in (1, 2, 3, 4):
        sim.add_job(
            SimJob(
                id=job_id,
                status="running",
                progress=0.1,
                outputs=[SimOutput(id=job_id, name="o", records_count=1)],
            ),
            progress_per_second=0.01,
            records_per_second=10,
        )
    sim.add_job(
        SimJob(id=5, status="running"), script=[Step(after_seconds=6, status="failed", errors="boom")]
    )
    sim.add_job(
        SimJob(id=6, status="queued"),
        script=[Step(after_seconds=4, status="running"), Step(after_seconds=12, status="completed")],
    )
    for job_id in (7, 8):
        sim.add_job(SimJob(id=job_id, status="completed"))
    sim.add_job(SimJob(id=9, status="stopped"))
    # Broken jobs, each alone in its status so that it is refreshed by its own (failing) GET.
    sim.add_job(SimJob(id=10, status="pending"))
    sim.set_fault("status", job_id=10, code=500)
    sim.add_job(SimJob(id=11, status="idle"))
    sim.set_fault("not_json", job_id=11)
    app = exporter_for(sim, list(range(1, 13)), credits=40, window=30.0, interval=2.0)  # 12 is not in the API

    started = time.monotonic()
    failed_at = None
    deadline = started + 40
    while time.monotonic() < deadline:
        metrics = scrape(app)
        if failed_at is None and sim.job_status(5) == "failed":
            failed_at = time.monotonic()
        if failed_at is not None and metrics.status(5) == "failed":
            shown_after = time.monotonic() - failed_at
            break
        time.sleep(0.1)
    else:
        raise AssertionError("job 5's failure never reached /metrics")
    assert shown_after < 6.0
    wait_until(lambda: scrape(app).status(6) == "completed", 20, "job 6 completed")
    # Keep scraping until more than one whole window has passed, so the window check below means something.
    wait_until(lambda: scrape(app) and time.monotonic() > started + 35, 40, "35 s of polling")
    log = sim.requests
    assert [r for r in log if r.status == 429] == []
    charged = [r.time for r in log if r.charged]
    assert max_requests_in_any_window(charged, 30.0) <= 40
    assert max_requests_in_any_window([r.time for r in log if r.endpoint != "rate_limit_status"], 30.0) <= 40
    # Final jobs were asked about once each (their first refresh), never again.
    for job_id in (7, 8, 9):
        assert len([r for r in log if r.path.endswith(f"/jobs/{job_id}")]) == 1, job_id
    metrics = scrape(app)
    for job_id in (1, 2, 3, 4, 7, 8, 9):
        assert metrics.status(job_id) == sim.job_payload(job_id)["status"]
    assert metrics.get("integrateio_job_missing", job_id="12") == 1.0
    assert (metrics.get("integrateio_job_poll_errors_total", job_id="10", error="server_error") or 0) >= 1
    assert (metrics.get("integrateio_job_poll_errors_total", job_id="11", error="invalid_response") or 0) >= 1
    # The spend the exporter reports is the spend the API saw in the last window.
    assert metrics["integrateio_budget_spent_credits"] <= 36
    assert API_KEY not in metrics.text
