"""Sharing a key (issue 13, item 1): estimate what the key's other clients spend, pace to what is left.

The estimator and the pace decision are pure functions of readings, tested directly (the budget's clock is a
hand-moved one, as in tests/test_budget.py: nothing else can move time by a window). The wire test runs the
real exporter against the simulator with a neighbour spending a third of the same key.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

import pytest
import requests

from exporter.app import App
from exporter.budget import CreditBudget
from exporter.client import ACCEPT
from exporter.config import ApiConfig, Config, RateLimitConfig, Shard
from exporter.sharing import STEPS, ForeignSpend, share
from exporter.simulator import SimJob, Simulator
from exporter.simulator.records import RequestRecord
from tests.support import API_KEY, scrape, scrape_when, wait_until
from tests.test_budget import Clock

WINDOW = 60.0


def steady(estimator: ForeignSpend, foreign: int, start: float, until: float, own: int = 0) -> None:
    """Readings every second of a key of 40 credits whose other clients hold `foreign` of them."""
    at = start
    while at <= until:
        estimator.observe(at, 40, 40 - foreign - own, own)
        at += 1.0


def test_the_foreign_spend_is_the_limit_less_remaining_less_our_own_sends() -> None:
    estimator = ForeignSpend(WINDOW)
    assert estimator.estimate(0.0) is None
    estimator.observe(0.0, 40, 17, 10)
    assert estimator.estimate(0.0) == 13.0
    # Our own sends in the window are never counted as someone else's, however many.
    steady(estimator, 13, 1.0, 30.0, own=25)
    assert estimator.estimate(30.0) == 13.0


def test_a_steady_neighbour_is_estimated_at_what_it_holds() -> None:
    estimator = ForeignSpend(WINDOW)
    steady(estimator, 13, 0.0, 120.0)
    assert estimator.estimate(120.0) == 13.0


def test_a_neighbour_that_starts_abruptly_is_projected_at_its_new_pace_at_once() -> None:
    """From idle to 24 credits per 60 s window: its count rises 0.4 a second for a whole window. After a
    quarter of it the count is only 6, but the projection is the full 24 a window at that pace."""
    estimator = ForeignSpend(WINDOW)
    steady(estimator, 0, 0.0, 60.0)
    for second in range(1, 16):
        estimator.observe(60.0 + second, 40, 40 - int(0.4 * second), 0)
    estimate = estimator.estimate(75.0)
    assert estimate is not None and 20.0 <= estimate <= 26.0


def test_an_abrupt_neighbour_is_seen_within_a_sixteenth_of_the_window_through_in_flight_dips() -> None:
    """A key of 150 an hour, read every 30 s. Readings dip by up to 3 (our requests in flight count as ours
    before the API charges them), which a steady neighbour holding 30 must not turn into a rise. Then another
    client starts spending 100 an hour: four minutes later (a sixteenth of the hour, before the key runs down
    to its reserve) the projection is its full pace, where a fit over a quarter of the window still said 30."""
    estimator = ForeignSpend(3600.0)
    dips = itertools.cycle((0, 2, 0, 1, 3, 0))
    for at in range(0, 3601, 30):
        estimator.observe(float(at), 150, 150 - (30 - next(dips)), 0)
    assert estimator.estimate(3600.0) == 29.0
    for second in range(30, 241, 30):
        estimator.observe(3600.0 + second, 150, 150 - (30 + int(second * 100 / 3600) - next(dips)), 0)
    estimate = estimator.estimate(3840.0)
    assert estimate is not None and 85.0 <= estimate <= 150.0


def test_a_steady_neighbours_wobble_is_not_taken_for_a_new_pace() -> None:
    """A neighbour holding 100 of a key of 150 an hour; its count creeps up by 8 over four minutes (its pace
    varies, a reading of ours lags). Fitted over those minutes that is 120 an hour, which would cut our share
    from 33 to 13; the count is already near it, so it is a wobble, not a neighbour starting."""
    estimator = ForeignSpend(3600.0)
    for at in range(0, 3601, 30):
        estimator.observe(float(at), 150, 150 - 100, 0)
    for second in range(30, 241, 30):
        estimator.observe(3600.0 + second, 150, 150 - (100 + second // 30), 0)
    assert estimator.estimate(3840.0) == pytest.approx(102.4)


def test_reading_noise_is_not_taken_for_a_rise_and_a_falling_count_is_followed() -> None:
    estimator = ForeignSpend(WINDOW)
    for second, jitter in zip(range(0, 61), itertools.cycle((0, 1, 2, 1)), strict=False):
        estimator.observe(float(second), 40, 40 - 13 - jitter, 0)
    estimate = estimator.estimate(60.0)
    assert estimate is not None and 13.0 <= estimate <= 15.0
    # The neighbour stops: its credits leave the window one by one, and the estimate follows them down.
    for second in range(61, 121):
        estimator.observe(float(second), 40, 40 - max(0, 13 - (second - 60) // 4), 0)
    assert estimator.estimate(120.0) == 0.0


def test_a_rise_never_projects_less_than_what_the_neighbour_already_holds() -> None:
    """A neighbour holding 28 of 40 credits speeds up a little (0.25 a second): the rise alone would project 15
    a window, but it holds 30.5 now (the mean of the last eighth of the window), and that is the estimate."""
    estimator = ForeignSpend(WINDOW)
    steady(estimator, 28, 0.0, 60.0)
    for second in range(1, 16):
        estimator.observe(60.0 + second, 40, 40 - (28 + int(0.25 * second)), 0)
    assert estimator.estimate(75.0) == 30.5


def test_the_estimate_is_never_more_than_the_key_nor_less_than_nothing() -> None:
    """A neighbour rising 2 credits a second projects 120 a window, of a key of 40: 40. A reading taken before
    the API counted our last 5 sends says the others hold -5: none."""
    estimator = ForeignSpend(WINDOW)
    steady(estimator, 0, 0.0, 60.0)
    for second in range(1, 16):
        estimator.observe(60.0 + second, 40, 40 - min(40, 2 * second), 0)
    assert estimator.estimate(75.0) == 40.0
    early = ForeignSpend(WINDOW)
    early.observe(0.0, 40, 40, 5)
    assert early.estimate(0.0) == 0.0


def test_the_share_is_our_budget_less_the_foreign_spend_in_even_steps() -> None:
    assert share(36, None) == 36  # nothing known yet: the configured budget
    assert share(36, 0.0) == 36
    assert (
        share(36, 13.0) == 23
    )  # 23 left, in steps of 1.8: 12.8 steps, within the quarter step of noise of 13
    assert share(4500, 1667.0) == 2700  # a third of 5,000 an hour: 12.6 steps of 225, so twelve
    assert share(4500, 3333.0) == 1125  # two thirds: five steps
    # A credit or two of reading noise (a request in flight) costs no step; a quarter step beyond does.
    assert share(4500, 2.0) == 4500
    assert share(4500, 0.75 * 225 + 1) == 4275
    # Exhausted by others: one step stays, a slow even heartbeat (the budget's hold keeps the reserve).
    assert share(4500, 4500.0) == 225
    assert share(4500, 10_000.0) == 225
    shares = [share(4500, float(foreign)) for foreign in range(0, 5001, 7)]
    assert shares == sorted(shares, reverse=True)
    assert len(set(shares)) == STEPS


def test_the_budget_paces_its_requests_to_the_share() -> None:
    """40 credits per 60 s, reserve 0.1 (36 ours); the API says 13 of what is spent are someone else's."""
    clock = Clock()
    budget = CreditBudget(RateLimitConfig(credits=40, window_seconds=WINDOW, reserve=0.1), clock=clock)
    for _ in range(10):
        assert budget.try_spend()
    budget.observe_api(40, 40 - 10 - 13)
    snapshot = budget.snapshot()
    assert (snapshot.foreign_spend, snapshot.share, budget.share) == (13.0, 23, 23)
    # The burst is spent; the next credit comes at the share's pace, 60 s / 23, not the budget's 60 s / 36.
    assert budget.wait_seconds() == pytest.approx(WINDOW / 23, abs=0.05)
    # And while sharing, no burst of more than a tenth of the share (at least three, for a cycle's lists) is
    # saved up for later.
    clock.now += 10 * WINDOW
    assert [budget.try_spend() for _ in range(4)] == [True, True, True, False]


def test_a_shards_siblings_are_not_a_neighbour_but_spend_beyond_their_split_is() -> None:
    """80 credits per 60 s split over two shards (40 each, 36 after the reserve): the other shard's sends are
    part of the key's spending, but not a neighbour to pace around; what others spend beyond it is."""
    clock = Clock()
    sharded = Config(api=ApiConfig("acme", "key"), jobs=(1, 2), rate_limit=RateLimitConfig(80, WINDOW, 0.1))
    rate_limit = sharded.sharded(Shard(0, 2)).rate_limit
    assert (rate_limit.credits, rate_limit.shards, rate_limit.siblings_allowed) == (40, 2, 36)
    budget = CreditBudget(rate_limit, clock=clock)
    for _ in range(10):
        assert budget.try_spend()
    budget.observe_api(80, 80 - 10 - 30)  # 30 credits of the sibling shard: within its 36
    assert (budget.snapshot().foreign_spend, budget.share) == (30.0, 36)
    clock.now += WINDOW  # our ten sends have left the window
    budget.observe_api(80, 80 - 48)  # 48: 12 beyond the sibling's split, a neighbour's
    assert (budget.snapshot().foreign_spend, budget.share) == (48.0, 23)


def refreshes(sim: Simulator, job_id: int, since: float) -> list[float]:
    """When the simulator answered a GET of the job (each one refreshes it), from `since` on."""
    path = f"/jobs/{job_id}"
    return [
        r.time
        for r in sim.requests
        if r.endpoint == "get_job" and r.path.endswith(path) and r.status == 200 and r.time >= since
    ]


def test_a_neighbour_spending_a_third_of_a_tight_key_slows_refreshes_evenly_without_gaps_or_429s(
    make_sim: Callable[..., Simulator], exporter_for: Callable[..., App]
) -> None:
    """40 credits per 10 s window; the neighbour takes 13.3 of them. The exporter wants 5 credits every
    0.5 s (one list and four single GETs), far more than the 36 − 13 left: it must stretch its interval to
    the share and spread its requests, not spend 36 and then wait with nothing refreshed."""
    sim = make_sim(credits=40, window_seconds=10.0)
    statuses = ("running", "queued", "pending", "idle", "stopping", "running")
    for job_id, status in enumerate(statuses, start=1):
        sim.add_job(SimJob(id=job_id, status=status))
    sim.start_neighbour(credits_per_hour=40 / 3 * 360)  # a third of every 10 s window
    app = exporter_for(sim, list(range(1, 7)), credits=40, window=10.0, interval=0.5)
    began = time.monotonic()
    intervals: list[float] = []

    def measured_three_windows() -> bool:
        metrics = scrape(app)
        if time.monotonic() > began + 10.0:  # the first window teaches the estimator; then we measure
            intervals.append(metrics["integrateio_refresh_interval_seconds"])
        return time.monotonic() > began + 40.0

    wait_until(measured_three_windows, 50, "four windows")
    metrics = scrape(app)
    assert [r for r in sim.requests if r.status == 429] == []
    foreign = metrics["integrateio_api_foreign_spend_credits"]
    assert 10.0 <= foreign <= 18.0, foreign
    share_now = metrics["integrateio_budget_share_credits"]
    assert share_now == share(36, foreign) < 36
    # The interval is stretched to the share (5 credits a cycle), not to the budget of 36.
    stretched = max(intervals)
    assert min(intervals) >= 5 * 10.0 / 36
    times = refreshes(sim, 3, began + 10.0)  # the pending job: one GET a cycle
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert len(times) >= 30.0 / (2 * stretched), times
    assert max(gaps) <= 2 * stretched, (gaps, intervals)


def test_a_cycles_lists_wait_for_the_key_together_instead_of_trickling_minutes_apart(
    make_sim: Callable[..., Simulator], exporter_for: Callable[..., App]
) -> None:
    """Another client has left one credit above the reserve (4 of 40) when the exporter starts; its first cycle
    needs two lists (two running jobs, two queued). Read a credit at a time, the queued list would go now and the
    running one a recheck later, and a job moving between the two in that time would be on neither. The lists
    wait for the key instead, and go back to back once the other client's credits leave its 10 s window."""
    sim = make_sim(credits=40, window_seconds=10.0)
    for job_id, status in enumerate(("running", "running", "queued", "queued"), start=1):
        sim.add_job(SimJob(id=job_id, status=status))
    client = requests.Session()
    client.auth = (API_KEY, "")
    client.headers["Accept"] = ACCEPT
    spent_at = time.monotonic()
    for _ in range(35):  # the other client: 5 left, the reserve is 4
        assert client.get(f"{sim.base_url}/{sim.account_id}/api/jobs/1", timeout=5).status_code == 200
    assert sim.credits_remaining() == 5
    time.sleep(max(0.0, spent_at + 9.4 - time.monotonic()))  # its credits leave the window 0.6 s from now
    app = exporter_for(sim, [1, 2, 3, 4], credits=40, window=10.0, interval=1.0)
    wait_until(lambda: len(lists(sim)) >= 2, 10, "the first cycle's two lists")
    first, second = lists(sim)[:2]
    assert (first.query["status"], second.query["status"]) == ("queued", "running")
    assert second.time - first.time < 0.25
    assert first.time >= spent_at + 10.0  # it waited for the key rather than reading one list at once
    assert scrape_when(app, lambda m: m.get("integrateio_job_status", job_id="1", status="running"), "job 1")
    assert [r for r in sim.requests if r.status == 429] == []


def lists(sim: Simulator) -> list[RequestRecord]:
    return [r for r in sim.requests if r.endpoint == "list_jobs"]
