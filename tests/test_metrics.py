"""The metric catalogue is the contract: the README's table, the examples in it and what /metrics serves all
follow `exporter.metrics`, and a declaration that breaks Prometheus' conventions is refused at import."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from types import MappingProxyType

import pytest
from prometheus_client.parser import text_string_to_metric_families as parse_text

from exporter import metrics
from exporter.cache import JobCache, ListingHealth
from exporter.exposition import Exposition
from exporter.pipelines import parse_cluster, parse_schedule
from tests.test_exposition import budget, payload, record

README = Path(__file__).resolve().parent.parent / "README.md"
TABLE = re.compile(r"<!-- metric table: .*? -->\n(.*?)<!-- end of metric table -->", re.DOTALL)


def readme_table() -> str:
    found = TABLE.search(README.read_text(encoding="utf-8"))
    assert found is not None, "README.md lost the metric table's markers"
    return found.group(1)


def test_the_readme_table_is_the_catalogue() -> None:
    assert readme_table() == metrics.markdown_table(), (
        "README.md's metric table differs from exporter/metrics.py: paste the output of "
        "`python -m exporter.metrics` between its markers"
    )


def test_the_table_has_one_row_per_family_in_served_order() -> None:
    """What the README shows, read back: a family missing, renamed or with changed HELP fails the test above;
    this pins down the reading of the rows themselves."""
    rows = readme_table().splitlines()[2:]
    names = [row.split("`")[1] for row in rows]
    assert names == [family.sample_name for family in metrics.FAMILIES]
    status = rows[0]
    assert status.startswith(
        "| `integrateio_job_status` | state set (gauge) | `job_id`, `status` | Current status"
    )
    assert "`pending_stoppage`" in status
    assert (
        "| `integrateio_api_requests_total` | counter | `endpoint`, `outcome` | API requests sent"
        in "\n".join(rows)
    )


def test_the_module_prints_the_table() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "exporter.metrics"], capture_output=True, text=True, check=True, timeout=60
    )
    assert printed.stdout == metrics.markdown_table()


@pytest.mark.parametrize("family", metrics.FAMILIES, ids=lambda family: family.name)
def test_each_example_is_a_sample_of_its_family(family: metrics.Family) -> None:
    """The example lines in the catalogue parse as the family declares it: name, labels, type."""
    text = f"# TYPE {family.sample_name} {family.type}\n{family.example}\n"
    (parsed,) = parse_text(text)
    (sample,) = parsed.samples
    histogram = family.kind is metrics.Kind.HISTOGRAM  # the example is one of its buckets
    assert sample.name == family.sample_name + ("_bucket" if histogram else "")
    assert sorted(sample.labels) == sorted([*family.labels, *(["le"] if histogram else [])])
    assert parsed.type == family.type


def everything_cache() -> JobCache:
    """A cache in which every family has a series: finished and running jobs of a package, a failure, a
    missing job, discovery on, the budget with the API's figures."""
    cache = JobCache()
    cache.set_watched([1, 2, 3, 4, 5, 6])
    record(
        cache,
        payload(1, status="completed", completed_at="2026-11-28T10:30:00Z"),
        payload(2, status="failed", completed_at="2026-11-28T10:40:00Z", attempts=2),
        payload(3),
        # Three completed runs: the package's typical duration is known.
        payload(5, status="completed", completed_at="2026-11-27T10:30:00Z"),
        payload(6, status="completed", completed_at="2026-11-26T10:30:00Z"),
    )
    cache.record_failure(3, "timeout")
    cache.record_missing(4)
    cache.record_request("get_job", "success")
    cache.update_exporter(
        budget=budget(),
        api_up=True,
        interval_seconds=60.0,
        target_interval_seconds=60.0,
        last_full_refresh=1_764_324_000.0,
        config_reload_time=1_764_300_000.0,
        discovered_jobs=2,
        discovery_dropped=1,
        list_items="lean",
    )
    cache.enable_webhook(("accepted",), 1_764_324_000.0)
    cache.publish_listing(
        "schedules",
        ListingHealth(MappingProxyType({"server_error": 1}), last_success=1_764_324_000.0),
        {"schedules": (parse_schedule(SCHEDULE),)},
    )
    cache.publish_listing("clusters", ListingHealth(), {"clusters": (parse_cluster(CLUSTER),)})
    return cache


# One of each, as the documented list examples show them (sections/list-schedules.md, list-clusters.md).
SCHEDULE = {
    "id": 2,
    "name": "My Schedule",
    "status": "enabled",
    "next_run_at": "2026-11-28T08:48:00Z",
    "last_run_at": "2026-11-27T08:48:00Z",
    "last_run_status": "completed",
    "execution_count": 41,
    "interval_amount": 1,
    "interval_unit": "days",
    "task": {"nodes": 3, "packages": [{"package_id": "1", "variables": {}}]},
}
CLUSTER = {
    "id": 99,
    "name": "Daily Outliers Test #100",
    "status": "available",
    "nodes": 2,
    "type": "production",
    "available_since": "2026-11-28T08:00:00Z",
    "running_jobs_count": 0,
    "terminate_on_idle": False,
}


@pytest.mark.parametrize("accept", [None, "application/openmetrics-text"])
def test_the_exposition_serves_exactly_the_catalogue_in_its_order(accept: str | None) -> None:
    body = Exposition(everything_cache()).render(accept).body.decode()
    served = re.findall(r"^# TYPE (\S+) (\S+)$", body, re.MULTILINE)
    name = "name" if accept else "sample_name"  # OpenMetrics names a counter's family without _total
    assert served == [(getattr(family, name), family.type) for family in metrics.FAMILIES]
    helps = re.findall(r"^# HELP \S+ (.*)$", body, re.MULTILINE)
    assert helps == [family.help for family in metrics.FAMILIES]  # our HELP texts need no escaping


def test_with_accounts_every_family_but_the_process_one_leads_with_the_account_label() -> None:
    from exporter.exposition import for_accounts

    for family in metrics.FAMILIES:
        served = for_accounts(family, labelled=True)
        if family.scope is metrics.Scope.PROCESS:
            assert served == family
        else:
            assert served.labels == ("account", *family.labels)
        assert for_accounts(family, labelled=False) == family


@pytest.mark.parametrize(
    ("name", "kind", "scope", "labels", "problem"),
    [
        ("jobs_total_things", metrics.Kind.GAUGE, metrics.Scope.PROCESS, (), "does not start with"),
        ("integrateio_a:b", metrics.Kind.GAUGE, metrics.Scope.PROCESS, (), "not a plain name"),
        ("integrateio_a.b", metrics.Kind.GAUGE, metrics.Scope.PROCESS, (), "not a plain name"),
        ("integrateio_x_total", metrics.Kind.COUNTER, metrics.Scope.PROCESS, (), "without _total"),
        ("integrateio_job_status", metrics.Kind.GAUGE, metrics.Scope.PROCESS, (), "declared twice"),
        ("integrateio_late_job", metrics.Kind.GAUGE, metrics.Scope.JOB, ("job_id",), "later scope"),
        ("integrateio_x", metrics.Kind.GAUGE, metrics.Scope.PROCESS, ("a-b",), "label that is not a plain"),
        ("integrateio_x", metrics.Kind.GAUGE, metrics.Scope.PROCESS, ("a", "a"), "repeats a label"),
        ("integrateio_x", metrics.Kind.GAUGE, metrics.Scope.PROCESS, ("account",), "repeats a label"),
    ],
)
def test_a_declaration_against_the_conventions_is_refused(
    name: str, kind: metrics.Kind, scope: metrics.Scope, labels: tuple[str, ...], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        metrics.declare(name, kind, scope, "Help.", labels, example=f"{name} 1.0")
