"""The Helm chart takes `schedules:` and `clusters:` under `config` (and per account), renders them into the
exporter's config.yaml as given, and the exporter accepts what it renders; its schema refuses a typo."""

from __future__ import annotations

from pathlib import Path

import helm_python as helm

from exporter.config import ClustersConfig, SchedulesConfig, parse_configs
from tests.test_helm import FULL, MULTI_ACCOUNT, chart, render, rendered_config, with_changes

__all__ = ["chart"]  # the module-scoped fixture, shared with tests/test_helm.py

SCHEDULES = {"enabled": True, "interval_seconds": 600}
CLUSTERS = {"enabled": True, "interval_seconds": 300, "terminated_max_age_seconds": 3600}


def test_the_sections_reach_the_exporter(chart: helm.Chart) -> None:
    values = with_changes(FULL, config={**FULL["config"], "schedules": SCHEDULES, "clusters": CLUSTERS})
    config = rendered_config(render(chart, values))
    assert (config["schedules"], config["clusters"]) == (SCHEDULES, CLUSTERS)
    del config["api"]["api_key_file"]
    (parsed,) = parse_configs(config, base_dir=Path("/"), environ={"INTEGRATEIO_API_KEY": "k"})
    assert parsed.schedules == SchedulesConfig(enabled=True, interval_seconds=600.0)
    assert parsed.clusters == ClustersConfig(
        enabled=True, interval_seconds=300.0, terminated_max_age_seconds=3600.0
    )


def test_per_account(chart: helm.Chart) -> None:
    accounts = [
        {**MULTI_ACCOUNT["config"]["accounts"][0], "clusters": CLUSTERS},
        *MULTI_ACCOUNT["config"]["accounts"][1:],
    ]
    values = with_changes(MULTI_ACCOUNT, config={**MULTI_ACCOUNT["config"], "accounts": accounts})
    config = rendered_config(render(chart, values))
    assert config["accounts"][0]["clusters"] == CLUSTERS


def test_the_schema_refuses_a_misspelt_key() -> None:
    values = with_changes(FULL, config={**FULL["config"], "schedules": {"enable": True}})
    report = helm.lint(
        Path(__file__).resolve().parent.parent / "helm/integrateio-exporter", values, strict=True
    )
    assert any("enable" in error for error in report["errors"]), report
