"""The chart's `alerts:` values, rendered by Helm itself (in-process, as tests/test_helm.py does): per-alert
enable, severity, `for` and thresholds, the rules' scrape job selector and the runbook's URL.

With the default values the PrometheusRule holds the rule file unchanged (tests/test_helm.py), so the defaults of
values.yaml must be the rule file's own settings: checked here against the file. The thresholds rendered are then
checked by promtool: a changed grace really changes when IntegrateioPackageFailed fires.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from tests.test_helm import CHART, MINIMAL, RULES, chart, only, render, render_raw, with_changes
from tests.test_rules import EXPECTED_ALERTS

__all__ = ["chart"]  # the module-scoped fixture, shared with tests/test_helm.py

VALUES = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
RESERVED = {"enabled", "severity", "for"}


def source_rules() -> dict[str, dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return {rule["alert"]: rule for group in document["groups"] for rule in group["rules"] if "alert" in rule}


def rendered_rules(chart: helm.Chart, **alerts: Any) -> dict[str, dict[str, Any]]:
    values = with_changes(
        MINIMAL, prometheusRule={"enabled": True}, **{f"alerts__{k}": v for k, v in alerts.items()}
    )
    groups = only(render(chart, values), "PrometheusRule")["spec"]["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"] if "alert" in rule}


def test_every_alert_has_values_and_they_are_the_rule_files_own() -> None:
    defaults = VALUES["alerts"]["rules"]
    assert set(defaults) == EXPECTED_ALERTS
    for name, rule in source_rules().items():
        settings = defaults[name]
        assert settings["enabled"] is True, name
        assert settings["severity"] == rule["labels"]["severity"], name
        assert settings.get("for") == rule.get("for"), name
        thresholds = {key: value for key, value in settings.items() if key not in RESERVED}
        marked = dict(re.findall(r"(-?[0-9][0-9.e+]*) # (\w+)$", rule["expr"], flags=re.MULTILINE))
        assert {key: float(text) for text, key in marked.items()} == {
            k: float(v) for k, v in thresholds.items()
        }
    assert VALUES["alerts"]["jobSelector"] == 'job=~".*integrateio.*"'
    assert VALUES["alerts"]["runbookUrl"] == "docs/runbook.md"


def test_an_alert_can_be_switched_off(chart: helm.Chart) -> None:
    rules = rendered_rules(chart, rules={"IntegrateioExporterAbsent": {"enabled": False}})
    assert set(rules) == EXPECTED_ALERTS - {"IntegrateioExporterAbsent"}


def test_severity_and_for_are_overridden_per_alert(chart: helm.Chart) -> None:
    rules = rendered_rules(
        chart, rules={"IntegrateioRunStuck": {"severity": "page"}, "IntegrateioApiDown": {"for": "15m"}}
    )
    source = source_rules()
    assert rules["IntegrateioRunStuck"]["labels"] == {"severity": "page"}
    assert rules["IntegrateioApiDown"]["for"] == "15m"
    assert rules["IntegrateioApiDown"]["labels"] == {"severity": "critical"}
    assert rules["IntegrateioRunStuck"]["expr"] == source["IntegrateioRunStuck"]["expr"]


def test_thresholds_replace_the_marked_numbers_only(chart: helm.Chart) -> None:
    rules = rendered_rules(
        chart,
        rules={
            "IntegrateioPackageFailed": {"graceSeconds": 120, "expireAfterSeconds": 172800},
            "IntegrateioPackageNoRecentSuccess": {"thresholdHours": 1.5},
            "IntegrateioRunTooLong": {"factor": 2.5},
            "IntegrateioCreditsNearlyExhausted": {"toleranceRatio": 10},
        },
    )
    source = source_rules()
    failed = source["IntegrateioPackageFailed"]["expr"]
    assert rules["IntegrateioPackageFailed"]["expr"] == (
        failed.replace("900 # graceSeconds", "120 # graceSeconds").replace(
            "86400 # expireAfterSeconds", "172800 # expireAfterSeconds"
        )
    )
    assert failed.count("900 # graceSeconds") == 2
    assert "> 3600 * 1.5 # thresholdHours" in rules["IntegrateioPackageNoRecentSuccess"]["expr"]
    too_long = rules["IntegrateioRunTooLong"]["expr"]
    assert "2.5 # factor" in too_long and "1800 # minimumSeconds" in too_long
    assert rules["IntegrateioCreditsNearlyExhausted"]["expr"].rstrip().endswith("> 10 # toleranceRatio")


def test_job_selector_and_runbook_url_are_values(chart: helm.Chart) -> None:
    rules = rendered_rules(
        chart,
        jobSelector='job="prod-integrateio-exporter"',
        runbookUrl="https://git.example.com/ops/blob/main/docs/runbook.md",
    )
    assert (
        rules["IntegrateioExporterDown"]["expr"] == 'min by (job) (up{job="prod-integrateio-exporter"}) == 0'
    )
    assert rules["IntegrateioExporterAbsent"]["expr"] == 'absent(up{job="prod-integrateio-exporter"})'
    for name, rule in rules.items():
        assert rule["annotations"]["runbook_url"] == (
            f"https://git.example.com/ops/blob/main/docs/runbook.md#{name.lower()}"
        )
        assert "integrateio.*" not in rule["expr"], name


@pytest.mark.parametrize(
    ("alerts", "complaint"),
    [
        ({"rules": {"IntegrateioPackageFailed": {"graceSeconds": 0}}}, "graceSeconds"),
        ({"rules": {"IntegrateioPackageFailed": {"graceSeconds": "15m"}}}, "graceSeconds"),
        ({"rules": {"IntegrateioRunStuck": {"factor": 2}}}, "factor"),
        ({"rules": {"IntegrateioJobFailed": {"enabled": False}}}, "IntegrateioJobFailed"),
        ({"rules": {"IntegrateioApiDown": {"for": "five minutes"}}}, "for"),
        ({"jobSelector": "integrateio"}, "jobSelector"),
    ],
)
def test_bad_alert_values_are_refused_naming_the_key(
    chart: helm.Chart, alerts: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(helm.HelmValuesError, match=complaint):
        render_raw(chart, with_changes(MINIMAL, prometheusRule={"enabled": True}, alerts=alerts))


def test_a_rendered_grace_changes_when_the_failure_pages(
    chart: helm.Chart, tmp_path: Path, promtool: str
) -> None:
    """The chart's rules, with a 2-minute grace, fire for a package failed at minute 1 from minute 4 (not 17)."""
    values = with_changes(
        MINIMAL,
        prometheusRule={"enabled": True},
        alerts__rules={"IntegrateioPackageFailed": {"graceSeconds": 120}},
    )
    rule = only(render(chart, values), "PrometheusRule")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule["spec"]), encoding="utf-8")
    target = 'job="integrateio",instance="exp:9863"'
    test = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": f"up{{{target}}}", "values": "1x30"},
                    {
                        "series": f"integrateio_last_full_refresh_timestamp_seconds{{{target}}}",
                        "values": "0+60x30",
                    },
                    {
                        "series": f'integrateio_package_last_failure_timestamp_seconds{{{target},package_id="12"}}',
                        "values": "_ 60x29",
                    },
                ],
                "alert_rule_test": [
                    {"eval_time": "3m", "alertname": "IntegrateioPackageFailed", "exp_alerts": []},
                    {
                        "eval_time": "4m",
                        "alertname": "IntegrateioPackageFailed",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "severity": "critical",
                                    "job": "integrateio",
                                    "package_id": "12",
                                },
                                "exp_annotations": {
                                    "summary": "Integrate.io package 12 failed",
                                    "description": (
                                        "The last finished run of Integrate.io package 12 failed at 1970-01-01"
                                        " 00:01:00 +0000 UTC, and no run of the package has completed since."
                                    ),
                                    "link": "",
                                    "runbook_url": "docs/runbook.md#integrateiopackagefailed",
                                },
                            }
                        ],
                    },
                ],
            }
        ],
    }
    (tmp_path / "grace.test.yaml").write_text(yaml.safe_dump(test), encoding="utf-8")
    result = subprocess.run(
        [promtool, "test", "rules", "grace.test.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
