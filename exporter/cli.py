"""The command line: signal handlers first, then flags, logging and exit codes; `daemon` runs the exporter.

`main` installs the SIGTERM, SIGINT and SIGHUP handlers before it parses a flag or imports the rest of the
exporter. Importing requests, PyYAML and prometheus_client takes 0.3-0.4 s on a busy 2-core machine, and until a
handler exists a SIGHUP kills the process: `systemctl reload` right after `systemctl start` did, in 3 tries of 5.
So this module imports only the standard library and the light `errors` and `logs`; what remains is a window of
the interpreter's own start-up (tens of milliseconds), before any of our code runs.

Exit codes: 0 after a clean stop (SIGTERM, SIGINT) or a good `--check-config`; 2 for a bad configuration or flag,
always as one line naming the key and no traceback; 1 when the process cannot start for another reason (the port
is taken).
"""

from __future__ import annotations

import argparse
import logging
import re
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from types import FrameType
from typing import TYPE_CHECKING

from exporter import __version__
from exporter.errors import ConfigError
from exporter.logs import LOG_FORMATS, LOG_LEVELS, setup_logging

if TYPE_CHECKING:
    from exporter.config import Shard

log = logging.getLogger("exporter")

DEFAULT_LISTEN_ADDRESS = ":9863"


class Signals:
    """What the process was asked by signal: `stop` for SIGTERM or SIGINT, a reload for SIGHUP.

    Installed before the exporter exists, so a SIGHUP can arrive before there is anything to reload: it is
    remembered, and `attach` applies it once the exporter runs. Handlers run in the main thread between two
    bytecodes, so they only set flags or start a thread; they never take a lock or do I/O.
    """

    def __init__(self) -> None:
        self.stop = threading.Event()
        self._reload: Callable[[], None] | None = None
        self._reload_pending = False

    @classmethod
    def install(cls) -> Signals:
        signals = cls()
        signal.signal(signal.SIGTERM, signals._on_stop)
        signal.signal(signal.SIGINT, signals._on_stop)
        signal.signal(signal.SIGHUP, signals._on_reload)
        return signals

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stop.set()

    def _on_reload(self, signum: int, frame: FrameType | None) -> None:
        if self._reload is None:
            self._reload_pending = True
        else:
            _in_thread(self._reload)

    def attach(self, reload: Callable[[], None]) -> None:
        """From now on a SIGHUP calls `reload` (in a thread of its own); one that came earlier is applied now."""
        self._reload = reload
        if self._reload_pending:
            self._reload_pending = False
            log.info("SIGHUP received during start-up: reloading now")
            _in_thread(reload)


def _in_thread(reload: Callable[[], None]) -> None:
    # Loading runs in its own thread: a signal handler must not block on file or lock I/O.
    threading.Thread(target=reload, name="reload", daemon=True).start()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="integrateio-exporter",
        description="Prometheus exporter for Integrate.io (Xplenty) ETL jobs.",
    )
    parser.add_argument("--config", default="config.yaml", metavar="PATH", help="YAML configuration file")
    parser.add_argument(
        "--web.listen-address",
        dest="listen_address",
        default=DEFAULT_LISTEN_ADDRESS,
        metavar="HOST:PORT",
        help=f"address to serve /metrics on (default {DEFAULT_LISTEN_ADDRESS}, all interfaces)",
    )
    parser.add_argument(
        "--web.config.file",
        dest="web_config_file",
        metavar="PATH",
        help="exporter-toolkit web config: TLS and basic auth for scrapers",
    )
    parser.add_argument(
        "--shard",
        metavar="INDEX/COUNT",
        help="watch only the jobs whose id hashes to INDEX of COUNT replicas, with 1/COUNT of the credits; "
        "INDEX 'auto' takes the trailing number of the hostname (a StatefulSet pod's ordinal)",
    )
    parser.add_argument("--log.level", dest="log_level", choices=LOG_LEVELS, default="info")
    parser.add_argument(
        "--log.format",
        dest="log_format",
        choices=LOG_FORMATS,
        default="logfmt",
        help="one line per event, as logfmt (default) or JSON",
    )
    parser.add_argument("--check-config", action="store_true", help="validate the configuration and exit")
    parser.add_argument(
        "--demo", action="store_true", help="run against a built-in simulated Integrate.io API"
    )
    parser.add_argument("--version", action="version", version=f"integrateio-exporter {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    signals = Signals.install()  # first of all: see the module docstring
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level, args.log_format)
    return execute(args, signals)


def execute(args: argparse.Namespace, signals: Signals) -> int:
    """`--check-config` or a run, from parsed flags: both validate with `daemon.load`, and both report a bad
    configuration as one line on stderr and exit code 2."""
    try:
        from exporter import daemon  # only now, with the handlers in place: it imports everything else

        if args.check_config:
            print(daemon.check_config(args))
            return 0
        return daemon.run(args, signals)
    except ConfigError as error:
        print(f"integrateio-exporter: {error}", file=sys.stderr)
        return 2


def parse_shard(text: str, hostname: str) -> Shard:
    """`1/3`, or `auto/3` with the index from the hostname's trailing `-N` (pod `exporter-2` is shard 2)."""
    from exporter.config import Shard  # as light as this module's callers need: see `main`

    index_text, sep, count_text = text.partition("/")
    if not sep or not count_text.isdigit() or int(count_text) < 1:
        raise ConfigError("--shard", f"must be INDEX/COUNT, like 0/3 or auto/3, got {text!r}")
    count = int(count_text)
    if index_text == "auto":
        match = re.search(r"-(\d+)$", hostname)
        if match is None:
            raise ConfigError(
                "--shard", f"auto needs a hostname ending in -N (a StatefulSet pod), got {hostname!r}"
            )
        index_text = match.group(1)
    if not index_text.isdigit() or int(index_text) >= count:
        raise ConfigError("--shard", f"the index must be a number from 0 to {count - 1}, got {index_text!r}")
    return Shard(int(index_text), count)
