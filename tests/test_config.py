"""Bad configurations stop at start with one line naming the key; good ones load with the documented defaults."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from exporter.config import API_KEY_ENV, load_config
from exporter.errors import ConfigError

GOOD = """
api:
  account_id: acme
jobs: [157, 158]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_defaults_are_the_documented_ones(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD), environ={API_KEY_ENV: "k-123"})
    assert config.api.account_id == "acme"
    assert config.api.api_key == "k-123"
    assert config.api.api_root == "https://api.xplenty.com/acme/api"
    assert config.api.timeout_seconds == 10.0
    assert config.jobs == (157, 158)
    assert config.polling.interval_seconds == 60.0
    assert config.polling.missing_recheck_seconds == 3600.0
    assert (config.rate_limit.credits, config.rate_limit.window_seconds, config.rate_limit.reserve) == (
        5000,
        3600.0,
        0.1,
    )
    assert config.rate_limit.allowed == 4500


def test_key_file_is_read_relative_to_the_config_and_stripped(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("  file-key\n")
    config = load_config(
        write(tmp_path, GOOD.replace("account_id: acme", "account_id: acme\n  api_key_file: key")),
        environ={API_KEY_ENV: "env-key"},
    )
    assert config.api.api_key == "file-key"


def test_the_key_is_not_in_the_repr(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD), environ={API_KEY_ENV: "secret-key-xyz"})
    assert "secret-key-xyz" not in repr(config)


def test_duplicate_job_ids_are_watched_once(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, GOOD.replace("[157, 158]", "[158, 157, 158]")), environ={API_KEY_ENV: "k"}
    )
    assert config.jobs == (158, 157)


BAD = [
    ("jobs: [1]\n", "api: is required"),
    ("api: {}\njobs: [1]\n", "api.account_id: is required"),
    ("api: {account_id: acme}\n", "jobs: is required: list the job ids to watch, e.g. [157, 158]"),
    ("api: {account_id: acme}\njobs: [157, -4]\n", "jobs[1]: must be a positive integer, got -4"),
    ("api: {account_id: acme}\njobs: [157, '158']\n", "jobs[1]: must be a positive integer, got '158'"),
    ("api: {account_id: acme}\njobs: [0]\n", "jobs[0]: must be a positive integer, got 0"),
    ("api: {account_id: acme}\njobs: [true]\n", "jobs[0]: must be a positive integer, got True"),
    ("api: {account_id: acme}\njobs: 157\n", "jobs: must be a list of job ids, got an integer"),
    (
        "api: {account_id: acme, colour: red}\njobs: [1]\n",
        "api.colour: unknown key (known: account_id, api_key_env, api_key_file, base_url, ca_file, "
        "max_response_bytes, timeout_seconds)",
    ),
    (
        "api: {account_id: acme}\njobs: [1]\npoling: {}\n",
        "poling: unknown key (known: api, clusters, discover, jobs, polling, rate_limit, schedules, state_file, "
        "webhook)",
    ),
    ("api: {account_id: 42}\njobs: [1]\n", "api.account_id: must be a string, got an integer"),
    *(
        (
            f"api: {{account_id: acme, base_url: {base_url}}}\njobs: [1]\n",
            "api.base_url: must be a URL with a host and no spaces, like https://api.xplenty.com",
        )
        for base_url in [
            "https://",
            "'http://:80'",
            "'https://api.xplenty.com:99999'",
            "'https://[::1'",
            "'https://a b'",
        ]
    ),
    *(
        (
            f"api: {{account_id: {account_id}}}\njobs: [1]\n",
            "api.account_id: must be a non-empty account id without '/', '?', '#', '%', spaces or control characters",
        )
        for account_id in ['""', "a/b", "'acme?x'", "'my acme'", '"acme\\t"', "'a#b'", "a%2F", '"\\u200b"']
    ),
    (
        "api: {account_id: acme, timeout_seconds: ten}\njobs: [1]\n",
        "api.timeout_seconds: must be a number, got a string",
    ),
    (
        "api: {account_id: acme, timeout_seconds: 0}\njobs: [1]\n",
        "api.timeout_seconds: must be a number greater than 0 and at most 3600, got 0",
    ),
    (
        "api: {account_id: acme, base_url: ftp://x}\njobs: [1]\n",
        "api.base_url: must start with https:// (or http:// for a local simulator)",
    ),
    (
        "api: {account_id: acme}\njobs: [1]\npolling: {interval_seconds: -1}\n",
        "polling.interval_seconds: must be a number greater than 0 and at most 86400, got -1",
    ),
    (
        "api: {account_id: acme}\njobs: [1]\nrate_limit: {reserve: 1.5}\n",
        "rate_limit.reserve: must be at least 0 and below 1, got 1.5",
    ),
    (
        "api: {account_id: acme}\njobs: [1]\nrate_limit: {credits: 1.5}\n",
        "rate_limit.credits: must be an integer, got a number",
    ),
    ("api: {account_id: acme}\njobs: [1]\nrate_limit: [1]\n", "rate_limit: must be a mapping, got a list"),
    ("- 1\n", "config: must be a mapping, got a list"),
    (
        "api: {account_id: acme, api_key_file: nothere}\njobs: [1]\n",
        "api.api_key_file: cannot read {dir}/nothere: No such file or directory",
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_bad_config_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), environ={API_KEY_ENV: "k"})
    assert str(caught.value) == message.format(dir=tmp_path)


def test_no_key_anywhere(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, GOOD), environ={})
    assert str(caught.value) == (
        "api.api_key_file: no API key: set api.api_key_file or the INTEGRATEIO_API_KEY environment variable"
    )


def test_invalid_yaml_says_where(tmp_path: Path) -> None:
    path = write(tmp_path, "api: {account_id: acme\njobs: [1]\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={API_KEY_ENV: "k"})
    assert str(caught.value) == (
        f"--config: invalid YAML in {path} at line 2, column 5: expected ',' or '}}', but got ':'"
    )


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=env or {"PATH": "/usr/bin:/bin"},
    )


def test_bad_config_exits_2_with_one_line_and_no_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, "api: {account_id: acme}\njobs: [157, -4]\n")
    result = run_cli("--config", str(path), env={"PATH": "/usr/bin:/bin", API_KEY_ENV: "k"})
    assert result.returncode == 2
    assert result.stderr == "integrateio-exporter: jobs[1]: must be a positive integer, got -4\n"
    assert result.stdout == ""


def test_check_config_accepts_a_good_file(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    result = run_cli("--check-config", "--config", str(path), env={"PATH": "/usr/bin:/bin", API_KEY_ENV: "k"})
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{path}: OK (2 jobs, account acme)\n"


def test_check_config_refuses_a_missing_key(tmp_path: Path) -> None:
    result = run_cli("--check-config", "--config", str(write(tmp_path, GOOD)))
    assert result.returncode == 2
    assert "no API key" in result.stderr
    assert "Traceback" not in result.stderr


def test_example_config_is_valid(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parent.parent / "config.example.yaml"
    config = load_config(example, environ={API_KEY_ENV: "k"})
    assert config.api.account_id == "my-account"
    assert config.jobs == (157, 158)


def test_version_flag() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    from exporter import __version__

    assert result.stdout == f"integrateio-exporter {__version__}\n"


ACCOUNTS = """
accounts:
  - name: prod
    api: {account_id: acme, api_key_env: KEY_PROD}
    jobs: [1, 2]
    rate_limit: {credits: 3000}
  - api: {account_id: beta}
    discover: {package_ids: [434, 512], statuses: [running, failed], max_age_seconds: 600, max_jobs: 50}
"""


def test_several_accounts_each_with_its_own_key_and_budget(tmp_path: Path) -> None:
    from exporter.config import load_configs
    from exporter.model import JobStatus

    prod, beta = load_configs(write(tmp_path, ACCOUNTS), environ={"KEY_PROD": "p-key", API_KEY_ENV: "b-key"})
    assert (prod.name, prod.api.account_id, prod.api.api_key, prod.jobs, prod.labelled) == (
        "prod",
        "acme",
        "p-key",
        (1, 2),
        True,
    )
    assert prod.rate_limit.allowed == 2700
    assert (beta.name, beta.api.api_key, beta.jobs) == ("beta", "b-key", ())
    assert beta.discover is not None
    assert beta.discover.package_ids == (434, 512)
    assert beta.discover.statuses == (JobStatus.RUNNING, JobStatus.FAILED)
    assert (beta.discover.max_age_seconds, beta.discover.max_jobs) == (600.0, 50)


BAD_ACCOUNTS = [
    ("accounts: []\n", "accounts: must be a non-empty list of accounts"),
    ("accounts: [{api: {account_id: a}, jobs: [1]}]\njobs: [2]\n", "jobs: unknown key (known: accounts)"),
    (
        "accounts:\n  - api: {account_id: a}\n    jobs: [0]\n",
        "accounts[0].jobs[0]: must be a positive integer, got 0",
    ),
    (
        "accounts:\n  - {api: {account_id: a}, jobs: [1]}\n  - {api: {account_id: a}, jobs: [2]}\n",
        "accounts[1].name: 'a' is used by two accounts",
    ),
    (
        "accounts:\n  - {api: {account_id: a, api_key_env: NOPE}, jobs: [1]}\n",
        "accounts[0].api.api_key_file: no API key: set api.api_key_file or the NOPE environment variable",
    ),
    (
        "api: {account_id: a}\ndiscover: {package_ids: []}\n",
        "discover.package_ids: must be a non-empty list of package ids",
    ),
    (
        "api: {account_id: a}\ndiscover: {package_ids: [1], statuses: [done]}\n",
        "discover.statuses[0]: must be one of idle, pending, queued, running, completed, failed, pending_stoppage, "
        "stopping, stopped, got 'done'",
    ),
    (
        "api: {account_id: a}\ndiscover: {package_ids: [1], max_jobs: 0}\n",
        "discover.max_jobs: must be an integer from 1 to 100000, got 0",
    ),
    (
        "api: {account_id: a}\nname: x\njobs: [1]\n",
        "name: unknown key (known: api, clusters, discover, jobs, polling, rate_limit, schedules, state_file, "
        "webhook)",
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD_ACCOUNTS)
def test_bad_accounts_and_discovery_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    from exporter.config import load_configs

    with pytest.raises(ConfigError) as caught:
        load_configs(write(tmp_path, text), environ={API_KEY_ENV: "k"})
    assert str(caught.value) == message


BAD_PACKAGE_IDS = [
    ("{}", "discover.package_ids: must be a list of package ids, got nothing"),
    ("{max_jobs: 5}", "discover.package_ids: must be a list of package ids, got nothing"),
    ("{package_ids: null}", "discover.package_ids: must be a list of package ids, got nothing"),
    ("{package_ids: 434}", "discover.package_ids: must be a list of package ids, got an integer"),
    ("{package_ids: '434'}", "discover.package_ids: must be a list of package ids, got a string"),
    ("{package_ids: {434: x}}", "discover.package_ids: must be a list of package ids, got a mapping"),
    ("{package_ids: []}", "discover.package_ids: must be a non-empty list of package ids"),
    ("{package_ids: [434, 0]}", "discover.package_ids[1]: must be a positive integer, got 0"),
    ("{package_ids: [-434]}", "discover.package_ids[0]: must be a positive integer, got -434"),
    ("{package_ids: [true]}", "discover.package_ids[0]: must be a positive integer, got True"),
    ("{package_ids: ['434']}", "discover.package_ids[0]: must be a positive integer, got '434'"),
    ("{package_ids: [434.5]}", "discover.package_ids[0]: must be a positive integer, got 434.5"),
    ("{package_ids: [null]}", "discover.package_ids[0]: must be a positive integer, got None"),
    ("{package_ids: [[434]]}", "discover.package_ids[0]: must be a positive integer, got [434]"),
]


@pytest.mark.parametrize(("discover", "message"), BAD_PACKAGE_IDS)
def test_discovery_needs_a_list_of_positive_package_ids(tmp_path: Path, discover: str, message: str) -> None:
    """Without them discovery would follow nothing, silently: a package named wrong is an error at start."""
    from exporter.config import load_configs

    with pytest.raises(ConfigError) as caught:
        load_configs(
            write(tmp_path, f"api: {{account_id: a}}\ndiscover: {discover}\n"), environ={API_KEY_ENV: "k"}
        )
    assert str(caught.value) == message


def test_package_ids_named_twice_are_followed_once_in_the_order_given(tmp_path: Path) -> None:
    from exporter.config import load_configs

    text = "api: {account_id: a}\ndiscover: {package_ids: [512, 434, 512, 9223372036854775807, 434]}\n"
    (config,) = load_configs(write(tmp_path, text), environ={API_KEY_ENV: "k"})
    assert config.discover is not None
    assert config.discover.package_ids == (512, 434, 9223372036854775807)


def test_shards_partition_the_jobs_exactly(tmp_path: Path) -> None:
    from exporter.config import Shard

    config = load_config(
        write(tmp_path, GOOD.replace("[157, 158]", str(list(range(1, 1001))))), environ={API_KEY_ENV: "k"}
    )
    parts = [config.sharded(Shard(index, 3)) for index in range(3)]
    owned = [set(part.jobs) for part in parts]
    assert set().union(*owned) == set(range(1, 1001))
    assert sum(len(part) for part in owned) == 1000
    assert all(250 < len(part) < 420 for part in owned)  # crc32 spreads ids evenly
    assert [part.rate_limit.credits for part in parts] == [1666, 1666, 1666]


@pytest.mark.parametrize(
    ("text", "hostname", "shard"),
    [
        ("0/3", "x", (0, 3)),
        ("2/3", "x", (2, 3)),
        ("auto/3", "integrateio-exporter-2", (2, 3)),
        ("0/1", "x", (0, 1)),
    ],
)
def test_shard_flag(text: str, hostname: str, shard: tuple[int, int]) -> None:
    from exporter.cli import parse_shard

    parsed = parse_shard(text, hostname)
    assert (parsed.index, parsed.count) == shard


@pytest.mark.parametrize(
    ("text", "hostname", "message"),
    [
        ("3/3", "x", "--shard: the index must be a number from 0 to 2, got '3'"),
        ("1", "x", "--shard: must be INDEX/COUNT, like 0/3 or auto/3, got '1'"),
        ("0/0", "x", "--shard: must be INDEX/COUNT, like 0/3 or auto/3, got '0/0'"),
        ("auto/3", "laptop", "--shard: auto needs a hostname ending in -N (a StatefulSet pod), got 'laptop'"),
    ],
)
def test_bad_shard_flag(text: str, hostname: str, message: str) -> None:
    from exporter.cli import parse_shard

    with pytest.raises(ConfigError) as caught:
        parse_shard(text, hostname)
    assert str(caught.value) == message
