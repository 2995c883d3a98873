"""The job parser: tolerant of everything the documented examples disagree on, strict about id and status; and
the web pages (`html_url`) of jobs, packages, schedules and clusters."""

from __future__ import annotations

from typing import Any

import pytest

from exporter.cache import PackageState
from exporter.model import InvalidPayload, JobOutput, JobStatus, parse_job, parse_job_list, parse_timestamp
from exporter.pipelines import parse_cluster, parse_schedule

# Every timestamp here is UTC on the wire and in Unix seconds: under a local time that is not UTC, one written or
# read in local time is 5 h 45 min off, and fails, even on a machine whose own zone is UTC.
pytestmark = pytest.mark.usefixtures("local_time_not_utc")

DOCUMENTED = {
    "id": 157,
    "status": "completed",
    "progress": 1,
    "outputs_count": 1,
    "outputs": [{"id": 3, "name": "projected_results", "records_count": 10415234}],
    "started_at": "2013-04-09T14:19:24Z",
    "completed_at": None,
    "failed_at": None,
    "updated_at": "2013-04-09T14:20:24+02:00",
    "package_id": 434,
    "package": {"id": 434, "name": "orders"},
    "errors": "",
    "runtime_in_seconds": 60,
}


def test_documented_example() -> None:
    job = parse_job(DOCUMENTED)
    assert job.id == 157
    assert job.status is JobStatus.COMPLETED
    assert job.status.is_final
    assert job.progress == 1.0
    assert job.runtime_seconds == 60.0
    assert job.outputs == (JobOutput(id=3, name="projected_results", records_count=10415234.0),)
    assert job.package_id == 434
    assert job.package_name == "orders"
    assert job.started_at == 1365517164.0
    assert job.updated_at == 1365517164.0 + 60 - 7200
    assert job.errors is None


def test_numbers_sent_as_strings_are_read() -> None:
    job = parse_job(
        {
            **DOCUMENTED,
            "progress": "0.5",
            "runtime_in_seconds": "42",
            "outputs": [{"id": "3", "name": "o", "records_count": "10"}],
        }
    )
    assert (job.progress, job.runtime_seconds, job.outputs[0].records_count, job.outputs[0].id) == (
        0.5,
        42.0,
        10.0,
        3,
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("progress", None),
        ("progress", "half"),
        ("progress", True),
        ("progress", float("nan")),
        ("progress", [1]),
    ],
)
def test_a_garbled_field_becomes_unknown_and_the_rest_stays(field: str, value: Any) -> None:
    job = parse_job({**DOCUMENTED, field: value})
    assert job.progress is None
    assert job.runtime_seconds == 60.0


@pytest.mark.parametrize("value", [57, 1.7, -0.2])
def test_a_progress_outside_the_ratio_is_garbled_not_clamped(value: float) -> None:
    job = parse_job({**DOCUMENTED, "progress": value})
    assert (job.progress, job.unusable) == (None, ("progress",))
    assert parse_job({**DOCUMENTED, "progress": 1}).progress == 1.0


def test_nested_nulls() -> None:
    job = parse_job(
        {
            **DOCUMENTED,
            "outputs": [None, {"id": None}, {"id": 4, "name": None, "records_count": None}],
            "package": None,
            "package_id": None,
        }
    )
    assert job.outputs == (JobOutput(id=4, name=None, records_count=None),)
    assert (job.package_id, job.package_name) == (None, None)


def test_undocumented_status_is_unknown_but_kept_raw() -> None:
    job = parse_job({**DOCUMENTED, "status": "exploded"})
    assert job.status is JobStatus.UNKNOWN
    assert job.raw_status == "exploded"
    assert not job.status.is_final


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([DOCUMENTED], "expected a job object, got list"),
        ("x", "expected a job object, got str"),
        ({**DOCUMENTED, "id": None}, "job object without a usable id"),
        ({**DOCUMENTED, "id": -3}, "job object without a usable id"),
        ({**DOCUMENTED, "status": None}, "job 157: no status"),
        ({**DOCUMENTED, "status": ""}, "job 157: no status"),
    ],
)
def test_unusable_payloads(payload: Any, message: str) -> None:
    with pytest.raises(InvalidPayload, match=f"^{message}$"):
        parse_job(payload)


def test_a_list_skips_items_that_are_not_jobs() -> None:
    jobs = parse_job_list([DOCUMENTED, None, {"id": 9}, {**DOCUMENTED, "id": 158}])
    assert [job.id for job in jobs] == [157, 158]
    with pytest.raises(InvalidPayload):
        parse_job_list({"jobs": []})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-28T10:00:00Z", 1795860000.0),
        ("2026-11-28T11:00:00+01:00", 1795860000.0),
        ("2026-11-28T10:00:00", 1795860000.0),
        ("2026-11-28T10:00:00.5Z", 1795860000.5),
        ("yesterday", None),
        ("", None),
        (None, None),
        (12, None),
    ],
)
def test_timestamps(text: Any, expected: float | None) -> None:
    assert parse_timestamp(text) == expected


def test_html_url_is_kept_only_as_a_web_link_and_never_wiped() -> None:
    """`html_url` (resources/job.md: "the job resource URL (Web UI)") becomes the alerts' link to the run."""
    page = "https://integrate.example/acme/jobs/7"
    first = parse_job({"id": 7, "status": "failed", "html_url": page})
    assert first.html_url == page
    assert parse_job({"id": 7, "status": "failed", "html_url": "javascript:alert(1)"}).html_url is None
    assert parse_job({"id": 7, "status": "failed", "html_url": 42}).html_url is None
    assert parse_job({"id": 7, "status": "failed"}).filled_from(first).html_url == page


def test_every_web_page_is_kept_only_as_a_web_link_and_never_wiped() -> None:
    """The package's, a schedule's and a cluster's `html_url` (resources/package.md, resources/schedule.md: "the
    ... resource URL (Web UI)"; the cluster examples of sections/terminate-cluster.md) become the `url` labels
    the dashboard links to. An answer without one keeps the last one, and is no failure (nothing `unusable`)."""
    web = "https://integrate.example/acme"
    job = parse_job({"id": 7, "status": "running", "package": {"id": 434, "html_url": f"{web}/packages/434"}})
    assert job.package_url == f"{web}/packages/434"
    lean = parse_job({"id": 7, "status": "running", "package": {"id": 434, "html_url": "ftp://x/434"}})
    assert lean.package_url is None and lean.unusable == job.unusable
    assert lean.filled_from(job).package_url == f"{web}/packages/434"
    package = PackageState(434).seen(job)
    assert package.url == f"{web}/packages/434"
    assert package.seen(parse_job({"id": 8, "status": "running", "package_id": 434})).url == package.url

    for parse, kind in ((parse_schedule, "schedules"), (parse_cluster, "clusters")):
        first = parse({"id": 2, "status": "enabled", "html_url": f"{web}/{kind}/2"})
        assert first.url == f"{web}/{kind}/2"
        for junk in ("javascript:alert(1)", 42, None):
            later = parse({"id": 2, "status": "enabled", "html_url": junk})
            assert later.url is None and "url" not in later.unusable and "html_url" not in later.unusable
            assert later.filled_from(first).url == first.url
