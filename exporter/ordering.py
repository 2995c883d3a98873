"""Which of two answers about one job is the newer: decided by what the exporter observed, not by the API's clock.

A job's `updated_at` is the API's clock, and that clock can be wrong: minutes ahead, or one answer dated 2999.
Ordering answers by it let one future-dated answer hide every later one as "older than what we have", so a job
that failed stayed `running` on /metrics. Here the order is the exporter's own:

- an answer from a later refresh cycle is newer, because its request was sent later;
- within one cycle, the answer that arrived later is newer: requests about one job are never in flight together
  (list pages are read one after the other, a job gets at most one GET a cycle, and each task stores what it read
  before the next one asks anything), so arrival order is the order the requests were sent in;
- `updated_at` is only a hint, and only within one cycle: when both answers' `updated_at` are believable (not
  beyond `FUTURE_TOLERANCE_SECONDS` ahead of when we had them) and the later-read answer says it is the older
  picture, as a list page served from a lagging copy would, the earlier one is kept. Only until the next cycle:
  a date believed from a clock that is later set back can then hold back a change for one cycle, never longer.

Above all that stand two facts about jobs: a job never leaves a final status (a later non-final answer is a stale
copy), and a change to a final status is never discarded, whatever any clock says.

Timestamps beyond the tolerance are not believed: `believable` replaces the ones the exporter shows (a start, an
end) by the last believable value, else by when the answer arrived ("not later than when we saw it").
`updated_at` is kept as sent, since it is never shown and only ever weighed against when it arrived.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final

from exporter.model import Job

FUTURE_TOLERANCE_SECONDS: Final = 60.0
"""How far ahead of our own clock an API timestamp may lie and still be believed. NTP keeps healthy clocks within
milliseconds of each other; a minute absorbs a sloppy clock and a slow request, and it bounds the harm a wrong but
believed `updated_at` can do: hold back a newer answer within one cycle, never beyond it."""

FUTURE_TIMESTAMP: Final = "future_timestamp"
"""The error class counted (in `integrateio_job_poll_errors_total`) for an answer dated beyond the tolerance."""

TIMESTAMP_FIELDS: Final = ("created_at", "started_at", "updated_at", "finished_at")


@dataclass(frozen=True)
class Answer:
    """One answer about a job and when the exporter had it: in which refresh `cycle` (0: restored from the state
    file, before any cycle) and at which `seen_at` (our wall clock, Unix seconds)."""

    job: Job
    cycle: int
    seen_at: float


def future_fields(job: Job, seen_at: float) -> tuple[str, ...]:
    """The timestamps of `job` that lie beyond the tolerance ahead of `seen_at`, by field name."""
    limit = seen_at + FUTURE_TOLERANCE_SECONDS
    return tuple(
        name for name in TIMESTAMP_FIELDS if (value := getattr(job, name)) is not None and value > limit
    )


def supersedes(new: Answer, old: Answer | None) -> bool:
    """Whether `new` (stored after `old`) replaces `old` as what we know about the job."""
    if old is None:
        return True
    if old.job.status.is_final and not new.job.status.is_final:
        return False  # a job never leaves a final status: this is a stale copy
    if new.job.status.is_final and new.job.status is not old.job.status:
        return True  # the news an alert waits for is never discarded
    if new.cycle != old.cycle:
        return new.cycle > old.cycle
    return not _api_says_older(new, old)


def _api_says_older(new: Answer, old: Answer) -> bool:
    """Within one cycle: both `updated_at` believable, and `new`'s the earlier one."""
    if new.job.updated_at is None or old.job.updated_at is None:
        return False
    if "updated_at" in future_fields(new.job, new.seen_at) or "updated_at" in future_fields(
        old.job, old.seen_at
    ):
        return False
    return new.job.updated_at < old.job.updated_at


def believable(job: Job, seen_at: float, previous: Job | None) -> Job:
    """`job` with each shown timestamp beyond the tolerance replaced by the previous answer's value, else by
    `seen_at`: a job cannot have been created, started or ended after we saw that it had."""

    def kept(name: str) -> float | None:
        value: float | None = getattr(job, name)
        if value is None or value <= seen_at + FUTURE_TOLERANCE_SECONDS:
            return value
        earlier: float | None = getattr(previous, name) if previous is not None else None
        return seen_at if earlier is None else earlier

    return replace(
        job, created_at=kept("created_at"), started_at=kept("started_at"), finished_at=kept("finished_at")
    )
