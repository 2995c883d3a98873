"""Web hooks fired by the simulated account on job transitions, as Integrate.io's would be.

Integrate.io fires a web hook "as a HTTP request to specified URL when state of resource (cluster or job) is
changed", with optional basic auth and "hash which is generated using SHA-1 from string created by concatenation
of the following fields: id, event name, url, salt" (`resources/hooks/web-hook.md` in
xplenty/xplenty-api-doc-v2; the events are listed by `sections/list-hook-events.md`, and `sections/ping-hook.md`
fires a test `ping`). The body's shape is not documented; this one is a plausible guess, and the exporter reads
it (like any other) tolerantly:

    {"id": 1, "event": "job.failed", "url": "<the hook's URL>", "hash": "<sha1 of id+event+url+salt>",
     "job": {<the job as GET /jobs/{id} renders it>}}

where `id` is the hook's id, as in the hook resource. `hash` is present only when a salt is set. Hooks are sent
one at a time from their own thread, in the order of the transitions; a hook that fails is logged, not retried.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

log = logging.getLogger(__name__)

EVENTS = {
    "idle": "job.submitted",
    "pending": "job.submitted",
    "queued": "job.submitted",
    "running": "job.started",
    "completed": "job.completed",
    "failed": "job.failed",
    "stopped": "job.stopped",
}
"""The job events of the hook documentation, by the status a transition reaches (`stopping` has none)."""


@dataclass(frozen=True)
class HookTarget:
    """Where the account's web hook points, and how it authenticates (the hook's `settings` and `salt`)."""

    url: str
    username: str | None = None
    password: str | None = None
    salt: str | None = None
    hook_id: int = 1


@dataclass(frozen=True)
class SentHook:
    """One hook fired: its event, job, and the HTTP status it got (0 when the request failed)."""

    event: str
    job_id: int | None
    status: int


class HookSender:
    """Fires the hooks of one target from a thread of its own; `fire()` only queues, so it never blocks."""

    def __init__(self, target: HookTarget, payload: Callable[[int], dict[str, Any] | None]) -> None:
        self.target = target
        self._payload = payload
        self._queue: queue.Queue[tuple[str, int | None] | None] = queue.Queue()
        self._session = requests.Session()
        self._lock = threading.Lock()
        self._sent: list[SentHook] = []
        self._thread = threading.Thread(target=self._run, name="sim-hooks", daemon=True)
        self._thread.start()

    def transition(self, job_id: int, status: str) -> None:
        """A job reached `status`: fire its event, if it has one."""
        event = EVENTS.get(status)
        if event is not None:
            self._queue.put((event, job_id))

    def ping(self) -> None:
        """The API's ping (`GET /hooks/{id}/ping`): a test notification."""
        self._queue.put(("ping", None))

    @property
    def sent(self) -> list[SentHook]:
        with self._lock:
            return list(self._sent)

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5.0)
        self._session.close()

    def body(self, event: str, job_id: int | None) -> dict[str, Any]:
        target = self.target
        document: dict[str, Any] = {"id": target.hook_id, "event": event, "url": target.url}
        if target.salt is not None:
            text = f"{target.hook_id}{event}{target.url}{target.salt}"
            document["hash"] = hashlib.sha1(text.encode()).hexdigest()  # SHA-1: the documented hash
        if job_id is not None:
            document["job"] = self._payload(job_id) or {"id": job_id}
        return document

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            event, job_id = item
            status = self._post(self.body(event, job_id))
            with self._lock:
                self._sent.append(SentHook(event, job_id, status))

    def _post(self, document: dict[str, Any]) -> int:
        headers = {}
        if self.target.username is not None:
            raw = f"{self.target.username}:{self.target.password or ''}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(raw).decode("ascii")
        try:
            return self._session.post(self.target.url, json=document, headers=headers, timeout=10).status_code
        except requests.RequestException as error:
            log.warning("web hook to %s failed: %s", self.target.url, type(error).__name__)
            return 0
