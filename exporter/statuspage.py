"""The status page on `/` and its JSON twin on `/api/jobs`: the cache, for people rather than Prometheus.

Both are built from one `CacheSnapshot`, like /metrics, so looking at the page never calls the API and never
sees half of an update. The page is one self-contained HTML document: inline CSS, no script, no external asset
and a Content-Security-Policy that forbids loading any, so it works offline and behind any proxy, and a name
that slipped past escaping still could not run. It reloads itself with `<meta http-equiv="refresh">`.

What a person needs first comes first: failed jobs, then running ones, then the other jobs that are not final,
then the final ones, by id within each group. Each status has a colour *and* a symbol and a word, so it reads
in grey scale and for colour-blind eyes. The page is capped at `ROW_LIMIT` rows (and `OUTPUT_LIMIT` outputs a
row) so that 10,000 watched jobs cost a few milliseconds and a few hundred kilobytes, not a 50 MB page; the
JSON has every job. With `schedules:` or `clusters:` on, their tables follow the jobs (`exporter.pipelinepage`).

With `accounts:` every account has its own API, credits, interval and refreshes, so the header gives each
account its own line of health chips, led by its name, and `/api/jobs` keeps them apart under
`exporter.accounts` (keyed by name); a figure of one account shown as the exporter's would be a wrong one.

The top of the page and one row, as text (see docs/status-page.png for the picture):

    integrateio-exporter 0.1.0
    ✔ API reachable | Credits used 26, left 4,474 of 4,500 per 1 h | API reports 4,974 of 5,000 left on the key
    | Refresh every 5 s | Last full refresh 0 s ago
    8 jobs watched: 1 failed, 2 running, 1 missing, 1 pending, 2 completed, 1 stopped
    Job  Package              Status    Progress  Runtime     Records per output  Refreshed  Last error
    102  customers_sync #435  ✖ failed  ▓▓▓░ 67 % 1 min 20 s  customers 64,095    0 s ago
"""

from __future__ import annotations

import html
import json
import math
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from exporter import __version__
from exporter.budget import BudgetSnapshot
from exporter.cache import CacheSnapshot, ExporterState, JobState
from exporter.model import JobOutput, JobStatus
from exporter.pipelinepage import pipeline_documents, pipeline_tables

HTML_CONTENT_TYPE: Final = "text/html; charset=utf-8"
JSON_CONTENT_TYPE: Final = "application/json"

ROW_LIMIT: Final = 500
"""Rows on the page; past this the page says how many it left out and where they all are."""
OUTPUT_LIMIT: Final = 8
"""Outputs listed in one row; a job with hundreds of outputs must not make one row the size of the page."""
NAME_LIMIT: Final = 120
"""Characters of a package or output name shown on the page (the JSON has them whole)."""
WHY_LIMIT: Final = 160
"""Characters of the API's error text for a job shown under its status (the JSON has it whole)."""
MIN_RELOAD_SECONDS: Final = 5
MAX_RELOAD_SECONDS: Final = 60

LINKS: Final = (
    ("/metrics", "metrics for Prometheus"),
    ("/api/jobs", "this page as JSON, every job"),
    ("/healthz", "the process and its poller are alive"),
    ("/readyz", "one full refresh is done"),
)

# Symbol and word per status: the colour (CSS class st-<status>) only repeats what they already say.
_SYMBOLS: Final[dict[JobStatus, str]] = {
    JobStatus.FAILED: "✖",
    JobStatus.RUNNING: "▶",
    JobStatus.QUEUED: "◔",
    JobStatus.PENDING: "◔",
    JobStatus.IDLE: "○",
    JobStatus.PENDING_STOPPAGE: "◼",
    JobStatus.STOPPING: "◼",
    JobStatus.STOPPED: "■",
    JobStatus.COMPLETED: "✔",
    JobStatus.UNKNOWN: "?",
}

_SUMMARY_ORDER: Final = (
    "failed",
    "running",
    "missing",
    "not fetched yet",
    *(status.value for status in JobStatus if not status.is_final and status is not JobStatus.RUNNING),
    "completed",
    "stopped",
)

# Nothing may load from anywhere, not even from us: a name that slipped past escaping could not run either.
_CSP: Final = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
)

# The page's look. Colours pass WCAG AA against their backgrounds; widths keep columns steady across reloads.
_CSS: Final = """
:root{color-scheme:light;--fg:#1f2328;--dim:#59636e;--line:#d1d9e0;--bg:#fff;--head:#f6f8fa}
*{box-sizing:border-box}
body{margin:0;padding:20px 24px;color:var(--fg);background:var(--bg);
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif}
h1{font-size:20px;margin:0 0 4px}
h1 .ver{font-size:13px;font-weight:400;color:var(--dim)}
.health{display:flex;flex-wrap:wrap;gap:6px 10px;margin:10px 0 6px;padding:0;list-style:none}
.health li{border:1px solid var(--line);border-radius:6px;padding:4px 10px;background:var(--head)}
.health b{font-weight:600}
.ok{color:#1a7f37}.bad{color:#cf222e}.warn{color:#9a6700}
.summary{margin:6px 0;color:var(--dim)}
nav{margin:4px 0 14px;color:var(--dim)}
nav a{color:#0969da;margin-right:14px}
.note{margin:8px 0;padding:6px 10px;border-left:4px solid #9a6700;background:#fff8c5}
table{border-collapse:collapse;width:100%}
th,td{padding:6px 10px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{background:var(--head);font-weight:600;font-size:13px;position:sticky;top:0}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tbody tr:hover{background:#f6f8fa}
tr.st-failed td:first-child{box-shadow:inset 4px 0 #cf222e}
tr.st-running td:first-child{box-shadow:inset 4px 0 #0969da}
tr.st-failed progress{accent-color:#cf222e}
tr.st-completed progress{accent-color:#1a7f37}
tr.st-stopped progress,tr.st-stopping progress,tr.st-pending_stoppage progress{accent-color:#6e7781}
.dim{color:var(--dim);font-size:12px}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-weight:600;font-size:13px;
white-space:nowrap;border:1px solid transparent}
.badge.st-failed{background:#ffebe9;color:#a40e26;border-color:#ff8182}
.badge.st-running{background:#ddf4ff;color:#0550ae;border-color:#54aeff}
.badge.st-completed{background:#dafbe1;color:#116329;border-color:#4ac26b}
.badge.st-queued,.badge.st-pending,.badge.st-idle{background:#fff8c5;color:#7d4e00;border-color:#d4a72c}
.badge.st-pending_stoppage,.badge.st-stopping,.badge.st-stopped{background:#eaeef2;color:#424a53;
border-color:#afb8c1}
.badge.st-unknown,.badge.st-none{background:#fbefff;color:#6e40c9;border-color:#c297ff}
.prog{white-space:nowrap;font-variant-numeric:tabular-nums}
progress{width:110px;height:12px;vertical-align:middle;margin-right:6px}
ul.outs{margin:0;padding:0;list-style:none}
ul.outs li{white-space:nowrap}
.oname{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:12.5px;white-space:pre-wrap}
.recs{font-variant-numeric:tabular-nums;margin-left:6px}
.why{color:#a40e26;font-size:12px;max-width:280px;margin-top:3px;overflow-wrap:anywhere}
.err{color:#a40e26;font-weight:600}
.err.past{color:var(--dim);font-weight:400}
footer{margin-top:14px;color:var(--dim);font-size:12px}
h2{font-size:16px;margin:18px 0 6px}
"""


# -- ordering and units -------------------------------------------------------------------------------------


def sort_key(state: JobState) -> tuple[int, int]:
    """Failed first, then running, then other non-final jobs (and those never fetched), then final; by id."""
    status = state.job.status if state.job is not None else None
    if status is JobStatus.FAILED:
        group = 0
    elif status is JobStatus.RUNNING:
        group = 1
    elif status is None or not status.is_final:
        group = 2
    else:
        group = 3
    return group, state.job_id


def human_duration(seconds: float) -> str:
    """`45 s`, `3 min 05 s`, `1 h 02 min`, `2 d 03 h`: the two largest units, the second zero-padded, so a
    column of runtimes lines up and nobody has to divide 3720 by 60 in their head. A zero second unit is left
    out (`1 h`, not `1 h 00 min`)."""
    total = max(0, int(seconds))
    for unit, size, sub_unit, sub_size in (
        ("d", 86400, "h", 3600),
        ("h", 3600, "min", 60),
        ("min", 60, "s", 1),
    ):
        if total >= size:
            whole, rest = divmod(total, size)
            part = rest // sub_size
            return f"{whole} {unit}" if part == 0 else f"{whole} {unit} {part:02d} {sub_unit}"
    return f"{total} s"


def human_age(timestamp: float | None, now: float) -> str:
    """`12 s ago`; `never` before the first success. A time a bit ahead of `now` (clocks) reads `0 s ago`."""
    if timestamp is None:
        return "never"
    return f"{human_duration(now - timestamp)} ago"


def rfc3339(timestamp: float | None) -> str | None:
    """Unix seconds to `2026-11-28T10:00:00Z` (UTC, whole seconds), the form the Integrate.io API uses."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _interval(seconds: float) -> str:
    """An interval: `0.5 s` and `2.4 s` keep their fraction (a test or demo polls that fast), `5 min` does not."""
    return f"{seconds:.2g} s" if seconds < 10 else human_duration(seconds)


def _count(value: float) -> str:
    return f"{value:,.0f}"


def _number(value: float | None) -> float | int | None:
    """A float that holds a whole number goes out as an integer: `1204331`, not `1204331.0`."""
    if value is None or not math.isfinite(value):
        return None
    return int(value) if float(value).is_integer() else value


# -- the page -----------------------------------------------------------------------------------------------


def render_page(snapshot: CacheSnapshot, now: float | None = None, *, limit: int = ROW_LIMIT) -> bytes:
    """The whole HTML document for `/`, from one snapshot; `now` is wall-clock seconds (for the ages)."""
    now = time.time() if now is None else now
    states = sorted(snapshot.jobs, key=sort_key)
    shown = states[:limit]
    reload_seconds = _reload_seconds(snapshot.exporters)
    rows = "".join(_row(state, now) for state in shown)
    if not states:
        rows = '<tr><td colspan="8" class="dim">No jobs are watched: list job ids under jobs:.</td></tr>'
    note = ""
    if len(states) > len(shown):
        note = (
            f'<p class="note" id="cap">showing {len(shown):,} of {len(states):,} jobs; '
            'all are on <a href="/metrics">/metrics</a> and <a href="/api/jobs">/api/jobs</a></p>'
        )
    links = "".join(
        f'<a href="{path}" title="{html.escape(text)}">{html.escape(path)}</a>' for path, text in LINKS
    )
    page = (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        f'<meta http-equiv="refresh" content="{reload_seconds}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>{_title(states)}</title><style>{_CSS}</style></head>\n<body>"
        f'<header><h1>integrateio-exporter <span class="ver">{html.escape(__version__)}</span></h1>'
        f"{_health_lines(snapshot, now)}"
        f'<p class="summary">{_summary(states)}</p>'
        f"<nav>{links}</nav></header>\n"
        f"{note}"
        '<table id="jobs"><thead><tr><th class="num">Job</th><th>Package</th><th>Status</th><th>Progress</th>'
        '<th class="num">Runtime</th><th>Records per output</th><th>Refreshed</th><th>Last error</th></tr>'
        f"</thead><tbody>\n{rows}</tbody></table>\n"
        f"{pipeline_tables(snapshot, now, human_duration)}"
        f"<footer>Generated {rfc3339(now)} from the exporter's cache (the page never calls the API); "
        f"it reloads every {reload_seconds} s.</footer>"
        "</body></html>\n"
    )
    return page.encode()


def _reload_seconds(exporters: Iterable[ExporterState]) -> int:
    """Reload as often as the data can change (the shortest refresh interval), within 5 s to a minute."""
    interval = min((state.interval_seconds for state in exporters if state.interval_seconds > 0), default=0.0)
    if not interval > 0:
        return MIN_RELOAD_SECONDS
    return int(min(MAX_RELOAD_SECONDS, max(MIN_RELOAD_SECONDS, math.ceil(interval))))


def _title(states: list[JobState]) -> str:
    """`2 failed · 3 running — integrateio-exporter`: readable from a browser tab."""
    counts = Counter(state.job.status for state in states if state.job is not None)
    parts = [
        f"{counts[status]} {status.value}"
        for status in (JobStatus.FAILED, JobStatus.RUNNING)
        if counts[status]
    ]
    return html.escape(" · ".join(parts) + " — integrateio-exporter" if parts else "integrateio-exporter")


def _summary(states: list[JobState]) -> str:
    """`7 jobs watched: 2 failed, 2 running, 1 queued, 2 completed`, in the page's order, so it adds up."""
    counts = Counter("missing" if state.missing else _status_word(state) for state in states)
    keys = sorted(counts, key=lambda key: _SUMMARY_ORDER.index(key) if key in _SUMMARY_ORDER else -1)
    detail = ", ".join(f"{counts[key]:,} {html.escape(key.replace('_', ' '))}" for key in keys)
    noun = "job" if len(states) == 1 else "jobs"
    return f"{len(states):,} {noun} watched" + (f": {detail}" if detail else "")


def _status_word(state: JobState) -> str:
    return state.job.status.value if state.job is not None else "not fetched yet"


def by_account(snapshot: CacheSnapshot) -> bool:
    """True with `accounts:`: then every account's state carries its name, and each is shown on its own."""
    return snapshot.exporter.account is not None


def _health_lines(snapshot: CacheSnapshot, now: float) -> str:
    """One line of health chips for the exporter, or one per account, led by the account's name."""
    if not by_account(snapshot):
        return _health(snapshot.exporter, now, 'id="health"', [])
    return "".join(
        _health(state, now, f'data-account="{html.escape(name)}"', [f"<b>{html.escape(name)}</b>"])
        for state in snapshot.exporters
        if (name := state.account) is not None
    )


def _health(exporter: ExporterState, now: float, attributes: str, chips: list[str]) -> str:
    """One account's health as a line of chips after `chips`: API, credits, refresh interval, last refresh."""
    chips = [*chips, _api_chip(exporter), _budget_chip(exporter.budget)]
    if exporter.budget is not None and exporter.budget.api_limit is not None:
        chips.append(_key_chip(exporter.budget))
    if exporter.budget is not None and exporter.budget.backoff_seconds > 0:
        chips.append(
            f'<span class="warn">⏸ paused {human_duration(exporter.budget.backoff_seconds)} '
            "after a 429 or a refused key</span>"
        )
    chips.append(_interval_chip(exporter))
    if exporter.last_full_refresh is not None:
        chips.append(f"Last full refresh <b>{human_age(exporter.last_full_refresh, now)}</b>")
    elif not exporter.ready:
        chips.append('<span class="warn">◔ first refresh not done yet</span>')
    if exporter.webhook_requests is not None:
        chips.append(_webhook_chip(exporter.webhook_requests, exporter.webhook_last_accepted, now))
    if not exporter.config_reload_ok:
        chips.append('<span class="bad">✖ last configuration reload failed</span>')
    return f'<ul class="health" {attributes}>' + "".join(f"<li>{chip}</li>" for chip in chips) + "</ul>"


def _webhook_chip(counts: Mapping[str, int], last_accepted: float | None, now: float) -> str:
    """The doorbell: when a hook was last accepted, and every outcome that happened (refusals stand out)."""
    seen = ", ".join(f"{n:,} {outcome}" for outcome, n in counts.items() if n)
    refused = counts.get("unauthorized", 0) + counts.get("invalid", 0)
    tail = f' <span class="warn">({seen})</span>' if refused else f" ({seen})" if seen else " (none yet)"
    return f"Web hooks: last accepted <b>{human_age(last_accepted, now)}</b>{tail}"


def _api_chip(exporter: ExporterState) -> str:
    if exporter.api_up is None:
        return '<span class="warn">◔ API not contacted yet</span>'
    if exporter.api_up:
        return '<span class="ok">✔ API reachable</span>'
    return '<span class="bad">✖ API unreachable</span>'


def _budget_chip(budget: BudgetSnapshot | None) -> str:
    if budget is None:
        return "Credits: not counted yet"
    window = human_duration(budget.window_seconds)
    left = (
        f'<b class="bad">{budget.remaining:,}</b>'
        if budget.remaining == 0
        else f"<b>{budget.remaining:,}</b>"
    )
    return f"Credits used <b>{budget.spent:,}</b>, left {left} of {budget.limit:,} per {window}"


def _key_chip(budget: BudgetSnapshot) -> str:
    remaining = "?" if budget.api_remaining is None else f"{budget.api_remaining:,}"
    held = ' <span class="warn">(holding: the reserve is reached)</span>' if budget.held_by_api else ""
    return f"API reports <b>{remaining}</b> of {budget.api_limit or 0:,} left on the key{held}"


def _interval_chip(exporter: ExporterState) -> str:
    if not exporter.interval_seconds > 0:
        return "Refresh interval not set yet"
    text = f"Refresh every <b>{_interval(exporter.interval_seconds)}</b>"
    target = exporter.target_interval_seconds
    if target > 0 and exporter.interval_seconds > target:
        text += f' <span class="warn">(stretched from {_interval(target)} to fit the budget)</span>'
    return text


def _row(state: JobState, now: float) -> str:
    job = state.job
    status_class = f"st-{job.status.value}" if job is not None else "st-none"
    if job is None:
        package = '<span class="dim">—</span>'
        progress = runtime = outputs = '<span class="dim">—</span>'
    else:
        package = _package(job.package_name, job.package_id)
        progress = _progress(job.progress)
        runtime = "—" if job.runtime_seconds is None else human_duration(job.runtime_seconds)
        outputs = _outputs(job.outputs)
    refreshed = human_age(state.last_success, now)
    if state.last_attempt_ok is False:
        refreshed = f'<span class="warn" title="the last refresh failed">⚠ {refreshed}</span>'
    return (
        f'<tr class="{status_class}" id="job-{state.job_id}" data-job="{state.job_id}">'
        f'<td class="num">{_job_cell(state)}</td><td>{package}</td><td>{_badge(state)}{_attempts(state)}{_why(state)}</td>'
        f'<td class="prog">{progress}</td><td class="num">{runtime}</td><td>{outputs}</td>'
        f'<td class="num">{refreshed}</td><td>{_problem(state)}</td></tr>\n'
    )


def _badge(state: JobState) -> str:
    job = state.job
    if job is None:
        if state.missing or state.last_attempt_ok is False:
            return '<span class="badge st-none">— no data</span>'
        return '<span class="badge st-none">… not fetched yet</span>'
    word = job.status.value.replace("_", " ")
    if job.status is JobStatus.UNKNOWN:
        word = f"unknown: {_clip(job.raw_status, 40)}"
    return f'<span class="badge st-{job.status.value}">{_SYMBOLS[job.status]} {word}</span>'


def _why(state: JobState) -> str:
    """The API's own error text for a job (why it failed), under its status: the first thing anyone asks."""
    if state.job is None or not state.job.errors:
        return ""
    return f'<div class="why">{_clip(state.job.errors, WHY_LIMIT)}</div>'


def _attempts(state: JobState) -> str:
    """How many attempts the platform made at the run, when the API says (its `attempts`, undocumented)."""
    if state.job is None or state.job.attempts is None:
        return ""
    count = state.job.attempts
    return f' <span class="dim">{count:,} attempt{"" if count == 1 else "s"}</span>'


def _package(name: str | None, package_id: int | None) -> str:
    shown = _clip(name, NAME_LIMIT) if name is not None else '<span class="dim">unnamed</span>'
    return shown + ("" if package_id is None else f' <span class="dim">#{package_id}</span>')


def _progress(progress: float | None) -> str:
    if progress is None:
        return '<span class="dim">—</span>'
    percent = f"{progress * 100:.0f} %"
    return f'<progress max="1" value="{progress:.4f}" aria-hidden="true"></progress>{percent}'


def _outputs(outputs: Iterable[JobOutput]) -> str:
    outputs = list(outputs)
    if not outputs:
        return '<span class="dim">—</span>'
    items = []
    for output in outputs[:OUTPUT_LIMIT]:
        name = f"output {output.id}" if output.name is None else _clip(output.name, NAME_LIMIT)
        records = "—" if output.records_count is None else _count(output.records_count)
        items.append(f'<li><span class="oname">{name}</span><span class="recs">{records}</span></li>')
    if len(outputs) > OUTPUT_LIMIT:
        items.append(f'<li class="dim">and {len(outputs) - OUTPUT_LIMIT:,} more (see /api/jobs)</li>')
    return f'<ul class="outs">{"".join(items)}</ul>'


def _problem(state: JobState) -> str:
    """`missing` for a 404 job; else the last error class, greyed once a later refresh succeeded."""
    parts = []
    if state.missing:
        parts.append('<span class="err" title="the API answers 404 for this job">⚠ missing (404)</span>')
    if state.last_error is not None:
        count = sum(state.errors.values())
        times = f" ({count:,} errors)" if count > 1 else ""
        error = html.escape(state.last_error)
        if state.last_attempt_ok is False:
            parts.append(f'<span class="err">✖ {error}{times}</span>')
        else:
            parts.append(
                f'<span class="err past" title="a later refresh succeeded">{error}{times}, since ok</span>'
            )
    return "<br>".join(parts)


def _clip(text: str, limit: int) -> str:
    """HTML-escaped and cut at `limit` characters: a name is data from the API, never markup."""
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return html.escape(text, quote=True)


# -- the JSON -----------------------------------------------------------------------------------------------


def jobs_document(snapshot: CacheSnapshot, now: float | None = None) -> dict[str, Any]:
    """What `/api/jobs` serves: the exporter's state and every job, in the page's order (no cap).

    With `accounts:` the exporter block holds what is true of the whole process (version, time, readiness
    as /readyz has it, watched jobs in all) and `accounts` maps each account's name to its own state.
    """
    now = time.time() if now is None else now
    header: dict[str, Any] = {"version": __version__, "generated_at": rfc3339(now)}
    if by_account(snapshot):
        exporter = {
            **header,
            "ready": snapshot.ready,
            "watched_jobs": len(snapshot.jobs),
            "accounts": {state.account: _account_document(state) for state in snapshot.exporters},
        }
    else:
        exporter = {**header, **_account_document(snapshot.exporter)}
    return {
        "exporter": exporter,
        "jobs": [_job_document(state, now) for state in sorted(snapshot.jobs, key=sort_key)],
        **pipeline_documents(snapshot, now, rfc3339),
    }


def _account_document(exporter: ExporterState) -> dict[str, Any]:
    """One account's API, readiness, interval, reload and credit state (the whole exporter's, with one)."""
    budget = exporter.budget
    return {
        "api_up": exporter.api_up,
        "ready": exporter.ready,
        "refresh_interval_seconds": _number(exporter.interval_seconds or None),
        "refresh_interval_target_seconds": _number(exporter.target_interval_seconds or None),
        "last_full_refresh": rfc3339(exporter.last_full_refresh),
        "config_reload_ok": exporter.config_reload_ok,
        "watched_jobs": exporter.watched_jobs,
        "budget": None
        if budget is None
        else {
            "limit": budget.limit,
            "spent": budget.spent,
            "remaining": budget.remaining,
            "window_seconds": _number(budget.window_seconds),
            "backoff_seconds": _number(round(budget.backoff_seconds, 3)),
            "api_limit": budget.api_limit,
            "api_remaining": budget.api_remaining,
            "held_by_api": budget.held_by_api,
        },
    }


def _job_cell(state: JobState) -> str:
    """The job id, after its account's name when several accounts are configured (ids repeat across them)."""
    if state.account is None:
        return str(state.job_id)
    return f'<span class="dim">{html.escape(state.account)}</span> {state.job_id}'


def _job_document(state: JobState, now: float) -> dict[str, Any]:
    job = state.job
    return {
        "account": state.account,
        "job_id": state.job_id,
        "package_id": job.package_id if job else None,
        "package_name": job.package_name if job else None,
        "status": job.status.value if job else None,
        "raw_status": job.raw_status if job else None,
        "progress": _number(job.progress) if job else None,
        "runtime_seconds": _number(job.runtime_seconds) if job else None,
        "started_at": rfc3339(job.started_at) if job else None,
        "job_errors": job.errors if job else None,
        "attempts": job.attempts if job else None,
        "outputs": [
            {"id": output.id, "name": output.name, "records": _number(output.records_count)}
            for output in (job.outputs if job else ())
        ],
        "last_success": rfc3339(state.last_success),
        "last_success_age_seconds": None
        if state.last_success is None
        else round(max(0.0, now - state.last_success), 3),
        "last_attempt_ok": state.last_attempt_ok,
        "missing": state.missing,
        "last_error": state.last_error,
        "errors": dict(state.errors),
    }


def render_json(snapshot: CacheSnapshot, now: float | None = None) -> bytes:
    """`jobs_document` as compact UTF-8 JSON."""
    return json.dumps(jobs_document(snapshot, now), separators=(",", ":"), ensure_ascii=False).encode()
