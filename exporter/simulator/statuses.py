"""The nine job statuses of API v2, and which of them are final."""

from __future__ import annotations

from typing import Final

STATUSES: Final[tuple[str, ...]] = (
    "idle",
    "pending",
    "queued",
    "running",
    "completed",
    "failed",
    "pending_stoppage",
    "stopping",
    "stopped",
)
FINAL_STATUSES: Final[frozenset[str]] = frozenset({"completed", "failed", "stopped"})
NOT_STARTED: Final[frozenset[str]] = frozenset({"idle", "pending", "queued"})


# A stand-in for a status the API may add tomorrow: jobs may be put in it (and are served in it), but the list
# filter refuses it by name like any status it does not know, so a client can only meet it on `status=all`.
UNDOCUMENTED_STATUS: Final = "resuming"


def check_status(status: str) -> str:
    """Reject statuses the API does not have, so a typo in a test fails loudly instead of serving junk."""
    if status not in STATUSES and status != UNDOCUMENTED_STATUS:
        raise ValueError(f"unknown job status {status!r}; expected one of {', '.join(STATUSES)}")
    return status
