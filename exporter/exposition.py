"""Cache snapshot ─▶ exposition bytes, re-rendered per changed job and served as bytes.

prometheus_client's `generate_latest` re-renders every series on every call: with 50,000 watched jobs that is
~700k series and seconds of CPU, and the poller publishes its budget numbers about once a second, so nearly
every scrape would pay it. Here a scrape costs a dictionary look-up when nothing changed, and otherwise:

- each job's lines are rendered once per change of that job (the cache replaces a `JobState` on every change
  and never mutates one, so `is` tells whether a job changed) and kept as bytes per job and family;
- consecutive jobs' lines are joined per family in chunks of `CHUNK_JOBS`, so a job change re-joins one
  chunk, and the body is a join of a few thousand blocks rather than of 500k pieces;
- the exporter's own families (budget, requests, interval, discovery, build info: a few dozen lines per
  account) are rendered anew for every version and appended; the package families follow them, rendered
  again only when jobs or packages changed (their running counts take a pass over every job);
- the gzip body is spliced from deflate segments kept per block, so a budget update compresses only the
  exporter's lines and a job change only the blocks whose bytes changed;
- the plain and gzip bodies are each built on first request per version, and bodies are kept for at most
  `MAX_VARIANTS` content types.

Everything for one body comes from one `cache.snapshot()`, so a scrape never sees half of an update. The
output is byte for byte what prometheus_client's encoders produce for the same families — escaping, label
order, float formatting, name escaping per negotiated scheme — which `tests/test_exposition.py` checks against
them; content negotiation is prometheus_client's own `choose_encoder` (public in every release we support).

The families themselves — names, types, HELP, labels — are declared in `exporter.metrics`; this module only
renders them, with the escaping of `exporter.escaping`.
"""

from __future__ import annotations

import platform
import re
import struct
import threading
import zlib
from collections import Counter, OrderedDict
from dataclasses import dataclass, replace
from operator import is_, itemgetter

from prometheus_client.exposition import choose_encoder

from exporter import __version__
from exporter.cache import CacheGroup, CacheSnapshot, ExporterState, JobCache, JobState, PackageState
from exporter.escaping import (
    UNDERSCORES,
    escape_label_value,
    escape_name,
    escape_openmetrics_sample_name,
    escape_text_help,
    go_float,
)
from exporter.history import COUNTED_STATUSES, RunTotals
from exporter.metrics import (
    ACCOUNT_FAMILIES,
    ACCOUNT_LABEL,
    API_BACKOFF,
    API_FOREIGN_SPEND,
    API_LIMIT,
    API_REMAINING,
    API_REQUESTS,
    API_UP,
    BUDGET_LIMIT,
    BUDGET_REMAINING,
    BUDGET_SHARE,
    BUDGET_SPENT,
    BUDGET_WINDOW,
    BUILD_INFO,
    CLUSTER_AVAILABLE_SINCE,
    CLUSTER_INFO,
    CLUSTER_NODES,
    CLUSTER_RUNNING_JOBS,
    CLUSTER_STATUS,
    CLUSTER_STATUS_VALUES,
    CLUSTER_TERMINATE_ON_IDLE,
    CONFIG_RELOAD,
    CONFIG_RELOAD_TIME,
    DISCOVERED_JOBS,
    DISCOVERY_DROPPED,
    FAMILIES,
    JOB_ATTEMPTS,
    JOB_FAMILIES,
    JOB_INFO,
    JOB_LAST_SUCCESS,
    JOB_MISSING,
    JOB_OUTPUT_RECORDS,
    JOB_POLL_ERRORS,
    JOB_POLL_SUCCESS,
    JOB_PROGRESS,
    JOB_RUNTIME,
    JOB_STARTED,
    JOB_STATUS,
    LAST_FULL_REFRESH,
    LIST_ITEMS_MODE,
    LIST_MODES,
    LISTING_ERRORS,
    LISTING_LAST_SUCCESS,
    PACKAGE_FAMILIES,
    PACKAGE_INFO,
    PACKAGE_LAST_FAILURE,
    PACKAGE_LAST_STATUS,
    PACKAGE_LAST_SUCCESS,
    PACKAGE_RUN_DURATION,
    PACKAGE_RUNNING,
    PACKAGE_RUNS,
    PACKAGE_TYPICAL_DURATION,
    REFRESH_INTERVAL,
    REFRESH_TARGET,
    SCHEDULE_ENABLED,
    SCHEDULE_INFO,
    SCHEDULE_INTERVAL,
    SCHEDULE_LAST_RUN,
    SCHEDULE_LAST_RUN_STATUS,
    SCHEDULE_NEXT_RUN,
    SCHEDULE_PACKAGE_INFO,
    SCHEDULE_RUNS,
    STATUS_VALUES,
    WATCHED_JOBS,
    WEBHOOK_LAST_ACCEPTED,
    WEBHOOK_REQUESTS,
    Family,
    Kind,
    Labels,
    Scope,
)
from exporter.model import JobStatus

PYTHON_VERSION = platform.python_version()
OPENMETRICS_TYPE = "application/openmetrics-text"
GZIP_LEVEL = 6
# A gzip member header: no name, no mtime, unknown OS; the deflate stream and the trailer follow.
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
CHUNK_JOBS = 128
LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# Content types kept rendered at once; the Accept header is the client's, so without a bound a client could
# make us keep a body per made-up version string.
MAX_VARIANTS = 4

Sample = tuple[Labels, float]


# Every family but the job ones, whose headers and line formats each variant keeps ready.
OTHER_FAMILIES = tuple(family for family in FAMILIES if family.scope is not Scope.JOB)


def for_accounts(family: Family, labelled: bool) -> Family:
    """The family as served: with several accounts configured, every series but the process's own has
    `account` as its first label."""
    if not labelled or family.scope is Scope.PROCESS:
        return family
    return replace(family, labels=(ACCOUNT_LABEL, *family.labels))


def _with_account(account: str | None, samples: list[Sample]) -> list[Sample]:
    if account is None:
        return samples
    return [((account, *labels), value) for labels, value in samples]


def job_samples(state: JobState) -> tuple[list[Sample], ...]:
    """The samples one job contributes to each of `JOB_FAMILIES`, in that order (label values in the order of
    the family's `labels`, after the account's when there is one). A job never refreshed has only its poll
    bookkeeping; absent fields, no series."""
    found = _job_samples(state)
    return tuple(_with_account(state.account, found.get(family, [])) for family in JOB_FAMILIES)


def _job_samples(state: JobState) -> dict[Family, list[Sample]]:
    job_id = str(state.job_id)
    samples: dict[Family, list[Sample]] = {
        JOB_MISSING: [((job_id,), 1.0 if state.missing else 0.0)],
        JOB_POLL_ERRORS: [((job_id, error), float(count)) for error, count in sorted(state.errors.items())],
    }
    if state.last_attempt_ok is not None:
        samples[JOB_POLL_SUCCESS] = [((job_id,), 1.0 if state.last_attempt_ok else 0.0)]
    if state.last_success is not None:
        samples[JOB_LAST_SUCCESS] = [((job_id,), state.last_success)]
    job = state.job
    if job is None:
        return samples
    samples[JOB_STATUS] = [
        ((job_id, value), 1.0 if job.status.value == value else 0.0) for value in STATUS_VALUES
    ]
    if job.progress is not None:
        samples[JOB_PROGRESS] = [((job_id,), job.progress)]
    if job.runtime_seconds is not None:
        samples[JOB_RUNTIME] = [((job_id,), job.runtime_seconds)]
    if job.started_at is not None:
        samples[JOB_STARTED] = [((job_id,), job.started_at)]
    if job.attempts is not None:
        samples[JOB_ATTEMPTS] = [((job_id,), float(job.attempts))]
    package_id = "" if job.package_id is None else str(job.package_id)
    samples[JOB_INFO] = [((job_id, package_id, job.package_name or "", job.html_url or ""), 1.0)]
    samples[JOB_OUTPUT_RECORDS] = [
        ((job_id, str(output.id), output.name or ""), output.records_count)
        for output in job.outputs
        if output.records_count is not None
    ]
    return samples


def exporter_samples(snapshot: CacheSnapshot) -> list[tuple[Family, list[Sample]]]:
    """The accounts' own families (requests to discovery), in order, each account's samples under one header;
    a family whose value is not known yet is left out entirely. Small: rendered for every version."""
    merged: dict[Family, list[Sample]] = {}
    for state in snapshot.exporters:
        for family, samples in _account_samples(state):
            merged.setdefault(family, []).extend(_with_account(state.account, samples))
    return [(family, merged[family]) for family in ACCOUNT_FAMILIES if family in merged]


def running_by_package(jobs: tuple[JobState, ...]) -> Counter[tuple[str | None, int]]:
    """Watched jobs now running, per (account, package id): one pass over the jobs, made when they change."""
    return Counter(
        (state.account, state.job.package_id)
        for state in jobs
        if state.job is not None
        and state.job.package_id is not None
        and state.job.status is JobStatus.RUNNING
    )


def package_samples(
    packages: tuple[PackageState, ...], running: Counter[tuple[str | None, int]]
) -> list[tuple[Family, list[Sample]]]:
    """The packages' families, in order, every package's samples under one header."""
    merged: dict[Family, list[Sample]] = {}
    for package in packages:
        for family, samples in _package_samples(package, running[(package.account, package.package_id)]):
            merged.setdefault(family, []).extend(_with_account(package.account, samples))
    return [(family, merged[family]) for family in PACKAGE_FAMILIES if family in merged]


def _account_samples(state: ExporterState) -> list[tuple[Family, list[Sample]]]:
    requests: list[Sample] = [
        ((endpoint, outcome), float(n)) for (endpoint, outcome), n in sorted(state.requests.items())
    ]
    families: list[tuple[Family, list[Sample]]] = [(API_REQUESTS, requests)]

    def single(family: Family, value: float | None) -> None:
        if value is not None:
            families.append((family, [((), float(value))]))

    single(API_UP, state.api_up)
    budget = state.budget
    if budget is not None:
        single(API_BACKOFF, budget.backoff_seconds)
        single(API_LIMIT, budget.api_limit)
        single(API_REMAINING, budget.api_remaining)
        single(API_FOREIGN_SPEND, budget.foreign_spend)
        single(BUDGET_SHARE, budget.share)
        single(BUDGET_LIMIT, budget.limit)
        single(BUDGET_SPENT, budget.spent)
        single(BUDGET_REMAINING, budget.remaining)
        single(BUDGET_WINDOW, budget.window_seconds)
    single(REFRESH_INTERVAL, state.interval_seconds)
    single(REFRESH_TARGET, state.target_interval_seconds)
    single(WATCHED_JOBS, state.watched_jobs)
    single(LAST_FULL_REFRESH, state.last_full_refresh)
    single(CONFIG_RELOAD, state.config_reload_ok)
    single(CONFIG_RELOAD_TIME, state.config_reload_time)
    if state.discovered_jobs is not None:
        single(DISCOVERED_JOBS, state.discovered_jobs)
        single(DISCOVERY_DROPPED, state.discovery_dropped)
    if state.list_items is not None:
        families.append(
            (LIST_ITEMS_MODE, [((mode,), float(mode == state.list_items)) for mode in LIST_MODES])
        )
    if state.webhook_requests is not None:
        families.append(
            (WEBHOOK_REQUESTS, [((outcome,), float(n)) for outcome, n in state.webhook_requests.items()])
        )
        single(WEBHOOK_LAST_ACCEPTED, state.webhook_last_accepted)

    families.extend(listing_samples(state))
    return families


def listing_samples(state: ExporterState) -> list[tuple[Family, list[Sample]]]:
    """The schedules' and clusters' families, and how reading them went; nothing for a section that is off.

    integrateio_schedule_enabled{schedule_id="2"} 1.0
    integrateio_schedule_last_run_status{schedule_id="2",status="failed"} 1.0
    integrateio_cluster_status{cluster_id="52",status="available"} 1.0
    integrateio_cluster_running_jobs{cluster_id="52"} 0.0
    """
    found: dict[Family, list[Sample]] = {}

    def add(family: Family, labels: Labels, value: float | bool | None) -> None:
        if value is not None:
            found.setdefault(family, []).append((labels, float(value)))

    for resource, health in sorted(state.listing.items()):
        for error, count in sorted(health.errors.items()):
            add(LISTING_ERRORS, (resource, error), count)
        add(LISTING_LAST_SUCCESS, (resource,), health.last_success)
    for schedule in state.schedules or ():
        key = (str(schedule.id),)
        add(SCHEDULE_INFO, (*key, schedule.name or "", schedule.url or ""), 1.0)
        add(SCHEDULE_ENABLED, key, schedule.enabled)
        add(SCHEDULE_NEXT_RUN, key, schedule.next_run_at)
        add(SCHEDULE_LAST_RUN, key, schedule.last_run_at)
        last = schedule.last_run_status
        if last is not None:
            for value in STATUS_VALUES:
                add(SCHEDULE_LAST_RUN_STATUS, (*key, value), last.value == value)
        add(SCHEDULE_RUNS, key, schedule.execution_count)
        add(SCHEDULE_INTERVAL, key, schedule.interval_seconds)
        for package_id in schedule.package_ids:
            add(SCHEDULE_PACKAGE_INFO, (*key, str(package_id)), 1.0)
    for cluster in state.clusters or ():
        key = (str(cluster.id),)
        add(CLUSTER_INFO, (*key, cluster.name or "", cluster.type or "", cluster.url or ""), 1.0)
        for value in CLUSTER_STATUS_VALUES:
            add(CLUSTER_STATUS, (*key, value), cluster.status.value == value)
        add(CLUSTER_NODES, key, cluster.nodes)
        add(CLUSTER_RUNNING_JOBS, key, cluster.running_jobs)
        add(CLUSTER_AVAILABLE_SINCE, key, cluster.available_since)
        add(CLUSTER_TERMINATE_ON_IDLE, key, cluster.terminate_on_idle)
    return list(found.items())


def _package_samples(package: PackageState, running: int) -> list[tuple[Family, list[Sample]]]:
    package_id = str(package.package_id)
    families: list[tuple[Family, list[Sample]]] = []
    last = package.last_finished
    if last is not None:
        families.append(
            (
                PACKAGE_LAST_STATUS,
                [
                    ((package_id, value), 1.0 if last.status.value == value else 0.0)
                    for value in STATUS_VALUES
                ],
            )
        )
    if package.last_success is not None:
        families.append((PACKAGE_LAST_SUCCESS, [((package_id,), package.last_success)]))
    if package.last_failure is not None:
        families.append((PACKAGE_LAST_FAILURE, [((package_id,), package.last_failure)]))
    families.append((PACKAGE_RUNNING, [((package_id,), float(running))]))
    families.append((PACKAGE_INFO, [((package_id, package.name or "", package.url or ""), 1.0)]))
    typical = package.typical_duration
    if typical is not None:
        families.append((PACKAGE_TYPICAL_DURATION, [((package_id,), typical)]))
    totals = package.totals
    families.append(
        (
            PACKAGE_RUNS,
            [((package_id, status.value), float(totals.count(status))) for status in COUNTED_STATUSES],
        )
    )
    families.append((PACKAGE_RUN_DURATION, histogram_samples((package_id,), totals)))
    return families


def histogram_samples(labels: Labels, totals: RunTotals) -> list[Sample]:
    """One histogram series as `_HistogramFormat` takes it: its cumulative bucket counts (`+Inf` last), then its
    sum, all under the series' labels."""
    return [(labels, float(count)) for count in totals.cumulative()] + [(labels, totals.runtime_sum)]


def utf8(text: str) -> bytes:
    """UTF-8, except that a lone surrogate becomes U+FFFD: JSON may carry one (`"\\ud800"` decodes to it), and
    it must cost the scrape one odd character rather than fail it (prometheus_client's encoders raise)."""
    try:
        return text.encode()
    except UnicodeEncodeError:
        return LONE_SURROGATE.sub("\ufffd", text).encode()


class _LineFormat:
    """Writes the sample lines of one family: its escaped names are baked into a %-template once, with labels
    in sorted order (prometheus_client sorts labels by name), so a line costs one formatting operation."""

    __slots__ = ("_order", "_template")

    def __init__(self, name: str, label_names: Labels, family: Family) -> None:
        self._order = tuple(sorted(range(len(family.labels)), key=family.labels.__getitem__))
        labels = ",".join(f'{label_names[index].replace("%", "%%")}="%s"' for index in self._order)
        name = name.replace("%", "%%")
        self._template = f"{name}{{{labels}}} %s\n" if labels else f"{name} %s\n"

    def line(self, values: Labels, value: float) -> str:
        return self._template % (
            *[escape_label_value(values[index]) for index in self._order],
            go_float(value),
        )

    def lines(self, samples: list[Sample]) -> str:
        return "".join([self.line(values, value) for values, value in samples])


class _HistogramFormat:
    """Writes a histogram's lines as prometheus_client does: per series its `_bucket` lines (with `le`, `+Inf`
    last), then `_count` (the `+Inf` bucket) and `_sum`. Its samples come as `histogram_samples` makes them:
    per series, one value per bucket and then the sum."""

    __slots__ = ("_bounds", "_bucket", "_count", "_sum")

    def __init__(self, syntax: _Syntax, family: Family) -> None:
        self._bounds = (*(go_float(bound) for bound in family.buckets), "+Inf")
        self._bucket = syntax.line_format(
            replace(family, name=f"{family.name}_bucket", kind=Kind.GAUGE, labels=(*family.labels, "le"))
        )
        self._count = syntax.line_format(replace(family, name=f"{family.name}_count", kind=Kind.GAUGE))
        self._sum = syntax.line_format(replace(family, name=f"{family.name}_sum", kind=Kind.GAUGE))

    def lines(self, samples: list[Sample]) -> str:
        per_series = len(self._bounds) + 1
        parts: list[str] = []
        for start in range(0, len(samples), per_series):
            series = samples[start : start + per_series]
            labels = series[0][0]
            parts.extend(
                self._bucket.line((*labels, bound), value)
                for bound, (_, value) in zip(self._bounds, series, strict=False)
            )
            parts.append(self._count.line(labels, series[-2][1]))
            parts.append(self._sum.line(labels, series[-1][1]))
        return "".join(parts)


@dataclass(frozen=True)
class _Syntax:
    """How one negotiated content type spells a family: text or OpenMetrics, and the name-escaping scheme.

    Derived from the content type `choose_encoder` picked, so the scheme we announce is the one we apply.
    """

    openmetrics: bool
    escaping: str

    @classmethod
    def of(cls, content_type: str) -> _Syntax:
        _, found, escaping = content_type.partition("escaping=")
        return cls(content_type.startswith(OPENMETRICS_TYPE), escaping.strip() if found else UNDERSCORES)

    def header(self, family: Family) -> str:
        if self.openmetrics:
            name = escape_name(family.name, self.escaping)
            documentation = escape_label_value(family.help)  # OpenMetrics escapes quotes in HELP too
        else:
            name = escape_name(family.sample_name, self.escaping)
            documentation = escape_text_help(family.help)
        return f"# HELP {name} {documentation}\n# TYPE {name} {family.type}\n"

    def spelling(self, family: Family) -> tuple[str, Labels]:
        """The escaped sample name and label names, as each prometheus_client encoder escapes them."""
        if self.openmetrics:
            name = escape_openmetrics_sample_name(family.sample_name, self.escaping)
        else:
            name = escape_name(family.sample_name, self.escaping)
        return name, tuple(escape_name(label, self.escaping) for label in family.labels)

    def line_format(self, family: Family) -> _LineFormat:
        name, labels = self.spelling(family)
        return _LineFormat(name, labels, family)

    def any_format(self, family: Family) -> _LineFormat | _HistogramFormat:
        """The writer of the family's sample lines, whatever its kind."""
        if family.kind is Kind.HISTOGRAM:
            return _HistogramFormat(self, family)
        return self.line_format(family)


class _Chunk:
    """Up to `CHUNK_JOBS` consecutive jobs' lines joined per family, each block deflated when first needed.

    Joining blocks of a few hundred jobs keeps a job change from re-joining 500k per-job pieces. A chunk is
    rebuilt when one of its jobs changed; a family whose block came out the same keeps its compressed segment,
    so a refresh that only moved `last_success` recompresses one family of the chunk, not ten.
    """

    __slots__ = ("blocks", "segments", "states")

    def __init__(
        self, states: tuple[JobState, ...], blocks: tuple[bytes, ...], previous: _Chunk | None
    ) -> None:
        self.states = states
        self.blocks = blocks
        self.segments: list[bytes | None] = [None] * len(blocks)
        if previous is not None:
            for index, (block, old) in enumerate(zip(blocks, previous.blocks, strict=True)):
                if block == old:
                    self.segments[index] = previous.segments[index]

    def holds(self, states: tuple[JobState, ...]) -> bool:
        return len(self.states) == len(states) and all(map(is_, self.states, states))

    def segment(self, index: int) -> bytes:
        segment = self.segments[index]
        if segment is None:
            segment = self.segments[index] = deflate_segment(self.blocks[index])
        return segment


class _JobLines:
    """Every job's lines for each job family, as bytes, rendered again only for jobs whose state changed, and
    grouped into chunks of consecutive jobs.

    Shared by the content types that spell sample lines alike (text and OpenMetrics do, for our names, under
    every escaping but dots and values), so two formats in use do not double the memory.
    """

    def __init__(self, syntax: _Syntax, labelled: bool) -> None:
        self._formats = tuple(syntax.line_format(for_accounts(family, labelled)) for family in JOB_FAMILIES)
        self._by_job: dict[tuple[str | None, int], tuple[JobState, tuple[bytes, ...]]] = {}
        self._chunks: list[_Chunk] = []

    def chunks(self, states: tuple[JobState, ...]) -> list[_Chunk]:
        """The chunks for these jobs, in order; chunks whose jobs are all unchanged are the same objects."""
        chunks = []
        for number, start in enumerate(range(0, len(states), CHUNK_JOBS)):
            part = states[start : start + CHUNK_JOBS]
            known = self._chunks[number] if number < len(self._chunks) else None
            if known is None or not known.holds(part):
                rows = [self._lines(state) for state in part]
                blocks = tuple(b"".join(map(itemgetter(index), rows)) for index in range(len(JOB_FAMILIES)))
                known = _Chunk(part, blocks, known)
            chunks.append(known)
        self._chunks = chunks
        if len(self._by_job) > len(states):  # jobs left the configuration: forget their lines
            self._by_job = {
                key: self._by_job[key] for key in ((state.account, state.job_id) for state in states)
            }
        return chunks

    def _lines(self, state: JobState) -> tuple[bytes, ...]:
        key = (state.account, state.job_id)
        known = self._by_job.get(key)
        if known is None or known[0] is not state:
            lines = tuple(
                utf8(line_format.lines(samples))
                for line_format, samples in zip(self._formats, job_samples(state), strict=True)
            )
            known = self._by_job[key] = (state, lines)
        return known[1]


class _Variant:
    """What one content type serves for the current version: the job part (kept while no job changes), the
    exporter's families (rendered for every version), and the plain and gzip bodies, each built when first
    asked for — a Prometheus that always asks for gzip never makes us hold the plain body.
    """

    def __init__(self, syntax: _Syntax, job_lines: _JobLines, labelled: bool) -> None:
        self.syntax = syntax
        self.job_lines = job_lines
        self._headers = tuple(utf8(syntax.header(family)) for family in JOB_FAMILIES)
        self._header_segments = tuple(deflate_segment(header) for header in self._headers)
        self._exporter_formats = {
            family: (syntax.header(family), syntax.any_format(for_accounts(family, labelled)))
            for family in OTHER_FAMILIES
        }
        self._build_info = self._families([(BUILD_INFO, [((__version__, PYTHON_VERSION), 1.0)])])
        self.version = -1
        self._jobs: tuple[JobState, ...] | None = None
        self._chunks: list[_Chunk] = []
        # Packages change only with their jobs; their lines (and the running counts, a pass over every job)
        # are made again only then, not for every budget update.
        self._running: Counter[tuple[str | None, int]] = Counter()
        self._packages: tuple[PackageState, ...] | None = None
        self._package_part = ""
        self._tail = b""
        self._body: bytes | None = None
        self._gzipped: bytes | None = None
        self._deflated_jobs: tuple[bytes, int, int] | None = None  # the job part deflated, its CRC-32, length

    def update(self, snapshot: CacheSnapshot) -> None:
        jobs = snapshot.jobs
        if not _same(self._jobs, jobs):
            self._chunks = self.job_lines.chunks(jobs)
            self._running = running_by_package(jobs)
            self._jobs = jobs
            self._deflated_jobs = None
            self._packages = None
        if not _same(self._packages, snapshot.packages):
            self._packages = snapshot.packages
            self._package_part = self._families(package_samples(snapshot.packages, self._running))
        self._tail = utf8(
            "".join(
                (
                    self._families(exporter_samples(snapshot)),
                    self._package_part,
                    self._build_info,
                    "# EOF\n" if self.syntax.openmetrics else "",
                )
            )
        )
        self._body = self._gzipped = None
        self.version = snapshot.version

    def body(self) -> bytes:
        if self._body is None:
            parts: list[bytes] = []
            for index, header in enumerate(self._headers):
                parts.append(header)
                parts.extend(chunk.blocks[index] for chunk in self._chunks)
            parts.append(self._tail)
            self._body = b"".join(parts)
        return self._body

    def gzipped(self) -> bytes:
        """The body as one gzip member, spliced from deflate segments: the job part's segments are kept while
        no job changes, so a new version compresses only the exporter's few lines (and a job change only the
        blocks that changed), where compressing the whole body of 50k jobs takes the better part of a second.
        """
        if self._gzipped is None:
            if self._deflated_jobs is None:
                segments = []
                crc = length = 0
                for index, header in enumerate(self._headers):
                    segments.append(self._header_segments[index])
                    crc, length = zlib.crc32(header, crc), length + len(header)
                    for chunk in self._chunks:
                        block = chunk.blocks[index]
                        segments.append(chunk.segment(index))
                        crc, length = zlib.crc32(block, crc), length + len(block)
                self._deflated_jobs = (b"".join(segments), crc, length)
            head, crc, length = self._deflated_jobs
            tail = self._tail
            last = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
            trailer = struct.pack("<II", zlib.crc32(tail, crc), (length + len(tail)) & 0xFFFFFFFF)
            self._gzipped = b"".join((GZIP_HEADER, head, last.compress(tail), last.flush(), trailer))
        return self._gzipped

    def _families(self, families: list[tuple[Family, list[Sample]]]) -> str:
        parts = []
        for family, samples in families:
            header, line_format = self._exporter_formats[family]
            parts.append(header)
            parts.append(line_format.lines(samples))
        return "".join(parts)


def _same(before: tuple[object, ...] | None, after: tuple[object, ...]) -> bool:
    """Whether two snapshots' tuples hold the very same objects (the cache replaces, never mutates, state)."""
    return before is not None and len(before) == len(after) and all(map(is_, before, after))


def deflate_segment(data: bytes) -> bytes:
    """Raw deflate of `data`, ended on a byte boundary and not final, with no back-references outside it:
    segments compressed apart can be laid end to end into one deflate stream (as pigz does)."""
    if not data:
        return b""
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)


@dataclass(frozen=True)
class Rendered:
    """One rendered body and its content type."""

    content_type: str
    body: bytes


class Exposition:
    """Serves the cache as exposition bytes, rendering only what changed since the last scrape.

    `cache` is one account's JobCache, or a CacheGroup of several (then `labelled`: an `account` label).
    """

    def __init__(self, cache: JobCache | CacheGroup, labelled: bool = False) -> None:
        self._cache = cache
        self._labelled = labelled
        self._lock = threading.Lock()
        self._variants: OrderedDict[str, _Variant] = OrderedDict()

    def render(self, accept: str | None, gzip_ok: bool = False) -> Rendered:
        """The body for a scrape with this Accept header; gzip-compressed when gzip_ok."""
        _, content_type = choose_encoder(accept or "")
        with self._lock:  # one render at a time; concurrent scrapes of the same version share it
            variant = self._variant(content_type)
            if variant.version != self._cache.version:
                variant.update(self._cache.snapshot())
            return Rendered(content_type, variant.gzipped() if gzip_ok else variant.body())

    def _variant(self, content_type: str) -> _Variant:
        variant = self._variants.get(content_type)
        if variant is not None:
            self._variants.move_to_end(content_type)
            return variant
        syntax = _Syntax.of(content_type)
        spelling = [syntax.spelling(family) for family in JOB_FAMILIES]
        job_lines = next(
            (
                known.job_lines
                for known in self._variants.values()
                if [known.syntax.spelling(family) for family in JOB_FAMILIES] == spelling
            ),
            None,
        )
        variant = _Variant(syntax, job_lines or _JobLines(syntax, self._labelled), self._labelled)
        self._variants[content_type] = variant
        if len(self._variants) > MAX_VARIANTS:
            self._variants.popitem(last=False)
        return variant
