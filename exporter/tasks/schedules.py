"""The schedules task: `GET /schedules`, every `schedules.interval_seconds`, into the account's state.

Everything but what a schedule is lives in `tasks.listed`, shared with clusters. A schedule is kept whatever
its status: a disabled schedule is shown as `integrateio_schedule_enabled 0`, not hidden.
"""

from __future__ import annotations

from typing import Any

from exporter.cache import ExporterFields
from exporter.pipelines import Schedule, parse_schedule
from exporter.tasks.listed import ListedTask


class SchedulesTask(ListedTask[Schedule]):
    resource = "schedules"
    what = "schedules"

    @staticmethod
    def parse(payload: Any) -> Schedule:
        return parse_schedule(payload)

    def fields(self, items: tuple[Schedule, ...] | None) -> ExporterFields:
        return {"schedules": items}
