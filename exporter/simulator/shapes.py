"""Bodies that are wrong in the ways real APIs are wrong: wrong shape, nulls, strings, not JSON, too big.

Each function takes the JSON value the endpoint would normally answer, so a fault stays recognisably "that
job, but broken" and a client's parse errors can be asserted precisely.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Final

NOT_JSON_BODY: Final = (
    b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>"
    b"<body><h1>Bad Gateway</h1><p>The upstream server returned an invalid response.</p></body></html>\n"
)
_PAD_CHUNK: Final = b"x" * 65536


def _nulled_job(job: dict[str, Any]) -> dict[str, Any]:
    """Keep ``id``, ``status`` and ``url``; null everything else, and null each output's fields (plus a null
    output) because a tolerant parser must survive nulls at every depth."""
    kept = {"id", "status", "url"}
    result: dict[str, Any] = {k: (v if k in kept else None) for k, v in job.items()}
    outputs = job.get("outputs")
    nulled_outputs: list[Any] = [None]
    if isinstance(outputs, list):
        nulled_outputs += [{k: (v if k == "id" else None) for k, v in o.items()} for o in outputs]
    result["outputs"] = nulled_outputs
    return result


def _stringified(value: Any) -> Any:
    """Every number as a string (``0.5`` -> ``"0.5"``), recursively; booleans and nulls stay as they are."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict):
        return {k: _stringified(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_stringified(v) for v in value]
    return value


def _is_job(value: Any) -> bool:
    return isinstance(value, dict) and "id" in value and "status" in value


def wrong_shape(value: Any, shape: str) -> Any:
    """Reshape a normal answer.

    - ``list``: a list where an object belongs (``[job]``), an object where a list belongs (``{"jobs": [...]}``)
    - ``nulls``: jobs with nulls nested everywhere (lists also get a leading ``null`` item)
    - ``null_outputs``: jobs whose ``outputs`` and ``outputs_count`` are null
    - ``strings``: every number sent as a string
    """
    if shape == "list":
        return {"jobs": value} if isinstance(value, list) else [value]
    if shape == "strings":
        return _stringified(value)
    if shape == "nulls":
        if isinstance(value, list):
            return [None, *(_nulled_job(v) if _is_job(v) else None for v in value)]
        return _nulled_job(value) if _is_job(value) else value
    if shape == "null_outputs":

        def drop(job: Any) -> Any:
            return {**job, "outputs": None, "outputs_count": None} if _is_job(job) else job

        return [drop(v) for v in value] if isinstance(value, list) else drop(value)
    raise ValueError(f"unknown shape {shape!r}")


def oversized(value: Any, size_bytes: int) -> tuple[int, Iterator[bytes]]:
    """A syntactically valid JSON body of exactly ``size_bytes`` (or the real body, if that is larger) built
    from the normal answer plus a padding string, produced in 64 KiB chunks so it is never held in memory."""
    text = json.dumps(value, separators=(",", ":"))
    if isinstance(value, dict):
        head, tail = text[:-1] + ("," if value else "") + '"padding":"', '"}'
    elif isinstance(value, list):
        head, tail = text[:-1] + ("," if value else "") + '"', '"]'
    else:
        head, tail = '{"padding":"', '"}'
    head_bytes, tail_bytes = head.encode(), tail.encode()
    padding = max(0, size_bytes - len(head_bytes) - len(tail_bytes))

    def chunks() -> Iterator[bytes]:
        yield head_bytes
        left = padding
        while left > 0:
            piece = _PAD_CHUNK if left >= len(_PAD_CHUNK) else _PAD_CHUNK[:left]
            left -= len(piece)
            yield piece
        yield tail_bytes

    return len(head_bytes) + padding + len(tail_bytes), chunks()
