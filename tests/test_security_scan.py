"""Security scan: checkov over the Dockerfile and over the Helm chart as Helm renders it, offline.

The chart is rendered in-process by helm-python-sdk (as tests/test_helm.py does) with its default values and with
every optional part on (test_helm's FULL), one directory per value set; checkov then runs once per framework:

    checkov -d <manifests> --framework kubernetes --output json --skip-download
    checkov --file Dockerfile --framework dockerfile --output json --skip-download

with BC_SKIP_MAPPING=TRUE, a scratch HOME and working directory (so no stray .checkov.yaml is read) and without
this repository's .checkov.yaml: every check runs, and this module compares what failed with the skip list.
`--skip-download` and BC_SKIP_MAPPING stop checkov's only network traffic (policy mappings, guidelines); the
scan makes no connection at all (checked with strace), so it works offline.

A failed check passes only when .checkov.yaml lists it under skip-check with its reason in the comment above;
a listed check that no longer fails anywhere fails the test too, so the list stays true. Checks that point at
a real weakness are not skipped: they go in REPORTED below, with the fix, until the fix lands.

checkov comes with the test extra; without it the tests skip, except in CI (INTEGRATEIO_E2E_REQUIRED=1).
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from tests.support import missing_requirement
from tests.test_helm import CHART, FULL, NAMESPACE, RELEASE, REQUIRED

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
SKIP_FILE = ROOT / ".checkov.yaml"
SCANNED_VALUE_SETS: dict[str, dict[str, Any]] = {"defaults": REQUIRED, "full": FULL}
CHECKOV_TIMEOUT_SECONDS = 300
CHECK_ID = re.compile(r"^CKV2?_[A-Z0-9]+_\d+$")
SKIP_ENTRY = re.compile(r"^\s*-\s*(\S+)\s*(?:#\s*(.*))?$")

# Failed checks that point at a real weakness, reported with the fix to the chart's owner. Not skipped: listed
# here only until the fix lands, and a listed check that stops failing fails the test, so the entry goes then.
REPORTED: dict[str, str] = {}


@dataclass(frozen=True)
class Finding:
    """One failed check, as checkov's JSON report names it."""

    check_id: str
    name: str
    file: str
    resource: str

    def __str__(self) -> str:
        return f"{self.check_id} {self.name!r} in {self.file} ({self.resource})"


@dataclass(frozen=True)
class Report:
    """What one checkov run found."""

    failed: list[Finding]
    passed: int
    parsing_errors: list[str]
    scanned_files: set[str]


# --- running checkov ---------------------------------------------------------------------------------------


CHECKOV_VENV = ROOT / ".venv-checkov"


def checkov_command() -> list[str]:
    """checkov from its own virtual environment (`make install` builds .venv-checkov: checkov pins packaging<24,
    which pytest 9 cannot live with, so the two cannot share one environment), else from this interpreter's."""
    own = CHECKOV_VENV / "bin" / "checkov"
    if own.exists():
        return [str(own)]
    if importlib.util.find_spec("checkov") is not None:
        return [sys.executable, "-m", "checkov.main"]
    missing_requirement("needs checkov (make install builds .venv-checkov)")


def run_checkov(arguments: list[str], scratch: Path) -> Report:
    """One offline checkov run with JSON output; every check runs (no config file is read)."""
    scratch.mkdir(parents=True, exist_ok=True)
    environment = {
        **os.environ,
        "HOME": str(scratch),
        "BC_SKIP_MAPPING": "TRUE",
        "LOG_LEVEL": "WARNING",
    }
    command = [*checkov_command(), *arguments, "--output", "json", "--skip-download", "--compact"]
    done = subprocess.run(
        command,
        cwd=scratch,
        env=environment,
        capture_output=True,
        text=True,
        timeout=CHECKOV_TIMEOUT_SECONDS,
        check=False,
    )
    # checkov exits 1 when a check failed, 0 when none did; anything else, or no JSON, is a broken run.
    assert done.returncode in (0, 1), f"checkov exited {done.returncode}:\n{done.stderr[-4000:]}"
    try:
        document = json.loads(done.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"checkov printed no JSON report:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return parse_report(document)


def parse_report(document: Any) -> Report:
    """checkov prints one report per framework (a list when several ran, a bare summary when nothing was found)."""
    reports = document if isinstance(document, list) else [document]
    failed: list[Finding] = []
    passed = 0
    errors: list[str] = []
    files: set[str] = set()
    for report in reports:
        results = report.get("results", {})
        failed += [
            Finding(check["check_id"], check["check_name"], check["file_path"], check["resource"])
            for check in results.get("failed_checks", [])
        ]
        passed += len(results.get("passed_checks", []))
        errors += [str(error) for error in results.get("parsing_errors", [])]
        for key in ("passed_checks", "failed_checks"):
            files |= {check["file_path"] for check in results.get(key, [])}
    return Report(failed, passed, errors, files)


def render_chart(directory: Path) -> dict[str, list[str]]:
    """Every non-empty manifest of each scanned value set, one file per template; returns the files written."""
    written: dict[str, list[str]] = {}
    with helm.Chart.load(CHART) as chart:
        for name, values in SCANNED_VALUE_SETS.items():
            target = directory / name
            target.mkdir(parents=True)
            rendered = chart.render(copy.deepcopy(values), name=RELEASE, namespace=NAMESPACE)
            for path, text in sorted(rendered.items()):
                if path.endswith("NOTES.txt") or not text.strip():
                    continue
                (target / Path(path).name).write_text(text, encoding="utf-8")
                written.setdefault(name, []).append(Path(path).name)
    return written


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("checkov")


@pytest.fixture(scope="module")
def chart_report(scratch: Path) -> tuple[Report, dict[str, list[str]]]:
    checkov_command()  # skip (or fail in CI) before rendering anything
    manifests = scratch / "manifests"
    written = render_chart(manifests)
    report = run_checkov(["-d", str(manifests), "--framework", "kubernetes"], scratch / "home-kubernetes")
    return report, written


@pytest.fixture(scope="module")
def dockerfile_report(scratch: Path) -> Report:
    return run_checkov(["--file", str(DOCKERFILE), "--framework", "dockerfile"], scratch / "home-dockerfile")


# --- the skip list -----------------------------------------------------------------------------------------


def skip_list() -> dict[str, str]:
    """check id -> reason: the comment lines right above each skip-check entry (or after it on its line)."""
    text = SKIP_FILE.read_text(encoding="utf-8")
    document = yaml.safe_load(text) or {}
    listed = document.get("skip-check", [])
    assert isinstance(listed, list), ".checkov.yaml: skip-check must be a list of check ids"
    reasons: dict[str, str] = {}
    comment: list[str] = []
    inside = False
    for line in text.splitlines():
        stripped = line.strip()
        if not line.startswith((" ", "-")) and stripped and not stripped.startswith("#"):
            inside = stripped.startswith("skip-check:")
            comment = []
            continue
        if not inside:
            continue
        if stripped.startswith("#"):
            comment.append(stripped.lstrip("#").strip())
        elif entry := SKIP_ENTRY.match(line):
            reasons[entry.group(1)] = " ".join([*comment, entry.group(2) or ""]).strip()
            comment = []
        elif not stripped:
            comment = []
    assert sorted(reasons) == sorted(map(str, listed)), "every skip-check entry must be on a line of its own"
    return reasons


def test_every_skipped_check_has_a_reason() -> None:
    for check_id, reason in skip_list().items():
        assert CHECK_ID.match(check_id), f".checkov.yaml: {check_id!r} is not a checkov check id"
        assert len(reason.split()) >= 8, f".checkov.yaml: {check_id} needs a reason in the comment above it"
    assert not set(skip_list()) & set(REPORTED), "a check is skipped with a reason or reported, not both"


def test_the_skip_file_only_sets_what_checkov_knows() -> None:
    document = yaml.safe_load(SKIP_FILE.read_text(encoding="utf-8"))
    assert set(document) <= {"skip-check", "skip-download"}


# --- the scans ---------------------------------------------------------------------------------------------


def test_checkov_scanned_every_rendered_manifest(chart_report: tuple[Report, dict[str, list[str]]]) -> None:
    report, written = chart_report
    assert report.parsing_errors == []
    assert report.passed > 100
    # CRDs (ServiceMonitor, PrometheusRule) have no checks of their own, nor has a NetworkPolicy (it only
    # serves the graph check CKV2_K8S_6, which now passes); every other built-in kind must be seen.
    expected = {
        f"/{name}/{file}"
        for name, files in written.items()
        for file in files
        if file not in ("servicemonitor.yaml", "prometheusrule.yaml", "networkpolicy.yaml")
    }
    assert expected <= report.scanned_files, f"not scanned: {sorted(expected - report.scanned_files)}"
    assert {f"/{name}/deployment.yaml" for name in SCANNED_VALUE_SETS} <= expected


def test_chart_fails_no_check_without_a_reason(chart_report: tuple[Report, dict[str, list[str]]]) -> None:
    report, _ = chart_report
    allowed = set(skip_list()) | set(REPORTED)
    unexplained = [str(finding) for finding in report.failed if finding.check_id not in allowed]
    assert unexplained == [], (
        "checkov failed checks that .checkov.yaml does not skip: fix the chart, or skip with a reason:\n  "
        + "\n  ".join(unexplained)
    )


def test_dockerfile_fails_no_check_without_a_reason(dockerfile_report: Report) -> None:
    assert dockerfile_report.parsing_errors == []
    assert dockerfile_report.passed > 20
    allowed = set(skip_list()) | set(REPORTED)
    unexplained = [str(finding) for finding in dockerfile_report.failed if finding.check_id not in allowed]
    assert unexplained == [], (
        "checkov failed checks that .checkov.yaml does not skip: fix the Dockerfile, or skip with a reason:\n  "
        + "\n  ".join(unexplained)
    )


def test_every_skipped_or_reported_check_still_fails(
    chart_report: tuple[Report, dict[str, list[str]]], dockerfile_report: Report
) -> None:
    failing = {finding.check_id for finding in [*chart_report[0].failed, *dockerfile_report.failed]}
    stale = sorted((set(skip_list()) | set(REPORTED)) - failing)
    assert stale == [], f"no longer failing, remove from .checkov.yaml / REPORTED: {stale}"
