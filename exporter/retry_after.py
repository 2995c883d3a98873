"""Parse an HTTP Retry-After header (RFC 9110 §10.2.3) into seconds to wait.

The Integrate.io API documents no Retry-After on its 429, but a proxy in front of it may add one, and a client
that ignores it is impolite. Both forms are accepted: delay-seconds ("120") and an HTTP-date
("Fri, 31 Dec 1999 23:59:59 GMT", and the obsolete RFC 850 and asctime forms). Garbage gives None, so the
caller falls back to its own backoff; the caller also caps the result, since "999999999" must not park a daemon.
Only ASCII digits count as delay-seconds (`"²".isdigit()` is true, and `int("²")` raises), and a delay of more
digits than `MAX_DIGITS` is read as the longest one, so that no header can overflow a float.
"""

from __future__ import annotations

import email.utils
import time
from datetime import UTC

MAX_DIGITS = 9  # 999,999,999 s, about 31 years: longer is "a very long time" all the same


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from `now` (Unix time, default the current time), never negative; None when unusable."""
    text = (value or "").strip()
    if not text:
        return None
    if text.isascii() and text.isdigit():
        digits = text.lstrip("0") or "0"
        return float(int(digits) if len(digits) <= MAX_DIGITS else 10**MAX_DIGITS - 1)
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):  # a year of 400 digits overflows a C int
        return None
    if moment.tzinfo is None:  # asctime dates carry no zone; HTTP dates are always GMT
        moment = moment.replace(tzinfo=UTC)
    current = time.time() if now is None else now
    return max(0.0, moment.timestamp() - current)
