"""The metric catalogue: every family the exporter serves — name, type, HELP, labels. The public contract.

Dashboards, alert rules and users' queries depend on what is declared here, and nothing else declares it:
`exposition` renders these families (it only fills in samples), and the README's metric table is generated
from them (`python -m exporter.metrics` prints it; `tests/test_metrics.py` fails while the README differs).

Each family is declared once, with `declare(...)`, in the order it is served: all job families, then the
account families, then the package families, then the process's own (`Scope`). The order of declaration is the
order on /metrics and in the README. A declaration refuses names that break Prometheus' conventions or that
`exporter.escaping` could not spell (only `[a-zA-Z_][a-zA-Z0-9_]*`; a counter is declared without `_total`).

Adding a family:
1. declare it below, in its scope's group, with a HELP text, its labels in the order their values are given,
   an `example` line (the text format, as the exporter writes it; the test parses it against the declaration)
   and, when the table needs more than the HELP says, a `details` sentence;
2. give it samples in `exposition`: `_job_samples`, `_account_samples` or `_package_samples` by scope;
3. regenerate the README table: `python -m exporter.metrics`, and paste it between the markers.

A sample of the text format (OpenMetrics differs only in the HELP/TYPE name of counters, which lacks `_total`,
and the final `# EOF`):

    # HELP integrateio_job_status Current status of the job: 1 for the status it is in, 0 for the others...
    # TYPE integrateio_job_status gauge
    integrateio_job_status{job_id="157",status="running"} 1.0
    integrateio_job_status{job_id="157",status="failed"} 0.0
    # HELP integrateio_job_poll_errors_total Failed refreshes of the job, by error class.
    # TYPE integrateio_job_poll_errors_total counter
    integrateio_job_poll_errors_total{error="timeout",job_id="157"} 2.0

With several accounts (`accounts:`) every series but the process's own gets an `account` label first.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from exporter.escaping import PLAIN_NAME, go_float
from exporter.history import COUNTED_STATUSES, DURATION_BUCKETS
from exporter.model import JobStatus
from exporter.pipelines import ClusterStatus

Labels = tuple[str, ...]
PREFIX = "integrateio_"
ACCOUNT_LABEL = "account"


class Kind(enum.Enum):
    """How a family is typed; a state set is served as a gauge (one series per state, 1 for the current one). A
    histogram's series are `_bucket` (with `le`, cumulative, `+Inf` last), `_count` and `_sum`."""

    GAUGE = "gauge"
    COUNTER = "counter"
    STATE_SET = "state set"
    HISTOGRAM = "histogram"


class Scope(enum.IntEnum):
    """Whose series a family holds, which decides when they are rendered again: a job's when the job changes,
    an account's on every update, a package's when its jobs change, the process's once."""

    JOB = 1
    ACCOUNT = 2
    PACKAGE = 3
    PROCESS = 4


@dataclass(frozen=True)
class Family:
    """A metric family as OpenMetrics names it: a counter's family name has no `_total`, its samples do."""

    name: str
    kind: Kind
    scope: Scope
    help: str
    labels: Labels = ()
    example: str = ""
    details: str = ""
    buckets: tuple[float, ...] = ()  # a histogram's upper bounds, ascending, without +Inf

    @property
    def type(self) -> str:
        """The TYPE both formats announce."""
        return "gauge" if self.kind is Kind.STATE_SET else self.kind.value

    @property
    def sample_name(self) -> str:
        """The samples' name, which is also the family's name in the text format (0.0.4 and 1.0.0)."""
        return f"{self.name}_total" if self.kind is Kind.COUNTER else self.name


_declared: list[Family] = []


def declare(
    name: str,
    kind: Kind,
    scope: Scope,
    help: str,
    labels: Labels = (),
    example: str = "",
    details: str = "",
    buckets: tuple[float, ...] = (),
) -> Family:
    """Declares a served family, refusing at import what Prometheus' conventions or our escaping forbid."""
    family = Family(name, kind, scope, help, labels, example, details, buckets)
    problems = [
        f"{name!r} does not start with {PREFIX!r}" if not name.startswith(PREFIX) else "",
        f"{name!r} is not a plain name" if not PLAIN_NAME.fullmatch(name) else "",
        f"counter {name!r} must be declared without _total"
        if kind is Kind.COUNTER and name.endswith("_total")
        else "",
        f"{name!r} is declared twice" if any(known.name == name for known in _declared) else "",
        f"{name!r} is declared after a later scope's families"
        if _declared and _declared[-1].scope > scope
        else "",
        f"{name!r} has a label that is not a plain name"
        if not all(map(PLAIN_NAME.fullmatch, labels))
        else "",
        f"{name!r} repeats a label or uses {ACCOUNT_LABEL!r}"
        if len({*labels, ACCOUNT_LABEL}) != len(labels) + 1
        else "",
        f"{name!r} has no HELP text or no example" if not help or not example else "",
        f"{name!r}: only a histogram has buckets, ascending, and no `le` label"
        if (kind is Kind.HISTOGRAM) != bool(buckets)
        or list(buckets) != sorted(set(buckets))
        or "le" in labels
        else "",
    ]
    problem = next((problem for problem in problems if problem), None)
    if problem is not None:
        raise ValueError(f"metric catalogue: {problem}")
    _declared.append(family)
    return family


def _code(values: tuple[str, ...]) -> str:
    return ", ".join(f"`{value}`" for value in values)


STATUS_VALUES = tuple(status.value for status in JobStatus)
CLUSTER_STATUS_VALUES = tuple(status.value for status in ClusterStatus)

# --- one set per watched job -----------------------------------------------------------------------------------

JOB_STATUS = declare(
    "integrateio_job_status",
    Kind.STATE_SET,
    Scope.JOB,
    "Current status of the job: 1 for the status it is in, 0 for the others (unknown: not a documented one).",
    ("job_id", "status"),
    example='integrateio_job_status{job_id="157",status="running"} 1.0',
    details=f"`status` is one of {_code(STATUS_VALUES)}.",
)
JOB_PROGRESS = declare(
    "integrateio_job_progress_ratio",
    Kind.GAUGE,
    Scope.JOB,
    "Progress of the job, 0 to 1.",
    ("job_id",),
    example='integrateio_job_progress_ratio{job_id="157"} 0.42',
)
JOB_RUNTIME = declare(
    "integrateio_job_runtime_seconds",
    Kind.GAUGE,
    Scope.JOB,
    "Runtime of the job as the API reports it.",
    ("job_id",),
    example='integrateio_job_runtime_seconds{job_id="157"} 754.0',
    details="The API's `runtime_in_seconds`.",
)
JOB_OUTPUT_RECORDS = declare(
    "integrateio_job_output_records",
    Kind.GAUGE,
    Scope.JOB,
    "Records written to each output of the job (records_count).",
    ("job_id", "output_id", "output_name"),
    example='integrateio_job_output_records{job_id="157",output_id="3",output_name="orders_out"} 10415.0',
)
JOB_INFO = declare(
    "integrateio_job_info",
    Kind.GAUGE,
    Scope.JOB,
    "Package of the job; always 1.",
    ("job_id", "package_id", "package_name", "url"),
    example=(
        'integrateio_job_info{job_id="157",package_id="434",package_name="orders",'
        'url="https://integrate.example/acme/jobs/157"} 1.0'
    ),
    details="Joins a job to its package. `url` is the run's page in the Integrate.io web UI (the API's `html_url`), "
    "linked from alerts and the dashboard.",
)
JOB_STARTED = declare(
    "integrateio_job_started_timestamp_seconds",
    Kind.GAUGE,
    Scope.JOB,
    "When the job started, as Unix time.",
    ("job_id",),
    example='integrateio_job_started_timestamp_seconds{job_id="157"} 1.7643204e+09',
    details="Absent until the job started.",
)
JOB_LAST_SUCCESS = declare(
    "integrateio_job_last_success_timestamp_seconds",
    Kind.GAUGE,
    Scope.JOB,
    "When the exporter last refreshed the job successfully, as Unix time.",
    ("job_id",),
    example='integrateio_job_last_success_timestamp_seconds{job_id="157"} 1.764324e+09',
)
JOB_POLL_SUCCESS = declare(
    "integrateio_job_poll_success",
    Kind.GAUGE,
    Scope.JOB,
    "1 if the last refresh of the job succeeded, else 0.",
    ("job_id",),
    example='integrateio_job_poll_success{job_id="157"} 1.0',
)
JOB_MISSING = declare(
    "integrateio_job_missing",
    Kind.GAUGE,
    Scope.JOB,
    "1 while the API answers 404 for the job, else 0.",
    ("job_id",),
    example='integrateio_job_missing{job_id="157"} 0.0',
)
JOB_POLL_ERRORS = declare(
    "integrateio_job_poll_errors",
    Kind.COUNTER,
    Scope.JOB,
    "Failed refreshes of the job, by error class.",
    ("job_id", "error"),
    example='integrateio_job_poll_errors_total{error="timeout",job_id="157"} 2.0',
    details="Error classes: the outcomes of `integrateio_api_requests_total`, plus `invalid_field`, "
    "`unknown_status` and `future_timestamp`, explained below the table.",
)
JOB_ATTEMPTS = declare(
    "integrateio_job_attempts",
    Kind.GAUGE,
    Scope.JOB,
    "Attempts the platform made at the run, as the API reports them.",
    ("job_id",),
    example='integrateio_job_attempts{job_id="157"} 2.0',
    details="The job's `attempts` field, which the API documentation does not list: absent when the API does not "
    "send it (or sends no whole number of at least 0).",
)

# --- one set per account: requests, budget, refresh, configuration, discovery ----------------------------------

API_REQUESTS = declare(
    "integrateio_api_requests",
    Kind.COUNTER,
    Scope.ACCOUNT,
    "API requests sent, by endpoint and outcome.",
    ("endpoint", "outcome"),
    example='integrateio_api_requests_total{endpoint="get_job",outcome="success"} 12.0',
    details="Endpoints: `get_job`, `list_jobs`, `rate_limit_status`; outcomes: `success`, `not_found`, "
    "`unauthorized`, `forbidden`, `rate_limited`, `client_error`, `server_error`, `timeout`, "
    "`connection_error`, `invalid_response`, `link_refused` (a page whose next link leaves the API root), "
    "`unexpected_error` (an exception nobody foresaw, caught at the request boundary).",
)
API_UP = declare(
    "integrateio_api_up",
    Kind.GAUGE,
    Scope.ACCOUNT,
    "1 if the last API request was answered and authenticated.",
    example="integrateio_api_up 1.0",
    details="0 if it could not reach or authenticate to the API.",
)
API_BACKOFF = declare(
    "integrateio_api_backoff_seconds",
    Kind.GAUGE,
    Scope.ACCOUNT,
    "Seconds left in a pause after a 429 or a refused key.",
    example="integrateio_api_backoff_seconds 0.0",
    details="0 when not paused.",
)
API_LIMIT = declare(
    "integrateio_api_rate_limit_credits",
    Kind.GAUGE,
    Scope.ACCOUNT,
    "The key's credit limit as the API reports it.",
    example="integrateio_api_rate_limit_credits 5000.0",
    details="Its `X-RateLimit-Limit` header.",
)
API_REMAINING = declare(
    "integrateio_api_rate_limit_remaining_credits",
    Kind.GAUGE,
    Scope.ACCOUNT,
    "Credits left to the key as the API reports them, all clients of the key included.",
    example="integrateio_api_rate_limit_remaining_credits 4321.0",
    details="Its `X-RateLimit-Remaining` header.",
)
API_FOREIGN_SPEND = declare(
    "integrateio_api_foreign_spend_credits",
    Kind.GAUGE,
    Scope.ACCOUNT,
    "Credits per window the API key's other clients spend, as the exporter estimates it.",
    example="integrateio_api_foreign_spend_credits 1667.0",
    details="The key's limit less `X-RateLimit-Remaining` less the exporter's own sends in the window, projected "
    "over the next window when it rises; absent until the API reported its credits.",
)
BUDGET_SHARE = declare(
    "integrateio_budget_share_credits",
    Kind.GAUGE,
    Scope.ACCOUNT,
    "Credits per window the exporter paces itself to: its budget, less what the key's other clients spend.",
    example="integrateio_budget_share_credits 2700.0",
    details="In twentieths of `integrateio_budget_limit_credits`, one twentieth at least; the refresh interval "
    "stretches to it.",
)
BUDGET_LIMIT = declare(
    "integrateio_budget_limit_credits",
    Kind.GAUGE,
    Scope.ACCOUNT,
    "Credits the exporter allows itself per window.",
    example="integrateio_budget_limit_credits 4500.0",
    details="That is `credits × (1 − reserve)`.",
)
BUDGET_SPENT = declare(
    "integrateio_budget_spent_credits",
    Kind.GAUGE,
    Scope.ACCOUNT,
    "Credits the exporter spent in the current window.",
    example="integrateio_budget_spent_credits 12.0",
    details="The window slides: credits older than it count no more.",
)
BUDGET_REMAINING = declare(
    "integrateio_budget_remaining_credits",
    Kind.GAUGE,
    Scope.ACCOUNT,
    "Credits the exporter may still spend in the window.",
    example="integrateio_budget_remaining_credits 4488.0",
)
BUDGET_WINDOW = declare(
    "integrateio_budget_window_seconds",
    Kind.GAUGE,
    Scope.ACCOUNT,
    "The sliding window of the credit budget.",
    example="integrateio_budget_window_seconds 3600.0",
)
REFRESH_INTERVAL = declare(
    "integrateio_refresh_interval_seconds",
    Kind.GAUGE,
    Scope.ACCOUNT,
    "Effective refresh interval of a job that is not final (stretched when the budget requires).",
    example="integrateio_refresh_interval_seconds 60.0",
)
REFRESH_TARGET = declare(
    "integrateio_refresh_interval_target_seconds",
    Kind.GAUGE,
    Scope.ACCOUNT,
    "The configured polling.interval_seconds.",
    example="integrateio_refresh_interval_target_seconds 60.0",
    details="Below the effective one when the budget stretched it.",
)
WATCHED_JOBS = declare(
    "integrateio_watched_jobs",
    Kind.GAUGE,
    Scope.ACCOUNT,
    "Jobs the exporter watches.",
    example="integrateio_watched_jobs 7.0",
    details="Those in `jobs:` plus those discovery found.",
)
LAST_FULL_REFRESH = declare(
    "integrateio_last_full_refresh_timestamp_seconds",
    Kind.GAUGE,
    Scope.ACCOUNT,
    "When every watched job was last refreshed, as Unix time.",
    example="integrateio_last_full_refresh_timestamp_seconds 1.76432400025e+09",
    details="In one cycle.",
)
CONFIG_RELOAD = declare(
    "integrateio_config_last_reload_success",
    Kind.GAUGE,
    Scope.ACCOUNT,
    "1 if the last configuration load succeeded.",
    example="integrateio_config_last_reload_success 1.0",
    details="At start or on SIGHUP.",
)
CONFIG_RELOAD_TIME = declare(
    "integrateio_config_last_reload_success_timestamp_seconds",
    Kind.GAUGE,
    Scope.ACCOUNT,
    "When the configuration was last loaded successfully, as Unix time.",
    example="integrateio_config_last_reload_success_timestamp_seconds 1.7643e+09",
)
DISCOVERED_JOBS = declare(
    "integrateio_discovered_jobs",
    Kind.GAUGE,
    Scope.ACCOUNT,
    "Jobs watched because discovery found them, on top of the configured ones.",
    example="integrateio_discovered_jobs 3.0",
    details="Only with `discover:`.",
)
DISCOVERY_DROPPED = declare(
    "integrateio_discovery_dropped_jobs",
    Kind.COUNTER,
    Scope.ACCOUNT,
    "Runs discovery did not watch, or stopped watching early, because discover.max_jobs was reached.",
    example="integrateio_discovery_dropped_jobs_total 0.0",
    details="Only with `discover:`.",
)
LIST_MODES = ("full", "lean")
LIST_ITEMS_MODE = declare(
    "integrateio_list_items_mode",
    Kind.STATE_SET,
    Scope.ACCOUNT,
    "What the API's job lists carry: 1 for the mode seen on the last list page, 0 for the other.",
    ("mode",),
    example='integrateio_list_items_mode{mode="lean"} 1.0',
    details=f"`mode` is one of {_code(LIST_MODES)}. `full`: items carry outputs (as documented); `lean`: they "
    "do not, so records counts come from single GETs every `polling.outputs_refresh_seconds` (stretched to the "
    "budget). `full` until a list is read.",
)
WEBHOOK_REQUESTS = declare(
    "integrateio_webhook_requests",
    Kind.COUNTER,
    Scope.ACCOUNT,
    "Web hooks received on webhook.path, by outcome.",
    ("outcome",),
    example='integrateio_webhook_requests_total{outcome="accepted"} 3.0',
    details="Only with `webhook.enabled`. Outcomes: `accepted` (a refresh queued, or nothing to do: `ping`, a "
    "final or unwatched job, an unknown event), `unauthorized` (wrong or missing basic auth, or a hash that does "
    "not match the salt), `invalid` (unreadable, oversized or without Content-Length), `coalesced` (joined a "
    "refresh already pending), `throttled` (the doorbell's share of the budget was used up; the next poll "
    "brings the news).",
)
WEBHOOK_LAST_ACCEPTED = declare(
    "integrateio_webhook_last_accepted_timestamp_seconds",
    Kind.GAUGE,
    Scope.ACCOUNT,
    "When the last web hook was accepted (answered 2xx), as Unix time.",
    example="integrateio_webhook_last_accepted_timestamp_seconds 1.7643e+09",
    details="Only with `webhook.enabled`; until the first hook, the time the doorbell was switched on.",
)

# --- schedules and clusters (`schedules:` / `clusters:` sections): few per account, rendered with its families ---

LISTING_ERRORS = declare(
    "integrateio_listing_errors",
    Kind.COUNTER,
    Scope.ACCOUNT,
    "Failed or partly unusable reads of the schedules or clusters list, by error class.",
    ("resource", "error"),
    example='integrateio_listing_errors_total{error="server_error",resource="schedules"} 1.0',
    details="`resource` is `schedules` or `clusters`; `error` an API error class as in"
    " `integrateio_job_poll_errors_total`, `invalid_item` (an item without a usable id, skipped) or"
    " `invalid_field` (an item with a null or garbled field, which keeps its last good value). A failed read"
    " keeps every item's last good values.",
)
LISTING_LAST_SUCCESS = declare(
    "integrateio_listing_last_success_timestamp_seconds",
    Kind.GAUGE,
    Scope.ACCOUNT,
    "When the schedules or clusters list was last read successfully, as Unix time.",
    ("resource",),
    example='integrateio_listing_last_success_timestamp_seconds{resource="schedules"} 1.7643240e+09',
)
SCHEDULE_INFO = declare(
    "integrateio_schedule_info",
    Kind.GAUGE,
    Scope.ACCOUNT,
    "Name of the schedule; always 1.",
    ("schedule_id", "schedule_name", "url"),
    example=(
        'integrateio_schedule_info{schedule_id="2",schedule_name="nightly",'
        'url="https://integrate.example/acme/schedules/2"} 1.0'
    ),
    details="Every schedule of the account, enabled or not; only with `schedules:`. `url` is its page in the "
    "Integrate.io web UI (the API's `html_url`; empty while the API has not sent one), linked from the dashboard.",
)
SCHEDULE_ENABLED = declare(
    "integrateio_schedule_enabled",
    Kind.GAUGE,
    Scope.ACCOUNT,
    "1 if the schedule is enabled, 0 if disabled.",
    ("schedule_id",),
    example='integrateio_schedule_enabled{schedule_id="2"} 1.0',
)
SCHEDULE_NEXT_RUN = declare(
    "integrateio_schedule_next_run_timestamp_seconds",
    Kind.GAUGE,
    Scope.ACCOUNT,
    "When the schedule runs next (`next_run_at`), as Unix time.",
    ("schedule_id",),
    example='integrateio_schedule_next_run_timestamp_seconds{schedule_id="2"} 1.7643276e+09',
    details="In the past while a due run has not started: the missed-run alert's signal.",
)
SCHEDULE_LAST_RUN = declare(
    "integrateio_schedule_last_run_timestamp_seconds",
    Kind.GAUGE,
    Scope.ACCOUNT,
    "When the schedule last ran (`last_run_at`), as Unix time.",
    ("schedule_id",),
    example='integrateio_schedule_last_run_timestamp_seconds{schedule_id="2"} 1.764324e+09',
    details="Absent until it first ran.",
)
SCHEDULE_LAST_RUN_STATUS = declare(
    "integrateio_schedule_last_run_status",
    Kind.STATE_SET,
    Scope.ACCOUNT,
    "Status of the schedule's last run: 1 for it, 0 for the other statuses.",
    ("schedule_id", "status"),
    example='integrateio_schedule_last_run_status{schedule_id="2",status="failed"} 1.0',
    details="`status` as in `integrateio_job_status` (a status the API adds later is `unknown`); absent until"
    " the schedule first ran.",
)
SCHEDULE_RUNS = declare(
    "integrateio_schedule_runs",
    Kind.COUNTER,
    Scope.ACCOUNT,
    "Times the schedule has run (`execution_count`).",
    ("schedule_id",),
    example='integrateio_schedule_runs_total{schedule_id="2"} 41.0',
)
SCHEDULE_INTERVAL = declare(
    "integrateio_schedule_interval_seconds",
    Kind.GAUGE,
    Scope.ACCOUNT,
    "Time between the schedule's runs (`interval_amount` × `interval_unit`), in seconds.",
    ("schedule_id",),
    example='integrateio_schedule_interval_seconds{schedule_id="2"} 86400.0',
    details="Months are approximated as 30 days and years as 365 days.",
)
SCHEDULE_PACKAGE_INFO = declare(
    "integrateio_schedule_package_info",
    Kind.GAUGE,
    Scope.ACCOUNT,
    "A package the schedule runs; always 1.",
    ("schedule_id", "package_id"),
    example='integrateio_schedule_package_info{package_id="434",schedule_id="2"} 1.0',
    details="Joins schedules to the `package_id` of the job and package series.",
)
CLUSTER_INFO = declare(
    "integrateio_cluster_info",
    Kind.GAUGE,
    Scope.ACCOUNT,
    "Name and type (`sandbox` or `production`) of the cluster; always 1.",
    ("cluster_id", "cluster_name", "type", "url"),
    example=(
        'integrateio_cluster_info{cluster_id="52",cluster_name="etl-prod",type="production",'
        'url="https://integrate.example/acme/clusters/52"} 1.0'
    ),
    details="Only with `clusters:`; a terminated cluster leaves /metrics `clusters.terminated_max_age_seconds`"
    " after it terminated. `url` as in `integrateio_schedule_info`: the cluster's page in the web UI.",
)
CLUSTER_STATUS = declare(
    "integrateio_cluster_status",
    Kind.STATE_SET,
    Scope.ACCOUNT,
    "Status of the cluster: 1 for the status it is in, 0 for the others.",
    ("cluster_id", "status"),
    example='integrateio_cluster_status{cluster_id="52",status="available"} 1.0',
    details="`pending`, `creating`, `available`, `scaling`, `pending_terminate`, `terminating`, `terminated`,"
    " `error`, or `unknown` for a status the API adds later.",
)
CLUSTER_NODES = declare(
    "integrateio_cluster_nodes",
    Kind.GAUGE,
    Scope.ACCOUNT,
    "Compute nodes of the cluster.",
    ("cluster_id",),
    example='integrateio_cluster_nodes{cluster_id="52"} 4.0',
)
CLUSTER_RUNNING_JOBS = declare(
    "integrateio_cluster_running_jobs",
    Kind.GAUGE,
    Scope.ACCOUNT,
    "Jobs now running on the cluster (`running_jobs_count`).",
    ("cluster_id",),
    example='integrateio_cluster_running_jobs{cluster_id="52"} 0.0',
)
CLUSTER_AVAILABLE_SINCE = declare(
    "integrateio_cluster_available_since_timestamp_seconds",
    Kind.GAUGE,
    Scope.ACCOUNT,
    "When the cluster became available, as Unix time.",
    ("cluster_id",),
    example='integrateio_cluster_available_since_timestamp_seconds{cluster_id="52"} 1.7643168e+09',
)
CLUSTER_TERMINATE_ON_IDLE = declare(
    "integrateio_cluster_terminate_on_idle",
    Kind.GAUGE,
    Scope.ACCOUNT,
    "1 if the cluster terminates itself once idle (`terminate_on_idle`), else 0.",
    ("cluster_id",),
    example='integrateio_cluster_terminate_on_idle{cluster_id="52"} 0.0',
    details="An idle cluster with 0 here costs money until someone terminates it.",
)

# --- one set per package the watched jobs belong to ------------------------------------------------------------

PACKAGE_LAST_STATUS = declare(
    "integrateio_package_last_job_status",
    Kind.STATE_SET,
    Scope.PACKAGE,
    "Status of the package's last finished job: 1 for it, 0 for the other statuses.",
    ("package_id", "status"),
    example='integrateio_package_last_job_status{package_id="434",status="completed"} 1.0',
    details="Of the jobs this exporter watches or watched; `status` as in `integrateio_job_status`.",
)
PACKAGE_LAST_SUCCESS = declare(
    "integrateio_package_last_success_timestamp_seconds",
    Kind.GAUGE,
    Scope.PACKAGE,
    "When the package's last completed job finished, as Unix time.",
    ("package_id",),
    example='integrateio_package_last_success_timestamp_seconds{package_id="434"} 1.7643216e+09',
)
PACKAGE_LAST_FAILURE = declare(
    "integrateio_package_last_failure_timestamp_seconds",
    Kind.GAUGE,
    Scope.PACKAGE,
    "When the package's last failed job finished, as Unix time.",
    ("package_id",),
    example='integrateio_package_last_failure_timestamp_seconds{package_id="434"} 1.7642352e+09',
)
PACKAGE_RUNNING = declare(
    "integrateio_package_running_jobs",
    Kind.GAUGE,
    Scope.PACKAGE,
    "Watched jobs of the package now running.",
    ("package_id",),
    example='integrateio_package_running_jobs{package_id="434"} 1.0',
)
PACKAGE_INFO = declare(
    "integrateio_package_info",
    Kind.GAUGE,
    Scope.PACKAGE,
    "Name of the package; always 1.",
    ("package_id", "package_name", "url"),
    example=(
        'integrateio_package_info{package_id="434",package_name="orders",'
        'url="https://integrate.example/acme/packages/434"} 1.0'
    ),
    details="`url` as in `integrateio_schedule_info`: the package's page in the web UI, the `html_url` of the "
    "`package` its jobs carry.",
)
PACKAGE_TYPICAL_DURATION = declare(
    "integrateio_package_typical_duration_seconds",
    Kind.GAUGE,
    Scope.PACKAGE,
    "Median runtime of the package's last completed jobs, in seconds.",
    ("package_id",),
    example='integrateio_package_typical_duration_seconds{package_id="434"} 1260.0',
    details="From its last 20 finished jobs, kept in `state_file` across restarts; absent until 3 of them"
    ' completed. The baseline for "running far longer than usual".',
)
PACKAGE_RUNS = declare(
    "integrateio_package_runs",
    Kind.COUNTER,
    Scope.PACKAGE,
    "Finished runs of the package the exporter saw, by final status.",
    ("package_id", "status"),
    example='integrateio_package_runs_total{package_id="434",status="failed"} 3.0',
    details=f"`status` is {_code(tuple(status.value for status in COUNTED_STATUSES))}. Each run counted once, when "
    "first seen finished; kept in `state_file`, so a restart neither resets the counter nor counts a run again.",
)
PACKAGE_RUN_DURATION = declare(
    "integrateio_package_run_duration_seconds",
    Kind.HISTOGRAM,
    Scope.PACKAGE,
    "Runtimes of the package's completed runs.",
    ("package_id",),
    example='integrateio_package_run_duration_seconds_bucket{le="1800.0",package_id="434"} 12.0',
    details="The API's `runtime_in_seconds` of each completed run counted in `integrateio_package_runs_total` "
    f"(a run without one counts there only). Buckets (`le`): {', '.join(go_float(b) for b in DURATION_BUCKETS)} "
    "and `+Inf`; kept in `state_file` like the counter.",
    buckets=DURATION_BUCKETS,
)

# --- the process's own: never an account label -----------------------------------------------------------------

BUILD_INFO = declare(
    "integrateio_exporter_build_info",
    Kind.GAUGE,
    Scope.PROCESS,
    "Version of the exporter; always 1.",
    ("version", "python_version"),
    example='integrateio_exporter_build_info{python_version="3.11.7",version="0.1.0"} 1.0',
)

FAMILIES = tuple(_declared)
JOB_FAMILIES = tuple(family for family in FAMILIES if family.scope is Scope.JOB)
ACCOUNT_FAMILIES = tuple(family for family in FAMILIES if family.scope is Scope.ACCOUNT)
PACKAGE_FAMILIES = tuple(family for family in FAMILIES if family.scope is Scope.PACKAGE)


def markdown_table() -> str:
    """The README's metric reference: one row per family, in the order they are served."""
    rows = [
        "| metric | type | labels | meaning |",
        "|---|---|---|---|",
    ]
    for family in FAMILIES:
        kind = "state set (gauge)" if family.kind is Kind.STATE_SET else family.kind.value
        meaning = f"{family.help} {family.details}".strip()
        rows.append(f"| `{family.sample_name}` | {kind} | {_code(family.labels)} | {meaning} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
