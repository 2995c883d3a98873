"""The credit ledger, driven by a hand-moved clock so that a window of an hour takes no time to test.

The clock is the only stand-in here: it replaces time.monotonic, which no test can move by an hour.
"""

from __future__ import annotations

import pytest

from exporter.budget import CreditBudget
from exporter.config import RateLimitConfig
from tests.support import max_requests_in_any_window


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def spend_all(budget: CreditBudget, clock: Clock, until: float, step: float = 0.01) -> list[float]:
    """Spend whenever the ledger allows, moving the clock in small steps; return the send times."""
    sent = []
    while clock.now < until:
        if budget.try_spend():
            sent.append(clock.now)
        else:
            clock.now += max(step, min(budget.wait_seconds(), 1.0))
    return sent


def test_no_sliding_window_ever_holds_more_than_the_share() -> None:
    clock = Clock()
    budget = CreditBudget(RateLimitConfig(credits=40, window_seconds=30.0, reserve=0.1), clock=clock)
    assert budget.limit == 36
    sent = spend_all(budget, clock, until=clock.now + 300)
    assert max_requests_in_any_window(sent, 30.0) == 36
    # It does not starve either: over ten windows it spends close to ten shares.
    assert len(sent) >= 36 * 9


def test_bursts_are_capped_then_paced() -> None:
    clock = Clock()
    budget = CreditBudget(RateLimitConfig(credits=5000, window_seconds=3600.0, reserve=0.1), clock=clock)
    burst = 0
    while budget.try_spend():
        burst += 1
    assert burst == 225  # 4500 // 20
    assert budget.wait_seconds() == pytest.approx(3600 / 4500)


def test_snapshot_counts_spent_and_remaining() -> None:
    clock = Clock()
    budget = CreditBudget(RateLimitConfig(credits=100, window_seconds=60.0, reserve=0.5), clock=clock)
    for _ in range(5):
        assert budget.try_spend()
    snap = budget.snapshot()
    assert (snap.limit, snap.spent, snap.remaining, snap.window_seconds) == (50, 5, 45, 60.0)
    clock.now += 61.3  # past the window and its guard
    assert budget.snapshot().spent == 0


def test_refusals_pause_everything_with_a_doubling_capped_backoff() -> None:
    clock = Clock()
    budget = CreditBudget(RateLimitConfig(credits=5000, window_seconds=3600.0), clock=clock)
    pauses = []
    for _ in range(7):
        pauses.append(budget.record_refused())
        clock.now += pauses[-1]
    assert pauses == [60.0, 120.0, 240.0, 480.0, 900.0, 900.0, 900.0]
    clock.now -= 900.0
    assert not budget.try_spend()
    assert budget.snapshot().backoff_seconds == 900.0
    budget.record_accepted()
    clock.now += 900.0
    assert budget.record_refused() == 60.0


def test_refusals_of_requests_already_in_flight_count_once() -> None:
    clock = Clock()
    budget = CreditBudget(RateLimitConfig(credits=5000, window_seconds=3600.0), clock=clock)
    assert budget.record_refused() == 60.0
    clock.now += 0.5
    assert budget.record_refused() == 59.5  # a second 401 from the same burst: the same pause
    clock.now += 59.5
    assert budget.record_refused() == 120.0


def test_after_a_pause_one_request_probes_before_the_others_go() -> None:
    clock = Clock()
    budget = CreditBudget(RateLimitConfig(credits=5000, window_seconds=3600.0), clock=clock)
    budget.record_refused()
    clock.now += 60.0
    assert budget.try_spend()
    assert not budget.try_spend()  # the probe's answer is not in yet
    budget.record_accepted()
    assert budget.try_spend()
    assert budget.try_spend()


def test_retry_after_lengthens_the_backoff_but_never_shortens_it_and_is_capped() -> None:
    clock = Clock()
    budget = CreditBudget(RateLimitConfig(credits=5000, window_seconds=3600.0), clock=clock)
    assert budget.record_refused(retry_after=120.0) == 120.0  # longer than our first step of 60 s
    clock.now += 120.0
    assert budget.try_spend()
    assert budget.record_refused(retry_after=5.0) == 120.0  # shorter than our second step: ours (60 × 2)
    clock.now += 120.0
    assert budget.try_spend()
    assert budget.record_refused(retry_after=0.0) == 240.0  # "now" (or a date in the past): ours
    clock.now += 240.0
    assert budget.try_spend()
    assert budget.record_refused(retry_after=999999.0) == 900.0  # capped at a quarter window


def test_the_backoff_is_capped_at_15_minutes_or_its_first_step() -> None:
    """A quarter window, but never more than 15 minutes: a daemon is never parked for hours, and with a day's
    window (first step 24 minutes) the pause does not double at all."""
    for window, expected in (
        (7200.0, [120.0, 240.0, 480.0, 900.0, 900.0]),
        (86400.0, [1440.0, 1440.0, 1440.0]),
        (60.0, [1.0, 2.0, 4.0, 8.0, 15.0, 15.0]),
    ):
        clock = Clock()
        budget = CreditBudget(RateLimitConfig(credits=5000, window_seconds=window), clock=clock)
        pauses = []
        for _ in expected:
            pauses.append(budget.record_refused())
            clock.now += pauses[-1]
        assert pauses == expected, window


def test_a_longer_retry_after_during_a_pause_lengthens_it() -> None:
    """A request already in flight when the pause began comes back 429 with Retry-After: 300: the server's
    word is kept (a second refusal, 300 s from now) rather than folded into the pause already running."""
    clock = Clock()
    budget = CreditBudget(RateLimitConfig(credits=5000, window_seconds=3600.0), clock=clock)
    assert budget.record_refused() == 60.0
    clock.now += 1.0
    assert budget.record_refused(retry_after=300.0) == 300.0
    assert budget.snapshot().backoff_seconds == 300.0
    clock.now += 299.0
    assert not budget.try_spend()
    clock.now += 1.0
    assert budget.try_spend()


def test_the_reserve_is_a_share_of_the_key_s_real_limit_once_the_api_told_it() -> None:
    """Configured for 5,000 credits, the key really has 1,000: its reserve is 100 (10 %), not 500."""
    clock = Clock()
    budget = CreditBudget(RateLimitConfig(credits=5000, window_seconds=3600.0, reserve=0.1), clock=clock)
    budget.observe_api(limit=1000, remaining=102)
    assert budget.try_spend()
    assert not budget.held_by_api()  # 101 left
    assert budget.try_spend()
    assert budget.held_by_api()  # 100: the reserve
    assert not budget.try_spend()


def test_a_key_with_nothing_left_holds_at_once() -> None:
    """The API says 0 remaining (other clients spent it all): a reading like any other, not a missing one."""
    clock = Clock()
    budget = CreditBudget(RateLimitConfig(credits=5000, window_seconds=3600.0, reserve=0.1), clock=clock)
    budget.observe_api(limit=5000, remaining=3000)
    assert budget.try_spend()
    budget.observe_api(limit=5000, remaining=0)
    snap = budget.snapshot()
    assert (snap.api_remaining, snap.held_by_api) == (0, True)
    assert not budget.try_spend()
    assert budget.wait_seconds() == 60.0  # until a reading shows the key has recovered


def test_the_api_reserve_is_left_to_other_clients_of_the_key() -> None:
    clock = Clock()
    budget = CreditBudget(RateLimitConfig(credits=5000, window_seconds=3600.0, reserve=0.1), clock=clock)
    budget.observe_api(limit=5000, remaining=502)
    assert budget.try_spend()
    assert budget.try_spend()  # remaining now counted down to 500: the reserve
    assert budget.held_by_api()
    assert not budget.try_spend()
    budget.observe_api(limit=5000, remaining=2000)  # other clients' spending has left the window
    assert budget.try_spend()
    snap = budget.snapshot()
    assert (snap.api_limit, snap.api_remaining, snap.held_by_api) == (5000, 1999, False)


def test_reconfigure_keeps_the_log_so_a_reload_cannot_overspend() -> None:
    clock = Clock()
    budget = CreditBudget(RateLimitConfig(credits=20, window_seconds=60.0, reserve=0.0), clock=clock)
    sent = spend_all(budget, clock, until=clock.now + 50)
    assert len(sent) == 20  # a burst of 10, then paced at 20/60 per second up to the window's 20
    budget.configure(RateLimitConfig(credits=12, window_seconds=60.0, reserve=0.0))
    assert not budget.try_spend()
    assert budget.snapshot().spent == 20
    # The first new credit comes when all but 11 of the 20 sends have left the window.
    assert budget.wait_seconds() == pytest.approx(sent[20 - 12] + 60.0 + 1.2 - clock.now)


def test_several_credits_back_to_back_wait_for_the_ledger_the_bucket_and_the_key() -> None:
    """`wait_seconds(n)` promises n requests in a row (a cycle's lists read together, `Fetcher.gather`)."""
    clock = Clock()
    budget = CreditBudget(RateLimitConfig(credits=40, window_seconds=40.0, reserve=0.1), clock=clock)
    sent: list[float] = []
    while len(sent) < 34:
        if budget.try_spend():
            sent.append(clock.now)
        else:
            clock.now += 0.5
    clock.now += 5.0  # the bucket has refilled: our window (36 allowed, 34 spent) is what limits
    assert budget.wait_seconds(2) == 0.0
    # A third fits only when the first send leaves the window (widened by its 0.8 s guard).
    assert budget.wait_seconds(3) == pytest.approx(sent[0] + 40.0 + 0.8 - clock.now)
    # The key: 4 is the reserve of 40, so 6 left lets 2 go and not 3.
    budget.observe_api(40, 6)
    assert (budget.held_by_api(1), budget.held_by_api(2), budget.held_by_api(3)) == (False, False, True)
    assert budget.wait_seconds(2) == 0.0
    assert budget.wait_seconds(3) >= budget.recheck_seconds


def test_a_small_share_still_lets_a_cycles_few_lists_go_together() -> None:
    """At a share of 13 credits, a tenth of it (1.3) would space even two list pages by minutes."""
    clock = Clock()
    budget = CreditBudget(RateLimitConfig(credits=150, window_seconds=3600.0, reserve=0.1), clock=clock)
    assert budget.burst_credits == 10
    # Others hold 120 of the key's 150 and nothing of ours is in the window: 15 left of our 135, in steps of 6.75.
    budget.observe_api(150, 30)
    assert budget.share == 13
    assert budget.burst_credits == 3
