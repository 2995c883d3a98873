"""The optional state file: final jobs survive a restart, so they cost no credit again.

A final job never changes, yet after a restart the exporter would ask for it once more — with a thousand
finished jobs in the configuration, a thousand credits at every deploy. The state file keeps their last values.
Only final jobs are stored: anything else must be fetched fresh anyway.

The file is a convenience, never a dependency: missing, unreadable, corrupt, from another account or another
format version — it is reported in one log line and ignored. Writes go to a temporary file that is renamed over
the old one, so a crash mid-write leaves the previous state intact; a write that fails removes its temporary
file, and one a SIGKILL left behind is removed at the next start (`StateStore`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from exporter.cache import JobCache
from exporter.model import Job, JobOutput, JobStatus

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


class StateStore:
    """One account's state file: final jobs restored into the cache at start, the file rewritten whenever the
    set of final jobs changed (not every cycle: a final job never changes)."""

    def __init__(self, path: str, account_id: str) -> None:
        self.path = path
        self.account_id = account_id
        self._saved: frozenset[int] = frozenset()
        remove_stale_temporaries(path)

    def restore(self, cache: JobCache, watched: set[int]) -> None:
        """Final jobs from the file go straight into the cache: they cost no credit after a restart."""
        restored = {
            job_id: entry
            for job_id, entry in load_final_jobs(self.path, self.account_id).items()
            if job_id in watched
        }
        for job, when in restored.values():
            cache.record_jobs([job], when)
        self._saved = frozenset(restored)
        if restored:
            log.info("state file: %d final jobs restored; they will not be fetched again", len(restored))

    def save(self, cache: JobCache) -> None:
        final = {
            state.job_id: (state.job, state.last_success)
            for state in cache.states()
            if state.job is not None and state.is_final and state.last_success is not None
        }
        if frozenset(final) != self._saved:
            save_final_jobs(self.path, self.account_id, final)
            self._saved = frozenset(final)


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


def load_final_jobs(path: str, account_id: str) -> dict[int, tuple[Job, float]]:
    """Final jobs and when they were last refreshed, or {} when the file is missing or unusable."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        log.info("state file %s does not exist yet; it is written when a watched job finishes", path)
        return {}
    except (OSError, ValueError) as error:
        log.warning("state file %s ignored: cannot read it as JSON (%s)", path, type(error).__name__)
        return {}
    try:
        return _parse(document, account_id)
    except KeyError as error:
        log.warning("state file %s ignored: malformed (missing %s)", path, error)
    except (TypeError, ValueError) as error:
        log.warning("state file %s ignored: %s", path, error)
    return {}


def save_final_jobs(path: str, account_id: str, jobs: dict[int, tuple[Job, float]]) -> None:
    """Write the final jobs atomically; a failure is logged, since polling must go on without the file."""
    document = {
        "version": FORMAT_VERSION,
        "account_id": account_id,
        "jobs": {
            str(job_id): {"job": _job_document(job), "last_success": when}
            for job_id, (job, when) in jobs.items()
        },
    }
    target = Path(path)
    temporary: str | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(
            dir=target.parent, prefix=_temporary_prefix(target), suffix=".tmp"
        )
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(document, stream, separators=(",", ":"))
        os.replace(temporary, target)
    except OSError as error:
        log.warning("state file %s not written: %s", path, error.strerror or error)
        if temporary is not None:
            with contextlib.suppress(OSError):
                Path(temporary).unlink(missing_ok=True)


def _parse(document: Any, account_id: str) -> dict[int, tuple[Job, float]]:
    if not isinstance(document, dict) or document.get("version") != FORMAT_VERSION:
        raise ValueError(f"not a version {FORMAT_VERSION} state file")
    if document.get("account_id") != account_id:
        raise ValueError(f"written for account {document.get('account_id')!r}, not {account_id!r}")
    jobs = {}
    for key, entry in document["jobs"].items():
        job = _job_from(entry["job"])
        if job.id != int(key) or not job.status.is_final:
            raise ValueError(f"entry {key} is not a final job")
        jobs[job.id] = (job, float(entry["last_success"]))
    return jobs


def _job_document(job: Job) -> dict[str, Any]:
    document = asdict(job)
    document["status"] = job.status.value
    return document


def _job_from(document: dict[str, Any]) -> Job:
    fields = dict(document)
    fields["status"] = JobStatus(fields["status"])
    fields["outputs"] = tuple(JobOutput(**output) for output in fields["outputs"])
    fields["unusable"] = tuple(fields.get("unusable", ()))
    fields["absent"] = tuple(fields.get("absent", ()))
    return Job(**fields)
