"""The credit ledger: how many API calls the exporter may send, now and over the window.

Three things limit us, and the ledger answers "may I send one more request now?" for all of them together:

1. Our own share. In any sliding window of `window_seconds` we send at most `credits × (1 − reserve)` requests,
   retries included. A log of send times is the only way to make that a guarantee for *every* window rather
   than for fixed buckets; at 5,000 entries it costs nothing.
2. The key's real remaining credits. The same key is used by the web app, the CLI and schedulers, and the API
   reports what is left to all of them in `X-RateLimit-Remaining`. We never dig into the `reserve` share the
   API reports as left: when what the API says is left falls to `credits × reserve`, we hold until it recovers.
3. A 429 (or a refused key). It means our picture was wrong, so everything pauses, with a backoff that doubles
   on each one in a row (or the server's Retry-After, if it sends a longer one), capped so that a daemon is never
   parked for hours.

On top of these hard limits, a token bucket smooths the pace: at most `burst` requests back to back, then the
average rate of our *share* of the key. A restart with a thousand jobs to fetch, or a cycle of many single GETs,
is spread out instead of arriving at the API as a stampede.

The share (`exporter.sharing`) is what the key sustainably leaves us once its other clients have spent theirs:
every reading of the key's remaining credits, set against our own log of sends, tells what the others spend.
The poller stretches its interval to the share and the token bucket spreads requests at its rate, so that a
busy neighbour makes every refresh a little later instead of letting us run the key down to the reserve and
then hold with nothing refreshed.

The ledger does no I/O and never sleeps: callers ask `wait_seconds()` and sleep on their own stop event.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from exporter.config import RateLimitConfig
from exporter.sharing import ForeignSpend, share


@dataclass(frozen=True)
class BudgetSnapshot:
    """What the ledger looks like at one moment, for /metrics and the status page."""

    limit: int
    window_seconds: float
    spent: int
    remaining: int
    backoff_seconds: float
    api_limit: int | None
    api_remaining: int | None
    held_by_api: bool
    foreign_spend: float | None = None  # credits per window the key's other clients spend, as estimated
    share: int | None = None  # credits per window we pace ourselves to: the limit, less what others spend


class CreditBudget:
    """Thread-safe sliding-window credit ledger with API feedback and 429 backoff."""

    def __init__(self, config: RateLimitConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._sent: collections.deque[float] = collections.deque()
        self._paused_until = 0.0
        self._consecutive_refusals = 0
        self._probe_in_flight = False
        self._tokens = 0.0
        self._tokens_at = clock()
        self._api_limit: int | None = None
        self._api_remaining: int | None = None
        self._foreign: ForeignSpend | None = None
        self._sent_total = 0
        self._foreign_spend: float | None = None
        self.configure(config)

    def configure(self, config: RateLimitConfig) -> None:
        """Apply a (re)loaded rate_limit section; the log of past sends is kept, so a reload cannot overspend."""
        with self._lock:
            self._limit = config.allowed
            self._window = config.window_seconds
            self._credits = config.credits
            self._siblings_allowed = config.siblings_allowed
            self._reserve = config.reserve
            # Requests reach the API a little after we log them; widening the window by a small guard keeps
            # the guarantee true for the window as the API (or a test's request log) measures it.
            self._guard = min(2.0, 0.02 * config.window_seconds)
            # A first 429 pauses for 1/60 of the window (1 min an hour), doubling up to a quarter window.
            self._backoff_base = max(1.0, config.window_seconds / 60.0)
            self._backoff_cap = max(self._backoff_base, min(900.0, config.window_seconds / 4.0))
            if self._foreign is None or self._foreign.window_seconds != config.window_seconds:
                self._foreign = ForeignSpend(config.window_seconds)  # readings of another window mean nothing
                self._foreign_spend = None
            self._set_share_locked()
            self._tokens = min(self._burst, max(self._tokens, self._burst if not self._sent else 0.0))

    def _set_share_locked(self) -> None:
        # The other shards of this account spend the same key within their own split: only what others spend
        # beyond that is a neighbour's.
        foreign = self._foreign_spend
        beyond_siblings = None if foreign is None else max(0.0, foreign - self._siblings_allowed)
        self._share = share(self._limit, beyond_siblings)
        self._rate = self._share / self._window
        self._burst = float(max(1, min(self._limit, max(10, self._limit // 20))))
        if self._share < self._limit:
            # Sharing a busy key: a burst saved up at the old pace must not be spent at once at the new one.
            self._burst = max(1.0, min(self._burst, self._share / 10))
            self._tokens = min(self._tokens, self._burst)

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def window_seconds(self) -> float:
        return self._window

    @property
    def share(self) -> int:
        """Credits per window we pace ourselves to: `limit`, less what the key's other clients spend."""
        with self._lock:
            return self._share

    @property
    def sent_total(self) -> int:
        """Requests sent since start: what a stretch of work really cost is the difference of two readings."""
        with self._lock:
            return self._sent_total

    @property
    def foreign_spend(self) -> float | None:
        """Credits per window the key's other clients spend, as estimated; None before the API told us."""
        with self._lock:
            return self._foreign_spend

    def try_spend(self) -> bool:
        """Take one credit if every limit allows a request now; the caller sends exactly one request on True."""
        with self._lock:
            now = self._clock()
            if self._wait_locked(now) > 0.0:
                return False
            if self._consecutive_refusals:
                # After a refusal one request probes the API; the others wait for its answer, so that the
                # requests queued during the pause do not all meet the same 429 or 401 at once.
                self._probe_in_flight = True
            self._sent.append(now)
            self._sent_total += 1
            self._tokens -= 1.0
            if self._api_remaining is not None:
                self._api_remaining -= 1  # until the answer's header corrects it
            return True

    def wait_seconds(self) -> float:
        """How long until try_spend can succeed, if nothing else changes; 0 when it can now."""
        with self._lock:
            return self._wait_locked(self._clock())

    def _wait_locked(self, now: float) -> float:
        self._forget_old(now)
        self._tokens = min(self._burst, self._tokens + (now - self._tokens_at) * self._rate)
        self._tokens_at = now
        waits = [self._paused_until - now, (1.0 - self._tokens) / self._rate]
        if self._probe_in_flight:
            waits.append(0.1)
        if len(self._sent) >= self._limit:
            # The oldest send that still counts must leave the window before another fits.
            waits.append(self._sent[len(self._sent) - self._limit] + self._window + self._guard - now)
        if self._held_by_api_locked():
            waits.append(self._backoff_base)  # until a rate-limit reading shows the key has recovered
        return max(0.0, *waits)

    def _forget_old(self, now: float) -> None:
        horizon = now - self._window - self._guard
        while self._sent and self._sent[0] <= horizon:
            self._sent.popleft()

    def _held_by_api_locked(self) -> bool:
        # The reserve is a share of the key's real limit when the API has told us it, else of our config.
        floor = int((self._api_limit or self._credits) * self._reserve)
        return self._api_remaining is not None and self._api_remaining <= floor

    def observe_api(self, limit: int | None, remaining: int | None) -> None:
        """Record the API's own view of the key's credits (response headers or rate_limit_status)."""
        with self._lock:
            if limit is not None and limit >= 0:
                self._api_limit = limit
            if remaining is not None and remaining >= 0:
                self._api_remaining = remaining
                if self._api_limit is not None and self._foreign is not None:
                    now = self._clock()
                    own = sum(1 for sent in self._sent if sent > now - self._window)
                    self._foreign.observe(now, self._api_limit, remaining, own)
                    self._foreign_spend = self._foreign.estimate(now)
                    self._set_share_locked()

    def held_by_api(self) -> bool:
        """True while other clients of the key have left no more than the reserve: we wait for it to recover."""
        with self._lock:
            return self._held_by_api_locked()

    def record_accepted(self) -> None:
        """An answer that was neither a 429 nor a refused key: the next refusal backs off from the start."""
        with self._lock:
            self._consecutive_refusals = 0
            self._probe_in_flight = False

    def record_refused(self, retry_after: float | None = None) -> float:
        """A 429 or a refused key: pause every request; return the pause (our doubling backoff, or the
        server's Retry-After when that is longer, capped)."""
        with self._lock:
            now = self._clock()
            if retry_after is None and now < self._paused_until:
                # Requests already in flight when the pause began: one refusal, not several.
                return self._paused_until - now
            self._consecutive_refusals += 1
            self._probe_in_flight = False
            backoff: float = min(
                self._backoff_cap, self._backoff_base * 2 ** (self._consecutive_refusals - 1)
            )
            # The server's Retry-After may lengthen the pause, never shorten it: a 0 or a date in the past would
            # mean trying again at once into the same 429, and the API blacklists users who keep hitting it.
            pause = backoff if retry_after is None else min(self._backoff_cap, max(retry_after, backoff))
            self._paused_until = max(self._paused_until, now + pause)
            return pause

    @property
    def recheck_seconds(self) -> float:
        """How often to re-read the key's credits while held: the first step of the backoff."""
        return self._backoff_base

    def snapshot(self) -> BudgetSnapshot:
        with self._lock:
            now = self._clock()
            self._forget_old(now)
            spent = sum(1 for sent in self._sent if sent > now - self._window)
            return BudgetSnapshot(
                limit=self._limit,
                window_seconds=self._window,
                spent=spent,
                remaining=max(0, self._limit - spent),
                backoff_seconds=max(0.0, self._paused_until - now),
                api_limit=self._api_limit,
                api_remaining=self._api_remaining,
                held_by_api=self._held_by_api_locked(),
                foreign_spend=self._foreign_spend,
                share=self._share,
            )
