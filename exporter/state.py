"""The optional state file: what the exporter knew survives a restart, so alerts and credits do not start over.

After a restart the exporter would otherwise know nothing until the API answered, and some things not even then:
- a package whose last success is older than `discover.max_age_seconds` has no watched run left to learn it
  from, so its series would be gone and `IntegrateioPackageNoRecentSuccess` could never fire for it;
- "running far longer than usual" needs each package's run history, which a new process has not seen;
- a run discovery follows may be off its package's newest page by now, and would never be followed to its end;
- a final job never changes, yet it would be asked for again: a thousand credits at every deploy.

So the file keeps (version 3): every watched job's last values and when they were fetched (final jobs are then
never fetched again; the others are, as usual, and show their last values meanwhile), per package its name and
web page, last finished run, last success, last failure, its last `HISTORY_LENGTH` finished runs and its run
totals (finished runs per status, completed runs' runtimes per bucket: `RunTotals`, so the counters never go
back to 0), and the runs discovery follows; and the last good read of the schedules and the clusters, with when
it was (`exporter.pipelinestate`). All of it goes back before the first API call, so /metrics serves the same package,
schedule and cluster series at once. Version 1 files (final jobs only) are read too, their packages rebuilt from
those jobs; a version 2 file written before run totals existed has them counted from each package's history, and
has no schedules or clusters (they appear with the first read, as without a file).

The file is a convenience, never a dependency: missing, unreadable, corrupt, from another account or an unknown
format version — it is reported in one log line and ignored; a schedules or clusters section it cannot read is
ignored the same way, alone. It is rewritten only when something it keeps changed (a status, a package, the
followed runs, a schedule or cluster, a read of those; not a running job's progress): 5,000 jobs and 500 packages with
full histories make 2.5 MB, written in about 70 ms and read in about 80 ms. Writes go to a temporary file,
flushed to disk and renamed over the old one, so a crash or a full disk mid-write leaves the previous state
intact; a write that fails removes its temporary file, and one a SIGKILL left behind is removed at the next
start (`StateStore`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar

from exporter.cache import ExporterState, JobCache, PackageState
from exporter.history import Run, RunTotals
from exporter.model import Job, JobOutput, JobStatus
from exporter.pipelines import Cluster, Schedule
from exporter.pipelinestate import CLUSTERS, SCHEDULES, SavedListing, Section, listing_document, listing_from
from exporter.statevalues import count, optional_float, optional_text, optional_web_url

log = logging.getLogger(__name__)

FORMAT_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)  # version 1 kept final jobs only, version 2 no schedules or clusters
JOB_FIELDS = tuple(each.name for each in fields(Job))

L = TypeVar("L", Schedule, Cluster)
R = TypeVar("R")


@dataclass(frozen=True)
class SavedState:
    """What a state file held: jobs (id → last values, when fetched), followed runs (id → creation time),
    packages (id → state, without the `account` label, which is the cache's), and the last good read of the
    schedules and of the clusters (None: not kept, or the section is off)."""

    jobs: dict[int, tuple[Job, float]] = field(default_factory=dict)
    followed: dict[int, float] = field(default_factory=dict)
    packages: dict[int, PackageState] = field(default_factory=dict)
    schedules: SavedListing[Schedule] | None = None
    clusters: SavedListing[Cluster] | None = None

    def package_of(self, job_id: int) -> int | None:
        """The package of a kept job, None when unknown."""
        entry = self.jobs.get(job_id)
        return None if entry is None else entry[0].package_id


class StateStore:
    """One account's state file: read and restored into the cache at start, rewritten after a cycle whenever
    something it keeps changed."""

    def __init__(self, path: str, account_id: str) -> None:
        self.path = path
        self.account_id = account_id
        self._saved: object = None  # what the last successful write held, in short (see `save`)
        remove_stale_temporaries(path)

    def load(self) -> SavedState:
        """The file's content, or an empty state when it is missing or unusable (said in one log line)."""
        return load_state(self.path, self.account_id)

    def restore(self, cache: JobCache, saved: SavedState, discovered: Iterable[int]) -> None:
        """Put the saved values of the cache's watched jobs back, and the packages that are still of interest:
        those discovery reads (`discovered` package ids) and those of the restored jobs. Call it after
        `set_watched`, before the first API call."""
        jobs = [saved.jobs[state.job_id] for state in cache.states() if state.job_id in saved.jobs]
        wanted = {*discovered, *(job.package_id for job, _ in jobs)}
        packages = [package for package_id, package in saved.packages.items() if package_id in wanted]
        cache.restore(jobs, packages)
        if jobs or packages:
            log.info(
                "state file: %d jobs (%d final, not fetched again) and %d packages restored",
                len(jobs),
                sum(job.status.is_final for job, _ in jobs),
                len(packages),
            )

    def save(self, cache: JobCache, followed: Mapping[int, float]) -> None:
        """Rewrite the file when a job's status, a package, the followed runs, the schedules or the clusters (or
        when they were read) changed since the last write."""
        snapshot = cache.snapshot()
        jobs = {
            state.job_id: (state.job, state.last_success)
            for state in snapshot.jobs
            if state.job is not None and state.last_success is not None
        }
        schedules = _listing(snapshot.exporter, SCHEDULES.resource, snapshot.exporter.schedules)
        clusters = _listing(snapshot.exporter, CLUSTERS.resource, snapshot.exporter.clusters)
        summary = (
            tuple((job_id, job.status) for job_id, (job, _) in jobs.items()),
            snapshot.packages,
            tuple(sorted(followed.items())),
            schedules,
            clusters,
        )
        if summary != self._saved and save_state(
            self.path,
            self.account_id,
            SavedState(jobs, dict(followed), _by_id(snapshot.packages), schedules, clusters),
        ):
            self._saved = summary


def _listing(exporter: ExporterState, resource: str, items: tuple[L, ...] | None) -> SavedListing[L] | None:
    """What the cache shows of a listed resource, to keep; None while its section is off."""
    if items is None:
        return None
    health = exporter.listing.get(resource)
    return SavedListing(items, None if health is None else health.last_success)


def _temporary_prefix(target: Path) -> str:
    return f".{target.name}."


def remove_stale_temporaries(path: str) -> None:
    """Remove temporary files an earlier process was killed (SIGKILL, power loss) before renaming."""
    target = Path(path)
    try:
        stale = list(target.parent.glob(f"{_temporary_prefix(target)}*.tmp"))
    except OSError:
        return  # an unreadable directory: the write will say so in its own line
    for leftover in stale:
        try:
            leftover.unlink()
        except OSError as error:
            log.warning("state file %s: cannot remove stale %s: %s", path, leftover.name, error.strerror)
        else:
            log.info("state file %s: removed %s, left by an interrupted write", path, leftover.name)


def load_state(path: str, account_id: str) -> SavedState:
    """What the file holds, or an empty state when it is missing or unusable."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        log.info("state file %s does not exist yet; it is written after the first refresh", path)
        return SavedState()
    except (OSError, ValueError) as error:
        log.warning("state file %s ignored: cannot read it as JSON (%s)", path, type(error).__name__)
        return SavedState()
    state = _readable(f"state file {path}", lambda: _parse(document, account_id))
    if state is None:
        return SavedState()
    return replace(
        state,
        schedules=_section(path, document, SCHEDULES),
        clusters=_section(path, document, CLUSTERS),
    )


def _section(path: str, document: dict[str, Any], section: Section[L]) -> SavedListing[L] | None:
    """A schedules or clusters section, None when the file has none; one that cannot be read is ignored alone,
    in one log line: the jobs and packages are good all the same."""
    if document.get(section.resource) is None:
        return None
    return _readable(
        f"state file {path}: its {section.resource}",
        lambda: listing_from(document[section.resource], section),
    )


def _readable(what: str, parse: Callable[[], R]) -> R | None:
    """What `parse` reads, or None after one log line saying why `what` is ignored."""
    try:
        return parse()
    except KeyError as error:
        log.warning("%s ignored: malformed (missing %s)", what, error)
    except (TypeError, ValueError, AttributeError) as error:
        log.warning("%s ignored: %s", what, error)
    return None


def save_state(path: str, account_id: str, state: SavedState) -> bool:
    """Write the state atomically; False after a failure, which is logged: polling goes on without the file."""
    document = {
        "version": FORMAT_VERSION,
        "account_id": account_id,
        "jobs": {
            str(job_id): {"job": _job_document(job), "last_success": when}
            for job_id, (job, when) in state.jobs.items()
        },
        "followed": {str(job_id): created for job_id, created in state.followed.items()},
        "packages": {
            str(package_id): _package_document(package) for package_id, package in state.packages.items()
        },
    }
    for section, listing in ((SCHEDULES, state.schedules), (CLUSTERS, state.clusters)):
        if listing is not None:
            document[section.resource] = listing_document(listing)
    target = Path(path)
    temporary: str | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(
            dir=target.parent, prefix=_temporary_prefix(target), suffix=".tmp"
        )
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(json.dumps(document, separators=(",", ":")))  # one write: json.dump writes in bits
            stream.flush()
            os.fsync(stream.fileno())  # on disk before the rename, or a power loss could leave an empty file
        os.replace(temporary, target)
        _sync_directory(target.parent)
    except OSError as error:
        log.warning("state file %s not written: %s", path, error.strerror or error)
        if temporary is not None:
            with contextlib.suppress(OSError):
                Path(temporary).unlink(missing_ok=True)
        return False
    return True


def _sync_directory(directory: Path) -> None:
    """Put the rename itself on disk: until the directory is synced, a power loss soon after a write could bring
    back the previous state file. A file system that cannot sync a directory loses only that guarantee."""
    with contextlib.suppress(OSError):
        handle = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)


def _parse(document: Any, account_id: str) -> SavedState:
    if not isinstance(document, dict) or document.get("version") not in READABLE_VERSIONS:
        raise ValueError("not a version 1, 2 or 3 state file")
    if document.get("account_id") != account_id:
        raise ValueError(f"written for account {document.get('account_id')!r}, not {account_id!r}")
    jobs = {}
    for key, entry in document["jobs"].items():
        job = _job_from(entry["job"])
        if job.id != int(key):
            raise ValueError(f"entry {key} holds job {job.id}")
        jobs[job.id] = (job, float(entry["last_success"]))
    if document["version"] == 1:
        return _from_version_1(jobs)
    return SavedState(
        jobs=jobs,
        followed={int(key): float(created) for key, created in document["followed"].items()},
        packages={int(key): _package_from(int(key), entry) for key, entry in document["packages"].items()},
    )


def _from_version_1(jobs: dict[int, tuple[Job, float]]) -> SavedState:
    """Version 1 kept final jobs only, and no packages: rebuild those from the jobs, as the cache would."""
    packages: dict[int, PackageState] = {}
    for job, _ in jobs.values():
        if not job.status.is_final:
            raise ValueError(f"entry {job.id} is not a final job")
        if job.package_id is not None:
            packages[job.package_id] = (packages.get(job.package_id) or PackageState(job.package_id)).seen(
                job
            )
    return SavedState(jobs=jobs, packages=packages)


def _by_id(packages: Iterable[PackageState]) -> dict[int, PackageState]:
    return {package.package_id: package for package in packages}


def _package_document(package: PackageState) -> dict[str, Any]:
    return {
        "name": package.name,
        "url": package.url,
        "last_run": None if package.last_finished is None else _job_document(package.last_finished),
        "last_success": package.last_success,
        "last_failure": package.last_failure,
        "history": [
            [run.job_id, run.status.value, run.started_at, run.finished_at, run.runtime_seconds]
            for run in package.history
        ],
        "runs": _totals_document(package.totals),
    }


def _totals_document(totals: RunTotals) -> dict[str, Any]:
    return {
        "completed": totals.completed,
        "failed": totals.failed,
        "stopped": totals.stopped,
        "buckets": list(totals.buckets),
        "runtime_sum": totals.runtime_sum,
        "evicted_until": totals.evicted_until,
    }


def _totals_from(document: Any, history: tuple[Run, ...]) -> RunTotals:
    """The saved totals; a file written before they existed gets those of the runs its history holds."""
    if document is None:
        return RunTotals.of(history)
    return RunTotals(
        completed=count(document["completed"]),
        failed=count(document["failed"]),
        stopped=count(document["stopped"]),
        buckets=tuple(count(bucket) for bucket in document["buckets"]),
        runtime_sum=float(document["runtime_sum"]),
        evicted_until=optional_float(document["evicted_until"]),
    )


def _package_from(package_id: int, document: dict[str, Any]) -> PackageState:
    last_run = document["last_run"]
    history = tuple(_run_from(run) for run in document["history"])
    return PackageState(
        package_id,
        name=optional_text(document["name"]),
        url=optional_web_url(document.get("url")),  # none in a file written before packages had their page
        last_finished=None if last_run is None else _job_from(last_run),
        last_success=optional_float(document["last_success"]),
        last_failure=optional_float(document["last_failure"]),
        history=history,
        totals=_totals_from(document.get("runs"), history),
    )


def _run_from(document: Any) -> Run:
    """A run as [job id, status, started, finished, runtime]: compact, 20 per package."""
    job_id, status, started, finished, runtime = document
    return Run(
        int(job_id), JobStatus(status), optional_float(started), float(finished), optional_float(runtime)
    )


def _job_document(job: Job) -> dict[str, Any]:
    """The job as JSON; field by field rather than `asdict`, whose deep copies cost 30 µs a job."""
    document = {name: getattr(job, name) for name in JOB_FIELDS}
    document["status"] = job.status.value
    document["outputs"] = [[output.id, output.name, output.records_count] for output in job.outputs]
    document["unusable"] = list(job.unusable)
    return document


def _output_from(document: Any) -> JobOutput:
    """Version 2 writes an output as [id, name, records]; version 1 wrote an object."""
    if isinstance(document, dict):
        return JobOutput(**document)
    output_id, name, records = document
    return JobOutput(int(output_id), optional_text(name), optional_float(records))


def _job_from(document: dict[str, Any]) -> Job:
    fields = dict(document)
    fields["status"] = JobStatus(fields["status"])
    fields["outputs"] = tuple(_output_from(output) for output in fields["outputs"])
    fields["unusable"] = tuple(fields.get("unusable", ()))
    fields["absent"] = tuple(fields.get("absent", ()))
    return Job(**fields)
