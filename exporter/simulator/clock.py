"""Answers dated by a wrong clock: the ``clock`` and ``updated_at`` faults rewrite a healthy answer's job objects.

The API stamps a job with its own clock. When that clock runs ahead or behind, every timestamp it sends moves by
the same amount, while status, progress and records stay true; a single answer can also carry one odd
``updated_at`` (``2999-01-01T00:00:00Z``). Both are modelled here on the healthy answer, so a test compares a
skewed run with a correct one and nothing but the dates differs.

The fields are the job object's dates documented in ``resources/job.md`` of ``xplenty/xplenty-api-doc-v2``:
``created_at``, ``started_at``, ``updated_at``, ``failed_at``, ``completed_at``, and each output's ``created_at``
and ``updated_at``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from exporter.simulator.timestamps import format_timestamp, parse_timestamp

JOB_DATES: Final = ("created_at", "started_at", "updated_at", "failed_at", "completed_at")
OUTPUT_DATES: Final = ("created_at", "updated_at")
REDATING_KINDS: Final = frozenset({"clock", "updated_at"})


def redated(value: Any, kind: str, params: Mapping[str, Any]) -> Any:
    """The answer ``value`` (a job, a list of jobs, or anything else, left alone) as the fault ``kind`` dates it.

    ``clock`` moves every date by ``offset_seconds``; ``updated_at`` sets ``updated_at`` to ``value`` on every
    job, or only on job ``only_job`` (a list page then carries one odd job among healthy ones).
    """
    if kind == "clock":
        offset = int(params["offset_seconds"])

        def rewrite(job: dict[str, Any]) -> dict[str, Any]:
            return _shifted(job, offset)
    else:
        stamp: str = params["value"]
        only: int | None = params["only_job"]

        def rewrite(job: dict[str, Any]) -> dict[str, Any]:
            return {**job, "updated_at": stamp} if only is None or job.get("id") == only else job

    return _each_job(value, rewrite)


def _each_job(value: Any, rewrite: Callable[[dict[str, Any]], dict[str, Any]]) -> Any:
    if isinstance(value, list):
        return [_each_job(item, rewrite) for item in value]
    if isinstance(value, dict) and "id" in value and "status" in value:
        return rewrite(value)
    return value  # an error body: nothing dated


def _shifted(job: dict[str, Any], offset: int) -> dict[str, Any]:
    result = _moved(job, JOB_DATES, offset)
    outputs = job.get("outputs")
    if isinstance(outputs, list):
        result["outputs"] = [
            _moved(output, OUTPUT_DATES, offset) if isinstance(output, dict) else output for output in outputs
        ]
    return result


def _moved(document: dict[str, Any], fields: tuple[str, ...], offset: int) -> dict[str, Any]:
    """A copy with each of ``fields`` that holds a date moved by ``offset`` seconds; nulls stay null."""
    result = dict(document)
    for name in fields:
        if isinstance(result.get(name), str):
            result[name] = format_timestamp(parse_timestamp(result[name]) + offset)
    return result
