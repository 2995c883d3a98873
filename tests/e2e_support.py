"""Helpers for the end-to-end tests (tests/test_*e2e.py): real binaries, processes on loopback, a webhook
receiver, the Alertmanager and Prometheus configuration files, PromQL extraction.

Nothing here knows the scenario; the test files wire the pieces together. Every started thing has a `stop()`, and
`start_service` hands it to the caller's cleanup before waiting for readiness, so a failed start still cleans up.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
import yaml

from tests.support import free_port, wait_until
from tests.test_dashboard import (
    DASHBOARD,
    dashboard_expressions,
    load_dashboard,
    substitute_grafana_variables,
)
from tests.test_rules import RULES, all_promql_expressions, load_rules

REPO = Path(__file__).resolve().parent.parent


# -- processes --------------------------------------------------------------------------------------------------


def http_ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


class Service:
    """One child process listening on 127.0.0.1:`port`, its stdout and stderr in `log_path`."""

    def __init__(self, name: str, argv: Sequence[str], port: int, log_path: Path, env: Mapping[str, str]):
        self.name = name
        self.port = port
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=REPO,
        )

    @property
    def address(self) -> str:
        """`127.0.0.1:port`: the target Prometheus scrapes or sends to, and the instance label it gives."""
        return f"127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"http://{self.address}"

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def log_tail(self, lines: int = 15, width: int = 300) -> str:
        """The last `lines` lines of the log, each cut at `width` characters."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(line[:width] for line in text.splitlines()[-lines:])

    def wait_ready(self, path: str, timeout: float) -> None:
        """Poll `path` until it answers 200; fail at once, with the log, if the process exits."""

        def probe() -> bool:
            if self.process.poll() is not None:
                raise ProcessExited(self)
            return http_ok(self.url(path))

        wait_until(probe, timeout, lambda: f"{self.name} at {self.url(path)}; log:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()


class ProcessExited(Exception):
    def __init__(self, service: Service) -> None:
        self.service = service
        super().__init__(
            f"{service.name} exited with code {service.process.returncode} before it was ready; "
            f"log:\n{service.log_tail()}"
        )


def start_service(
    name: str,
    argv_for_port: Callable[[int], Sequence[str]],
    ready_path: str,
    workdir: Path,
    register: Callable[[Callable[[], None]], Any],
    env: Mapping[str, str] | None = None,
    timeout: float = 30.0,
    attempts: int = 3,
) -> Service:
    """Start a service on a free port and wait until `ready_path` answers 200.

    A port picked free can be taken by another process before the child binds it (other test runs share this
    machine): when the child exits before it is ready, try again with a new port, `attempts` times in all.
    Each attempt's `stop` is handed to `register` before waiting, so a failure still cleans up.
    """
    last: ProcessExited | None = None
    for attempt in range(attempts):
        port = free_port()
        service = Service(
            name, argv_for_port(port), port, workdir / f"{name}.{attempt}.log", env or os.environ
        )
        register(service.stop)
        try:
            service.wait_ready(ready_path, timeout)
            return service
        except ProcessExited as exited:
            last = exited
    assert last is not None
    raise AssertionError(str(last))


def start_exporter(
    name: str,
    config: Path,
    flags: list[str],
    keys: dict[str, str],
    workdir: Path,
    register: Callable[[Callable[[], None]], Any],
    timeout: float = 30.0,
) -> Service:
    """`python -m exporter` on a free port, ready once it has refreshed every watched job (/readyz)."""
    return start_service(
        name,
        lambda port: [
            sys.executable,
            "-m",
            "exporter",
            "--config",
            str(config),
            "--web.listen-address",
            f"127.0.0.1:{port}",
            *flags,
        ],
        "/readyz",
        workdir,
        register,
        env={**os.environ, **keys},
        timeout=timeout,
    )


def start_prometheus(
    binary: str,
    config: Path,
    workdir: Path,
    register: Callable[[Callable[[], None]], Any],
    name: str = "prometheus",
) -> Service:
    """Prometheus with `config` on a free port, its data under `workdir`, ready once /-/ready answers 200."""
    return start_service(
        name,
        lambda port: [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / f'{name}-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        "/-/ready",
        workdir,
        register,
    )


def start_alertmanager(
    binary: str, config: Path, workdir: Path, register: Callable[[Callable[[], None]], Any]
) -> Service:
    """Alertmanager with `config` on a free port, no clustering, its data under `workdir`, ready at /-/ready."""
    return start_service(
        "alertmanager",
        lambda port: [
            binary,
            f"--config.file={config}",
            f"--storage.path={workdir / 'alertmanager-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        "/-/ready",
        workdir,
        register,
    )


# -- webhook receiver -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Notification:
    """One webhook POST: when it arrived (time.monotonic()) and its JSON body."""

    received_at: float
    body: dict[str, Any]


class WebhookReceiver:
    """Collects the JSON bodies Alertmanager POSTs to it (any path)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._notifications: list[Notification] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                try:
                    payload = json.loads(body)
                except ValueError:
                    payload = {"unparsable": body.decode("utf-8", "replace")}
                with receiver._lock:
                    receiver._notifications.append(Notification(time.monotonic(), payload))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/alerts"

    def notifications(self) -> list[Notification]:
        with self._lock:
            return list(self._notifications)

    def alerts(self, alertname: str | None = None) -> Iterator[tuple[Notification, dict[str, Any]]]:
        """(notification, alert) pairs of every received alert, optionally of one alertname."""
        for notification in self.notifications():
            for alert in notification.body.get("alerts", []):
                if alertname is None or alert.get("labels", {}).get("alertname") == alertname:
                    yield notification, alert

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


# -- Prometheus HTTP API ----------------------------------------------------------------------------------------


def prom_query(base_url: str, expr: str) -> dict[str, Any]:
    """The JSON answer of /api/v1/query for `expr` at the current time (errors included: status "error")."""
    response = requests.get(f"{base_url}/api/v1/query", params={"query": expr}, timeout=10)
    try:
        answer: dict[str, Any] = response.json()
    except ValueError:
        return {"status": "error", "error": f"HTTP {response.status_code}: {response.text[:200]}"}
    return answer


def prom_rules(base_url: str) -> list[dict[str, Any]]:
    """Every rule Prometheus has loaded, as /api/v1/rules reports it (health, lastError, query, ...)."""
    answer = requests.get(f"{base_url}/api/v1/rules", timeout=10).json()
    return [rule for group in answer["data"]["groups"] for rule in group["rules"]]


# -- configuration files ----------------------------------------------------------------------------------------


def write_yaml(path: Path, document: Mapping[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(dict(document), sort_keys=False), encoding="utf-8")
    return path


def write_alertmanager_config(workdir: Path, receiver_url: str, group_by: Sequence[str]) -> Path:
    """`workdir`/alertmanager.yml: every alert, resolved ones too, to the webhook receiver at `receiver_url`.

    `group_by` decides what one notification holds, which the tests assert on. A notification leaves at once
    (group_wait 0s, group_interval 1s), so a stack pages within seconds; it repeats only after an hour, longer
    than any test, so the receiver sees an alert when it changes and not again.
    """
    return write_yaml(
        workdir / "alertmanager.yml",
        {
            "route": {
                "receiver": "webhook",
                "group_by": list(group_by),
                "group_wait": "0s",
                "group_interval": "1s",
                "repeat_interval": "1h",
            },
            "receivers": [
                {"name": "webhook", "webhook_configs": [{"url": receiver_url, "send_resolved": True}]}
            ],
        },
    )


def scrape_job(name: str, *targets: Service, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """One scrape config: job `name` scraping `targets`, each given the target `labels` when there are any."""
    static: dict[str, Any] = {"targets": [target.address for target in targets]}
    if labels:
        static["labels"] = dict(labels)
    return {"job_name": name, "static_configs": [static]}


def rules_with_threshold(workdir: Path, alert: str, marker: str, value: int, *, markers: int) -> Path:
    """The shipped rule file, written into `workdir`, with `alert`'s threshold set to `value` as the chart's
    alerts.rules.<alert>.<marker> does: the number before each "# <marker>" comment, of which there are `markers`.

    A stack cannot wait out the shipped thresholds (minutes). Counting the markers makes one that moved fail here,
    rather than leave the shipped threshold in place and the alert silent for the length of the test.
    """
    text, count = re.subn(rf"\b[0-9]+ # {marker}\b", f"{value} # {marker}", RULES.read_text(encoding="utf-8"))
    assert count == markers, (
        f"{alert}'s {marker} markers moved (found {count}, expected {markers}): update this test"
    )
    path = workdir / RULES.name
    path.write_text(text, encoding="utf-8")
    return path


def write_prometheus_config(
    workdir: Path,
    scrape_jobs: Sequence[Mapping[str, Any]],
    *,
    interval: str = "1s",
    rule_file: Path | None = None,
    alertmanager: Service | None = None,
) -> Path:
    """`workdir`/prometheus.yml: `scrape_jobs` (see `scrape_job`) scraped every `interval`, within it.

    With `rule_file`, its rules are evaluated as often as the targets are scraped, so an alert follows a change
    in one step; with `alertmanager`, firing alerts are sent there.
    """
    document: dict[str, Any] = {
        "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval}
    }
    if rule_file is not None:
        document["rule_files"] = [str(rule_file)]
    if alertmanager is not None:
        document["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager.address]}]}]}
    document["scrape_configs"] = [dict(job) for job in scrape_jobs]
    return write_yaml(workdir / "prometheus.yml", document)


# -- PromQL of the rule file and the dashboard ------------------------------------------------------------------

_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?P<selector>.+?)\s*,\s*(?P<label>\w+)\s*\)\s*$", re.DOTALL)
_SELECTOR = re.compile(r"(?<![\w:\"'])(integrateio_\w+|up)\b(\s*\{[^}]*\})?")


@dataclass(frozen=True)
class Expression:
    """One PromQL expression from the shipped files.

    `kind` is "alert", "record", "panel" or "variable"; `promql` is what is sent to Prometheus (Grafana's
    variables substituted, `label_values(...)` translated); `name` the rule's name; `label` the label a
    `label_values` variable offers.
    """

    kind: str
    where: str
    promql: str
    name: str = ""
    label: str = ""


def translate_label_values(query: str) -> tuple[str, str]:
    """Grafana's `label_values(selector, label)` as PromQL `group by (label) (selector)`, and the label.

    Any other variable query is PromQL already and is returned as it is, with no label.
    """
    match = _LABEL_VALUES.match(query)
    if match is None:
        return query, ""
    label = match.group("label")
    return f"group by ({label}) ({match.group('selector')})", label


def shipped_expressions() -> list[Expression]:
    """Every PromQL expression of the rule file and the dashboard.

    Rules come from tests/test_rules.py's `all_promql_expressions()`, panel queries from tests/test_dashboard.py's
    `dashboard_expressions()` with Grafana's variables substituted as "All" there; the dashboard's query
    variables are added here.
    """
    kinds = {
        rule.get("alert") or rule.get("record"): "alert" if "alert" in rule else "record"
        for group in load_rules()["groups"]
        for rule in group["rules"]
    }
    found = []
    for where, expr in all_promql_expressions():
        name = where.rsplit("/", 1)[-1]
        found.append(Expression(kinds[name], where, expr, name=name))
    for where, expr in dashboard_expressions():
        found.append(Expression("panel", where, substitute_grafana_variables(expr)))
    for variable in load_dashboard().get("templating", {}).get("list", []):
        query = variable.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        if variable.get("type") != "query" or not query:
            continue
        promql, label = translate_label_values(substitute_grafana_variables(str(query)))
        where = f"{DASHBOARD.name}: variable {variable['name']!r}"
        found.append(Expression("variable", where, promql, label=label))
    return found


def selectors(expr: str) -> list[str]:
    """The vector selectors of the exporter's metrics (and `up`) in `expr`, as written, without ranges."""
    seen: dict[str, None] = {}
    for match in _SELECTOR.finditer(expr):
        selector = match.group(1) + re.sub(r"\s+", " ", (match.group(2) or "").strip())
        seen[selector] = None
    return list(seen)
