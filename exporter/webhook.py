"""The web hook doorbell: Integrate.io rings, the poller refreshes the named job now, through the budget.

Integrate.io can fire a **web hook** when a job or a cluster changes state (`resources/hooks/web-hook.md` in
xplenty/xplenty-api-doc-v2; events `job.submitted`, `job.started`, `job.stopped`, `job.completed`, `job.failed`,
`cluster.requested`, `cluster.available`, `cluster.terminated`, `cluster.idled`, `cluster.error`, listed by
`sections/list-hook-events.md`; `sections/ping-hook.md` fires a test `ping`). The hook carries optional HTTP basic
auth, and "a hash generated using SHA-1 from the concatenation of id, event name, url and salt". The body's shape
is not documented, so it is read tolerantly, and nothing in it is trusted: a hook is a doorbell, never a data
source. It names at most which job to ask the API about; the answer, through the credit budget, is the truth.

What a hook may cost is bounded three ways, so that a flood of genuine, replayed or forged hooks can neither cause
a 429 nor starve polling:

- a hook without the configured basic auth (compared in constant time) is answered 401 and does nothing else;
- hooks for one job coalesce: while its refresh waits, later hooks join it, and a job is asked at most once per
  `coalesce_seconds` (a hook that arrives after its refresh was sent schedules one more, as the answer may predate
  what the hook announces);
- the doorbell's own token bucket holds `budget_share` of the budget's credits per window (at most 10 at once);
  a hook that finds it empty is answered 202 and counted `throttled`: the next poll brings the news instead.

Hooks for final jobs (replays of a `job.failed`, say) and for jobs nobody watches cost nothing. A hook with no
readable job id (or `cluster.error`, after which jobs on the cluster may have failed) starts the poller's next
cycle now — the cheapest plan for every job that is not final — charged to the bucket at that cycle's cost.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import parse_qsl

from exporter.cache import JobCache
from exporter.config import WebhookConfig
from exporter.fetcher import Stopping
from exporter.webconfig import parse_basic_auth

log = logging.getLogger(__name__)

ACCEPTED, UNAUTHORIZED, INVALID, COALESCED, THROTTLED = OUTCOMES = (
    "accepted",
    "unauthorized",
    "invalid",
    "coalesced",
    "throttled",
)
PING = "ping"
CLUSTER_ERROR = "cluster.error"
EVENT = re.compile(r"(job|cluster)(\.[a-z_]+)?|ping")
ANY_EVENT = re.compile(r"[a-z_]{1,32}(\.[a-z_]{1,32}){0,3}")
"""An event name we do not know yet, under a key that can only mean the event (`event`, `event_name`...)."""
EVENT_ONLY_KEYS = ("event", "event_name", "event_type")
HEX_SHA1 = re.compile(r"[0-9a-fA-F]{40}")
EVENT_KEYS = ("event", "event_name", "event_type", "name", "type", "action")
DIGEST_KEYS = ("hash", "signature", "sha1", "digest")
URL_KEYS = ("url", "hook_url", "target_url")
NESTED_KEYS = ("job", "cluster", "resource", "data", "payload", "object", "hook")
MAX_DEPTH = 4
BURST = 10.0
"""Refreshes the doorbell may start back to back; beyond it, its share of the budget paces them."""
SWEEP = 0
"""The pending-refresh key of a cycle started now (job ids are positive)."""


@dataclass(frozen=True)
class Hook:
    """What a hook's body says, as far as it can be read: hints, never values to publish."""

    event: str | None = None
    job_id: int | None = None
    cluster_id: int | None = None
    digest: str | None = None
    hash_ids: tuple[str, ...] = ()
    urls: tuple[str, ...] = ()


def parse_hook(body: bytes) -> Hook | None:
    """The hook in a JSON or form-encoded body (a form's `payload` field may hold JSON); None when unreadable."""
    try:
        text = body.decode("utf-8-sig").strip()
    except UnicodeDecodeError:
        return None
    if not text:
        return Hook()
    document: Any
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        try:
            document = dict(parse_qsl(text, keep_blank_values=True, strict_parsing=True, max_num_fields=100))
        except ValueError:
            return None
        if isinstance(document.get("payload"), str):
            with contextlib.suppress(ValueError, RecursionError):  # a plain string is a plain string
                document = {**document, "payload": json.loads(document["payload"])}
    if isinstance(document, list) and document:
        document = document[0]
    if not isinstance(document, dict):
        return None
    return _read(document)


def _read(document: Mapping[str, Any]) -> Hook:
    event = next(
        (
            value
            for _, key, value in _fields(document)
            if isinstance(value, str)
            and (
                (key in EVENT_KEYS and EVENT.fullmatch(value))
                or (key in EVENT_ONLY_KEYS and ANY_EVENT.fullmatch(value))
            )
        ),
        None,
    )
    kind = event.partition(".")[0] if event else None
    job_id = _id_under(document, "job", kind)
    cluster_id = _id_under(document, "cluster", kind)
    digest = next(
        (
            value.lower()
            for _, key, value in _fields(document)
            if key in DIGEST_KEYS and isinstance(value, str) and HEX_SHA1.fullmatch(value)
        ),
        None,
    )
    hash_ids = tuple(
        dict.fromkeys(
            str(number)
            for number in (
                _number(document.get("id")),
                _number(document.get("hook_id")),
                job_id,
                cluster_id,
            )
            if number is not None
        )
    )
    urls = tuple(
        dict.fromkeys(
            value for _, key, value in _fields(document) if key in URL_KEYS and isinstance(value, str)
        )
    )
    return Hook(event, job_id, cluster_id, digest, hash_ids, urls)


def _id_under(document: Mapping[str, Any], kind: str, event_kind: str | None) -> int | None:
    """`<kind>_id` anywhere; else the `id` of a `<kind>` object; else, for an event of that kind, the `id` of a
    nested resource object, or the top-level `id`."""
    for _, key, value in _fields(document):
        if key == f"{kind}_id" and _number(value) is not None:
            return _number(value)
    for parent, key, value in _fields(document):
        if key == "id" and parent == kind and _number(value) is not None:
            return _number(value)
    if event_kind != kind:
        return None
    for parent, key, value in _fields(document):
        if key == "id" and parent in NESTED_KEYS and _number(value) is not None:
            return _number(value)
    return _number(document.get("id"))


def _fields(document: Mapping[str, Any], parent: str = "", depth: int = 0) -> Iterator[tuple[str, str, Any]]:
    """(parent key, key, value) of every field in nested objects, breadth first, up to MAX_DEPTH levels."""
    nested: list[tuple[str, Mapping[str, Any]]] = []
    for key, value in document.items():
        if not isinstance(key, str):
            continue
        yield parent, key, value
        if isinstance(value, dict) and depth < MAX_DEPTH:
            nested.append((key, value))
    for key, value in nested:
        yield from _fields(value, key, depth + 1)


def _number(value: object) -> int | None:
    """A positive id, as a JSON number or a string of ASCII digits; anything else is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18:
        value = int(value)
    if isinstance(value, int) and 0 < value < 2**63:
        return value
    return None


def expected_digests(hook: Hook, salt: str, urls: tuple[str, ...]) -> Iterator[str]:
    """SHA-1 of id + event + url + salt, for every id and url the hook may have been hashed with."""
    for hook_id in hook.hash_ids:
        for url in urls:
            yield hashlib.sha1(
                f"{hook_id}{hook.event}{url}{salt}".encode()
            ).hexdigest()  # SHA-1: the API's choice


class Refresher(Protocol):
    """What the doorbell asks of one account's poller."""

    def refresh_job(self, job_id: int) -> None:
        """One GET for the job, through the budget, now (blocks until answered)."""

    def cycle_now(self) -> None:
        """Start the next refresh cycle without waiting for the interval."""

    def cycle_credits(self) -> int:
        """What the next cycle is planned to cost."""


class Doorbell:
    """One account's doorbell: checks and counts hooks, and refreshes in its own thread so that answering a hook
    never waits for the API (nor holds up /metrics)."""

    def __init__(
        self,
        config: WebhookConfig,
        budget_limit: int,
        window_seconds: float,
        cache: JobCache,
        poller: Refresher,
        *,
        watching_all_runs: bool = False,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._cache = cache
        self._poller = poller
        self._clock = clock
        self._wall_clock = wall_clock
        self._lock = threading.Condition()
        self._pending: dict[int, float] = {}  # job id (or SWEEP) → when its refresh is due
        self._sent: dict[int, float] = {}  # job id (or SWEEP) → when its last refresh was started
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="doorbell", daemon=True)
        self._tokens = BURST
        self._tokens_at = clock()
        self._told_forged = False
        self.configure(config, budget_limit, window_seconds, watching_all_runs=watching_all_runs)
        cache.enable_webhook(OUTCOMES, wall_clock())

    def configure(
        self, config: WebhookConfig, budget_limit: int, window_seconds: float, *, watching_all_runs: bool
    ) -> None:
        """Take a (re)loaded `webhook:` section and budget; what is pending stays pending."""
        with self._lock:
            self.config = config
            self._watching_all_runs = watching_all_runs  # discovery: an unknown job id may be a new run
            credits = max(1.0, config.budget_share * budget_limit)
            self._burst = min(BURST, credits)
            self._rate = credits / window_seconds
            self._tokens = min(self._tokens, self._burst)
            self._expected = f"{config.username}:{config.password}".encode("latin-1")

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with self._lock:
            self._lock.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    # --- answering a hook (HTTP threads) ----------------------------------------------------------------------

    def authorized(self, header: str | None) -> bool:
        """The configured user and password, compared in constant time (as one `user:password` string)."""
        credentials = parse_basic_auth(header)
        given = credentials[2] if credentials is not None else b""
        return hmac.compare_digest(given, self._expected) and credentials is not None

    def refuse(self, outcome: str) -> None:
        """Count a hook refused before its body was read (unauthorized, too large)."""
        self._cache.record_webhook(outcome, self._wall_clock(), accepted=False)

    def ring(self, body: bytes, host: str | None) -> HTTPStatus:
        """Read an authorized hook's body and act on it; the answer and the counted outcome."""
        hook = parse_hook(body)
        if hook is None:
            return self._answer(INVALID, HTTPStatus.BAD_REQUEST)
        if not self._genuine(hook, host):
            # Said once at warning (a wrong salt or url refuses every hook), then at debug: the counter counts.
            log.log(
                logging.DEBUG if self._told_forged else logging.WARNING,
                "web hook refused: its hash does not match webhook.salt_file (or webhook.url); counted as %s",
                UNAUTHORIZED,
            )
            self._told_forged = True
            return self._answer(UNAUTHORIZED, HTTPStatus.UNAUTHORIZED)
        target = self._target(hook)
        if target is None:
            return self._answer(ACCEPTED, HTTPStatus.OK)
        return self._answer(*self._queue(target))

    def _answer(self, outcome: str, status: HTTPStatus) -> HTTPStatus:
        self._cache.record_webhook(outcome, self._wall_clock(), accepted=status < 300)
        return status

    def _genuine(self, hook: Hook, host: str | None) -> bool:
        """Without a salt, or a hash in the body, there is nothing more to check (the docs make it optional)."""
        salt = self.config.salt
        if salt is None or hook.digest is None:
            return True
        urls = (self.config.url,) if self.config.url else hook.urls + self._own_urls(host)
        digest = hook.digest
        return any(hmac.compare_digest(digest, expected) for expected in expected_digests(hook, salt, urls))

    def _own_urls(self, host: str | None) -> tuple[str, ...]:
        if not host:
            return ()
        return tuple(f"{scheme}://{host}{self.config.path}" for scheme in ("https", "http"))

    def _target(self, hook: Hook) -> int | None:
        """The job to refresh, SWEEP for every job that is not final, or None when there is nothing to do."""
        if hook.event == PING:
            return None
        if hook.event is not None and hook.event.startswith("cluster"):
            return SWEEP if hook.event == CLUSTER_ERROR else None
        if hook.job_id is None:
            known = hook.event is None or EVENT.fullmatch(hook.event)
            return SWEEP if known else None  # an event we do not know, about nothing we can name
        state = self._cache.get(hook.job_id)
        if state is None:
            return SWEEP if self._watching_all_runs else None
        if state.is_final:
            return None  # final is final: a replayed `job.failed` costs nothing
        return hook.job_id

    def _queue(self, target: int) -> tuple[str, HTTPStatus]:
        """Join a pending refresh, or take credits from the bucket and schedule one."""
        with self._lock:
            if target in self._pending:
                return COALESCED, HTTPStatus.ACCEPTED
            now = self._clock()
            self._tokens = min(self._burst, self._tokens + (now - self._tokens_at) * self._rate)
            self._tokens_at = now
            if self._tokens < 1.0:
                return THROTTLED, HTTPStatus.ACCEPTED
            # A cycle is charged what it is planned to cost; the bucket may go below zero for it, and refills.
            self._tokens -= float(max(1, self._poller.cycle_credits())) if target == SWEEP else 1.0
            last = self._sent.get(target)
            self._pending[target] = now if last is None else max(now, last + self.config.coalesce_seconds)
            self._lock.notify_all()
            return ACCEPTED, HTTPStatus.ACCEPTED

    # --- refreshing (the doorbell's thread) -------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            target = self._next_due()
            if target is None:
                continue
            try:
                if target == SWEEP:
                    self._poller.cycle_now()
                else:
                    self._poller.refresh_job(target)
            except Stopping:
                log.debug("web hook refresh of %s interrupted by a reload or stop", target)
            except Exception:  # a bug must not silence the doorbell: the next hook tries again
                log.exception("web hook refresh failed")

    def _next_due(self) -> int | None:
        """Wait for the next due refresh and take it off the list (None when woken for another reason)."""
        with self._lock:
            now = self._clock()
            horizon = now - self.config.coalesce_seconds
            for key in [key for key, sent in self._sent.items() if sent < horizon]:
                del self._sent[key]  # only the last window's refreshes matter for coalescing
            if not self._pending:
                self._lock.wait(1.0)
                return None
            target, due = min(self._pending.items(), key=lambda item: item[1])
            if due > now:
                self._lock.wait(due - now)
                return None
            del self._pending[target]
            self._sent[target] = now
            return target
