"""A simulated Integrate.io (Xplenty) API v2 over real HTTP: powers ``--demo``, every test and benchmark, and
injects the faults the exporter must survive.

Usage::

    from exporter.simulator import Simulator, SimJob, SimOutput

    with Simulator(account_id="acme", api_key="sim-key", credits=5000) as sim:
        sim.add_job(SimJob(id=157, status="running", progress=0.3))
        ...  # GET f"{sim.base_url}/acme/api/jobs/157" with Basic auth "sim-key:" and the v2 Accept header

Module map: ``world`` (jobs and lifecycle), ``listing`` (GET /jobs parameters, Link headers), ``ledger``
(credits), ``faults`` and ``shapes`` (what can go wrong), ``api`` (request -> decision), ``http`` (sockets),
``clock`` (answers dated by a wrong clock), ``tls``, ``records`` (request log), ``hooks`` (web hooks fired on job
transitions), ``simulator`` (the facade), ``pipelines`` (schedules and clusters), ``demo``, ``__main__`` (CLI).
"""

from exporter.simulator.api import JSON_TYPE
from exporter.simulator.demo import DEMO_ACCOUNT_ID, DEMO_API_KEY, DEMO_JOB_IDS
from exporter.simulator.faults import KINDS as FAULT_KINDS
from exporter.simulator.faults import FaultHandle
from exporter.simulator.hooks import HookTarget
from exporter.simulator.pipelines import SimCluster, SimSchedule
from exporter.simulator.records import RequestRecord
from exporter.simulator.simulator import Simulator
from exporter.simulator.statuses import FINAL_STATUSES, STATUSES
from exporter.simulator.world import UNSET, SimJob, SimOutput, Step

__all__ = [
    "DEMO_ACCOUNT_ID",
    "DEMO_API_KEY",
    "DEMO_JOB_IDS",
    "FAULT_KINDS",
    "FINAL_STATUSES",
    "JSON_TYPE",
    "STATUSES",
    "UNSET",
    "FaultHandle",
    "HookTarget",
    "RequestRecord",
    "SimCluster",
    "SimJob",
    "SimOutput",
    "SimSchedule",
    "Simulator",
    "Step",
]
