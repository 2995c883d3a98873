"""Properties that must hold for every input, not just the ones we thought of (hypothesis).

- No JSON value, and no job-shaped object with any value in any field, makes the model raise anything but
  `InvalidPayload`: the poller catches exactly that, so anything else would abort a whole refresh cycle.
- `Job.filled_from` never loses a value that the previous answer had and the new one lacks.
- Any Unicode output name and package name comes back out of /metrics, read by prometheus_client's own parsers
  (text format and OpenMetrics), as exactly the same label value.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import parser as openmetrics_parser
from prometheus_client.parser import text_string_to_metric_families

from exporter.cache import JobCache
from exporter.exposition import Exposition
from exporter.model import InvalidPayload, Job, parse_job, parse_job_list

# The OpenMetrics parser is not annotated; this is how it is called.
openmetrics_families: Callable[[str], Iterator[Metric]] = openmetrics_parser.text_string_to_metric_families
PROPERTY_SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
OPENMETRICS = "application/openmetrics-text; version=1.0.0"
STATUSES = (
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

# --- strategies ----------------------------------------------------------------------------------------------

# JSON numbers as json.loads produces them: integers of any size (a 400-digit one is valid JSON and does not fit
# a float), and floats including nan and ±inf (json.loads accepts NaN and Infinity).
json_numbers = (
    st.integers()
    | st.integers(min_value=-(2**1100), max_value=2**1100)
    | st.floats(allow_nan=True, allow_infinity=True)
)
json_scalars = st.none() | st.booleans() | json_numbers | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def number_text(numbers: st.SearchStrategy[Any]) -> st.SearchStrategy[str]:
    """Numbers sent as strings, as the API sometimes does: "42", " 0.5", "1e400", "nan"."""
    return numbers.map(str) | numbers.map(lambda n: f" {n} ")


timestamps = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
).flatmap(
    lambda moment: st.sampled_from(
        [
            moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
            moment.isoformat(),
            moment.replace(tzinfo=None).isoformat(),
            moment.astimezone(timezone(timedelta(hours=5, minutes=30))).isoformat(),
            moment.astimezone(timezone(-timedelta(hours=23, minutes=59))).isoformat(),
        ]
    )
)


def field(plausible: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A field's value: plausible for it, or any JSON value at all."""
    return plausible | json_values


output_objects = st.fixed_dictionaries(
    {},
    optional={
        "id": field(st.integers(min_value=0, max_value=10**6) | number_text(st.integers())),
        "name": field(st.text()),
        "records_count": field(json_numbers | number_text(json_numbers)),
        "component": json_values,
    },
)
job_fields = {
    "id": field(st.integers(min_value=1, max_value=10**9) | number_text(st.integers(min_value=-5))),
    "status": field(st.sampled_from(STATUSES) | st.sampled_from(STATUSES).map(str.upper) | st.text()),
    "progress": field(json_numbers | number_text(json_numbers)),
    "runtime_in_seconds": field(json_numbers | number_text(json_numbers)),
    "outputs": field(st.lists(output_objects | json_values, max_size=4)),
    "outputs_count": json_values,
    "package": field(
        st.fixed_dictionaries({}, optional={"id": field(st.integers()), "name": field(st.text())})
    ),
    "package_id": field(st.integers() | number_text(json_numbers)),
    "started_at": field(timestamps),
    "updated_at": field(timestamps),
    "created_at": field(timestamps),
    "completed_at": field(timestamps),
    "failed_at": field(timestamps),
    "errors": field(st.text()),
}
job_like = st.fixed_dictionaries({}, optional=job_fields)
usable_job = st.fixed_dictionaries(
    {"id": st.integers(min_value=1, max_value=10**9), "status": st.sampled_from(STATUSES)},
    optional={name: strategy for name, strategy in job_fields.items() if name not in ("id", "status")},
)


# --- the model never raises anything but InvalidPayload ------------------------------------------------------


def parses_or_refuses(payload: Any, *, listed: bool = False) -> Job | None:
    try:
        return parse_job(payload, listed=listed)
    except InvalidPayload:
        return None


@PROPERTY_SETTINGS
@given(json_values | job_like)
def test_no_json_value_makes_parse_job_raise_anything_but_invalid_payload(payload: Any) -> None:
    job = parses_or_refuses(payload)
    if job is not None:
        assert job.id > 0
        for number in (job.progress, job.runtime_seconds, *(o.records_count for o in job.outputs)):
            assert number is None or (math.isfinite(number) and number >= 0)
        assert job.progress is None or 0.0 <= job.progress <= 1.0


@PROPERTY_SETTINGS
@given(json_values | st.lists(job_like | json_values, max_size=5))
def test_no_json_value_makes_parse_job_list_raise_anything_but_invalid_payload(payload: Any) -> None:
    try:
        jobs = parse_job_list(payload)
    except InvalidPayload:
        assert not isinstance(payload, list)
        return
    # One bad item never hides the good ones: every item that parses on its own is in the list.
    assert isinstance(payload, list)
    listed = [parses_or_refuses(item, listed=True) for item in payload]
    assert jobs == [job for job in listed if job is not None]


# --- filled_from never loses a value ------------------------------------------------------------------------

_NOT_VALUES = {"id", "status", "raw_status", "unusable", "outputs"}


@PROPERTY_SETTINGS
@given(usable_job, usable_job)
def test_filled_from_never_loses_a_value_the_previous_answer_had(previous: Any, new: Any) -> None:
    old, fresh = parse_job(previous), parse_job({**new, "id": previous["id"]})
    merged = fresh.filled_from(old)

    assert (merged.id, merged.status, merged.raw_status) == (fresh.id, fresh.status, fresh.raw_status)
    for spec in dataclasses.fields(Job):
        name = spec.name
        if name in _NOT_VALUES or (name == "finished_at" and not fresh.status.is_final):
            continue  # a job that is not final has no finish time: that is not a value it lacks
        had, says, kept = getattr(old, name), getattr(fresh, name), getattr(merged, name)
        expected = had if says is None else says
        assert kept == expected, f"{name}: previous {had!r}, new {says!r}, merged {kept!r}"

    # Outputs: an answer without any keeps them all; an output in both keeps what the new answer lacks.
    if not fresh.outputs:
        assert merged.outputs == old.outputs
        return
    old_outputs = {output.id: output for output in old.outputs}
    assert [output.id for output in merged.outputs] == [output.id for output in fresh.outputs]
    for output, says in zip(merged.outputs, fresh.outputs, strict=True):
        before = old_outputs.get(output.id)
        for attribute in ("name", "records_count"):
            new_value = getattr(says, attribute)
            had = getattr(before, attribute) if before is not None else None
            assert getattr(output, attribute) == (had if new_value is None else new_value), (
                output.id,
                attribute,
            )


# --- any Unicode label value survives /metrics ---------------------------------------------------------------


def rendered(output_name: str, package_name: str, accept: str | None) -> str:
    cache = JobCache()
    cache.set_watched([157])
    payload = {
        "id": 157,
        "status": "running",
        "progress": 0.5,
        "runtime_in_seconds": 12,
        "package_id": 434,
        "package": {"id": 434, "name": package_name},
        "outputs": [{"id": 3, "name": output_name, "records_count": 10415}],
    }
    cache.record_jobs([parse_job(payload)], 1_700_000_000.0)
    return Exposition(cache).render(accept).body.decode("utf-8")


def label_values(families: Any, sample_name: str, label: str) -> list[str]:
    return [
        sample.labels[label] for family in families for sample in family.samples if sample.name == sample_name
    ]


@PROPERTY_SETTINGS
@given(st.text(), st.text())
def test_any_unicode_name_survives_the_text_format(output_name: str, package_name: str) -> None:
    body = rendered(output_name, package_name, None)
    families = list(text_string_to_metric_families(body))
    assert label_values(families, "integrateio_job_output_records", "output_name") == [output_name]
    assert label_values(families, "integrateio_job_info", "package_name") == [package_name]


@PROPERTY_SETTINGS
@given(st.text(), st.text())
def test_any_unicode_name_survives_openmetrics(output_name: str, package_name: str) -> None:
    body = rendered(output_name, package_name, OPENMETRICS)
    families = list(openmetrics_families(body))
    assert label_values(families, "integrateio_job_output_records", "output_name") == [output_name]
    assert label_values(families, "integrateio_job_info", "package_name") == [package_name]
