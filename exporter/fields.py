"""Tolerant readers of the API's JSON fields: a field may be missing, null, of another type, or a number sent as
a string, and each reader turns anything it cannot use into None (or an empty object) rather than raising, so
one odd field never costs a job, a schedule or a cluster its other values. Shared by `model` (jobs) and
`pipelines` (schedules and clusters)."""

from __future__ import annotations

import math
from typing import Any


def as_object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def as_web_url(value: Any) -> str | None:
    """A page in the Integrate.io web UI (an object's `html_url`: a job's run, a package, a schedule, a cluster),
    linked from alerts and the dashboard: only an http(s) URL is kept, anything else is unknown (None)."""
    text = as_text(value)
    if text is None or not text.startswith(("https://", "http://")):
        return None
    return text


def as_number(value: Any) -> float | None:
    """A finite number, accepting numbers sent as strings ("42", "0.5")."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # a JSON integer beyond any float: 400 digits are valid JSON
        return None
    return number if math.isfinite(number) else None


def as_integer(value: Any) -> int | None:
    number = as_number(value)
    if number is None or not number.is_integer():
        return None
    return int(number)


def as_non_negative(value: Any) -> float | None:
    number = as_number(value)
    return number if number is not None and number >= 0 else None
