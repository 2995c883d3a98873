"""The hand-written exposition against prometheus_client's own encoders, byte for byte.

The reference is the exporter's families built as prometheus_client objects — the way the exporter rendered
them before it rendered by hand — encoded by whatever `choose_encoder` picks for the Accept header. Every
snapshot is made through the real `JobCache` API, as the poller makes them.
"""

from __future__ import annotations

import gzip
import platform
import random
import re
import threading
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import exposition as client_exposition
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.openmetrics import exposition as client_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text
from prometheus_client.registry import Collector

from exporter import __version__, metrics
from exporter import exposition as exposition_module
from exporter.budget import BudgetSnapshot
from exporter.cache import CacheSnapshot, JobCache, JobState
from exporter.escaping import go_float
from exporter.exposition import MAX_VARIANTS, Exposition, Rendered
from exporter.history import COUNTED_STATUSES
from exporter.model import JobStatus, parse_job

_THREE_DIGIT_EXPONENT = re.compile(rb"(?<=[0-9])e\+0([0-9]{2})\n")


def _as_go_writes(body: bytes) -> bytes:
    """The oracle's bytes with exponents as Go (and the newest prometheus_client) writes them.

    prometheus_client 0.20, our declared minimum, writes 1e10 as `1e+010`; later releases and Go write `1e+10`,
    and so do we. Only a sample value (it ends the line) is rewritten, never a label value.
    """
    return _THREE_DIGIT_EXPONENT.sub(rb"e+\1\n", body)


def generate_latest(reference: Collector) -> bytes:
    return _as_go_writes(client_exposition.generate_latest(reference))  # type: ignore[no-untyped-call]


def generate_openmetrics(reference: Collector) -> bytes:
    return _as_go_writes(client_openmetrics.generate_latest(reference))  # type: ignore[no-untyped-call]


def choose_encoder(accept: str) -> tuple[Callable[[Collector], bytes], str]:
    """prometheus_client's choice of format for an Accept header, its encoder's output as Go writes numbers."""
    encoder, content_type = client_exposition.choose_encoder(accept)
    return (lambda reference: _as_go_writes(encoder(reference))), content_type


HOSTILE = [
    'quote " and backslash \\ and \\" both',
    "new\nline and \\n literal",
    "<script>alert('x')</script>",
    "Ünïcödé ☃ 日本語 😀 \u200b zero-width",
    "trailing backslash \\",
    "tab\tcr\rnul\x00",
    "",
]
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
    "application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,"
    "text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)
ESCAPINGS = ("allow-utf-8", "underscores", "dots", "values", "bogus")
ACCEPTS = [
    None,
    "",
    "text/plain",
    "text/plain; version=0.0.4",
    "application/openmetrics-text",
    "application/openmetrics-text; version=1.0.0",
    "application/openmetrics-text; version=2.0.0",
    PROMETHEUS_ACCEPT,
    *(f"text/plain; version=1.0.0; escaping={escaping}" for escaping in ESCAPINGS),
    *(f"application/openmetrics-text; version=1.0.0; escaping={escaping}" for escaping in ESCAPINGS),
]
# Text, what Prometheus asks for, and dots (the escaping that spells every name differently).
FEW_ACCEPTS = [None, PROMETHEUS_ACCEPT, "application/openmetrics-text; version=1.0.0; escaping=dots"]


# --- the reference ------------------------------------------------------------------------------------------


def reference_families(snapshot: CacheSnapshot) -> Iterator[Metric]:
    """Every family the exporter serves, as prometheus_client metric families."""
    yield from _reference_job_families(snapshot.jobs)
    yield from _reference_exporter_families(snapshot)


def _reference_job_families(states: tuple[JobState, ...]) -> Iterator[Metric]:
    status = family_like(metrics.JOB_STATUS)
    progress = family_like(metrics.JOB_PROGRESS)
    runtime = family_like(metrics.JOB_RUNTIME)
    records = family_like(metrics.JOB_OUTPUT_RECORDS)
    info = family_like(metrics.JOB_INFO)
    started = family_like(metrics.JOB_STARTED)
    last_success = family_like(metrics.JOB_LAST_SUCCESS)
    poll_success = family_like(metrics.JOB_POLL_SUCCESS)
    missing = family_like(metrics.JOB_MISSING)
    errors = family_like(metrics.JOB_POLL_ERRORS)
    attempts = family_like(metrics.JOB_ATTEMPTS)
    for state in states:
        job_id = str(state.job_id)
        missing.add_metric([job_id], 1.0 if state.missing else 0.0)
        for error, count in sorted(state.errors.items()):
            errors.add_metric([job_id, error], float(count))
        if state.last_attempt_ok is not None:
            poll_success.add_metric([job_id], 1.0 if state.last_attempt_ok else 0.0)
        if state.last_success is not None:
            last_success.add_metric([job_id], state.last_success)
        job = state.job
        if job is None:
            continue
        for value in (s.value for s in JobStatus):
            status.add_metric([job_id, value], 1.0 if job.status.value == value else 0.0)
        if job.progress is not None:
            progress.add_metric([job_id], job.progress)
        if job.runtime_seconds is not None:
            runtime.add_metric([job_id], job.runtime_seconds)
        if job.started_at is not None:
            started.add_metric([job_id], job.started_at)
        if job.attempts is not None:
            attempts.add_metric([job_id], float(job.attempts))
        package_id = "" if job.package_id is None else str(job.package_id)
        info.add_metric([job_id, package_id, job.package_name or "", job.html_url or ""], 1.0)
        for output in job.outputs:
            if output.records_count is not None:
                records.add_metric([job_id, str(output.id), output.name or ""], output.records_count)
    yield from (
        status,
        progress,
        runtime,
        records,
        info,
        started,
        last_success,
        poll_success,
        missing,
        errors,
        attempts,
    )


def _reference_exporter_families(snapshot: CacheSnapshot) -> Iterator[Metric]:
    state = snapshot.exporter
    requests = family_like(metrics.API_REQUESTS)
    for (endpoint, outcome), count in sorted(state.requests.items()):
        requests.add_metric([endpoint, outcome], float(count))
    yield requests
    if state.api_up is not None:
        yield single(metrics.API_UP, state.api_up)
    budget = state.budget
    if budget is not None:
        yield single(metrics.API_BACKOFF, budget.backoff_seconds)
        if budget.api_limit is not None:
            yield single(metrics.API_LIMIT, budget.api_limit)
        if budget.api_remaining is not None:
            yield single(metrics.API_REMAINING, budget.api_remaining)
        if budget.foreign_spend is not None:
            yield single(metrics.API_FOREIGN_SPEND, budget.foreign_spend)
        if budget.share is not None:
            yield single(metrics.BUDGET_SHARE, budget.share)
        yield single(metrics.BUDGET_LIMIT, budget.limit)
        yield single(metrics.BUDGET_SPENT, budget.spent)
        yield single(metrics.BUDGET_REMAINING, budget.remaining)
        yield single(metrics.BUDGET_WINDOW, budget.window_seconds)
    yield single(metrics.REFRESH_INTERVAL, state.interval_seconds)
    yield single(metrics.REFRESH_TARGET, state.target_interval_seconds)
    yield single(metrics.WATCHED_JOBS, len(snapshot.jobs))
    if state.last_full_refresh is not None:
        yield single(metrics.LAST_FULL_REFRESH, state.last_full_refresh)
    yield single(metrics.CONFIG_RELOAD, state.config_reload_ok)
    if state.config_reload_time is not None:
        yield single(metrics.CONFIG_RELOAD_TIME, state.config_reload_time)
    if state.discovered_jobs is not None:
        yield single(metrics.DISCOVERED_JOBS, state.discovered_jobs)
        yield single(metrics.DISCOVERY_DROPPED, state.discovery_dropped)
    yield from _reference_package_families(snapshot)
    info = family_like(metrics.BUILD_INFO)
    info.add_metric([__version__, platform.python_version()], 1.0)
    yield info


def _reference_package_families(snapshot: CacheSnapshot) -> Iterator[Metric]:
    last_status = family_like(metrics.PACKAGE_LAST_STATUS)
    success = family_like(metrics.PACKAGE_LAST_SUCCESS)
    failure = family_like(metrics.PACKAGE_LAST_FAILURE)
    running = family_like(metrics.PACKAGE_RUNNING)
    info = family_like(metrics.PACKAGE_INFO)
    typical = family_like(metrics.PACKAGE_TYPICAL_DURATION)
    runs = family_like(metrics.PACKAGE_RUNS)
    durations = HistogramMetricFamily(
        metrics.PACKAGE_RUN_DURATION.name, metrics.PACKAGE_RUN_DURATION.help, labels=["package_id"]
    )
    for package in snapshot.packages:
        package_id = str(package.package_id)
        if package.last_finished is not None:
            for value in (s.value for s in JobStatus):
                last_status.add_metric(
                    [package_id, value], 1.0 if package.last_finished.status.value == value else 0.0
                )
        if package.last_success is not None:
            success.add_metric([package_id], package.last_success)
        if package.last_failure is not None:
            failure.add_metric([package_id], package.last_failure)
        count = sum(
            1
            for state in snapshot.jobs
            if state.job is not None
            and state.job.package_id == package.package_id
            and state.job.status is JobStatus.RUNNING
        )
        running.add_metric([package_id], float(count))
        info.add_metric([package_id, package.name or "", package.url or ""], 1.0)
        if package.typical_duration is not None:
            typical.add_metric([package_id], package.typical_duration)
        totals = package.totals
        for status in COUNTED_STATUSES:
            runs.add_metric([package_id, status.value], float(totals.count(status)))
        bounds = [*(go_float(bound) for bound in metrics.PACKAGE_RUN_DURATION.buckets), "+Inf"]
        durations.add_metric(
            [package_id], list(zip(bounds, map(float, totals.cumulative()), strict=True)), totals.runtime_sum
        )
    for family in (last_status, success, failure, running, info, typical, runs, durations):
        if family.samples:
            yield family


def family_like(family: metrics.Family) -> GaugeMetricFamily | CounterMetricFamily:
    """An empty prometheus_client family with the catalogue's name, HELP and labels: the oracle checks how the
    exporter renders the contract; `tests/test_metrics.py` checks the contract itself."""
    kind = CounterMetricFamily if family.kind is metrics.Kind.COUNTER else GaugeMetricFamily
    return kind(family.name, family.help, labels=list(family.labels))


def single(family: metrics.Family, value: float) -> Metric:
    """A family of one sample without labels."""
    reference = family_like(family)
    reference.add_metric([], float(value))
    return reference


class Reference(Collector):
    """One snapshot as a registry-like collector, which is what prometheus_client's encoders take."""

    def __init__(self, snapshot: CacheSnapshot) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        return reference_families(self._snapshot)


def assert_matches_reference(
    cache: JobCache, exposition: Exposition, accepts: list[str | None] = ACCEPTS
) -> None:
    """For each Accept header, plain and gzip, the body is what prometheus_client would serve for it."""
    reference = Reference(cache.snapshot())
    for accept in accepts:
        encoder, content_type = choose_encoder(accept or "")
        expected = encoder(reference)
        assert exposition.render(accept) == Rendered(content_type, expected), accept
        packed = exposition.render(accept, gzip_ok=True)
        assert packed.content_type == content_type
        assert single_gzip_member(packed.body) == expected, accept


def single_gzip_member(body: bytes) -> bytes:
    """Decompress, checking the body is one complete gzip member (some clients read only the first)."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    plain = inflater.decompress(body)
    assert inflater.eof and not inflater.unused_data
    return plain


# --- building snapshots through the cache ------------------------------------------------------------------


def payload(job_id: int, **fields: Any) -> dict[str, Any]:
    """A job object as the API sends it; `fields` replace or (as None) drop keys."""
    document: dict[str, Any] = {
        "id": job_id,
        "status": "running",
        "progress": 0.42,
        "runtime_in_seconds": 1234,
        "package_id": 434,
        "package": {"id": 434, "name": "orders"},
        "started_at": "2026-11-28T10:00:00Z",
        "updated_at": "2026-11-28T10:20:34Z",
        "errors": None,
        "outputs": [{"id": 3, "name": "orders_out", "records_count": 10415}],
    }
    document.update(fields)
    return {key: value for key, value in document.items() if value is not None or key == "errors"}


def record(cache: JobCache, *documents: dict[str, Any], now: float = 1_764_324_034.5) -> None:
    cache.record_jobs([parse_job(document) for document in documents], now)


def budget(**fields: Any) -> BudgetSnapshot:
    values: dict[str, Any] = {
        "limit": 4500,
        "window_seconds": 3600.0,
        "spent": 12,
        "remaining": 4488,
        "backoff_seconds": 0.0,
        "api_limit": 5000,
        "api_remaining": 4321,
        "held_by_api": False,
        "foreign_spend": 667.0,
        "share": 3825,
    }
    values.update(fields)
    return BudgetSnapshot(**values)


def hostile_cache() -> JobCache:
    """Every kind of job state the poller can leave behind, with hostile strings wherever the API sets one."""
    cache = JobCache()
    cache.set_watched(range(1, 14))
    record(
        cache,
        payload(
            1,
            package={
                "id": 434,
                "name": HOSTILE[0] + HOSTILE[2],
                "html_url": "https://integrate.example/acme/packages/434?" + HOSTILE[0] + HOSTILE[3],
            },
            html_url="https://integrate.example/acme/jobs/1?" + HOSTILE[1] + HOSTILE[5],
            outputs=[{"id": n, "name": text, "records_count": n * 1000} for n, text in enumerate(HOSTILE)],
        ),
        payload(2, status="completed", progress=1, runtime_in_seconds=0, package_id=None, package=None),
        payload(3, status="exploded"),  # not a documented status: shown as unknown
        payload(4, progress=None, runtime_in_seconds=None, started_at=None, outputs=None, package=None),
        payload(
            5, outputs=[{"id": 1, "name": None, "records_count": None}, {"id": 2, "records_count": 1e21}]
        ),
        payload(6, progress=1e-7, runtime_in_seconds=123456789, started_at="1970-01-01T00:00:00Z"),
        payload(7, status=" Pending_Stoppage ", outputs=[]),
        payload(8, status="failed", errors="disk full", progress="0.5", attempts="2"),
        payload(12, status="completed", runtime_in_seconds=86400, attempts=1),  # on the last bucket's bound
        payload(13, status="stopped", attempts=-1),  # not a count: no series
    )
    cache.record_failure(8, "timeout")
    cache.record_failure(8, "timeout")
    cache.record_failure(8, HOSTILE[1] + HOSTILE[0])
    cache.record_missing(9)
    cache.record_failure(10, "connection_error")  # never refreshed, and failing
    # 11: watched, never refreshed, never attempted
    cache.record_request("get_job", "success")
    cache.record_request("list_jobs", "rate_limited")
    cache.record_request(HOSTILE[2], HOSTILE[1])
    cache.update_exporter(
        budget=budget(backoff_seconds=12.5),
        api_up=False,
        interval_seconds=60.0,
        target_interval_seconds=30.0,
        last_full_refresh=1_764_324_000.25,
        ready=True,
        config_reload_time=1_764_300_000.0,
    )
    return cache


# --- byte for byte ---------------------------------------------------------------------------------------


def test_an_empty_cache_renders_headers_only_as_prometheus_client_does() -> None:
    cache = JobCache()
    assert_matches_reference(cache, Exposition(cache))


def test_hostile_labels_missing_fields_and_unknown_status_match_prometheus_client() -> None:
    cache = hostile_cache()
    assert_matches_reference(cache, Exposition(cache))


def test_the_named_encoders_directly() -> None:
    """The two formats the issue names, without `choose_encoder` in between."""
    cache = hostile_cache()
    exposition = Exposition(cache)
    reference = Reference(cache.snapshot())
    assert exposition.render(None).body == generate_latest(reference)
    openmetrics = exposition.render("application/openmetrics-text; version=1.0.0")
    assert openmetrics.body == generate_openmetrics(reference)
    assert openmetrics.body.endswith(b"# EOF\n")
    assert b"# TYPE integrateio_job_poll_errors counter\n" in openmetrics.body
    assert b'integrateio_job_poll_errors_total{error="timeout",job_id="8"} 2.0\n' in openmetrics.body


def test_a_budget_without_api_figures_and_no_budget_at_all() -> None:
    cache = JobCache()
    exposition = Exposition(cache)
    cache.set_watched([1])
    cache.update_exporter(api_up=True)
    assert_matches_reference(cache, exposition)
    cache.update_exporter(budget=budget(api_limit=None, api_remaining=None))
    assert_matches_reference(cache, exposition)


def many_jobs_cache(count: int, seed: int = 7) -> JobCache:
    rng = random.Random(seed)
    statuses = [status.value for status in JobStatus if status is not JobStatus.UNKNOWN] + ["weird"]
    cache = JobCache()
    cache.set_watched(range(1, count + 1))
    documents = []
    for job_id in range(1, count + 1):
        outputs = [
            {
                "id": job_id * 3 + k,
                "name": rng.choice([*HOSTILE, "out"]),
                "records_count": rng.randrange(10**9),
            }
            for k in range(rng.randrange(4))
        ]
        documents.append(
            payload(
                job_id,
                status=rng.choice(statuses),
                progress=rng.random(),
                runtime_in_seconds=rng.randrange(10**6),
                package={"id": job_id % 50, "name": f"package_{job_id % 50}"},
                outputs=outputs,
            )
        )
    record(cache, *documents)
    for job_id in rng.sample(range(1, count + 1), count // 10):
        cache.record_failure(job_id, rng.choice(["timeout", "server_error", "invalid_field"]))
    return cache


def test_many_jobs_match_prometheus_client() -> None:
    cache = many_jobs_cache(1000)
    assert_matches_reference(cache, Exposition(cache), FEW_ACCEPTS)


def test_incremental_renders_equal_fresh_references_after_every_kind_of_write() -> None:
    """One Exposition across writes: kept job lines, kept gzip state and pruned jobs must never show."""
    cache = many_jobs_cache(200)
    exposition = Exposition(cache)
    writes = [
        lambda: cache.update_exporter(budget=budget(spent=13)),
        lambda: record(cache, payload(17, status="completed", progress=1.0), now=1_764_324_100.0),
        lambda: cache.record_failure(18, "timeout"),
        lambda: cache.record_missing(19),
        lambda: cache.record_request("get_job", "timeout"),
        lambda: cache.set_watched([*range(150, 0, -1), 500]),  # reordered, shrunk, one new job
        lambda: cache.set_watched(range(1, 201)),  # the dropped jobs return without values
        lambda: record(cache, *(payload(job_id, progress=0.9) for job_id in range(1, 201, 7))),
    ]
    assert_matches_reference(cache, exposition, FEW_ACCEPTS)
    for write in writes:
        write()
        assert_matches_reference(cache, exposition, FEW_ACCEPTS)


job_documents = st.fixed_dictionaries(
    {
        "status": st.sampled_from([s.value for s in JobStatus]) | st.text(min_size=1).filter(str.strip),
        "progress": st.none() | st.floats(allow_nan=False) | st.integers(),
        "runtime_in_seconds": st.none() | st.floats(allow_nan=False, allow_infinity=False, min_value=0),
        "package": st.none()
        | st.fixed_dictionaries({"id": st.integers(0, 10**12), "name": st.none() | st.text()}),
        "started_at": st.none()
        | st.sampled_from(["2026-11-28T10:00:00Z", "2026-11-28T10:00:00.123+02:00", "x"]),
        "attempts": st.none() | st.integers(-1, 10**20) | st.sampled_from(["2", "x", 1.5]),
        "outputs": st.none()
        | st.lists(
            st.fixed_dictionaries(
                {
                    "id": st.integers(0, 10**6),
                    "name": st.none() | st.text(),
                    "records_count": st.none()
                    | st.floats(min_value=0, allow_nan=False)
                    | st.integers(0, 10**30),
                }
            ),
            max_size=3,
        ),
    }
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents=st.lists(job_documents, min_size=1, max_size=5), errors=st.lists(st.text(), max_size=3))
def test_any_job_matches_prometheus_client(documents: list[dict[str, Any]], errors: list[str]) -> None:
    cache = JobCache()
    cache.set_watched(range(1, len(documents) + 2))
    record(cache, *(payload(job_id, **document) for job_id, document in enumerate(documents, start=1)))
    for error in errors:
        cache.record_failure(1, error)
    exposition = Exposition(cache)
    reference = Reference(cache.snapshot())
    assert exposition.render(None).body == generate_latest(reference)
    assert exposition.render("application/openmetrics-text").body == generate_openmetrics(reference)


# --- round trips through prometheus_client's parsers --------------------------------------------------------


def output_names(text: str, parse: Any) -> dict[str, str]:
    return {
        sample.labels["output_id"]: sample.labels["output_name"]
        for family in parse(text)
        if family.name == "integrateio_job_output_records"
        for sample in family.samples
    }


@settings(max_examples=300, deadline=None)
@given(name=st.text())
def test_any_unicode_output_name_survives_the_parsers(name: str) -> None:
    cache = JobCache()
    cache.set_watched([1])
    record(cache, payload(1, outputs=[{"id": 3, "name": name, "records_count": 1}]))
    exposition = Exposition(cache)
    assert output_names(exposition.render(None).body.decode(), parse_text) == {"3": name}
    openmetrics = exposition.render("application/openmetrics-text").body.decode()
    assert output_names(openmetrics, parse_openmetrics) == {"3": name}


def test_a_lone_surrogate_costs_one_character_not_the_scrape() -> None:
    """JSON can carry "\\ud800"; prometheus_client's encoders would raise on it and fail every scrape."""
    cache = JobCache()
    cache.set_watched([1])
    record(cache, payload(1, outputs=[{"id": 3, "name": "a\ud800b", "records_count": 1}]))
    body = Exposition(cache).render(None).body.decode()
    assert output_names(body, parse_text) == {"3": "a\ufffdb"}


# --- only what changed is rendered ------------------------------------------------------------------------


def test_a_change_to_one_job_changes_that_jobs_lines_and_renders_only_that_job(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache = many_jobs_cache(300)
    exposition = Exposition(cache)
    exposition.render(None)

    rendered: list[int] = []
    real = exposition_module.job_samples

    def counting(state: JobState) -> Any:
        rendered.append(state.job_id)
        return real(state)

    monkeypatch.setattr(exposition_module, "job_samples", counting)
    scans: list[int] = []
    real_scan = exposition_module.running_by_package

    def counting_scan(states: tuple[JobState, ...]) -> Any:
        scans.append(len(states))
        return real_scan(states)

    monkeypatch.setattr(exposition_module, "running_by_package", counting_scan)
    cache.update_exporter(budget=budget(spent=99))  # exporter-level only: no job is rendered or counted again
    before = exposition.render(None).body.decode().splitlines()
    assert rendered == []
    assert scans == []

    record(
        cache,
        payload(42, status="failed", progress=0.5, outputs=[{"id": 9, "name": "x", "records_count": 7}]),
    )
    after = exposition.render(None).body.decode().splitlines()
    assert rendered == [42]
    mine = 'job_id="42"'

    def others(lines: list[str]) -> list[str]:
        # Job 42's own lines change, and so does its package's view (its last finished run is now 42).
        return [line for line in lines if mine not in line and "integrateio_package_" not in line]

    assert others(before) == others(after)
    assert {line for line in before if mine in line} != {line for line in after if mine in line}


def test_unchanged_cache_serves_the_same_bytes_object() -> None:
    cache = many_jobs_cache(50)
    exposition = Exposition(cache)
    assert exposition.render(None).body is exposition.render(None).body
    assert exposition.render(None, gzip_ok=True).body is exposition.render(None, gzip_ok=True).body


def test_made_up_versions_in_accept_headers_keep_a_bounded_number_of_bodies() -> None:
    cache = many_jobs_cache(20)
    exposition = Exposition(cache)
    reference = Reference(cache.snapshot())
    content_types = set()
    for minor in range(3 * MAX_VARIANTS):
        accept = f"application/openmetrics-text; version=1.{minor}.0"
        encoder, content_type = choose_encoder(accept)
        assert exposition.render(accept) == Rendered(content_type, encoder(reference))
        content_types.add(content_type)
    # Recent prometheus_client echoes the version asked for (one body each, so the cache must stay bounded);
    # 0.20, our declared minimum, gives every version the same content type.
    assert len(exposition._variants) == min(MAX_VARIANTS, len(content_types))


# --- concurrency ------------------------------------------------------------------------------------------


def test_concurrent_scrapes_while_the_cache_is_written_always_parse_and_are_consistent() -> None:
    """Every body parses, and describes one moment: as many missing-series as watched jobs."""
    cache = many_jobs_cache(100)
    exposition = Exposition(cache)
    writing = threading.Event()
    done = threading.Event()
    failures: list[BaseException] = []
    spent_seen: set[float] = set()

    def write() -> None:
        rng = random.Random(1)
        step = 0
        while not done.is_set():
            step += 1
            job_ids = rng.sample(range(1, 101), 10)
            record(cache, *(payload(job_id, progress=rng.random()) for job_id in job_ids), now=float(step))
            cache.update_exporter(budget=budget(spent=step))
            cache.record_request("get_job", rng.choice(["success", "timeout"]))
            cache.record_failure(rng.randrange(1, 101), "timeout")
            if step % 10 == 0:
                cache.set_watched(range(1, rng.randrange(70, 101)))
            writing.set()

    def read(seed: int) -> None:
        rng = random.Random(seed)
        writing.wait(10)
        try:
            for _ in range(12):
                accept = rng.choice([None, "application/openmetrics-text", PROMETHEUS_ACCEPT])
                gzip_ok = rng.random() < 0.5
                rendered = exposition.render(accept, gzip_ok=gzip_ok)
                text = (gzip.decompress(rendered.body) if gzip_ok else rendered.body).decode()
                parse = parse_openmetrics if "openmetrics" in rendered.content_type else parse_text
                families = {family.name: family for family in parse(text)}
                watched = families["integrateio_watched_jobs"].samples[0].value
                assert len(families["integrateio_job_missing"].samples) == watched
                spent_seen.add(families["integrateio_budget_spent_credits"].samples[0].value)
        except BaseException as error:
            failures.append(error)

    writer = threading.Thread(target=write)
    readers = [threading.Thread(target=read, args=(n,)) for n in range(4)]
    writer.start()
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join(120)
    done.set()
    writer.join(10)
    assert not failures, failures[0]
    assert len(spent_seen) > 10  # the scrapes really did interleave with writes


@pytest.mark.parametrize("accept", ACCEPTS)
def test_help_text_and_label_order_of_any_family_as_prometheus_client_writes_them(accept: str | None) -> None:
    """Our HELP texts are tame, so a family with a hostile one (and labels declared out of order) checks the
    escaping of HELP in both formats."""
    documentation = 'a "quoted" back\\slash, \\n literal and\na newline'
    family = metrics.Family(
        "integrateio_test", metrics.Kind.COUNTER, metrics.Scope.ACCOUNT, documentation, ("zeta", "alpha")
    )
    reference = CounterMetricFamily("integrateio_test", documentation, labels=["zeta", "alpha"])
    reference.add_metric(["z\n", 'a"'], 3.0)

    class One(Collector):
        def collect(self) -> Iterator[Metric]:
            yield reference

    encoder, content_type = choose_encoder(accept or "")
    syntax = exposition_module._Syntax.of(content_type)
    ours = syntax.header(family) + syntax.line_format(family).lines([(("z\n", 'a"'), 3.0)])
    if syntax.openmetrics:
        ours += "# EOF\n"
    assert ours.encode() == encoder(One())
