"""The clusters task: `GET /clusters`, every `clusters.interval_seconds`, into the account's state.

Everything but what a cluster is lives in `tasks.listed`, shared with schedules. The API lists terminated
clusters for ever; one stays on /metrics for `clusters.terminated_max_age_seconds` after it terminated (by its
`terminated_at`, else from when this process first saw it terminated: the state file does not keep that moment),
so a dashboard shows what just ended and the series of old clusters do not pile up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from exporter.budget import CreditBudget
from exporter.cache import ExporterFields, JobCache
from exporter.config import ClustersConfig
from exporter.fetcher import Fetcher
from exporter.pipelines import Cluster, ClusterStatus, parse_cluster
from exporter.tasks.listed import ListedTask


class ClustersTask(ListedTask[Cluster]):
    resource = "clusters"
    what = "clusters"

    def __init__(
        self,
        section: ClustersConfig,
        fetch: Fetcher,
        cache: JobCache,
        budget: CreditBudget,
        *,
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
    ) -> None:
        self._max_age = section.terminated_max_age_seconds
        self._terminated_seen: dict[int, float] = {}  # clusters terminated without a terminated_at
        super().__init__(section, fetch, cache, budget, clock=clock, wall_clock=wall_clock)

    def configure(self, section: ClustersConfig) -> None:  # type: ignore[override]
        super().configure(section)
        self._max_age = section.terminated_max_age_seconds

    @staticmethod
    def parse(payload: Any) -> Cluster:
        return parse_cluster(payload)

    def fields(self, items: tuple[Cluster, ...] | None) -> ExporterFields:
        return {"clusters": items}

    def kept(self, items: dict[int, Cluster]) -> dict[int, Cluster]:
        now = self._wall_clock()
        seen = {
            cluster_id: self._terminated_seen.get(cluster_id, now)
            for cluster_id, cluster in items.items()
            if cluster.status is ClusterStatus.TERMINATED and cluster.terminated_at is None
        }
        self._terminated_seen = seen
        return {
            cluster_id: cluster
            for cluster_id, cluster in items.items()
            if cluster.status is not ClusterStatus.TERMINATED
            or now - (cluster.terminated_at or seen[cluster_id]) <= self._max_age
        }
