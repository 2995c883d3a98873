"""Whether list items carry outputs, and which jobs need a single GET because they did not.

The documentation shows `GET /jobs` items as full jobs, but no recorded real list answer confirms that `outputs`
is there. A lean item still refreshes a job's status, progress and runtime for a hundredth of a credit; only its
records counts would freeze. So the jobs task keeps reading lists, and this book tells it which jobs need a
`GET /jobs/{id}` for their outputs:

- a job that is not final, whose last answer with outputs is older than the outputs cadence
  (`polling.outputs_refresh_seconds`, stretched by the planner to what the budget allows);
- a final job whose final answer came without outputs: its last figures are the ones a user wants, and a final
  job is never asked again.

Answers with outputs (every single GET, every full list item) keep a job off both lists, so with full lists this
costs nothing. The mode is judged from list pages — lean as soon as one item lacks outputs, full again when a
page's items all carry them — published as `integrateio_list_items_mode` and logged once per change.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from exporter.cache import JobCache, JobState
from exporter.metrics import LIST_MODES
from exporter.model import Job

log = logging.getLogger(__name__)

FULL, LEAN = LIST_MODES


class ListItems:
    """One account's view of its list items; thread-safe (single GETs are recorded from a pool)."""

    def __init__(self, cache: JobCache, wall_clock: Callable[[], float]) -> None:
        self._cache = cache
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._mode = FULL  # as documented, until a list says otherwise
        self._outputs_at: dict[int, float] = {}  # wall time of each job's last answer that carried outputs
        self._lacking: set[int] = set()  # jobs whose latest stored answer came without outputs
        cache.update_exporter(list_items=self._mode)

    def observe_page(self, jobs: list[Job]) -> None:
        """Judge one list page: lean when any item lacks outputs, full when all carry them; empty says nothing."""
        if not jobs:
            return
        mode = LEAN if any("outputs" in job.absent for job in jobs) else FULL
        with self._lock:
            if mode == self._mode:
                return
            self._mode = mode
        self._cache.update_exporter(list_items=mode)
        if mode == LEAN:
            log.warning(
                "list answers carry no job outputs: records counts are refreshed by single GETs instead, "
                "each job about once per polling.outputs_refresh_seconds (as the budget allows)"
            )
        else:
            log.info("list answers carry job outputs again: no more single GETs for records counts")

    def saw(self, job: Job, was_final: bool) -> None:
        """A stored answer for `job`: did it carry outputs? `was_final`: the job was final before this answer,
        so its outputs cannot have changed (a finished run re-read on a lean page by discovery lacks nothing)."""
        now = self._wall_clock()
        with self._lock:
            if "outputs" not in job.absent:
                self._outputs_at[job.id] = now
                self._lacking.discard(job.id)
            elif not was_final:
                self._lacking.add(job.id)

    def lacking(self, states: Iterable[JobState]) -> tuple[list[int], dict[int, float]]:
        """Watched jobs whose latest answer came without outputs: the final ones (each needs one GET), and the
        age in seconds of the others' outputs (infinite if never answered). Jobs no longer watched are
        forgotten here."""
        finals: list[int] = []
        ages: dict[int, float] = {}
        now = self._wall_clock()
        with self._lock:
            watched = set()
            for state in states:
                watched.add(state.job_id)
                if state.job_id not in self._lacking or state.missing:
                    continue
                if state.is_final:
                    finals.append(state.job_id)
                else:
                    ages[state.job_id] = now - self._outputs_at.get(state.job_id, float("-inf"))
            self._lacking &= watched
            self._outputs_at = {job_id: at for job_id, at in self._outputs_at.items() if job_id in watched}
        return sorted(finals), ages
