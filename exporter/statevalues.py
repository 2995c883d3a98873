"""Strict readers of the state file's values, shared by `state` (jobs, packages) and `pipelinestate` (schedules,
clusters).

Unlike the API's tolerant readers (`exporter.fields`), these raise: the file is the exporter's own, so a value of
the wrong type means it is not what the exporter wrote (a disk error, a hand edit, another program), and what
holds it is ignored whole rather than served half right. A TypeError or ValueError here is what `state` reports
in its one log line.
"""

from __future__ import annotations

from typing import Any


def count(value: Any) -> int:
    """A whole number (JSON booleans are not: `True` is an int to Python)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"expected a count, got {value!r}")
    return value


def identifier(value: Any) -> int:
    """An API id: a whole number above 0, as `exporter.pipelines` accepts from the API."""
    number = count(value)
    if number <= 0:
        raise ValueError(f"expected an id, got {number}")
    return number


def identifiers(value: Any) -> tuple[int, ...]:
    return tuple(identifier(each) for each in _array(value))


def optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a text, got {type(value).__name__}")
    return value


def optional_text(value: Any) -> str | None:
    return None if value is None else text(value)


def optional_web_url(value: Any) -> str | None:
    """An object's page in the web UI, as `exporter.fields.as_web_url` keeps it from the API: http(s) only."""
    url = optional_text(value)
    if url is not None and not url.startswith(("https://", "http://")):
        raise ValueError(f"expected an http(s) URL, got {url!r}")
    return url


def texts(value: Any) -> tuple[str, ...]:
    return tuple(text(each) for each in _array(value))


def optional_flag(value: Any) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise TypeError(f"expected true, false or null, got {value!r}")
    return value


def _array(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    return value
