"""The demo scenario: seven jobs that queue, run, complete, fail and get stopped over about five minutes.

What ``--demo`` shows on a dashboard, and what tests play at high speed to check the exporter follows a whole
lifecycle. Times below are simulated seconds after start; ``speed`` divides them.

====  ======================  ==========================================================================
id    package                 story
====  ======================  ==========================================================================
101   orders_daily            queued -> running at 5 s -> completed at 95 s
102   customers_sync          pending -> queued 20 s -> running 30 s -> failed 110 s (connection error)
103   inventory_snapshot      idle until 120 s -> pending -> queued -> running 140 s -> completed 230 s
104   clickstream_rollup      already running for 20 min; completes at 290 s (the long one)
105   legacy_export           running -> pending_stoppage 60 s -> stopping 70 s -> stopped 80 s
106   finance_ledger          completed before the demo began (final from the first poll)
107   marketing_attribution   queued -> running 45 s -> failed 150 s (out of memory)
====  ======================  ==========================================================================

Schedules and clusters (real time, not sped up: a schedule's day is a day):

====  ======================  ==========================================================================
201   orders hourly           runs every hour (package 434), each run completes
202   customers sync          runs every hour (package 435), each run fails
203   inventory nightly       daily (package 436); its run was due 15 minutes before the demo began and
                              never started: the missed-run alert
204   legacy export           disabled
52    etl-prod                available, 2 running jobs
53    etl-batch               available for 3 hours, no running job, never terminates on idle: money burning
54    sandbox-dev             error
51    etl-nightly-old         terminated an hour before the demo
====  ======================  ==========================================================================
"""

from __future__ import annotations

import time
from typing import Final

from exporter.simulator.pipelines import SimCluster, SimSchedule
from exporter.simulator.simulator import Simulator
from exporter.simulator.world import SimJob, SimOutput, Step

DEMO_ACCOUNT_ID: Final = "demo"
DEMO_API_KEY: Final = "demo-key"
DEMO_JOB_IDS: Final[tuple[int, ...]] = (101, 102, 103, 104, 105, 106, 107)

_CUSTOMERS_ERROR: Final = (
    "Component 'mysql_customers' failed: Communications link failure. "
    "The last packet sent successfully to the server was 0 milliseconds ago."
)
_ATTRIBUTION_ERROR: Final = (
    "Job failed: java.lang.OutOfMemoryError: GC overhead limit exceeded (join_touchpoints)"
)


def _outputs(first_id: int, *names: str) -> list[SimOutput]:
    return [SimOutput(id=first_id + n, name=name) for n, name in enumerate(names)]


def build_demo(
    speed: float = 1.0,
    *,
    account_id: str = DEMO_ACCOUNT_ID,
    api_key: str = DEMO_API_KEY,
    credits: int = 5000,
    window_seconds: float = 3600.0,
) -> Simulator:
    """An un-started ``Simulator`` (by default account ``demo``, key ``demo-key``) holding the demo jobs."""
    sim = Simulator(account_id, api_key, credits, window_seconds, speed=speed)
    sim.add_job(
        SimJob(
            id=101,
            status="queued",
            package_id=434,
            package_name="orders_daily",
            cluster_id=52,
            cluster_name="etl-prod",
            outputs=_outputs(1001, "orders_clean", "orders_by_region"),
        ),
        script=[Step(5, status="running"), Step(95, status="completed")],
        progress_per_second=1 / 90,
        records_per_second=1500,
    )
    sim.add_job(
        SimJob(
            id=102,
            status="pending",
            package_id=435,
            package_name="customers_sync",
            cluster_id=52,
            cluster_name="etl-prod",
            outputs=_outputs(1003, "customers"),
        ),
        script=[
            Step(20, status="queued"),
            Step(30, status="running"),
            Step(110, status="failed", errors=_CUSTOMERS_ERROR),
        ],
        progress_per_second=1 / 120,
        records_per_second=800,
    )
    sim.add_job(
        SimJob(
            id=103,
            status="idle",
            package_id=436,
            package_name="inventory_snapshot",
            cluster_id=53,
            cluster_name="etl-batch",
            outputs=_outputs(1004, "inventory"),
        ),
        script=[
            Step(120, status="pending"),
            Step(130, status="queued"),
            Step(140, status="running"),
            Step(230, status="completed"),
        ],
        progress_per_second=1 / 90,
        records_per_second=500,
    )
    sim.add_job(
        SimJob(
            id=104,
            status="running",
            progress=0.2,
            runtime_in_seconds=1200,
            package_id=437,
            package_name="clickstream_rollup",
            cluster_id=53,
            cluster_name="etl-batch",
            outputs=_outputs(1005, "sessions", "page_views"),
        ),
        script=[Step(290, status="completed")],
        progress_per_second=0.0027,
        records_per_second=5000,
    )
    sim.add_job(
        SimJob(
            id=105,
            status="running",
            progress=0.1,
            runtime_in_seconds=300,
            package_id=438,
            package_name="legacy_export",
            cluster_id=52,
            cluster_name="etl-prod",
            outputs=_outputs(1007, "legacy_dump"),
        ),
        script=[Step(60, status="pending_stoppage"), Step(70, status="stopping"), Step(80, status="stopped")],
        progress_per_second=0.002,
        records_per_second=200,
    )
    sim.add_job(
        SimJob(
            id=106,
            status="completed",
            runtime_in_seconds=842,
            package_id=439,
            package_name="finance_ledger",
            cluster_id=52,
            cluster_name="etl-prod",
            outputs=[SimOutput(id=1008, name="ledger_entries", records_count=1_204_331)],
        )
    )
    sim.add_job(
        SimJob(
            id=107,
            status="queued",
            package_id=440,
            package_name="marketing_attribution",
            cluster_id=53,
            cluster_name="etl-batch",
            outputs=_outputs(1009, "attribution"),
        ),
        script=[Step(45, status="running"), Step(150, status="failed", errors=_ATTRIBUTION_ERROR)],
        progress_per_second=1 / 150,
        records_per_second=1200,
    )
    add_pipelines(sim)
    return sim


def _hourly(
    schedule_id: int, name: str, package_id: int, *, next_run_at: int, execution_count: int, outcome: str
) -> SimSchedule:
    """An hourly schedule of one package that keeps time: its runs start when due (`runs`) and end in
    `outcome`, as the last one did an hour before `next_run_at`."""
    return SimSchedule(
        schedule_id,
        name,
        interval_unit="hours",
        next_run_at=next_run_at,
        last_run_at=next_run_at - 3600,
        last_run_status=outcome,
        execution_count=execution_count,
        package_ids=(package_id,),
        runs=True,
        outcome=outcome,
    )


def add_pipelines(sim: Simulator, now: int | None = None) -> None:
    """The demo's schedules and clusters (see the table above), dated from `now` (default: the wall clock)."""
    now = int(time.time()) if now is None else now
    hour, day = 3600, 86400
    for schedule in (
        _hourly(
            201, "orders hourly", 434, next_run_at=now + 20 * 60, execution_count=312, outcome="completed"
        ),
        _hourly(202, "customers sync", 435, next_run_at=now + 35 * 60, execution_count=97, outcome="failed"),
        SimSchedule(
            203,
            "inventory nightly",
            next_run_at=now - 15 * 60,
            last_run_at=now - day - 15 * 60,
            last_run_status="completed",
            execution_count=58,
            package_ids=(436,),
        ),
        SimSchedule(204, "legacy export", status="disabled", interval_unit="weeks", package_ids=(438,)),
    ):
        sim.put_schedule(schedule)
    for cluster in (
        SimCluster(52, "etl-prod", nodes=4, running_jobs_count=2, available_since=now - 5 * hour),
        SimCluster(
            53, "etl-batch", nodes=2, available_since=now - 3 * hour, terminate_on_idle=False, time_to_idle=0
        ),
        SimCluster(54, "sandbox-dev", status="error", type="sandbox", nodes=1),
        SimCluster(
            51,
            "etl-nightly-old",
            status="terminated",
            nodes=2,
            available_since=now - 6 * hour,
            terminated_at=now - hour,
            terminated_on_idle=True,
            creator_schedule_id=203,
        ),
    ):
        sim.put_cluster(cluster)


RUNNING_JOBS_FIRST_ID: Final = 1000


def add_running_jobs(sim: Simulator, count: int, *, first_id: int = RUNNING_JOBS_FIRST_ID) -> list[int]:
    """``count`` running jobs that keep progressing (about 1 % per 36 s, records growing) and never finish:
    steady load for benchmarks and end-to-end tests. Returns their ids (``first_id`` upwards)."""
    ids = list(range(first_id, first_id + count))
    for n, job_id in enumerate(ids):
        sim.add_job(
            SimJob(
                id=job_id,
                status="running",
                progress=0.0,
                package_id=500 + n % 50,
                package_name=f"load_package_{n % 50}",
                cluster_id=60 + n % 4,
                cluster_name=f"load-cluster-{n % 4}",
                outputs=[SimOutput(id=job_id * 10, name="load_output")],
            ),
            progress_per_second=1 / 3600,
            records_per_second=100,
        )
    return ids
