"""Log lines: strict logfmt (or JSON), one line per event, UTC — checked on what the real process prints."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from exporter.logs import JsonFormatter, LogfmtFormatter, logfmt_value, setup_logging
from exporter.simulator import Simulator
from tests.support import API_KEY, EXPORTER_SCRIPT, NOT_UTC, Daemon, add_two_jobs, parse_logfmt, wait_until

LEVELS = {"debug", "info", "warn", "error"}


def record(msg: str, level: int = logging.INFO, **extra: object) -> logging.LogRecord:
    made = logging.makeLogRecord({"msg": msg, "levelno": level, "levelname": logging.getLevelName(level)})
    made.__dict__.update(extra)
    return made


# -- the formatter -----------------------------------------------------------------------------------------------


def test_a_line_reads_as_prometheus_writes_it_in_utc(local_time_not_utc: None) -> None:
    line = record("refresh interval back to 60s")
    line.created, line.filename, line.lineno = 1796135714.123, "poller.py", 411
    assert LogfmtFormatter(with_stack=False).format(line) == (
        'ts=2026-12-01T14:35:14.123Z level=info caller=poller.py:411 msg="refresh interval back to 60s"'
    )


@pytest.mark.parametrize(
    ("level", "written"),
    [
        (logging.DEBUG, "debug"),
        (logging.INFO, "info"),
        (logging.WARNING, "warn"),
        (logging.ERROR, "error"),
        (logging.CRITICAL, "error"),
    ],
)
def test_levels_are_go_kits_lower_case_names(level: int, written: str) -> None:
    assert parse_logfmt(LogfmtFormatter(with_stack=False).format(record("x", level)))["level"] == written


@pytest.mark.parametrize(
    "text",
    [
        "plain",
        "",
        "two words",
        "a=b",
        'say "hi"',
        "back\\slash",
        "C:\\path",
        "line\nbreak\r\n",
        "tab\there",
        "\x00\x1b[31mred\x7f",
        "next\u2028line\u2029para\x85",
        "é ü 漢字 🎉",
        "lone \udc80 surrogate",
        "tag \U000e0001 beyond the BMP",
        'msg="forged" level=error',
    ],
)
def test_any_text_is_one_line_that_parses_back_to_itself(text: str) -> None:
    line = LogfmtFormatter(with_stack=False).format(record(text, path=text))
    assert len(line.splitlines()) == 1
    fields = parse_logfmt(line)
    assert (fields["msg"], fields["path"], fields["level"]) == (text, text, "info")
    assert json.loads(JsonFormatter(with_stack=False).format(record(text)))["msg"] == text


def test_values_are_bare_only_when_they_are_one_safe_word() -> None:
    assert [logfmt_value(v) for v in ["info", "poller.py:12", "", "a b", "a=b", 'a"b', "é"]] == [
        "info",
        "poller.py:12",
        '""',
        '"a b"',
        '"a=b"',
        '"a\\"b"',
        "é",
    ]


def test_extra_fields_follow_msg_with_safe_keys() -> None:
    fields = parse_logfmt(
        LogfmtFormatter(with_stack=False).format(record("x", job_id=7, **{"bad key=": "v"}))
    )
    assert list(fields) == ["ts", "level", "caller", "msg", "job_id", "bad_key_"]
    assert (fields["job_id"], fields["bad_key_"]) == ("7", "v")


def raised() -> logging.LogRecord:
    try:
        {"status": "running"}["id"]
    except KeyError:
        return record("refresh cycle failed", logging.ERROR, exc_info=sys.exc_info())
    raise AssertionError("not raised")


def test_an_exception_is_one_line_with_err_and_the_traceback_only_at_debug() -> None:
    info = LogfmtFormatter(with_stack=False).format(raised())
    assert len(info.splitlines()) == 1
    assert parse_logfmt(info)["err"] == "KeyError: 'id'"
    assert "stack" not in parse_logfmt(info)

    debug = LogfmtFormatter(with_stack=True).format(raised())
    assert len(debug.splitlines()) == 1
    stack = parse_logfmt(debug)["stack"]
    assert stack.startswith("Traceback (most recent call last):\n")
    assert '{"status": "running"}["id"]' in stack
    assert stack.endswith("KeyError: 'id'")
    assert json.loads(JsonFormatter(with_stack=True).format(raised()))["stack"] == stack


# -- setup_logging: the whole process's output -------------------------------------------------------------------


@pytest.fixture
def process_logging() -> Iterator[None]:
    """setup_logging changes process-wide state: the root handler, warnings capture, exception hooks."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, sys.excepthook, threading.excepthook)
    yield
    root.handlers[:], level, sys.excepthook, threading.excepthook = saved
    root.setLevel(level)
    logging.captureWarnings(False)


def test_a_raised_exception_logged_through_setup_is_exactly_one_line(
    process_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging("info")
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        logging.getLogger("exporter.poller").exception("refresh cycle failed")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    fields = parse_logfmt(lines[0])
    assert (fields["level"], fields["msg"], fields["err"]) == (
        "error",
        "refresh cycle failed",
        "ValueError: bad\nthing",
    )


def test_an_exception_escaping_a_thread_and_a_warning_are_one_line_each(
    process_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging("info", "json")

    def boom() -> None:
        raise RuntimeError("boom")

    thread = threading.Thread(target=boom, name="worker")
    thread.start()
    thread.join()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("careful\nnow", UserWarning, stacklevel=1)
    thread_line, warning_line = (json.loads(line) for line in capsys.readouterr().err.splitlines())
    assert (thread_line["level"], thread_line["msg"], thread_line["err"]) == (
        "error",
        "uncaught exception in thread worker",
        "RuntimeError: boom",
    )
    assert warning_line["level"] == "warn"
    assert "UserWarning: careful\nnow" in warning_line["msg"]


# -- the real process ----------------------------------------------------------------------------------------------


def run_for_a_while(daemon: Daemon, lines: int) -> list[str]:
    """Let the process log at least `lines` lines, stop it with SIGTERM, and return everything it printed."""
    wait_until(lambda: len(daemon.lines) >= lines, 20, f"{lines} log lines")
    assert daemon.stop() == 0
    return [line.rstrip("\n") for line in daemon.lines]


def assert_utc_and_recent(ts: str, started: datetime) -> None:
    assert ts.endswith("Z")
    moment = datetime.fromisoformat(ts)
    assert started.timestamp() - 1 <= moment.timestamp() <= time.time() + 1, (ts, started)


def test_every_line_the_demo_prints_is_strict_logfmt_in_utc() -> None:
    started = datetime.now(UTC)
    with Daemon("--demo", "--log.level=debug", env={"TZ": NOT_UTC}, command=EXPORTER_SCRIPT) as daemon:
        lines = run_for_a_while(daemon, 40)
    parsed = [parse_logfmt(line) for line in lines]
    for fields in parsed:
        assert list(fields)[:4] == ["ts", "level", "caller", "msg"]
        assert fields["level"] in LEVELS
        assert_utc_and_recent(fields["ts"], started)
    assert {fields["level"] for fields in parsed} == {"debug", "info"}
    assert parsed[-1]["msg"] == "stopped"


def test_every_line_the_demo_prints_in_json_is_an_object_with_the_same_fields() -> None:
    started = datetime.now(UTC)
    command = EXPORTER_SCRIPT
    with Daemon("--demo", "--log.format=json", env={"TZ": NOT_UTC}, command=command) as daemon:
        lines = run_for_a_while(daemon, 10)
    parsed = [json.loads(line) for line in lines]
    for fields in parsed:
        assert list(fields)[:4] == ["ts", "level", "caller", "msg"]
        assert all(isinstance(value, str) for value in fields.values())
        assert_utc_and_recent(fields["ts"], started)
    assert parsed[0]["msg"].startswith("integrateio-exporter ")
    assert parsed[-1]["msg"] == "stopped"


def test_warnings_from_faults_are_strict_logfmt_too(sim: Simulator, tmp_path: Path) -> None:
    """The demo has no faults: the same check on a simulator that answers 500, garbage and 429."""
    add_two_jobs(sim)
    config = tmp_path / "c.yaml"
    config.write_text(
        f"api:\n  account_id: {sim.account_id}\n  base_url: {sim.base_url}\n  timeout_seconds: 2\n"
        "jobs: [1, 2]\npolling:\n  interval_seconds: 0.5\n"
    )
    env = {"TZ": NOT_UTC, "INTEGRATEIO_API_KEY": API_KEY}
    started = datetime.now(UTC)
    with Daemon("--config", str(config), env=env, command=EXPORTER_SCRIPT) as daemon:
        wait_until(lambda: daemon.metrics().status(2) == "queued", 10, "both jobs fetched once")
        sim.set_fault("status", job_id=1, code=500)
        sim.set_fault("not_json", job_id=2)
        wait_until(lambda: sum("level=warn" in line for line in daemon.lines) >= 2, 20, "two warnings")
        sim.set_fault("rate_limited", times=1, retry_after="1")
        wait_until(lambda: daemon.find("level=warn .*429"), 20, "the 429 warning")
        assert daemon.stop() == 0
    parsed = [parse_logfmt(line.rstrip("\n")) for line in daemon.lines]
    for fields in parsed:
        assert_utc_and_recent(fields["ts"], started)
    warned = [fields["msg"] for fields in parsed if fields["level"] == "warn"]
    assert "job 1: refresh failed: server_error (HTTP 500); keeping its last values" in warned
    assert "job 2: refresh failed: invalid_response (body is not JSON); keeping its last values" in warned
    # Retry-After: 1 lengthens the pause, never shortens it: the backoff's first step is a minute's share of
    # the default one-hour window, 60 s.
    assert "API answered 429 (rate limited): pausing all requests for 60.0s" in warned
    assert API_KEY not in daemon.output


@pytest.mark.parametrize(
    "line",
    [
        "ts=2026-12-01 14:35:14,123 level=INFO logger=exporter msg=refresh cycle failed",  # the old format
        "a=b  c=d",
        "a=b ",
        'a="unterminated',
        'a="bad \\q escape"',
        "a=",
        "=b",
        "a=b a=c",
        'a="raw\ttab"',
        "a=b\nc=d",
        'a=b"c',
    ],
)
def test_the_parser_refuses_what_is_not_strict_logfmt(line: str) -> None:
    with pytest.raises(ValueError):
        parse_logfmt(line)
