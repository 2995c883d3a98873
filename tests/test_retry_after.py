"""Retry-After in every form RFC 9110 allows, and garbage."""

from __future__ import annotations

import pytest

from exporter.retry_after import parse_retry_after

# Every timestamp here is UTC on the wire and in Unix seconds: under a local time that is not UTC, one written or
# read in local time is 5 h 45 min off, and fails, even on a machine whose own zone is UTC.
pytestmark = pytest.mark.usefixtures("local_time_not_utc")

NOW = 946684799.0 - 60  # one minute before 1999-12-31T23:59:59Z


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("Fri, 31 Dec 1999 23:59:59 GMT", 60.0),  # IMF-fixdate
        ("Friday, 31-Dec-99 23:59:59 GMT", 60.0),  # obsolete RFC 850
        ("Fri Dec 31 23:59:59 1999", 60.0),  # obsolete asctime
        ("Fri, 31 Dec 1999 23:57:59 GMT", 0.0),  # in the past: no wait, never negative
        ("007", 7.0),
        ("1" * 400, 999_999_999.0),  # longer than any float wait: the longest one (the caller caps it)
        ("0" * 400 + "12", 12.0),
        ("²", None),  # a digit to str.isdigit, not to int()
        ("١٢", None),  # Arabic-Indic digits: int() would read them, HTTP does not
        ("Fri, 31 Dec " + "9" * 400 + " 23:59:59 GMT", None),  # a year that overflows a C int
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_forms(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == seconds
