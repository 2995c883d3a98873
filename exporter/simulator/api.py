"""The API's behaviour, decided without touching a socket: request in, decision (reply or sabotage) out.

Order of checks, as a client experiences them: key (401) -> Accept header (406) -> method (405) -> injected
faults -> credits (429) -> the endpoint itself (200/400/404). Keeping this free of I/O makes the contract read
top to bottom in ``Api.decide`` and leaves ``http`` with nothing but sending bytes.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Final

from exporter.simulator.clock import REDATING_KINDS, redated
from exporter.simulator.faults import NETWORK_KINDS, Fault, FaultBook
from exporter.simulator.ledger import CreditLedger
from exporter.simulator.listing import LIST_ITEM_MODES, BadQuery, link_header, list_item, parse_list_query
from exporter.simulator.pipelines import CLUSTER_STATUSES, SCHEDULE_STATUSES, PipelineStore
from exporter.simulator.shapes import NOT_JSON_BODY, oversized, wrong_shape
from exporter.simulator.statuses import STATUSES
from exporter.simulator.world import World

JSON_TYPE: Final = "application/vnd.xplenty+json; version=2; charset=utf-8"
MEDIA_TYPE: Final = "application/vnd.xplenty+json"
CHARGED_ENDPOINTS: Final = frozenset({"get_job", "list_jobs", "list_schedules", "list_clusters"})
LISTED: Final = {"schedules": SCHEDULE_STATUSES, "clusters": CLUSTER_STATUSES}  # one credit a page, like jobs
_DIGITS = re.compile(r"\A[0-9]+\Z")

Headers = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Reply:
    """A complete HTTP answer. ``stream`` (with ``length``, or chunked when ``length`` is None) replaces
    ``body`` for answers too big to build in memory."""

    status: int
    headers: Headers = ()
    body: bytes = b""
    stream: Iterator[bytes] | None = None
    length: int | None = None


@dataclass(frozen=True)
class Sabotage:
    """A network-level fault. ``reply`` is what a healthy server would have sent; ``reset_mid_body`` and
    ``trickle`` send part of it."""

    kind: str
    reply: Reply
    interval: float = 1.0


@dataclass(frozen=True)
class Decision:
    """The outcome plus what the request log needs to know about it."""

    outcome: Reply | Sabotage
    endpoint: str
    charged: bool
    authorization_ok: bool

    @property
    def logged_status(self) -> int:
        """The status line sent, or 0 when none was (``reset``, ``hang``)."""
        if isinstance(self.outcome, Reply):
            return self.outcome.status
        return (
            self.outcome.reply.status
            if self.outcome.kind in ("reset_mid_body", "trickle", "trickle_head")
            else 0
        )


@dataclass(frozen=True)
class Route:
    """Which endpoint a path names, for which account and (for ``get_job``) which job id, if numeric."""

    endpoint: str
    account: str | None = None
    job_id: int | None = None


def route(path: str) -> Route:
    """Map ``/{account}/api/...`` paths to endpoints; a non-numeric job id is still ``get_job`` (it 404s)."""
    parts = path.rstrip("/").split("/")  # "", account, "api", resource[, id]
    if len(parts) not in (4, 5) or parts[0] != "" or parts[2] != "api":
        return Route("other")
    account, resource = parts[1], parts[3]
    if resource == "jobs" and len(parts) == 5:
        return Route("get_job", account, int(parts[4]) if _DIGITS.match(parts[4]) else None)
    if resource == "jobs":
        return Route("list_jobs", account)
    if resource in LISTED and len(parts) == 4:
        return Route(f"list_{resource}", account)
    if resource == "rate_limit_status" and len(parts) == 4:
        return Route("rate_limit_status", account)
    return Route("other", account)


def accepts_v2(accept: str | None) -> bool:
    """Whether an Accept header asks for API version 2, tolerating spacing, case and a quoted ``"2"``."""
    if not accept:
        return False
    for media_range in accept.split(","):
        media_type, *params = (p.strip() for p in media_range.split(";"))
        if media_type.lower() != MEDIA_TYPE:
            continue
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "version" and value.strip().strip('"') == "2":
                return True
    return False


def basic_auth_user(authorization: str | None) -> str | None:
    """The user name of a Basic credential with an empty password; ``None`` for anything else."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, colon, password = decoded.partition(":")
    return user if colon and not password else None


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _message(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class Api:
    """The simulated API for one account and one key. Thread-safe: it only reads its own attributes and
    delegates state to the (locked) world, ledger and fault book."""

    def __init__(
        self,
        *,
        world: World,
        pipelines: PipelineStore,
        ledger: CreditLedger,
        faults: FaultBook,
        account_id: str,
        api_key: str,
        retry_after_on_429: bool = False,
    ) -> None:
        self.world = world
        self.pipelines = pipelines
        self.ledger = ledger
        self.faults = faults
        self.account_id = account_id
        self._api_key = api_key.encode()
        self.retry_after_on_429 = retry_after_on_429
        self.base_url = "http://127.0.0.1:0"
        self._list_items = "full"

    @property
    def list_items(self) -> str:
        """What GET /jobs items carry: one of `LIST_ITEM_MODES` (see `exporter.simulator.listing`)."""
        return self._list_items

    @list_items.setter
    def list_items(self, mode: str) -> None:
        if mode not in LIST_ITEM_MODES:
            raise ValueError(f"list_items must be one of {LIST_ITEM_MODES}, got {mode!r}")
        self._list_items = mode

    def _authorized(self, authorization: str | None) -> bool:
        user = basic_auth_user(authorization)
        return user is not None and hmac.compare_digest(user.encode(), self._api_key)

    def _rate_headers(self, remaining: int | None = None) -> Headers:
        left = self.ledger.remaining() if remaining is None else remaining
        return (("X-RateLimit-Limit", str(self.ledger.credits)), ("X-RateLimit-Remaining", str(left)))

    def _json(self, status: int, value: Any, extra: Headers = (), *, rate: bool = True) -> Reply:
        headers: Headers = (("Content-Type", JSON_TYPE), *extra)
        if rate:
            headers += self._rate_headers()
        return Reply(status, headers, _json_bytes(value))

    def _too_many(self, retry_after: str | None) -> Reply:
        extra: Headers = (("Retry-After", retry_after),) if retry_after is not None else ()
        return self._json(429, {"message": "Rate limit exceeded"}, extra)

    def decide(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        *,
        accept: str | None,
        authorization: str | None,
    ) -> Decision:
        """Everything the server does with one request, in the order the real service appears to do it."""
        where = route(path)

        def done(outcome: Reply | Sabotage, *, charged: bool = False, auth: bool = True) -> Decision:
            return Decision(outcome, where.endpoint, charged, auth)

        if not self._authorized(authorization):
            challenge: Headers = (("WWW-Authenticate", 'Basic realm="Integrate.io API"'),)
            return done(self._json(401, {"message": "Unauthorized"}, challenge, rate=False), auth=False)
        if not accepts_v2(accept):
            message = f"Not acceptable: send 'Accept: {MEDIA_TYPE}; version=2'"
            return done(self._json(406, {"message": message}))
        if method != "GET":
            return done(self._json(405, {"message": "Method not allowed"}, (("Allow", "GET"),)))

        fault = self.faults.peek(where.endpoint, where.job_id)
        if fault is not None and not fault.charged:
            if self.faults.consume(fault):
                return done(self._uncharged_fault(fault, where, path, query))
            fault = None
        charged = where.endpoint in CHARGED_ENDPOINTS
        if charged and not self.ledger.try_charge():
            retry_after = str(self.ledger.seconds_until_credit()) if self.retry_after_on_429 else None
            return done(self._too_many(retry_after))
        if fault is not None and not self.faults.consume(fault):
            fault = None
        status, value, extra = self._answer(where, path, query)
        if fault is None:
            return done(self._json(status, value, extra), charged=charged)
        if fault.kind in REDATING_KINDS:  # the healthy answer, status and all, with other dates
            return done(self._json(status, redated(value, fault.kind, fault.params), extra), charged=charged)
        return done(self._charged_fault(fault, value, extra), charged=charged)

    def _answer(self, where: Route, path: str, query: Mapping[str, str]) -> tuple[int, Any, Headers]:
        """The healthy answer of an endpoint: status, JSON value and extra headers (``Link``)."""
        if where.endpoint == "other":
            return 404, {"message": "Not found."}, ()
        if where.account != self.account_id:
            return 404, {"message": f"Account {where.account!r} not found."}, ()
        if where.endpoint == "rate_limit_status":
            return 200, {"limits": {"limit": self.ledger.credits, "remaining": self.ledger.remaining()}}, ()
        if where.endpoint == "get_job":
            payload = self.world.payload(where.job_id) if where.job_id is not None else None
            if payload is None:
                return 404, {"message": "Item not found."}, ()
            return 200, payload, ()
        resource = where.endpoint.removeprefix("list_")
        try:
            parsed = parse_list_query(query, LISTED.get(resource, STATUSES))
        except BadQuery as exc:
            return 400, {"message": str(exc)}, ()
        if resource in LISTED:
            jobs, total = self.pipelines.select(resource, parsed)
        else:
            jobs, total = self.world.select(parsed)
        link = link_header(f"{self.base_url}{path}", query, parsed, total)
        items = [list_item(job, self._list_items) for job in jobs]
        return 200, items, (("Link", link),) if link else ()

    def _uncharged_fault(
        self, fault: Fault, where: Route, path: str, query: Mapping[str, str]
    ) -> Reply | Sabotage:
        """Faults that cost the client nothing: network sabotage, an injected 429, an injected 401."""
        if fault.kind in NETWORK_KINDS:
            status, value, extra = self._answer(where, path, query)
            return Sabotage(
                fault.kind, self._json(status, value, extra), float(fault.params.get("interval", 1.0))
            )
        if fault.kind == "rate_limited":
            return self._too_many(fault.params["retry_after"])
        return self._status_fault(fault)

    def _status_fault(self, fault: Fault) -> Reply:
        code: int = fault.params["code"]
        body: str | None = fault.params["body"]
        message: str = fault.params["message"] or _message(code)
        raw = body.encode() if body is not None else _json_bytes({"message": message})
        headers: Headers = (("Content-Type", JSON_TYPE),)
        if code != 401:
            headers += self._rate_headers()
        return Reply(code, headers, raw)

    def _charged_fault(self, fault: Fault, value: Any, extra: Headers) -> Reply:
        """Faults that answer at the HTTP level and cost a credit like any answer would."""
        if fault.kind == "status":
            return self._status_fault(fault)
        if fault.kind == "not_json":
            headers: Headers = (("Content-Type", "text/html; charset=utf-8"), *self._rate_headers())
            return Reply(200, headers, NOT_JSON_BODY)
        if fault.kind == "wrong_shape":
            return self._json(200, wrong_shape(value, fault.params["shape"]), extra)
        if fault.kind == "rate_headers":
            healthy = dict(self._rate_headers())
            rate = tuple(
                (name, healthy[name] if given is None else given)
                for name, given in (
                    ("X-RateLimit-Limit", fault.params["limit"]),
                    ("X-RateLimit-Remaining", fault.params["remaining"]),
                )
            )
            return self._json(200, value, (*extra, *rate), rate=False)
        if fault.kind == "deep_json":
            depth: int = fault.params["depth"]
            headers = (("Content-Type", JSON_TYPE), *self._rate_headers())
            return Reply(200, headers, b"[" * depth + b"]" * depth)
        if fault.kind == "link":
            return self._json(200, value, (("Link", f'<{fault.params["url"]}>; rel="next"'),))
        if fault.kind == "proxied_links":
            origin: str = fault.params["origin"]
            return self._json(200, value, tuple((k, v.replace(self.base_url, origin)) for k, v in extra))
        if fault.kind == "oversized":
            length, chunks = oversized(value, fault.params["size_bytes"])
            headers = (("Content-Type", JSON_TYPE), *self._rate_headers())
            return Reply(200, headers, stream=chunks, length=None if fault.params["chunked"] else length)
        location: str = fault.params["location"]
        code: int = fault.params["code"]
        return self._json(code, {"message": _message(code)}, (("Location", location),))
