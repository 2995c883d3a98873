"""Alert rules: promtool checks and unit tests, and the README's metric contract.

The rules live in one file, helm/integrateio-exporter/files/integrateio-alerts.yaml (loaded as-is by plain
Prometheus, embedded by the chart's PrometheusRule). Their unit tests are tests/rules/*.test.yaml, run here
with `promtool test rules` (Debian's prometheus package: the `promtool` fixture skips without it, except in CI). Every alert has a test where it
fires with exact labels and annotations, and tests/rules/healthy.test.yaml shows that healthy jobs raise none.
The on-call scenarios of issue 11 are there too (a retry that succeeds, a run stopped on purpose, an exporter
restarted mid-failure, a quiet daily package, a run queued for 10 hours, a target gone); the API outage at 5,000
jobs is tests/test_alert_storm.py (beyond what promtool's unit tests can load).

`all_promql_expressions()` gives every PromQL expression of the rules, for tests that run them against a real
Prometheus. The dashboard's queries are tested in tests/test_dashboard.py and tests/test_dashboard_e2e.py.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "helm/integrateio-exporter/files/integrateio-alerts.yaml"
RULE_TESTS = sorted((ROOT / "tests/rules").glob("*.test.yaml"))
README = ROOT / "README.md"

RUNBOOK = ROOT / "docs/runbook.md"

EXPECTED_ALERTS = {
    "IntegrateioPackageFailed",
    "IntegrateioPackageNoRecentSuccess",
    "IntegrateioRunStuck",
    "IntegrateioRunProgressFrozen",
    "IntegrateioRunTooLong",
    "IntegrateioExporterDown",
    "IntegrateioExporterAbsent",
    "IntegrateioApiDown",
    "IntegrateioDataStale",
    "IntegrateioJobMissing",
    "IntegrateioCreditsNearlyExhausted",
    "IntegrateioConfigReloadFailed",
    "IntegrateioWebhookSilent",
    "IntegrateioScheduleMissedRun",
    "IntegrateioScheduleLastRunFailed",
    "IntegrateioClusterError",
    "IntegrateioClusterIdle",
}
# Alerts about one run (or a package's failed run): their `link` annotation is the run in Integrate.io's web UI.
ALERTS_WITH_A_LINK = {
    "IntegrateioPackageFailed",
    "IntegrateioRunStuck",
    "IntegrateioRunProgressFrozen",
    "IntegrateioRunTooLong",
}


def load_rules() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return document


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in load_rules()["groups"] for rule in group["rules"] if "alert" in rule]


def all_promql_expressions() -> list[tuple[str, str]]:
    """(where, expr) for every rule of the alerts file."""
    found: list[tuple[str, str]] = []
    for group in load_rules()["groups"]:
        for rule in group["rules"]:
            name = rule.get("alert") or rule.get("record")
            found.append((f"{RULES.name}: {group['name']}/{name}", rule["expr"].strip()))
    return found


def readme_contract() -> tuple[set[str], set[str]]:
    """Metric names and label names of the README's metric reference table."""
    metrics: set[str] = set()
    labels: set[str] = set()
    for line in README.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`integrateio_"):
            metrics.add(cells[0].strip("`"))
            labels.update(re.findall(r"`(\w+)`", cells[2]))
            if cells[1] == "histogram":  # served as its _bucket (with `le`), _count and _sum series
                metrics.update(cells[0].strip("`") + suffix for suffix in ("_bucket", "_count", "_sum"))
                labels.add("le")
    return metrics, labels


# --- promtool -----------------------------------------------------------------------------------------------


def test_promtool_check_rules(promtool: str) -> None:
    result = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    count = sum(len(group["rules"]) for group in load_rules()["groups"])
    assert f"SUCCESS: {count} rules found" in result.stdout


def test_promtool_unit_tests_pass(promtool: str) -> None:
    assert [path.name for path in RULE_TESTS] == [
        "exporter.test.yaml",
        "healthy.test.yaml",
        "history.test.yaml",
        "packages.test.yaml",
        "pipelines.test.yaml",
        "runs.test.yaml",
        "webhook.test.yaml",
    ]
    result = subprocess.run(
        [promtool, "test", "rules", *map(str, RULE_TESTS)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(RULE_TESTS)


def test_promtool_unit_tests_can_fail(tmp_path: Path, promtool: str) -> None:
    """A test expecting the wrong thing fails: the runner is not a no-op."""
    wrong = tmp_path / "wrong.test.yaml"
    wrong.write_text(
        f"""
rule_files: [{RULES}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'integrateio_config_last_reload_success{{job="integrateio"}}'
        values: '1x10'
    alert_rule_test:
      - eval_time: 5m
        alertname: IntegrateioConfigReloadFailed
        exp_alerts:
          - exp_labels: {{severity: warning, job: integrateio}}
""",
        encoding="utf-8",
    )
    result = subprocess.run(
        [promtool, "test", "rules", str(wrong)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode != 0
    assert "FAILED" in result.stdout + result.stderr


# --- the rules themselves -----------------------------------------------------------------------------------


def test_the_expected_alerts_are_there() -> None:
    names = [rule["alert"] for rule in alert_rules()]
    assert len(names) == len(set(names))
    assert set(names) == EXPECTED_ALERTS


def runbook_anchors() -> set[str]:
    """GitHub's anchors of the runbook's `## ` headings (lower case, spaces to dashes, punctuation dropped)."""
    headings = re.findall(r"^## (.+)$", RUNBOOK.read_text(encoding="utf-8"), flags=re.MULTILINE)
    return {re.sub(r"[^a-z0-9 _-]", "", heading.strip().lower()).replace(" ", "-") for heading in headings}


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_every_alert_has_severity_summary_description_runbook_and_link(rule: dict[str, Any]) -> None:
    assert set(rule["labels"]) == {"severity"}
    assert rule["labels"]["severity"] in {"warning", "critical"}
    expected = {"summary", "description", "runbook_url"}
    if rule["alert"] in ALERTS_WITH_A_LINK:
        expected.add("link")
        assert 'label "url"' in rule["annotations"]["link"]
    assert set(rule["annotations"]) == expected
    assert all(text.strip() for text in rule["annotations"].values())
    assert rule["annotations"]["runbook_url"] == f"docs/runbook.md#{rule['alert'].lower()}"
    assert rule["alert"].lower() in runbook_anchors()


def test_the_runbook_has_a_section_per_alert_with_meaning_checks_and_fixes() -> None:
    text = RUNBOOK.read_text(encoding="utf-8")
    sections = re.split(r"^## ", text, flags=re.MULTILINE)[1:]
    by_alert = {section.split("\n", 1)[0].strip(): section for section in sections}
    assert set(by_alert) == EXPECTED_ALERTS
    for name, section in by_alert.items():
        for part in ("**What it means.**", "**First checks.**", "**Fixes.**", "**Tuning.**"):
            assert part in section, (name, part)


def test_the_simple_alerts_are_exactly_as_specified() -> None:
    rules = {rule["alert"]: rule for rule in alert_rules()}
    assert rules["IntegrateioApiDown"]["expr"] == "min by (job, account) (integrateio_api_up) == 0"
    assert rules["IntegrateioApiDown"]["for"] == "5m"
    assert rules["IntegrateioExporterDown"]["expr"] == 'min by (job) (up{job=~".*integrateio.*"}) == 0'
    assert rules["IntegrateioExporterAbsent"]["expr"] == 'absent(up{job=~".*integrateio.*"})'
    assert rules["IntegrateioJobMissing"]["expr"] == (
        "count by (job, account) (max by (job, account, job_id) (integrateio_job_missing) == 1)"
    )
    assert "for" not in rules["IntegrateioPackageFailed"]  # the grace is in the expression: see below
    for name in ("IntegrateioPackageFailed", "IntegrateioRunStuck", "IntegrateioRunTooLong"):
        assert rules[name]["keep_firing_for"] == "10m", name  # a restart's gap neither resolves nor re-fires


def test_no_alert_depends_on_the_instance() -> None:
    """A rollout or a restart changes `instance`: no alert keeps it. Every `by (…)` leaves it out (an `on (…)`
    may match series of one target, inside an aggregation that drops it), and every selector of the rules'
    scrape job is the one the chart replaces with alerts.jobSelector."""
    for group in load_rules()["groups"]:
        for rule in group["rules"]:
            name = rule.get("alert") or rule["record"]
            for labels in re.findall(r"\bby\s*\(([^)]*)\)", rule["expr"]):
                assert "instance" not in labels, (name, labels)
            for selector in re.findall(r"\bup\{([^}]*)\}", rule["expr"]):
                assert selector == 'job=~".*integrateio.*"', (name, selector)


PACKAGE_GROUPING = "by (job, account, package_id)"


def grouping_lists(expr: str) -> list[list[str]]:
    """The label lists of every `by (…)` and `on (…)` in `expr`."""
    return [
        [label.strip() for label in group.split(",") if label.strip()]
        for group in re.findall(r"\b(?:by|on)\s*\(([^)]*)\)", expr)
    ]


def test_the_package_alerts_compare_replicas_through_their_timestamps() -> None:
    """With --shard each replica reports the packages of its own jobs: the package alerts take the newest
    timestamps over all instances of a scrape job, per account and package, and wait until every target of the
    scrape job has completed a full refresh and the job has been scraped for more than one interval."""
    rules = {rule["alert"]: rule for rule in alert_rules()}
    refreshed = (
        "and on (job, account) ( count by (job, account) "
        "(max_over_time(integrateio_last_full_refresh_timestamp_seconds[1h])) "
        ">= on (job) group_left () count by (job) (up) ) "
        "and on (job) max by (job) (count_over_time(up[10m])) > 1"
    )
    for name in ("IntegrateioPackageFailed", "IntegrateioPackageNoRecentSuccess"):
        expr = " ".join(rules[name]["expr"].split())
        assert refreshed in expr, name
        for timestamp in re.findall(r"integrateio_package_last_\w+_timestamp_seconds\S*", expr):
            assert timestamp.endswith("[1h]))"), (name, timestamp)
        assert "integrateio_package_info" in rules[name]["annotations"]["description"]


def test_every_vector_matching_keeps_the_account_apart() -> None:
    """`accounts:` puts an `account` label on every series, and two accounts can share job and package ids:
    every `on (…)` / `by (…)` of the rules lists it (absent without `accounts:`, where it matches as empty)."""
    for rule in alert_rules():
        for labels in grouping_lists(rule["expr"]):
            if labels == ["job"] and re.search(r"\(up\b|integrateio_config_", rule["expr"]):
                continue  # `up` and the configuration: series of the scrape and the process, not of an account
            assert ACCOUNT_LABEL in labels, (rule["alert"], labels)
        for text in rule["annotations"].values():
            for query in re.findall(r'printf "([^"]*integrateio_\w+\{[^"]*)"', text):
                if "integrateio_config_" not in query:
                    assert "account=%q" in query, (rule["alert"], query)


def rule_tests() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in RULE_TESTS:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert document["rule_files"] == ["../../helm/integrateio-exporter/files/integrateio-alerts.yaml"]
        for test in document["tests"]:
            found.append((path.name, test))
    return found


def test_every_alert_has_a_test_where_it_fires() -> None:
    firing = {
        case["alertname"]
        for _, test in rule_tests()
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert firing == EXPECTED_ALERTS


def test_every_firing_expectation_checks_labels_and_both_annotations() -> None:
    for name, test in rule_tests():
        for case in test.get("alert_rule_test", []):
            for alert in case.get("exp_alerts") or []:
                assert "severity" in alert["exp_labels"], (name, case)
                expected = {"summary", "description", "runbook_url"}
                if case["alertname"] in ALERTS_WITH_A_LINK:
                    expected.add("link")
                assert set(alert["exp_annotations"]) == expected, (name, case)


def test_the_healthy_test_asserts_silence_for_every_alert_at_every_time() -> None:
    (test,) = [test for name, test in rule_tests() if name == "healthy.test.yaml"]
    cases = test["alert_rule_test"]
    assert all(case["exp_alerts"] == [] for case in cases)
    times = {case["eval_time"] for case in cases}
    assert len(times) >= 5
    for time in times:
        assert {case["alertname"] for case in cases if case["eval_time"] == time} == EXPECTED_ALERTS


# --- the metric contract ------------------------------------------------------------------------------------

# The median runtime of a package's recent completed runs, kept across restarts: IntegrateioRunTooLong's input,
# added to the exporter by issue 11's state work (the README table lists it once both are merged).
TARGET_LABELS = {"job", "instance"}  # added by Prometheus to every scraped series
ACCOUNT_LABEL = "account"  # on every series with `accounts:` (the paragraph below the README's metric table)


def test_readme_contract_is_read() -> None:
    metrics, labels = readme_contract()
    assert len(metrics) >= 25
    assert {"integrateio_job_status", "integrateio_api_up", "integrateio_budget_remaining_credits"} <= metrics
    assert {"job_id", "status", "package_name", "output_name", "endpoint", "outcome", "error"} <= labels
    assert {"package_id", "package_name"} <= labels
    assert "every series carries an `account` label" in README.read_text(encoding="utf-8")


@pytest.mark.parametrize(("where", "expr"), all_promql_expressions(), ids=lambda value: str(value)[:60])
def test_expressions_use_only_the_readme_metrics_and_labels(where: str, expr: str) -> None:
    metrics, labels = readme_contract()
    assert "$" not in expr, where
    used_metrics = set(re.findall(r"\bintegrateio_\w+", expr))
    assert used_metrics <= metrics, (where, used_metrics - metrics)
    other = set(re.findall(r"\b([a-z_]+)\s*\{", expr)) - used_metrics - {"by", "on"}
    assert other <= {"up"}, (where, other)
    used_labels = set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)\s*\"", expr))
    for group in re.findall(r"\b(?:by|on|without|ignoring|group_left|group_right)\s*\(([^)]*)\)", expr):
        used_labels.update(label.strip() for label in group.split(",") if label.strip())
    allowed = labels | TARGET_LABELS | {ACCOUNT_LABEL}
    assert used_labels <= allowed, (where, used_labels - allowed)


def test_all_promql_expressions_covers_the_rules() -> None:
    expressions = all_promql_expressions()
    assert len(expressions) == sum(len(group["rules"]) for group in load_rules()["groups"])
    assert all(where.startswith(RULES.name) for where, _ in expressions)


# --- plain Prometheus (deploy/prometheus/prometheus.yml) ----------------------------------------------------


def test_plain_prometheus_config_loads_the_rule_file(tmp_path: Path, promtool: str) -> None:
    """The example config, with the rule file copied beside it as its comment says, passes promtool."""
    example = ROOT / "deploy/prometheus/prometheus.yml"
    config = yaml.safe_load(example.read_text(encoding="utf-8"))
    assert config["rule_files"] == [RULES.name]
    shutil.copy(example, tmp_path / "prometheus.yml")
    shutil.copy(RULES, tmp_path / RULES.name)
    result = subprocess.run(
        [promtool, "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout
    assert (
        f"SUCCESS: {sum(len(group['rules']) for group in load_rules()['groups'])} rules found"
        in result.stdout
    )
    (job,) = config["scrape_configs"]
    assert re.fullmatch(".*integrateio.*", job["job_name"])  # what IntegrateioExporterDown selects
    assert job["static_configs"] == [{"targets": ["localhost:9863"]}]
