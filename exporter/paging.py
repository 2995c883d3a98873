"""Reading a list (`GET /jobs`, `/schedules`, `/clusters`) page by page: the one loop every list read goes through.

Each page costs a credit, so every reader stops as early as it can: the status lists once every expected job
was seen, the final lists once the jobs looked for were found or the search cost what it was meant to save,
discovery once a page reaches runs older than `max_age_seconds`. The reader says what "enough" is (`take`);
this loop adds the stops every reader needs — the list ended, a page came back empty, the page cap.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sized
from typing import TypeVar

Page = TypeVar("Page", bound=Sized)


def read_pages(pages: Iterable[Page], take: Callable[[Page], bool], *, max_pages: int | None = None) -> int:
    """Give each page to `take` until it returns True (it has enough), the list ends, a page is empty, or
    `max_pages` were read; return the pages read. An `ApiError` from a page propagates to the reader, which
    alone knows what a failed list means for its jobs."""
    read = 0
    for jobs in pages:
        read += 1
        if take(jobs) or not len(jobs) or (max_pages is not None and read >= max_pages):
            break
    return read
