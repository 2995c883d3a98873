"""The `schedules:` and `clusters:` sections: opt-in, validated with the toolkit every section uses (one line
naming the key), per account, and named by `--check-config`."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.cli import Signals, build_parser, execute
from exporter.config import API_KEY_ENV, ClustersConfig, SchedulesConfig, Shard, parse_configs
from exporter.errors import ConfigError

BASE: dict[str, Any] = {"api": {"account_id": "acme"}, "jobs": [1]}


def parse(document: dict[str, Any]) -> Any:
    return parse_configs(document, base_dir=Path("."), environ={API_KEY_ENV: "k"})


def test_both_are_off_by_default_and_take_their_defaults_from_the_dataclasses() -> None:
    (config,) = parse(BASE)
    assert config.schedules == SchedulesConfig(enabled=False, interval_seconds=300.0)
    assert config.clusters == ClustersConfig(
        enabled=False, interval_seconds=300.0, terminated_max_age_seconds=86400
    )
    (config,) = parse(
        {**BASE, "schedules": {"enabled": True}, "clusters": {"enabled": True, "interval_seconds": 60}}
    )
    assert config.schedules == SchedulesConfig(enabled=True, interval_seconds=300.0)
    assert config.clusters == ClustersConfig(enabled=True, interval_seconds=60.0)


def test_jobs_may_be_left_out_when_schedules_or_clusters_are_read() -> None:
    (config,) = parse({"api": {"account_id": "acme"}, "clusters": {"enabled": True}})
    assert config.jobs == ()
    with pytest.raises(ConfigError, match=r"^jobs: is required"):
        parse({"api": {"account_id": "acme"}, "clusters": {"enabled": False}})


def test_per_account() -> None:
    configs = parse(
        {
            "accounts": [
                {
                    "name": "prod",
                    "api": {"account_id": "a"},
                    "schedules": {"enabled": True, "interval_seconds": 120},
                },
                {"name": "staging", "api": {"account_id": "b"}, "jobs": [2]},
            ]
        }
    )
    assert [c.schedules.enabled for c in configs] == [True, False]
    assert configs[0].schedules.interval_seconds == 120.0


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"schedules": {"enabled": "yes"}}, "schedules.enabled: must be true or false, got a string"),
        (
            {"schedules": {"interval": 300}},
            "schedules.interval: unknown key (known: enabled, interval_seconds)",
        ),
        ({"schedules": {"interval_seconds": 0.5}}, "schedules.interval_seconds: must be at least 1, got 0.5"),
        (
            {"schedules": {"interval_seconds": -1}},
            "schedules.interval_seconds: must be a number greater than 0",
        ),
        ({"schedules": [1]}, "schedules: must be a mapping, got a list"),
        (
            {"clusters": {"interval_seconds": "5m"}},
            "clusters.interval_seconds: must be a number, got a string",
        ),
        (
            {"clusters": {"terminated_max_age_seconds": 10**9}},
            "clusters.terminated_max_age_seconds: must be a number greater than 0 and at most 3.1536e+07",
        ),
        (
            {"clusters": {"terminated_max_age": 5}},
            "clusters.terminated_max_age: unknown key (known: enabled, interval_seconds, terminated_max_age_seconds)",
        ),
    ],
)
def test_a_bad_value_names_its_key(section: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse({**BASE, **section})
    assert str(raised.value).startswith(message), str(raised.value)


def test_check_config_names_the_sections_it_turns_on(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        yaml.safe_dump(
            {**BASE, "schedules": {"enabled": True}, "clusters": {"enabled": True, "interval_seconds": 600}}
        )
    )
    args = build_parser().parse_args(["--check-config", "--config", str(path)])
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.MonkeyPatch.context() as patch:
        patch.setenv(API_KEY_ENV, "k")
        assert execute(args, Signals()) == 0
    assert (
        out.getvalue() == f"{path}: OK (1 jobs + schedules every 300s + clusters every 600s, account acme)\n"
    )


def test_only_the_first_shard_reads_schedules_and_clusters() -> None:
    """No job id divides the account's schedules and clusters: shard 0 reads them, the others spend nothing."""
    (config,) = parse({**BASE, "schedules": {"enabled": True}, "clusters": {"enabled": True}})
    first, second = config.sharded(Shard(0, 2)), config.sharded(Shard(1, 2))
    assert (first.schedules.enabled, first.clusters.enabled) == (True, True)
    assert (second.schedules.enabled, second.clusters.enabled) == (False, False)
    assert second.clusters.terminated_max_age_seconds == config.clusters.terminated_max_age_seconds
