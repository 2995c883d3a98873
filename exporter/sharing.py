"""Sharing the key: what the key's other clients spend, and the pace that leaves them theirs and us ours.

The API reports one number for every client of a key, `X-RateLimit-Remaining`. Our own log of sends says how
much of the window's spending was ours, so the rest was someone else's (the web app, a scheduler, a script):

    foreign credits in the window = key's limit − remaining − our sends in the window

That count is what others hold *now*; what matters for pacing is what they will hold over the next window.
In a steady state the two are equal. When a neighbour starts (or speeds up) abruptly its count rises for a
whole window before it levels off, and pacing from the count alone would keep spending too fast for that
window, run the key down to the reserve and then hold with nothing refreshed — the dark gap this module
exists to prevent. So the estimate also takes the recent *rise* of the count: a count rising by `d` credits
per second means others send at least `d` per second (their old credits also leave the window), which is
`d × window` over a window. The projection is the larger of the two; a falling count is not trusted until it
has fallen (a neighbour that pauses for a minute may come back), which errs on the side of the reserve. The rise
is fitted over a quarter of the window, and over its last sixteenth for a neighbour *starting* (a count still far
below the pace it rises at): an hour's key may run down to its reserve within minutes of such a start, and the
long fit needs a quarter of an hour to see it whole.

The pace decision (`share`) is then: our budget (the configured credits less the reserve) minus the projected
foreign spend, rounded down to a whole step of a twentieth of it. Steps make the
refresh interval degrade evenly (×20/19, ×20/18, … ×20) rather than jitter with every reading, and the
smallest step keeps a slow heartbeat of refreshes even when others take the whole key — the budget's hold at
the reserve still guarantees we never dig into it.

Pure: no I/O, no clock of its own; `CreditBudget` feeds it and asks it.
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass

STEPS = 20  # the pace moves in twentieths of our budget: even degradation, no jitter
TREND_SPAN = 1 / 8  # of the window: the level is the mean of one span, the rise a fit over two
# ... and a fit over this short span too: a neighbour that starts abruptly is seen after a few minutes of an
# hour's window, before the key has run down to the reserve; the long fit sees a slower, steadier rise.
RISE_SPAN = 1 / 16
# The short fit is over the highest reading of each of this many slices of its span: a reading is only ever
# *low* (our requests in flight count as ours before the API has charged them), so the top of each slice is
# the count without that noise, and the dips and recoveries of a busy minute are not taken for a rise.
RISE_BUCKETS = 4
# The short fit is for a neighbour *starting*: its count is still far below the pace it rises at. Near that
# pace already (a steady neighbour whose count wobbles by a few credits), a few minutes' rise says little, and
# trusting it would make the share, and with it the interval, jump with every wobble; the long fit judges.
ONSET_LEVEL = 0.5
MIN_RISE = 2  # credits: a rise smaller than this (plus 2 % of the key) is noise in the readings
# A step is lost only to a foreign spend of more than a quarter step beyond it: a reading is off by a credit or
# two (a request of ours in flight, one that left our log a moment before the API's window), and a budget of
# 5,000 must not drop a step for that.
NOISE_STEPS = 0.25


@dataclass(frozen=True)
class Reading:
    """One reading of the key: when, the foreign credits then in the window."""

    at: float
    foreign: int


class ForeignSpend:
    """Estimates the credits the key's other clients spend per window, from readings of the key."""

    def __init__(self, window_seconds: float) -> None:
        self._window = window_seconds
        self._readings: collections.deque[Reading] = collections.deque()
        self._limit: int | None = None

    @property
    def window_seconds(self) -> float:
        return self._window

    def observe(self, now: float, limit: int, remaining: int, own_in_window: int) -> None:
        """A reading of the key (`X-RateLimit-*` or `rate_limit_status`) taken when we had `own_in_window`
        credits in the window."""
        self._limit = limit
        self._readings.append(Reading(now, max(0, limit - remaining - own_in_window)))
        horizon = now - 2 * TREND_SPAN * self._window
        while len(self._readings) > 1 and self._readings[0].at < horizon:
            self._readings.popleft()

    def estimate(self, now: float) -> float | None:
        """Projected foreign credits over the next window, or None before any reading."""
        if not self._readings or self._limit is None:
            return None
        span = TREND_SPAN * self._window
        recent = [r.foreign for r in self._readings if r.at > now - span]
        level = _mean(recent) if recent else float(self._readings[-1].foreign)
        projected = level
        short = RISE_SPAN * self._window
        fits = (
            (short, _tops([r for r in self._readings if r.at > now - short], short / RISE_BUCKETS), True),
            (2 * span, [r for r in self._readings if r.at > now - 2 * span], False),
        )
        for fitted, readings, onset_only in fits:
            slope = _slope(readings)
            pace = slope * self._window
            if slope * fitted <= MIN_RISE + 0.02 * self._limit:
                continue  # no rise beyond the noise of the readings
            if onset_only and level >= ONSET_LEVEL * pace:
                continue  # not a neighbour starting: the count is already near that pace
            projected = max(projected, pace)
        return min(float(self._limit), projected)


def share(allowed: int, foreign: float | None) -> int:
    """Credits per window we may spend: our budget (`credits × (1 − reserve)`, the reserve already set aside)
    less the foreign spend, in whole steps of `allowed / STEPS`, at least one step and at most `allowed`.

    The budget, not the key's reported limit, is the base: a key whose real limit is below the configured
    credits is caught by the budget's hold at the reserve, and a configured budget stays the user's ceiling."""
    if foreign is None:
        return allowed
    step = allowed / STEPS
    steps = min(STEPS, max(1, math.floor((allowed - foreign) / step + NOISE_STEPS)))
    return max(1, math.floor(steps * step + 1e-9))


def _mean(values: list[int]) -> float:
    return sum(values) / len(values)


def _tops(readings: list[Reading], slice_seconds: float) -> list[Reading]:
    """The highest reading of each `slice_seconds` slice of time, in order."""
    tops: dict[int, Reading] = {}
    for reading in readings:
        key = math.floor(reading.at / slice_seconds)
        if key not in tops or reading.foreign > tops[key].foreign:
            tops[key] = reading
    return [tops[key] for key in sorted(tops)]


def _slope(readings: list[Reading]) -> float:
    """Least-squares credits per second over the readings (0 for fewer than three, or all at one moment):
    steadier than the difference of two readings, each off by a credit or two."""
    if len(readings) < 3:
        return 0.0
    mean_at = sum(r.at for r in readings) / len(readings)
    mean_foreign = sum(r.foreign for r in readings) / len(readings)
    spread = sum((r.at - mean_at) ** 2 for r in readings)
    if spread == 0.0:
        return 0.0
    return sum((r.at - mean_at) * (r.foreign - mean_foreign) for r in readings) / spread
