"""The API key's credit ledger (a sliding window), and a neighbour that spends from it.

The real API allots 5,000 credits per hour per user, shared by every client using that key. A sliding window
of charge times is the simplest model that makes "remaining" recover gradually as old calls age out, which is
what a budget-planning client must cope with; a fixed hourly reset would hide bugs in that planning.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable


class CreditLedger:
    """``credits`` per ``window_seconds``, each charged call occupying one credit for one window. Thread-safe."""

    def __init__(
        self, credits: int, window_seconds: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if credits < 0:
            raise ValueError(f"credits must not be negative, got {credits}")
        if window_seconds <= 0:
            raise ValueError(f"window_seconds must be positive, got {window_seconds}")
        self.credits = credits
        self.window_seconds = window_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._charges: deque[float] = deque()

    def _expire(self, now: float) -> None:
        horizon = now - self.window_seconds
        while self._charges and self._charges[0] <= horizon:
            self._charges.popleft()

    def try_charge(self) -> bool:
        """Spend one credit if one is left; ``False`` (nothing spent) when the window is exhausted."""
        with self._lock:
            now = self._clock()
            self._expire(now)
            if len(self._charges) >= self.credits:
                return False
            self._charges.append(now)
            return True

    def remaining(self) -> int:
        """Credits left in the window right now."""
        with self._lock:
            self._expire(self._clock())
            return self.credits - len(self._charges)

    def seconds_until_credit(self) -> int:
        """Whole seconds until at least one credit is free again (0 if one is free now); for Retry-After."""
        with self._lock:
            now = self._clock()
            self._expire(now)
            if len(self._charges) < self.credits or not self._charges:
                return 0
            return max(1, math.ceil(self._charges[0] + self.window_seconds - now))


class Neighbour:
    """Another client of the same key, spending ``credits_per_hour`` (scaled to the window) evenly.

    It owes credits by elapsed time rather than sleeping a fixed interval per credit, so high rates in tiny
    test windows stay accurate without a busy loop. Refused charges are not retried: a neighbour that gets a
    429 simply loses that call, as a well-behaved client would.
    """

    _MIN_WAIT = 0.01

    def __init__(self, ledger: CreditLedger, credits_per_hour: float) -> None:
        if credits_per_hour <= 0:
            raise ValueError(f"credits_per_hour must be positive, got {credits_per_hour}")
        self._ledger = ledger
        self._interval = 3600.0 / credits_per_hour
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sim-neighbour", daemon=True)
        self.spent = 0

    def start(self) -> None:
        """Begin spending; the first credit goes one interval from now."""
        self._thread.start()

    def stop(self) -> None:
        """Stop spending and wait (briefly) for the thread to end."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)

    def _run(self) -> None:
        started = time.monotonic()
        attempted = 0
        while True:
            due_at = started + (attempted + 1) * self._interval
            if self._stop.wait(max(self._MIN_WAIT, due_at - time.monotonic())):
                return
            owed = int((time.monotonic() - started) / self._interval) - attempted
            for _ in range(owed):
                attempted += 1
                if self._ledger.try_charge():
                    self.spent += 1
