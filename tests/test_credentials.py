"""Key material: what editors add around a key is dropped, a key HTTP Basic cannot carry stops the start.

The wire test is the one that matters to a user: a key file saved by Windows Notepad (byte-order mark, CRLF) used
to kill the poller at its first request; now the simulated API receives the right key.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from exporter.app import App
from exporter.config import API_KEY_ENV, load_config, load_configs
from exporter.credentials import normalise, unsendable
from exporter.errors import ConfigError
from exporter.simulator import SimJob, Simulator
from tests.support import API_KEY, scrape, wait_until

CONFIG = """
api:
  account_id: acme
  api_key_file: key.txt
jobs: [1]
"""


def config_with_key_file(tmp_path: Path, content: bytes) -> Path:
    (tmp_path / "key.txt").write_bytes(content)
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG)
    return path


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("\ufeffk-123\r\n", "k-123"),  # Notepad: BOM and CRLF
        ("  k-123\t\n\n", "k-123"),
        ("\n\ufeff k-123 \r\n", "k-123"),
        ("k 123", "k 123"),  # inner characters are the key's own
    ],
)
def test_normalise_drops_what_editors_add(raw: str, key: str) -> None:
    assert normalise(raw) == key


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ("abc", None),
        ("caf\u00e9", None),  # Latin-1 is what HTTP Basic carries
        ("ab\u201cc", "character 3 is outside Latin-1, which HTTP Basic authentication cannot carry"),
        ("a\x00b", "character 2 is a control character, which HTTP Basic authentication cannot carry"),
        ("a\x7fb", "character 2 is a control character, which HTTP Basic authentication cannot carry"),
        ("ab\u0085", "character 3 is a control character, which HTTP Basic authentication cannot carry"),
        ("a\udcffb", "character 2 is outside Latin-1, which HTTP Basic authentication cannot carry"),
    ],
)
def test_unsendable_names_the_position_only(secret: str, problem: str | None) -> None:
    assert unsendable(secret) == problem


def test_a_notepad_key_file_is_read_as_the_key(tmp_path: Path) -> None:
    path = config_with_key_file(tmp_path, b"\xef\xbb\xbfk-123\r\n")
    assert load_config(path, environ={}).api.api_key == "k-123"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (
            "k-\u2019123\n".encode(),
            "the key in {dir}/key.txt is refused: character 3 is outside Latin-1, which HTTP Basic "
            "authentication cannot carry",
        ),
        (
            b"k-1\x0823",
            "the key in {dir}/key.txt is refused: character 4 is a control character, which HTTP Basic "
            "authentication cannot carry",
        ),
        (b"k-\xe9123", "cannot read {dir}/key.txt: not UTF-8 text (byte 2 is 0xe9)"),
        (b"\xef\xbb\xbf\r\n", "{dir}/key.txt is empty"),
    ],
)
def test_an_unusable_key_file_is_refused_without_echoing_the_key(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    path = config_with_key_file(tmp_path, content)
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert str(caught.value) == f"api.api_key_file: {problem.format(dir=tmp_path)}"
    assert "123" not in str(caught.value)


def test_the_environment_value_is_normalised(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("api: {account_id: acme}\njobs: [1]\n")
    assert load_config(path, environ={API_KEY_ENV: "\ufeffk-123\r\n"}).api.api_key == "k-123"


def test_an_unusable_environment_value_names_the_variable(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("api: {account_id: acme, api_key_env: MY_KEY}\njobs: [1]\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={"MY_KEY": "k-\u20ac123"})
    assert str(caught.value) == (
        "api.api_key_env: the key in the environment variable MY_KEY is refused: character 3 is outside Latin-1, "
        "which HTTP Basic authentication cannot carry"
    )


def test_each_account_key_file_is_checked_and_named(tmp_path: Path) -> None:
    (tmp_path / "a.key").write_bytes(b"\xef\xbb\xbfa-key\r\n")
    (tmp_path / "b.key").write_text("b-\u2603key")
    path = tmp_path / "config.yaml"
    path.write_text(
        textwrap.dedent(
            """
            accounts:
              - {name: a, api: {account_id: a, api_key_file: a.key}, jobs: [1]}
              - {name: b, api: {account_id: b, api_key_file: b.key}, jobs: [1]}
            """
        )
    )
    with pytest.raises(ConfigError) as caught:
        load_configs(path, environ={})
    assert str(caught.value) == (
        f"accounts[1].api.api_key_file: the key in {tmp_path}/b.key is refused: character 3 is outside Latin-1, "
        "which HTTP Basic authentication cannot carry"
    )
    (tmp_path / "b.key").write_text("b-key\n")
    assert [config.api.api_key for config in load_configs(path, environ={})] == ["a-key", "b-key"]


@pytest.mark.parametrize("check", [True, False], ids=["check-config", "start"])
def test_start_and_check_config_refuse_the_key_in_one_line_exit_2(tmp_path: Path, check: bool) -> None:
    path = config_with_key_file(tmp_path, "\ufeffsecret-\u00e9\u4e00-key\r\n".encode())
    flags = ["--check-config"] if check else ["--web.listen-address", "127.0.0.1:0"]
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "--config", str(path), *flags],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        f"integrateio-exporter: api.api_key_file: the key in {tmp_path}/key.txt is refused: character 9 is "
        "outside Latin-1, which HTTP Basic authentication cannot carry\n"
    )


def test_a_notepad_key_file_works_on_the_wire(
    sim: Simulator, tmp_path: Path, exporter_for: Callable[..., App]
) -> None:
    """The simulator refuses any other key with 401; its request log says whether the key it got was right."""
    sim.add_job(SimJob(id=1, status="running"))
    key_file = tmp_path / "key.txt"
    key_file.write_bytes(b"\xef\xbb\xbf" + API_KEY.encode() + b"\r\n")
    app = exporter_for(sim, [1], interval=0.2, api_key_file=str(key_file))
    wait_until(lambda: scrape(app).status(1) == "running", 10, "job 1 on /metrics")
    requests = sim.requests
    assert requests
    assert all(record.authorization_ok for record in requests)
    assert scrape(app)["integrateio_api_up"] == 1.0
