"""The refresh planner chooses the cheapest calls, and confirms every job that left a list."""

from __future__ import annotations

from exporter.model import JobStatus
from exporter.planner import NON_FINAL_STATUSES, ListCosts, confirmations, plan_cycle

RUNNING = JobStatus.RUNNING
QUEUED = JobStatus.QUEUED


def test_few_jobs_are_fetched_one_by_one() -> None:
    plan = plan_cycle({1: RUNNING, 2: QUEUED}, ListCosts())
    assert plan.list_statuses == ()
    assert plan.gets == (1, 2)
    assert plan.estimated_credits == 2


def test_many_jobs_in_one_status_are_listed() -> None:
    plan = plan_cycle({i: RUNNING for i in range(1, 101)} | {500: QUEUED}, ListCosts())
    assert plan.list_statuses == (RUNNING,)
    assert plan.expected[RUNNING] == frozenset(range(1, 101))
    assert plan.gets == (500,)
    assert plan.estimated_credits == 2


def test_a_list_that_took_many_pages_loses_to_single_gets() -> None:
    costs = ListCosts()
    costs.learn(RUNNING, 12)
    plan = plan_cycle({i: RUNNING for i in range(10)}, costs)
    assert plan.list_statuses == ()
    assert len(plan.gets) == 10


def test_unknown_status_is_read_from_the_all_list_when_cheaper_than_by_id() -> None:
    costs = ListCosts()
    plan = plan_cycle({i: JobStatus.UNKNOWN for i in range(50)}, costs)
    assert (plan.list_statuses, plan.gets) == ((JobStatus.UNKNOWN,), ())
    costs.learn(JobStatus.UNKNOWN, 60)  # the account's whole history: 50 GETs are cheaper
    plan = plan_cycle({i: JobStatus.UNKNOWN for i in range(50)}, costs)
    assert (plan.list_statuses, len(plan.gets)) == ((), 50)


def test_cold_start_lists_every_non_final_status() -> None:
    plan = plan_cycle({i: None for i in range(1, 21)}, ListCosts())
    assert plan.list_statuses == NON_FINAL_STATUSES
    assert all(plan.expected[status] == frozenset(range(1, 21)) for status in NON_FINAL_STATUSES)
    assert plan.gets == ()
    # Jobs found on no list are final (or gone): each gets one confirming GET.
    assert confirmations(plan, found=range(1, 16)) == [16, 17, 18, 19, 20]


def test_a_few_unseen_jobs_are_cheaper_by_id() -> None:
    plan = plan_cycle({1: None, 2: None, 3: RUNNING}, ListCosts())
    assert plan.list_statuses == ()
    assert plan.gets == (1, 2, 3)


def test_jobs_that_left_a_list_are_confirmed() -> None:
    plan = plan_cycle({i: RUNNING for i in range(1, 6)}, ListCosts())
    assert confirmations(plan, found=[1, 2, 4]) == [3, 5]
