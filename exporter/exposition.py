"""Cache snapshot ─▶ metric families ─▶ bytes, rendered once per change and served as bytes.

A scrape costs a dictionary look-up when nothing changed since the last one: the rendered body (and its gzip
form) is kept per content type and cache version. Families are built from an immutable snapshot, so a scrape
never sees half of an update, and there are no global labelled Gauges whose stale children would have to be
removed when a job leaves the configuration.

A sample of what `collect_families` produces (text format, abridged):

    # HELP integrateio_job_status Current status of the job: 1 for the status it is in, 0 for the others.
    # TYPE integrateio_job_status gauge
    integrateio_job_status{job_id="157",status="running"} 1.0
    integrateio_job_status{job_id="157",status="failed"} 0.0
    # TYPE integrateio_job_progress_ratio gauge
    integrateio_job_progress_ratio{job_id="157"} 0.42
    # TYPE integrateio_job_output_records gauge
    integrateio_job_output_records{job_id="157",output_id="3",output_name="orders_out"} 10415.0
    # TYPE integrateio_api_requests_total counter
    integrateio_api_requests_total{endpoint="get_job",outcome="success"} 12.0
"""

from __future__ import annotations

import gzip
import platform
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter import __version__
from exporter.cache import CacheSnapshot, JobCache, JobState
from exporter.model import JobStatus

STATUS_VALUES = tuple(status.value for status in JobStatus)


def collect_families(snapshot: CacheSnapshot) -> Iterator[Metric]:
    """Every metric family the exporter serves, built from one snapshot."""
    yield from _job_families(snapshot.jobs)
    yield from _exporter_families(snapshot)


def _job_families(states: tuple[JobState, ...]) -> Iterator[Metric]:
    status = GaugeMetricFamily(
        "integrateio_job_status",
        "Current status of the job: 1 for the status it is in, 0 for the others (unknown: not a documented one).",
        labels=["job_id", "status"],
    )
    progress = GaugeMetricFamily(
        "integrateio_job_progress_ratio", "Progress of the job, 0 to 1.", labels=["job_id"]
    )
    runtime = GaugeMetricFamily(
        "integrateio_job_runtime_seconds", "Runtime of the job as the API reports it.", labels=["job_id"]
    )
    records = GaugeMetricFamily(
        "integrateio_job_output_records",
        "Records written to each output of the job (records_count).",
        labels=["job_id", "output_id", "output_name"],
    )
    info = GaugeMetricFamily(
        "integrateio_job_info",
        "Package of the job; always 1.",
        labels=["job_id", "package_id", "package_name"],
    )
    started = GaugeMetricFamily(
        "integrateio_job_started_timestamp_seconds", "When the job started, as Unix time.", labels=["job_id"]
    )
    last_success = GaugeMetricFamily(
        "integrateio_job_last_success_timestamp_seconds",
        "When the exporter last refreshed the job successfully, as Unix time.",
        labels=["job_id"],
    )
    poll_success = GaugeMetricFamily(
        "integrateio_job_poll_success",
        "1 if the last refresh of the job succeeded, else 0.",
        labels=["job_id"],
    )
    missing = GaugeMetricFamily(
        "integrateio_job_missing", "1 while the API answers 404 for the job, else 0.", labels=["job_id"]
    )
    errors = CounterMetricFamily(
        "integrateio_job_poll_errors",
        "Failed refreshes of the job, by error class.",
        labels=["job_id", "error"],
    )
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
        for value in STATUS_VALUES:
            status.add_metric([job_id, value], 1.0 if job.status.value == value else 0.0)
        if job.progress is not None:
            progress.add_metric([job_id], job.progress)
        if job.runtime_seconds is not None:
            runtime.add_metric([job_id], job.runtime_seconds)
        if job.started_at is not None:
            started.add_metric([job_id], job.started_at)
        info.add_metric([job_id, _optional(job.package_id), job.package_name or ""], 1.0)
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
    )


def _exporter_families(snapshot: CacheSnapshot) -> Iterator[Metric]:
    state = snapshot.exporter
    requests = CounterMetricFamily(
        "integrateio_api_requests",
        "API requests sent, by endpoint and outcome.",
        labels=["endpoint", "outcome"],
    )
    for (endpoint, outcome), count in sorted(state.requests.items()):
        requests.add_metric([endpoint, outcome], float(count))
    yield requests
    if state.api_up is not None:
        yield _gauge(
            "integrateio_api_up", "1 if the last API request was answered and authenticated.", state.api_up
        )
    budget = state.budget
    if budget is not None:
        yield _gauge(
            "integrateio_api_backoff_seconds", "Seconds left in a pause after a 429.", budget.backoff_seconds
        )
        if budget.api_limit is not None:
            yield _gauge(
                "integrateio_api_rate_limit_credits",
                "The key's credit limit as the API reports it.",
                budget.api_limit,
            )
        if budget.api_remaining is not None:
            yield _gauge(
                "integrateio_api_rate_limit_remaining_credits",
                "Credits left to the key as the API reports them, all clients of the key included.",
                budget.api_remaining,
            )
        yield _gauge(
            "integrateio_budget_limit_credits", "Credits the exporter allows itself per window.", budget.limit
        )
        yield _gauge(
            "integrateio_budget_spent_credits",
            "Credits the exporter spent in the current window.",
            budget.spent,
        )
        yield _gauge(
            "integrateio_budget_remaining_credits",
            "Credits the exporter may still spend in the window.",
            budget.remaining,
        )
        yield _gauge(
            "integrateio_budget_window_seconds",
            "The sliding window of the credit budget.",
            budget.window_seconds,
        )
    yield _gauge(
        "integrateio_refresh_interval_seconds",
        "Effective refresh interval of a job that is not final (stretched when the budget requires).",
        state.interval_seconds,
    )
    yield _gauge(
        "integrateio_refresh_interval_target_seconds",
        "The configured polling.interval_seconds.",
        state.target_interval_seconds,
    )
    yield _gauge("integrateio_watched_jobs", "Jobs the exporter watches.", len(snapshot.jobs))
    if state.last_full_refresh is not None:
        yield _gauge(
            "integrateio_last_full_refresh_timestamp_seconds",
            "When every watched job was last refreshed, as Unix time.",
            state.last_full_refresh,
        )
    yield _gauge(
        "integrateio_config_last_reload_success",
        "1 if the last configuration load succeeded.",
        state.config_reload_ok,
    )
    if state.config_reload_time is not None:
        yield _gauge(
            "integrateio_config_last_reload_success_timestamp_seconds",
            "When the configuration was last loaded successfully, as Unix time.",
            state.config_reload_time,
        )
    info = GaugeMetricFamily(
        "integrateio_exporter_build_info",
        "Version of the exporter; always 1.",
        labels=["version", "python_version"],
    )
    info.add_metric([__version__, platform.python_version()], 1.0)
    yield info


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=float(value))


def _optional(value: int | None) -> str:
    return "" if value is None else str(value)


@dataclass(frozen=True)
class Rendered:
    """One rendered body and its content type."""

    content_type: str
    body: bytes


class _SnapshotCollector(Collector):
    """Adapts one snapshot to prometheus_client's encoders, which want a registry-like `collect()`."""

    def __init__(self, snapshot: CacheSnapshot) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        return collect_families(self._snapshot)


class Exposition:
    """Serves the cache as exposition bytes, rendering only when the cache version moved."""

    def __init__(self, cache: JobCache) -> None:
        self._cache = cache
        self._lock = threading.Lock()
        self._rendered: dict[tuple[int, str, bool], Rendered] = {}

    def render(self, accept: str | None, gzip_ok: bool = False) -> Rendered:
        """The body for a scrape with this Accept header; gzip-compressed when gzip_ok."""
        encoder, content_type = choose_encoder(accept or "")
        with self._lock:  # one render at a time; concurrent scrapes of the same version share it
            version = self._cache.version
            found = self._rendered.get((version, content_type, gzip_ok))
            if found is not None:
                return found
            plain = self._rendered.get((version, content_type, False))
            if plain is None:
                snapshot = self._cache.snapshot()
                version = snapshot.version
                plain = Rendered(content_type, encoder(_SnapshotCollector(snapshot)))
            # Bodies of older versions are never served again.
            self._rendered = {key: body for key, body in self._rendered.items() if key[0] == version}
            self._rendered[(version, content_type, False)] = plain
            if not gzip_ok:
                return plain
            packed = Rendered(content_type, gzip.compress(plain.body, compresslevel=6))
            self._rendered[(version, content_type, True)] = packed
            return packed
