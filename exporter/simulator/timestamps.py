"""The API's one timestamp format, ``YYYY-MM-DDTHH:MM:SSZ`` in UTC, both ways.

The simulator keeps every timestamp as whole epoch seconds because that is all the wire format can carry:
storing more precision would let ``job_payload`` and ``since`` filtering disagree about sub-second values.
"""

from __future__ import annotations

import calendar
import re
import time

_STRICT = re.compile(r"\A\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z\Z")


def format_timestamp(epoch_seconds: int) -> str:
    """Render whole epoch seconds the way the API does: ``2024-05-01T12:00:00Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_seconds))


def parse_timestamp(text: str) -> int:
    """Parse the strict API form back to epoch seconds; ``ValueError`` for anything else.

    Strict on purpose: the real API documents ``since`` in exactly this form, and a lenient simulator would
    hide a client that sends offsets or fractions the real one might reject.
    """
    if not _STRICT.match(text):
        raise ValueError(f"not a YYYY-MM-DDTHH:MM:SSZ timestamp: {text!r}")
    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))
