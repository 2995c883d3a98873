"""`--check-config` and a start agree on every configuration: both accept it, or both refuse it with the same
one line and exit code 2.

Before, they did not: `--check-config` read config.yaml only, while a start also parsed the listen address, the
web config and the shard, and built the budget, where 10**400 credits overflowed a float in a traceback. Now both
call `daemon.load`; these tests hold them to it with configurations hypothesis makes up — valid and invalid,
numbers of every size, odd strings, missing keys, bytes that are not UTF-8 — and a few named cases.

A start is run in-process through `cli.execute`, the function `main` calls once its signal handlers are in place
(tests.support.run_in_process): it validates, binds 127.0.0.1:0, starts the pollers against a closed port and
stops at once.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.support import run_in_process

UNSET_VARIABLE = "INTEGRATEIO_TEST_KEY_THAT_IS_NEVER_SET"

numbers = st.one_of(
    st.integers(min_value=-5, max_value=10_000),
    st.integers(),
    st.integers(min_value=-(10**500), max_value=10**500),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, 2**63, 10**9, 10**9 + 1, 10**400, 1e308, 1e-308, 0.5, 0.999999, 86400, 86401]),
)
odd_strings = st.one_of(
    st.text(max_size=12), st.sampled_from(["", " ", "\ufeff", "a/b", "1e400", "~", "null"])
)
values = st.one_of(numbers, odd_strings, st.booleans(), st.none(), st.lists(numbers, max_size=3))


def mostly(good: st.SearchStrategy[Any], odd: st.SearchStrategy[Any] = values) -> st.SearchStrategy[Any]:
    """A plausible value 7 times in 8, else anything: most examples then get past the first keys. (Not
    `one_of(good, good, odd)`: hypothesis flattens nested `one_of`s, and `values` has a dozen branches; and
    not `draw == 0`, which hypothesis favours as the simplest integer.)"""
    return st.integers(min_value=0, max_value=7).flatmap(lambda draw: odd if draw == 7 else good)


def seconds(most: float) -> st.SearchStrategy[Any]:
    return mostly(st.one_of(st.floats(min_value=0.001, max_value=most), st.integers(1, int(most))))


def counts(most: int) -> st.SearchStrategy[Any]:
    return mostly(st.integers(min_value=1, max_value=most))


def optional(required: dict[str, Any], **fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(required, optional=fields)


api_section = optional(
    {
        "account_id": mostly(st.just("acme")),
        "base_url": mostly(st.just("http://127.0.0.1:9")),
        "api_key_file": mostly(st.just("key"), st.sampled_from(["missing", ".", None])),
        "api_key_env": st.just(UNSET_VARIABLE),
    },
    timeout_seconds=seconds(3600),
    max_response_bytes=counts(1024**3),
)

account = optional(
    {"api": mostly(api_section), "jobs": mostly(st.lists(st.integers(1, 2**63 - 1), max_size=4))},
    polling=mostly(
        optional(
            {},
            interval_seconds=seconds(86400),
            missing_recheck_seconds=seconds(30 * 86400),
            concurrency=counts(64),
        )
    ),
    rate_limit=mostly(
        optional(
            {},
            credits=counts(10**9),
            window_seconds=seconds(86400),
            reserve=mostly(st.floats(min_value=0.0, max_value=0.99)),
        )
    ),
    discover=mostly(
        optional(
            {"package_ids": mostly(st.lists(st.integers(1, 2**63 - 1), min_size=1, max_size=3))},
            max_age_seconds=seconds(365 * 86400),
            max_jobs=counts(100_000),
            statuses=mostly(st.lists(st.sampled_from(["running", "failed", "done"]), min_size=1, max_size=2)),
        )
    ),
)

documents = mostly(
    mostly(account, st.builds(lambda accounts: {"accounts": accounts}, st.lists(account, max_size=3))),
)

key_contents = mostly(
    st.sampled_from([b"k-123\n", b"\xef\xbb\xbfk-123\r\n"]),
    st.one_of(st.text(max_size=8).map(str.encode), st.binary(max_size=8)),
)
web_configs = mostly(
    st.none(),
    optional(
        {},
        basic_auth_users=mostly(st.just({}), st.dictionaries(odd_strings, values, max_size=2)),
        http_server_config=mostly(
            optional({}, headers=mostly(st.just({"X-Frame-Options": "deny"}))),
        ),
    ),
)


@contextlib.contextmanager
def files(document: Any, key: bytes, web: Any, damage: bytes | None) -> Iterator[tuple[Path, Path | None]]:
    """config.yaml (YAML of `document`, or raw `damage` bytes), its key file and an optional web config."""
    with tempfile.TemporaryDirectory() as directory:
        base = Path(directory)
        config = base / "config.yaml"
        config.write_bytes(damage if damage is not None else yaml.safe_dump(document).encode())
        (base / "key").write_bytes(key)
        web_path = None
        if web is not None:
            web_path = base / "web.yml"
            web_path.write_text(yaml.safe_dump(web))
        yield config, web_path


def agree(config: Path, *extra: str) -> tuple[int, str]:
    """Run both; assert they agree, exit 0 or 2, and refuse in exactly one line. Returns the common result."""
    checked = run_in_process("--check-config", "--config", str(config), *extra)
    started = run_in_process("--config", str(config), *extra)
    assert checked == started
    code, stderr = checked
    assert code in (0, 2)
    assert (
        stderr == "" if code == 0 else stderr.startswith("integrateio-exporter: ") and stderr.count("\n") == 1
    )
    assert "Traceback" not in stderr
    return checked


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    document=documents,
    key=key_contents,
    web=web_configs,
    damage=mostly(st.none(), st.binary(max_size=64)),
)
def test_check_config_and_start_agree(document: Any, key: bytes, web: Any, damage: bytes | None) -> None:
    with files(document, key, web, damage) as (config, web_path):
        code, stderr = agree(config, *(["--web.config.file", str(web_path)] if web_path else []))
        event(
            "accepted"
            if code == 0
            else "refused: " + stderr.removeprefix("integrateio-exporter: ").split(":")[0]
        )


GOOD = "api: {account_id: acme, api_key_file: key, base_url: 'http://127.0.0.1:9'}\njobs: [1]\n"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("", None),
        (
            f"rate_limit: {{credits: {10**400}}}\n",
            "rate_limit.credits: must be an integer from 1 to 1000000000, got a 401-digit integer",
        ),
        (
            "rate_limit: {credits: 1.0e+400}\n",
            "rate_limit.credits: must be an integer, got a number",
        ),
        (
            "rate_limit: {window_seconds: 1.0e+400}\n",
            "rate_limit.window_seconds: must be a number greater than 0 and at most 86400, got inf",
        ),
        (
            f"rate_limit: {{window_seconds: {10**400}}}\n",
            "rate_limit.window_seconds: must be a number, got a 401-digit integer, too large for one",
        ),
        (
            "polling: {interval_seconds: .nan}\n",
            "polling.interval_seconds: must be a number greater than 0 and at most 86400, got nan",
        ),
        (
            "rate_limit: {credits: 1, reserve: 0.5}\n",
            "rate_limit.reserve: leaves no request of the 1 credits to the exporter: credits × (1 − reserve) must "
            "be at least 1",
        ),
        (
            "polling: {concurrency: 100000}\n",
            "polling.concurrency: must be an integer from 1 to 64, got 100000",
        ),
        (
            "discover: {package_ids: [9223372036854775808]}\n",
            "discover.package_ids[0]: must be a positive integer, got 9223372036854775808",
        ),
    ],
)
def test_named_cases(tmp_path: Path, extra: str, message: str | None) -> None:
    (tmp_path / "key").write_text("k-123\n")
    config = tmp_path / "config.yaml"
    config.write_text(GOOD + extra)
    code, stderr = agree(config)
    assert (code, stderr) == ((0, "") if message is None else (2, f"integrateio-exporter: {message}\n"))


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["--web.listen-address", "localhost:99999"],
            "--web.listen-address: must be HOST:PORT or :PORT, got ",
        ),
        (["--shard", "3/3"], "--shard: the index must be a number from 0 to 2, got '3'"),
        (
            ["--shard", "0/10000"],
            "--shard: 10000 shards cannot share the 5000 credits of account acme: each needs at least one request "
            "per window after the reserve",
        ),
    ],
)
def test_check_config_validates_the_flags_a_start_validates(
    tmp_path: Path, flags: list[str], message: str
) -> None:
    (tmp_path / "key").write_text("k-123\n")
    config = tmp_path / "config.yaml"
    config.write_text(GOOD)
    code, stderr = agree(config, *flags)
    assert code == 2
    assert stderr.startswith(f"integrateio-exporter: {message}")
