"""Configuration: read once, validated once, frozen.

Every later module takes these dataclasses and trusts them, so all checking happens here, and every problem is
reported as one `ConfigError` naming the key (`rate_limit.reserve: must be at least 0 and below 1, got 1.5`).
The API key is resolved here too, and is kept out of `repr()` so that logging a config can never leak it.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from exporter.errors import ConfigError
from exporter.model import LISTABLE_STATUSES, JobStatus

API_KEY_ENV = "INTEGRATEIO_API_KEY"
DEFAULT_BASE_URL = "https://api.xplenty.com"


@dataclass(frozen=True)
class ApiConfig:
    """Where the API is and how to talk to it."""

    account_id: str
    api_key: str = field(repr=False)
    base_url: str = DEFAULT_BASE_URL
    timeout_seconds: float = 10.0
    max_response_bytes: int = 10 * 1024 * 1024
    ca_file: str | None = None

    @property
    def api_root(self) -> str:
        """`https://api.xplenty.com/my-account/api`: every endpoint hangs below it."""
        return f"{self.base_url.rstrip('/')}/{self.account_id}/api"


@dataclass(frozen=True)
class PollingConfig:
    """How fresh jobs should be kept."""

    interval_seconds: float = 60.0
    missing_recheck_seconds: float = 3600.0
    concurrency: int = 4
    change_feed: bool = False  # read the jobs updated since the last cycle first (see exporter/tasks/jobs.py)


@dataclass(frozen=True)
class RateLimitConfig:
    """The credit budget of the API key, and the share of it left to other clients of the key."""

    credits: int = 5000
    window_seconds: float = 3600.0
    reserve: float = 0.1

    @property
    def allowed(self) -> int:
        """Requests the exporter may send in any one window: `credits × (1 − reserve)`, rounded down."""
        return max(1, int(self.credits * (1.0 - self.reserve) + 1e-9))


@dataclass(frozen=True)
class DiscoverConfig:
    """Watch every run of these packages as it appears, not only fixed job ids."""

    package_ids: tuple[int, ...]
    statuses: tuple[JobStatus, ...] | None = None
    max_age_seconds: float = 86400.0
    max_jobs: int = 500


@dataclass(frozen=True)
class Shard:
    """This replica's part of the jobs: those whose id hashes to `index` out of `count`."""

    index: int = 0
    count: int = 1

    def owns(self, job_id: int) -> bool:
        return self.count == 1 or zlib.crc32(str(job_id).encode()) % self.count == self.index


@dataclass(frozen=True)
class Config:
    """One account's validated configuration. `labelled` accounts (from `accounts:`) add an `account` label."""

    api: ApiConfig
    jobs: tuple[int, ...]
    polling: PollingConfig = PollingConfig()
    rate_limit: RateLimitConfig = RateLimitConfig()
    state_file: str | None = None
    discover: DiscoverConfig | None = None
    name: str = ""
    labelled: bool = False
    shard: Shard = Shard()

    def sharded(self, shard: Shard) -> Config:
        """This replica's share: the jobs that hash to it, and the same share of the credits."""
        if shard.count == 1:
            return self
        credits = max(1, self.rate_limit.credits // shard.count)
        return replace(
            self,
            jobs=tuple(job_id for job_id in self.jobs if shard.owns(job_id)),
            rate_limit=replace(self.rate_limit, credits=credits),
            shard=shard,
        )


def load_config(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Config:
    """Read a single-account file (see load_configs)."""
    configs = load_configs(path, environ)
    if len(configs) != 1:
        raise ConfigError("accounts", "expected a single account here")
    return configs[0]


def load_configs(
    path: str | os.PathLike[str], environ: Mapping[str, str] | None = None
) -> tuple[Config, ...]:
    """Read, parse and validate the YAML file at `path`; raise ConfigError naming the first bad key."""
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(where, f"cannot read the file: {error.strerror or error}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(where, f"not valid YAML{line}") from None
    environ = os.environ if environ is None else environ
    return parse_configs(document, base_dir=Path(path).parent, environ=environ)


ACCOUNT_KEYS = {"name", "api", "jobs", "discover", "polling", "rate_limit", "state_file"}


def parse_configs(document: Any, *, base_dir: Path, environ: Mapping[str, str]) -> tuple[Config, ...]:
    """Validate a document: either one account at the top level, or a list under `accounts:`."""
    if isinstance(document, dict) and "accounts" in document:
        root = _mapping(document, "config", {"accounts"})
        entries = root["accounts"]
        if not isinstance(entries, list) or not entries:
            raise ConfigError("accounts", "must be a non-empty list of accounts")
        configs = []
        for index, entry in enumerate(entries):
            try:
                configs.append(_account(entry, base_dir, environ, labelled=True))
            except ConfigError as error:
                raise ConfigError(f"accounts[{index}].{error.key}", error.problem) from None
        _check_distinct(configs)
        return tuple(configs)
    return (_account(document, base_dir, environ, labelled=False),)


def parse_config(document: Any, *, base_dir: Path, environ: Mapping[str, str]) -> Config:
    """One account's configuration, for the demo, tests and single-account callers."""
    configs = parse_configs(document, base_dir=base_dir, environ=environ)
    if len(configs) != 1:
        raise ConfigError("accounts", "expected a single account here")
    return configs[0]


def _check_distinct(configs: list[Config]) -> None:
    names: set[str] = set()
    state_files: set[str] = set()
    for index, config in enumerate(configs):
        if config.name in names:
            raise ConfigError(f"accounts[{index}].name", f"{config.name!r} is used by two accounts")
        names.add(config.name)
        if config.state_file is not None:
            if config.state_file in state_files:
                raise ConfigError(f"accounts[{index}].state_file", "is used by two accounts")
            state_files.add(config.state_file)


def _account(document: Any, base_dir: Path, environ: Mapping[str, str], *, labelled: bool) -> Config:
    root = _mapping(
        document, "account" if labelled else "config", ACCOUNT_KEYS if labelled else ACCOUNT_KEYS - {"name"}
    )
    api = _mapping(
        root.get("api"),
        "api",
        {
            "account_id",
            "base_url",
            "api_key_file",
            "api_key_env",
            "timeout_seconds",
            "max_response_bytes",
            "ca_file",
        },
        required=True,
    )
    polling = _mapping(
        root.get("polling", {}),
        "polling",
        {"interval_seconds", "missing_recheck_seconds", "concurrency", "change_feed"},
    )
    rate = _mapping(root.get("rate_limit", {}), "rate_limit", {"credits", "window_seconds", "reserve"})

    account_id: str = _string(api, "api.account_id", required=True)
    if not account_id.strip() or "/" in account_id:
        raise ConfigError("api.account_id", "must be a non-empty account id without '/'")
    base_url: str = _string(api, "api.base_url", default=DEFAULT_BASE_URL)
    if not base_url.startswith(("https://", "http://")):
        raise ConfigError("api.base_url", "must start with https:// (or http:// for a local simulator)")
    discover = _discover(root.get("discover"))
    if root.get("jobs") is None and discover is not None:
        jobs: tuple[int, ...] = ()
    else:
        jobs = _job_ids(root.get("jobs"))

    return Config(
        api=ApiConfig(
            account_id=account_id,
            api_key=_resolve_api_key(api, base_dir, environ),
            base_url=base_url,
            timeout_seconds=_positive(api, "api.timeout_seconds", 10.0),
            max_response_bytes=_positive_int(api, "api.max_response_bytes", 10 * 1024 * 1024),
            ca_file=_optional_path(api, "api.ca_file", base_dir),
        ),
        jobs=jobs,
        polling=PollingConfig(
            interval_seconds=_positive(polling, "polling.interval_seconds", 60.0),
            missing_recheck_seconds=_positive(polling, "polling.missing_recheck_seconds", 3600.0),
            concurrency=_positive_int(polling, "polling.concurrency", 4),
            change_feed=_flag(polling, "polling.change_feed"),
        ),
        rate_limit=_rate_limit(rate),
        state_file=_optional_path(root, "state_file", base_dir),
        discover=discover,
        name=_string(root, "name", default=account_id) if labelled else account_id,
        labelled=labelled,
    )


def _discover(value: Any) -> DiscoverConfig | None:
    if value is None:
        return None
    section = _mapping(value, "discover", {"package_ids", "statuses", "max_age_seconds", "max_jobs"})
    package_ids = section.get("package_ids")
    if not isinstance(package_ids, list) or not package_ids:
        raise ConfigError("discover.package_ids", "must be a non-empty list of package ids")
    for index, item in enumerate(package_ids):
        if isinstance(item, bool) or not isinstance(item, int) or item <= 0:
            raise ConfigError(f"discover.package_ids[{index}]", f"must be a positive integer, got {item!r}")
    statuses = section.get("statuses")
    parsed: tuple[JobStatus, ...] | None = None
    if statuses is not None:
        if not isinstance(statuses, list) or not statuses:
            raise ConfigError("discover.statuses", "must be a non-empty list of job statuses")
        known = [status.value for status in LISTABLE_STATUSES]
        for index, item in enumerate(statuses):
            if item not in known:
                raise ConfigError(
                    f"discover.statuses[{index}]", f"must be one of {', '.join(known)}, got {item!r}"
                )
        parsed = tuple(JobStatus(item) for item in dict.fromkeys(statuses))
    return DiscoverConfig(
        package_ids=tuple(dict.fromkeys(package_ids)),
        statuses=parsed,
        max_age_seconds=_positive(section, "discover.max_age_seconds", 86400.0),
        max_jobs=_positive_int(section, "discover.max_jobs", 500),
    )


def _rate_limit(rate: Mapping[str, Any]) -> RateLimitConfig:
    reserve = _number(rate, "rate_limit.reserve", 0.1)
    if not 0.0 <= reserve < 1.0:
        raise ConfigError("rate_limit.reserve", f"must be at least 0 and below 1, got {reserve}")
    return RateLimitConfig(
        credits=_positive_int(rate, "rate_limit.credits", 5000),
        window_seconds=_positive(rate, "rate_limit.window_seconds", 3600.0),
        reserve=reserve,
    )


def _optional_path(section: Mapping[str, Any], key: str, base_dir: Path) -> str | None:
    value: str | None = _string(section, key)
    return None if value is None else str(base_dir / value)


def _job_ids(value: Any) -> tuple[int, ...]:
    if value is None:
        raise ConfigError("jobs", "is required: list the job ids to watch, e.g. [157, 158]")
    if not isinstance(value, list):
        raise ConfigError("jobs", f"must be a list of job ids, got {_type_name(value)}")
    seen: dict[int, None] = {}
    for index, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, int) or item <= 0:
            raise ConfigError(f"jobs[{index}]", f"must be a positive integer, got {item!r}")
        seen[item] = None
    return tuple(seen)


def _resolve_api_key(api: Mapping[str, Any], base_dir: Path, environ: Mapping[str, str]) -> str:
    """The key comes from api.api_key_file when given, else from an environment variable; never from the YAML."""
    key_file: str | None = _string(api, "api.api_key_file")
    if key_file is not None:
        path = base_dir / key_file
        try:
            key = path.read_text(encoding="utf-8").strip()
        except OSError as error:
            raise ConfigError("api.api_key_file", f"cannot read {path}: {error.strerror or error}") from None
        if not key:
            raise ConfigError("api.api_key_file", f"{path} is empty")
        return key
    variable: str = _string(api, "api.api_key_env", default=API_KEY_ENV)
    key = environ.get(variable, "").strip()
    if not key:
        problem = f"no API key: set api.api_key_file or the {variable} environment variable"
        raise ConfigError("api.api_key_file", problem)
    return key


def _mapping(value: Any, key: str, allowed: set[str], *, required: bool = False) -> Mapping[str, Any]:
    if value is None:
        if required:
            raise ConfigError(key, "is required")
        return {}
    if not isinstance(value, dict):
        raise ConfigError(key, f"must be a mapping, got {_type_name(value)}")
    for name in value:
        if name not in allowed:
            prefix = "" if key == "config" else f"{key}."
            raise ConfigError(f"{prefix}{name}", f"unknown key (known: {', '.join(sorted(allowed))})")
    return value


def _raw(section: Mapping[str, Any], key: str) -> Any:
    """The value at the last part of `key`, or None when absent or null (`key:` means 'the default')."""
    return section.get(key.rsplit(".", 1)[-1])


def _string(
    section: Mapping[str, Any], key: str, *, default: str | None = None, required: bool = False
) -> Any:
    value = _raw(section, key)
    if value is None:
        if required:
            raise ConfigError(key, "is required")
        return default
    if not isinstance(value, str):
        raise ConfigError(key, f"must be a string, got {_type_name(value)}")
    return value


def _number(section: Mapping[str, Any], key: str, default: float) -> float:
    value = _raw(section, key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(key, f"must be a number, got {_type_name(value)}")
    return float(value)


def _positive(section: Mapping[str, Any], key: str, default: float) -> float:
    value = _number(section, key, default)
    if not value > 0 or value == float("inf"):
        raise ConfigError(key, f"must be a number greater than 0, got {value:g}")
    return value


def _positive_int(section: Mapping[str, Any], key: str, default: int) -> int:
    value = _raw(section, key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(key, f"must be an integer, got {_type_name(value)}")
    if value <= 0:
        raise ConfigError(key, f"must be greater than 0, got {value}")
    return value


def _flag(section: Mapping[str, Any], key: str) -> bool:
    value = _raw(section, key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ConfigError(key, f"must be true or false, got {_type_name(value)}")
    return value


_TYPE_NAMES = {
    dict: "a mapping",
    list: "a list",
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
}


def _type_name(value: Any) -> str:
    if value is None:
        return "nothing"
    return _TYPE_NAMES.get(type(value), type(value).__name__)
