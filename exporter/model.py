"""What a job is, parsed tolerantly from the API's JSON.

The documented examples disagree with themselves (a completed job with `completed_at: null`, `errors` as `""`
and as `null`, offsets on timestamps), so every field is treated as possibly missing, null, or a number sent
as a string. Only two things make a payload unusable: it is not a JSON object, or it has no usable `id`/`status`.
Everything else degrades to "unknown" (None), so one odd field never costs a job its other values.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from exporter.fields import as_integer, as_non_negative, as_number, as_object, as_text, as_web_url

T = TypeVar("T")


class JobStatus(enum.Enum):
    """The documented job statuses, plus UNKNOWN for anything the API may add later."""

    IDLE = "idle"
    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    PENDING_STOPPAGE = "pending_stoppage"
    STOPPING = "stopping"
    STOPPED = "stopped"
    UNKNOWN = "unknown"

    @property
    def is_final(self) -> bool:
        """A final job never changes again, so it keeps its values and costs no more credits."""
        return self in FINAL_STATUSES

    @classmethod
    def parse(cls, value: str) -> JobStatus:
        try:
            return cls(value.strip().lower())
        except ValueError:
            return cls.UNKNOWN


FINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.STOPPED})
# Statuses a job can be listed by; UNKNOWN is ours, not the API's.
LISTABLE_STATUSES = tuple(status for status in JobStatus if status is not JobStatus.UNKNOWN)


class InvalidPayload(ValueError):
    """The API answered 200 with something that is not a job: counted, and the job's last values stay."""


@dataclass(frozen=True)
class JobOutput:
    """One output of a job; name and records_count are None when the API did not send them usably."""

    id: int
    name: str | None
    records_count: float | None


@dataclass(frozen=True)
class Job:
    """The parts of a job the exporter shows. Fields the API left out or garbled are None.

    `unusable` names the numbers the API should always send but did not send usably (null, garbage, missing):
    the poller counts them as a failure and keeps the previous values for them (`filled_from`). `absent` names
    the fields a *list item* left out or sent as null (`LEAN_FIELDS`): a list may be lean where `GET /jobs/{id}`
    is full, so those keep their previous values too, but the answer is not a failure.
    """

    id: int
    status: JobStatus
    raw_status: str
    progress: float | None = None
    runtime_seconds: float | None = None
    outputs: tuple[JobOutput, ...] = ()
    package_id: int | None = None
    package_name: str | None = None
    started_at: float | None = None
    updated_at: float | None = None
    created_at: float | None = None
    finished_at: float | None = None
    errors: str | None = None
    html_url: str | None = None
    package_url: str | None = None  # the package's page in the web UI: its `html_url` in the job's `package`
    attempts: int | None = None  # undocumented: kept only when the API sends a whole number (see parse_job)
    unusable: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()

    def filled_from(self, previous: Job) -> Job:
        """This answer with the values it lacks taken from the previous answer, so that none is wiped.

        A job's package, start time, progress, runtime and output figures never legitimately turn null, so a
        null in a fresh answer means "the API did not say", not "gone".
        """
        old = {output.id: output for output in previous.outputs}
        return replace(
            self,
            progress=_first(self.progress, previous.progress),
            runtime_seconds=_first(self.runtime_seconds, previous.runtime_seconds),
            outputs=tuple(_fill_output(output, old.get(output.id)) for output in self.outputs)
            or previous.outputs,
            package_id=_first(self.package_id, previous.package_id),
            package_name=_first(self.package_name, previous.package_name),
            started_at=_first(self.started_at, previous.started_at),
            updated_at=_first(self.updated_at, previous.updated_at),
            created_at=_first(self.created_at, previous.created_at),
            finished_at=_first(self.finished_at, previous.finished_at) if self.status.is_final else None,
            errors=_first(self.errors, previous.errors),
            html_url=_first(self.html_url, previous.html_url),
            package_url=_first(self.package_url, previous.package_url),
            attempts=_first(self.attempts, previous.attempts),
        )


def _first(value: T | None, fallback: T | None) -> T | None:
    return fallback if value is None else value


# Fields the documentation shows on list items but no recorded real list answer confirms: a list item may leave
# them out (or send null) while `GET /jobs/{id}` has them.
LEAN_FIELDS = ("outputs", "progress", "runtime_in_seconds", "package")


def parse_job(payload: Any, *, listed: bool = False) -> Job:
    """Turn one job object into a Job, or raise InvalidPayload when it cannot be one.

    `listed`: the object is a list item, whose missing or null `LEAN_FIELDS` (and null output fields) are
    `absent` rather than `unusable`. A value that is there but garbled is `unusable` wherever it came from.
    """
    if not isinstance(payload, dict):
        raise InvalidPayload(f"expected a job object, got {type(payload).__name__}")
    job_id = as_integer(payload.get("id"))
    if job_id is None or job_id <= 0:
        raise InvalidPayload("job object without a usable id")
    raw_status = payload.get("status")
    if not isinstance(raw_status, str) or not raw_status.strip():
        raise InvalidPayload(f"job {job_id}: no status")
    package = as_object(payload.get("package"))
    package_name = as_text(package.get("name"))
    errors = payload.get("errors")
    progress = _progress(payload.get("progress"))
    runtime = as_non_negative(payload.get("runtime_in_seconds"))
    outputs = _outputs(payload.get("outputs"))
    absent = [name for name in LEAN_FIELDS if payload.get(name) is None] if listed else []
    unusable = [
        name
        for name, value in (("progress", progress), ("runtime_in_seconds", runtime))
        if value is None and name not in absent
    ]
    raw_outputs = payload.get("outputs")
    if "outputs" not in absent and (
        not isinstance(raw_outputs, list) or any(_output_unusable(item, listed) for item in raw_outputs)
    ):
        unusable.append("outputs")
    status = JobStatus.parse(raw_status)
    return Job(
        id=job_id,
        status=status,
        raw_status=raw_status,
        progress=progress,
        runtime_seconds=runtime,
        outputs=outputs,
        package_id=as_integer(payload.get("package_id")) or as_integer(package.get("id")),
        package_name=package_name,
        started_at=parse_timestamp(payload.get("started_at")),
        updated_at=parse_timestamp(payload.get("updated_at")),
        created_at=parse_timestamp(payload.get("created_at")),
        finished_at=_finished_at(payload, status),
        errors=errors if isinstance(errors, str) and errors else None,
        html_url=as_web_url(payload.get("html_url")),
        package_url=as_web_url(package.get("html_url")),
        attempts=_attempts(payload.get("attempts")),
        unusable=tuple(unusable),
        absent=tuple(absent),
    )


def _attempts(value: Any) -> int | None:
    """How many attempts the platform made at the run. Issue 12 names a job's `attempts`, but no version of the
    API documentation lists it (resources/job.md, sections/get-job-information.md, sections/list-jobs.md): it is
    read when it is there as a whole number of at least 0, and otherwise left unknown, never guessed."""
    number = as_integer(value)
    return number if number is not None and number >= 0 else None


def _finished_at(payload: dict[str, Any], status: JobStatus) -> float | None:
    """When a final job ended: completed_at / failed_at, else updated_at (documented examples leave both null)."""
    if not status.is_final:
        return None
    for field in ("completed_at", "failed_at", "updated_at"):
        moment = parse_timestamp(payload.get(field))
        if moment is not None:
            return moment
    return None


def _fill_output(output: JobOutput, previous: JobOutput | None) -> JobOutput:
    if previous is None:
        return output
    return replace(
        output,
        name=previous.name if output.name is None else output.name,
        records_count=previous.records_count if output.records_count is None else output.records_count,
    )


def _output_unusable(item: Any, listed: bool) -> bool:
    """An output whose name or records count is garbled; a null one counts only outside a list item."""
    if not isinstance(item, dict) or as_integer(item.get("id")) is None:
        return False  # skipped by `_outputs`, as before: an output without an id is nobody's
    name, records = item.get("name"), item.get("records_count")
    garbled = (name is not None and as_text(name) is None) or (
        records is not None and as_non_negative(records) is None
    )
    return garbled or (not listed and (name is None or records is None))


def parse_job_list(payload: Any) -> list[Job]:
    """Parse a list answer; items that are not jobs are skipped, since one bad item must not hide the rest."""
    if not isinstance(payload, list):
        raise InvalidPayload(f"expected a list of jobs, got {type(payload).__name__}")
    jobs = []
    for item in payload:
        try:
            jobs.append(parse_job(item, listed=True))
        except InvalidPayload:
            continue
    return jobs


def parse_timestamp(value: Any) -> float | None:
    """RFC 3339 (`2026-11-28T10:00:00Z`, or with an offset) to Unix seconds; anything else to None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:  # the API speaks UTC; a bare time is read as UTC rather than as local time
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _outputs(value: Any) -> tuple[JobOutput, ...]:
    if not isinstance(value, list):
        return ()
    outputs = []
    for item in value:
        if not isinstance(item, dict):
            continue
        output_id = as_integer(item.get("id"))
        if output_id is None:
            continue
        name = as_text(item.get("name"))
        records = as_non_negative(item.get("records_count"))
        outputs.append(JobOutput(id=output_id, name=name, records_count=records))
    return tuple(outputs)


def _progress(value: Any) -> float | None:
    """Progress is documented as 0 to 1. A value outside (57: a percentage?) is garbled, not clamped: shown as
    1.0 it would claim a job is done; kept as the last good value and counted, it tells the truth."""
    number = as_number(value)
    return number if number is not None and 0.0 <= number <= 1.0 else None
