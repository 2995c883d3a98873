"""Whatever a file flag names, the exporter answers in one line and exit code 2: never a hang, a traceback or
gigabytes of memory (each case below was one of these before exporter/configfile.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from exporter.config import load_configs
from exporter.configfile import ALIAS_EXPANSION_LIMIT, CONFIG_LIMIT, load_yaml
from exporter.errors import ConfigError
from tests.support import run_in_process

KEYED = "api: {account_id: acme, api_key_file: key, base_url: 'http://127.0.0.1:9'}\n"

BILLION_LAUGHS = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{name}: &{name} [{', '.join(f'*{previous}' for _ in range(9))}]\n"
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True)
)


def write(tmp_path: Path, text: str | bytes, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    (tmp_path / "key").write_text("k-123\n")
    return path


def refusal(path: Path, flag: str = "--config") -> str:
    """The one line, the same from --check-config and from a start (both are run)."""
    checked = run_in_process("--check-config", flag, str(path))
    started = run_in_process(flag, str(path))
    assert checked == started
    code, stderr = checked
    assert code == 2
    assert stderr.endswith("\n") and stderr.count("\n") == 1, stderr
    return stderr.removeprefix("integrateio-exporter: ").rstrip("\n")


def test_a_bom_in_the_config_is_dropped(tmp_path: Path) -> None:
    path = write(tmp_path, ("\ufeff" + KEYED + "jobs: [1]\n").encode())
    assert load_configs(path)[0].jobs == (1,)


def test_a_latin1_config_is_refused_with_the_byte(tmp_path: Path) -> None:
    path = write(tmp_path, (KEYED + "jobs: [1]  # café\n").encode("latin-1"))
    offset = len(KEYED) + len("jobs: [1]  # caf")
    assert refusal(path) == f"--config: cannot read {path}: not UTF-8 text (byte {offset} is 0xe9)"


def test_a_directory_is_refused(tmp_path: Path) -> None:
    assert refusal(tmp_path) == f"--config: cannot read {tmp_path}: a directory, not a regular file"


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    assert refusal(path) == f"--config: cannot read {path}: No such file or directory"


def test_a_file_over_the_cap_is_refused_unparsed(tmp_path: Path) -> None:
    path = write(tmp_path, KEYED + "jobs: [" + "1, " * (CONFIG_LIMIT // 3) + "1]\n")
    assert refusal(path) == f"--config: cannot read {path}: larger than {CONFIG_LIMIT} bytes"


def test_duplicate_keys_are_refused_naming_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, KEYED + "jobs: [1]\nrate_limit: {reserve: 0.1}\njobs: [2]\n")
    assert refusal(path) == (f"--config: invalid YAML in {path} at line 4, column 1: duplicate key 'jobs'")


def test_a_merge_may_be_overridden_but_not_a_key_twice(tmp_path: Path) -> None:
    text = textwrap.dedent(
        """
        accounts:
          - name: a
            api: &api {account_id: a, api_key_file: key, timeout_seconds: 5}
            jobs: [1]
          - name: b
            api: {<<: *api, account_id: b}
            jobs: [2]
        """
    )
    accounts = load_configs(write(tmp_path, text))
    assert [(each.api.account_id, each.api.timeout_seconds) for each in accounts] == [("a", 5.0), ("b", 5.0)]
    with pytest.raises(ConfigError) as caught:
        load_configs(write(tmp_path, text.replace("account_id: b}", "account_id: b, account_id: c}")))
    assert str(caught.value) == (
        f"--config: invalid YAML in {tmp_path}/config.yaml at line 7, column 36: duplicate key 'account_id'"
    )


def test_an_alias_bomb_is_refused_before_it_is_built(tmp_path: Path) -> None:
    path = write(tmp_path, BILLION_LAUGHS)
    assert refusal(path) == (
        f"--config: invalid YAML in {path}: aliases expand to more than {ALIAS_EXPANSION_LIMIT} extra nodes"
    )


def test_a_few_aliases_are_fine(tmp_path: Path) -> None:
    path = write(tmp_path, BILLION_LAUGHS.split("\nd:")[0] + "\n")  # 9 × 9 × 9 strings: 1,000 nodes
    document = load_yaml(path, "--config")
    assert len(document["c"]) == 9 and document["c"][0][0] == document["a"]


def test_a_recursive_alias_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "a: &a [1, *a]\n")
    assert refusal(path) == f"--config: invalid YAML in {path}: an alias refers to a node that contains it"


def test_deep_nesting_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "[" * 50_000 + "]" * 50_000 + "\n")
    assert refusal(path) == f"--config: invalid YAML in {path}: nested too deeply"


def test_a_number_past_pythons_digit_limit_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, KEYED + "jobs: [" + "9" * 5000 + "]\n")
    assert refusal(path) == f"--config: invalid YAML in {path}: a number has too many digits"


def test_the_web_config_and_certificates_go_through_the_same_reader(tmp_path: Path) -> None:
    config = write(tmp_path, KEYED + "jobs: [1]\n")
    web = write(tmp_path, b"basic_auth_users: {}\nbasic_auth_users: {}\n", "web.yml")
    code, stderr = run_in_process("--check-config", "--config", str(config), "--web.config.file", str(web))
    assert (code, stderr) == (
        2,
        f"integrateio-exporter: --web.config.file: invalid YAML in {web} at line 2, column 1: "
        "duplicate key 'basic_auth_users'\n",
    )
    web.write_text("tls_server_config: {cert_file: /dev/zero, key_file: /dev/zero}\n")
    code, stderr = run_in_process("--check-config", "--config", str(config), "--web.config.file", str(web))
    assert (code, stderr) == (
        2,
        "integrateio-exporter: tls_server_config.cert_file: cannot read /dev/zero: a device, not a regular file\n",
    )


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The real process: a hang shows up as the timeout, a traceback as more than one line."""
    return subprocess.run(
        [sys.executable, "-m", "exporter", "--web.listen-address", "127.0.0.1:0", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin", "INTEGRATEIO_API_KEY": "k"},
    )


@pytest.mark.parametrize("check", [True, False], ids=["check-config", "start"])
def test_a_fifo_or_a_device_as_config_fails_fast_in_one_line(tmp_path: Path, check: bool) -> None:
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    flags = ["--check-config"] if check else []
    for path, kind in ((fifo, "a FIFO"), (Path("/dev/zero"), "a device")):
        result = run_cli("--config", str(path), *flags)
        assert (result.returncode, result.stdout) == (2, "")
        assert result.stderr == (
            f"integrateio-exporter: --config: cannot read {path}: {kind}, not a regular file\n"
        )


@pytest.mark.parametrize("check", [True, False], ids=["check-config", "start"])
def test_an_alias_bomb_exits_2_in_one_line(tmp_path: Path, check: bool) -> None:
    path = write(tmp_path, BILLION_LAUGHS)
    result = run_cli("--config", str(path), *(["--check-config"] if check else []))
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        f"integrateio-exporter: --config: invalid YAML in {path}: aliases expand to more than "
        f"{ALIAS_EXPANSION_LIMIT} extra nodes\n"
    )
