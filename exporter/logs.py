"""Log lines as Prometheus' own exporters write them: logfmt (or JSON), one line per event, UTC.

    ts=2026-12-01T14:35:14.123Z level=warn caller=poller.py:329 msg="job 7: refresh failed: server_error"
    ts=2026-12-01T14:35:15.002Z level=error caller=poller.py:140 msg="refresh cycle failed" err="KeyError: 'id'"

`ts`, `level` (`debug`, `info`, `warn`, `error`, as go-kit writes them), `caller` and `msg` come first, then any
`extra=` fields of the call. A value is written bare when it can be (`level=info`) and quoted otherwise, with
`\\"`, `\\\\`, `\\n`, `\\t`, `\\r` and `\\uXXXX` for every other character that is not printable — so no message,
path or error text can break a line or forge a field, and the line parses with go-logfmt or `json.loads` on each
quoted value. An exception becomes `err="Type: message"`; its traceback is folded into a `stack` field only when
the handler logs at debug level, so at info a bug is one short line that says what and where (`caller`).

Python's own multi-line output is routed here too: warnings, and exceptions that escape a thread or the main
function, are logged as one line each rather than printed as tracebacks.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
import traceback
from datetime import UTC, datetime
from types import TracebackType
from typing import Final

LOG_FORMATS: Final = ("logfmt", "json")
_LEVELS_BY_NAME: Final = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
LOG_LEVELS: Final = tuple(_LEVELS_BY_NAME)
"""`--log.level` values: Go exporters' names, and `warning` as this exporter always accepted it."""

_LEVEL_NAMES: Final = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warn",
    logging.ERROR: "error",
    logging.CRITICAL: "error",
}
# Every attribute a plain LogRecord carries; anything else on a record came from `extra=` and becomes a field.
_RECORD_ATTRIBUTES: Final = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_SHORT_ESCAPES: Final = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_BARE: Final = re.compile(r'[^\x00-\x20="\x7f]+')
_KEY_UNSAFE: Final = re.compile(r'[\x00-\x20="\x7f]')


def event_fields(record: logging.LogRecord, *, with_stack: bool) -> dict[str, str]:
    """The fields of one event, in the order they are written."""
    fields = {
        "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")[:-6] + "Z",
        "level": _LEVEL_NAMES.get(record.levelno, record.levelname.lower()),
        "caller": f"{_caller_file(record)}:{record.lineno}",
        "msg": record.getMessage(),
    }
    for key, value in vars(record).items():
        if key not in _RECORD_ATTRIBUTES:
            fields[_KEY_UNSAFE.sub("_", key) or "_"] = str(value)
    stack = []
    if record.exc_info and record.exc_info[1] is not None:
        error = record.exc_info[1]
        fields["err"] = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        stack.append("".join(traceback.format_exception(error)))
    if record.stack_info:
        stack.append(record.stack_info)
    if with_stack and stack:
        fields["stack"] = "\n".join(stack).rstrip("\n")
    return fields


def _caller_file(record: logging.LogRecord) -> str:
    """The file's name, as go-kit writes it; a package's `__init__.py` with the package's name in front."""
    if record.filename == "__init__.py":
        return f"{os.path.basename(os.path.dirname(record.pathname))}/__init__.py"
    return record.filename


def logfmt_value(value: str) -> str:
    """`value` as it is written after `key=`: bare if it is one printable word without `=` or `"`, else quoted."""
    if _BARE.fullmatch(value) and value.isprintable():
        return value
    return '"' + "".join(_escape(char) for char in value) + '"'


def _escape(char: str) -> str:
    if char in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[char]
    if char.isprintable():
        return char
    # Beyond the Basic Multilingual Plane, json writes the UTF-16 surrogate pair that go-logfmt also reads.
    return f"\\u{ord(char):04x}" if ord(char) < 0x10000 else json.dumps(char)[1:-1]


class LogfmtFormatter(logging.Formatter):
    """`key=value` pairs separated by one space."""

    def __init__(self, *, with_stack: bool) -> None:
        super().__init__()
        self.with_stack = with_stack

    def format(self, record: logging.LogRecord) -> str:
        fields = event_fields(record, with_stack=self.with_stack)
        return " ".join(f"{key}={logfmt_value(value)}" for key, value in fields.items())


class JsonFormatter(logging.Formatter):
    """One JSON object per line with the same fields; non-ASCII is escaped, so U+2028 cannot split a line."""

    def __init__(self, *, with_stack: bool) -> None:
        super().__init__()
        self.with_stack = with_stack

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(event_fields(record, with_stack=self.with_stack))


def setup_logging(level: str, log_format: str = "logfmt") -> None:
    """Send every log line to stderr in `log_format`; urllib3 stays quiet below warnings."""
    with_stack = level == "debug"
    formatter_class = JsonFormatter if log_format == "json" else LogfmtFormatter
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter_class(with_stack=with_stack))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(_LEVELS_BY_NAME[level])
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread


def _log_uncaught(kind: type[BaseException], error: BaseException, tb: TracebackType | None) -> None:
    logging.getLogger("exporter").critical("uncaught exception", exc_info=(kind, error, tb))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is None:
        return
    name = args.thread.name if args.thread is not None else "unknown"
    logging.getLogger("exporter").critical(
        "uncaught exception in thread %s",
        name,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )
