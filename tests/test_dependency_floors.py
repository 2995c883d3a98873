"""The dependency ranges pyproject.toml declares are true: their floors are the versions CI installs and tests.

`make test-min` installs ci/min-versions.txt into `.venv-min` and runs the suite there with
INTEGRATEIO_MIN_VERSIONS=1; `make test` runs it on the newest versions. These tests keep the floors and the
pinned file equal, and check that each environment holds what it claims to test.
"""

from __future__ import annotations

import os
import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
MIN_VERSIONS_ENV = "INTEGRATEIO_MIN_VERSIONS"


def declared_floors() -> dict[str, Version]:
    """Each runtime dependency and its `>=` floor; a dependency without exactly one floor is an error."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    floors: dict[str, Version] = {}
    for line in project["dependencies"]:
        requirement = Requirement(line)
        lower = [spec.version for spec in requirement.specifier if spec.operator == ">="]
        assert len(lower) == 1, (
            f"{line}: declare exactly one `>=` floor, so that it can be installed and tested"
        )
        floors[requirement.name.lower()] = Version(lower[0])
    return floors


def pinned_minimums() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in (ROOT / "ci" / "min-versions.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = re.fullmatch(r"([A-Za-z0-9_.-]+)==(\S+)", line).groups()  # type: ignore[union-attr]
            pins[name.lower()] = Version(version)
    return pins


def test_every_floor_is_pinned_in_the_minimum_environment() -> None:
    assert pinned_minimums() == declared_floors()


@pytest.mark.parametrize("name", sorted(declared_floors()))
def test_the_environment_holds_what_it_claims_to_test(name: str) -> None:
    installed = Version(metadata.version(name))
    floor = declared_floors()[name]
    if os.environ.get(MIN_VERSIONS_ENV) == "1":
        assert installed == floor, f"make test-min must run on {name} {floor}, found {installed}"
    else:
        assert installed >= floor, f"{name} {installed} is below the declared floor {floor}"
