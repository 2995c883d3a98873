"""Configuration: read once, validated once, frozen.

Every later module takes these dataclasses and trusts them, so all checking happens here, and every problem is
reported as one `ConfigError` naming the key (`rate_limit.reserve: must be at least 0 and below 1, got 1.5`).
The API key is resolved here too, and is kept out of `repr()` so that logging a config can never leak it.
"""

from __future__ import annotations

import os
import ssl
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from exporter import validate
from exporter.configfile import CERTIFICATE, load_yaml, read_pem
from exporter.credentials import key_from_environment, read_key_file, unsendable
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
    outputs_refresh_seconds: float = 300.0
    change_feed: bool = False  # read the jobs updated since the last cycle first (see exporter/tasks/jobs.py)


@dataclass(frozen=True)
class RateLimitConfig:
    """The credit budget of the API key, and the share of it left to other clients of the key."""

    credits: int = 5000
    window_seconds: float = 3600.0
    reserve: float = 0.1
    # Not a YAML key: set by `--shard`, whose replicas split `credits` between them (see `Config.sharded`).
    shards: int = 1

    @property
    def allowed(self) -> int:
        """Requests the exporter may send in any one window: `credits × (1 − reserve)`, rounded down."""
        return max(1, int(self.credits * (1.0 - self.reserve) + 1e-9))

    @property
    def siblings_allowed(self) -> int:
        """What the other shards of this account may send in a window: the key spends them too, and they are
        not a neighbour to pace around, since the split already left them their part."""
        return self.allowed * (self.shards - 1)


@dataclass(frozen=True)
class DiscoverConfig:
    """Watch every run of these packages as it appears, not only fixed job ids."""

    package_ids: tuple[int, ...]
    statuses: tuple[JobStatus, ...] | None = None
    max_age_seconds: float = 86400.0
    max_jobs: int = 500


@dataclass(frozen=True)
class SchedulesConfig:
    """Read the account's schedules (`GET /schedules`, a credit a page of 100) every `interval_seconds`."""

    enabled: bool = False
    interval_seconds: float = 300.0


@dataclass(frozen=True)
class ClustersConfig:
    """Read the account's clusters (`GET /clusters`, a credit a page of 100) every `interval_seconds`; a
    terminated cluster leaves /metrics `terminated_max_age_seconds` after it terminated."""

    enabled: bool = False
    interval_seconds: float = 300.0
    terminated_max_age_seconds: float = 86400.0


@dataclass(frozen=True)
class Shard:
    """This replica's part of the jobs: those whose id hashes to `index` out of `count`."""

    index: int = 0
    count: int = 1

    def owns(self, job_id: int) -> bool:
        return self.count == 1 or zlib.crc32(str(job_id).encode()) % self.count == self.index


@dataclass(frozen=True)
class WebhookConfig:
    """The web hook doorbell (`webhook:`): where Integrate.io rings, how it proves itself, what it may spend.

    A hook only asks for a refresh; the values still come from the API, through the credit budget. The
    password and the salt are read from files and kept out of `repr()`.
    """

    enabled: bool = False
    path: str = "/webhook"
    username: str = ""
    password: str = field(default="", repr=False)
    salt: str | None = field(default=None, repr=False)
    url: str | None = None
    coalesce_seconds: float = 2.0
    budget_share: float = 0.1
    max_body_bytes: int = 64 * 1024


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
    webhook: WebhookConfig = WebhookConfig()
    schedules: SchedulesConfig = SchedulesConfig()
    clusters: ClustersConfig = ClustersConfig()

    def sharded(self, shard: Shard) -> Config:
        """This replica's share: the jobs that hash to it, and the same share of the credits; the schedules and
        clusters, which no job id divides, are read by shard 0 alone."""
        if shard.count == 1:
            return self
        credits = self.rate_limit.credits // shard.count
        if credits * (1.0 - self.rate_limit.reserve) < 1.0:
            raise ConfigError(
                "--shard",
                f"{shard.count} shards cannot share the {self.rate_limit.credits} credits of account "
                f"{self.name}: each needs at least one request per window after the reserve",
            )
        first = shard.index == 0  # the account's schedules and clusters are read once, by the first shard
        return replace(
            self,
            jobs=tuple(job_id for job_id in self.jobs if shard.owns(job_id)),
            rate_limit=replace(self.rate_limit, credits=credits, shards=shard.count),
            shard=shard,
            schedules=self.schedules if first else replace(self.schedules, enabled=False),
            clusters=self.clusters if first else replace(self.clusters, enabled=False),
        )


def load_config(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Config:
    """Read a single-account file (see load_configs)."""
    configs = load_configs(path, environ)
    if len(configs) != 1:
        raise ConfigError("accounts", "expected a single account here")
    return configs[0]


CONFIG_FLAG = "--config"
"""The key named by errors about the file as a whole: the flag is what the operator typed."""


def load_configs(
    path: str | os.PathLike[str], environ: Mapping[str, str] | None = None
) -> tuple[Config, ...]:
    """Read, parse and validate the YAML file at `path`; raise ConfigError naming the first bad key."""
    document = load_yaml(path, CONFIG_FLAG)
    environ = os.environ if environ is None else environ
    return parse_configs(document, base_dir=Path(path).parent, environ=environ)


ACCOUNT_KEYS = {
    "name",
    "api",
    "jobs",
    "discover",
    "polling",
    "rate_limit",
    "state_file",
    "webhook",
    "schedules",
    "clusters",
}
API_KEYS = validate.field_names(ApiConfig) - {"api_key"} | {"api_key_file", "api_key_env"}
"""The key itself is never in the YAML: only where to find it."""

# Upper bounds: generous for any real use, and small enough that every later computation (float budgets,
# `Event.wait`, thread pools, datetime arithmetic) stays in range.
MAX_TIMEOUT_SECONDS = 3600.0
MAX_RESPONSE_BYTES = 1024**3
MAX_INTERVAL_SECONDS = 86400.0
MAX_RECHECK_SECONDS = 30 * 86400.0
MAX_CONCURRENCY = 64
MAX_CREDITS = 10**9
MAX_WINDOW_SECONDS = 86400.0
MAX_AGE_SECONDS = 365 * 86400.0
MAX_DISCOVERED_JOBS = 100_000
MAX_COALESCE_SECONDS = 3600.0
MAX_HOOK_BODY_BYTES = 1024 * 1024
WEBHOOK_KEYS = {
    "enabled",
    "path",
    "basic_auth",
    "salt_file",
    "url",
    "coalesce_seconds",
    "budget_share",
    "max_body_bytes",
}
RESERVED_PATHS = ("/", "/metrics", "/healthz", "/readyz", "/api/jobs")

MIN_LIST_INTERVAL_SECONDS = 1.0  # a typo like 0.001 would spend a credit a cycle for nothing


def parse_configs(document: Any, *, base_dir: Path, environ: Mapping[str, str]) -> tuple[Config, ...]:
    """Validate a document: either one account at the top level, or a list under `accounts:`."""
    if isinstance(document, dict) and "accounts" in document:
        root = validate.mapping(document, "config", {"accounts"})
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
    hook_paths: set[str] = set()
    for index, config in enumerate(configs):
        if config.name in names:
            raise ConfigError(f"accounts[{index}].name", f"{config.name!r} is used by two accounts")
        names.add(config.name)
        if config.webhook.enabled:
            if config.webhook.path in hook_paths:
                raise ConfigError(f"accounts[{index}].webhook.path", "is used by two accounts")
            hook_paths.add(config.webhook.path)
        if config.state_file is not None:
            if config.state_file in state_files:
                raise ConfigError(f"accounts[{index}].state_file", "is used by two accounts")
            state_files.add(config.state_file)


def _account(document: Any, base_dir: Path, environ: Mapping[str, str], *, labelled: bool) -> Config:
    root = validate.mapping(
        document, "account" if labelled else "config", ACCOUNT_KEYS if labelled else ACCOUNT_KEYS - {"name"}
    )
    api = validate.mapping(root.get("api"), "api", API_KEYS, required=True)
    account_id = validate.required_string(api, "api.account_id")
    if not account_id or any(
        char in "/?#%" or not char.isprintable() or char.isspace() for char in account_id
    ):
        # It becomes a path segment of every URL: anything that would change the URL's meaning is a typo.
        raise ConfigError(
            "api.account_id",
            "must be a non-empty account id without '/', '?', '#', '%', spaces or control characters",
        )
    base_url = _base_url(api)
    discover = _discover(root.get("discover"))
    schedules = _listed(root.get("schedules"), SchedulesConfig, "schedules")
    clusters = _listed(root.get("clusters"), ClustersConfig, "clusters")
    if root.get("jobs") is None and (discover is not None or schedules.enabled or clusters.enabled):
        jobs: tuple[int, ...] = ()
    elif root.get("jobs") is None:
        raise ConfigError("jobs", "is required: list the job ids to watch, e.g. [157, 158]")
    else:
        jobs = validate.ids(root["jobs"], "jobs", "job ids", allow_empty=True)

    name = validate.string_or(root, "name", account_id) if labelled else account_id
    return Config(
        api=_api(api, account_id, base_url, base_dir, environ),
        jobs=jobs,
        polling=_polling(root.get("polling")),
        rate_limit=_rate_limit(root.get("rate_limit")),
        state_file=_optional_path(root, "state_file", base_dir),
        discover=discover,
        name=name,
        labelled=labelled,
        webhook=_webhook(root.get("webhook"), base_dir),
        schedules=schedules,
        clusters=clusters,
    )


ListSection = TypeVar("ListSection", SchedulesConfig, ClustersConfig)


def _listed(value: Any, kind: type[ListSection], key: str) -> ListSection:
    """A `schedules:` or `clusters:` section: opt-in (`enabled`), read every `interval_seconds`; clusters add
    `terminated_max_age_seconds`. The keys and their defaults are the dataclass's fields."""
    section = validate.section(value, key, kind)
    values: dict[str, Any] = {
        "enabled": section.boolean("enabled"),
        "interval_seconds": section.seconds("interval_seconds", most=MAX_INTERVAL_SECONDS),
    }
    if values["interval_seconds"] < MIN_LIST_INTERVAL_SECONDS:
        raise ConfigError(
            section.full_key("interval_seconds"),
            f"must be at least {MIN_LIST_INTERVAL_SECONDS:g}, got {values['interval_seconds']:g}",
        )
    if "terminated_max_age_seconds" in validate.field_names(kind):
        values["terminated_max_age_seconds"] = section.seconds(
            "terminated_max_age_seconds", most=MAX_AGE_SECONDS
        )
    return kind(**values)


def _api(
    api: Mapping[str, Any], account_id: str, base_url: str, base_dir: Path, environ: Mapping[str, str]
) -> ApiConfig:
    section = validate.Section(api, "api", ApiConfig)
    return ApiConfig(
        account_id=account_id,
        api_key=_resolve_api_key(api, base_dir, environ),
        base_url=base_url,
        timeout_seconds=section.seconds("timeout_seconds", most=MAX_TIMEOUT_SECONDS),
        max_response_bytes=section.positive_int("max_response_bytes", most=MAX_RESPONSE_BYTES),
        ca_file=_ca_file(api, base_dir),
    )


def _ca_file(api: Mapping[str, Any], base_dir: Path) -> str | None:
    """The extra CA bundle, loaded now: an unreadable one would otherwise fail every request, not the start."""
    path = _optional_path(api, "api.ca_file", base_dir)
    if path is not None:
        read_pem("api.ca_file", path, CERTIFICATE, "certificate")
        try:
            ssl.create_default_context(cafile=path)
        except ssl.SSLError as error:
            raise ConfigError("api.ca_file", f"cannot load {path}: {error.reason or error}") from None
    return path


def _polling(value: Any) -> PollingConfig:
    section = validate.section(value, "polling", PollingConfig)
    return PollingConfig(
        interval_seconds=section.seconds("interval_seconds", most=MAX_INTERVAL_SECONDS),
        missing_recheck_seconds=section.seconds("missing_recheck_seconds", most=MAX_RECHECK_SECONDS),
        concurrency=section.positive_int("concurrency", most=MAX_CONCURRENCY),
        outputs_refresh_seconds=section.seconds("outputs_refresh_seconds", most=MAX_INTERVAL_SECONDS),
        change_feed=section.boolean("change_feed"),
    )


def _rate_limit(value: Any) -> RateLimitConfig:
    section = validate.section(
        value, "rate_limit", RateLimitConfig, validate.field_names(RateLimitConfig) - {"shards"}
    )
    reserve = section.fraction("reserve")
    credits = section.positive_int("credits", most=MAX_CREDITS)
    if credits * (1.0 - reserve) < 1.0:
        raise ConfigError(
            "rate_limit.reserve",
            f"leaves no request of the {credits} credits to the exporter: credits × (1 − reserve) must be at "
            "least 1",
        )
    return RateLimitConfig(
        credits=credits,
        window_seconds=section.seconds("window_seconds", most=MAX_WINDOW_SECONDS),
        reserve=reserve,
    )


def _webhook(value: Any, base_dir: Path) -> WebhookConfig:
    """The doorbell; when enabled, basic auth is required: an open doorbell would let anyone spend credits."""
    section = validate.section(value, "webhook", WebhookConfig, WEBHOOK_KEYS)
    enabled = section.boolean("enabled")
    path = section.string("path")
    if (
        not path.startswith("/")
        or path in RESERVED_PATHS
        or any(char in "?#%" or not char.isprintable() or char.isspace() for char in path)
    ):
        raise ConfigError(
            "webhook.path",
            "must be a path like /webhook, without '?', '#', '%' or spaces, and not one the exporter serves "
            f"({', '.join(RESERVED_PATHS)})",
        )
    auth = validate.mapping(
        section.values.get("basic_auth"),
        "webhook.basic_auth",
        {"username", "password_file"},
        required=enabled,
    )
    username = validate.string_or(auth, "webhook.basic_auth.username", "")
    password_file = validate.optional_string(auth, "webhook.basic_auth.password_file")
    if enabled and (not username or password_file is None):
        raise ConfigError(
            "webhook.basic_auth", "needs username and password_file: Integrate.io sends them with every hook"
        )
    if ":" in username or unsendable(username):
        raise ConfigError(
            "webhook.basic_auth.username", "must be Latin-1 text without ':' or control characters"
        )
    salt_file = validate.optional_string(section.values, "webhook.salt_file")
    url = validate.optional_string(section.values, "webhook.url")
    if url is not None and not url.startswith(("https://", "http://")):
        raise ConfigError("webhook.url", "must be the hook's URL as registered in Integrate.io, https://...")
    share = section.fraction("budget_share")
    if share <= 0.0:
        raise ConfigError("webhook.budget_share", "must be above 0 and below 1, got 0")
    return WebhookConfig(
        enabled=enabled,
        path=path,
        username=username,
        password=""
        if password_file is None
        else read_key_file(base_dir / password_file, "webhook.basic_auth.password_file"),
        salt=None if salt_file is None else read_key_file(base_dir / salt_file, "webhook.salt_file"),
        url=url,
        coalesce_seconds=section.seconds("coalesce_seconds", most=MAX_COALESCE_SECONDS),
        budget_share=share,
        max_body_bytes=section.positive_int("max_body_bytes", most=MAX_HOOK_BODY_BYTES),
    )


def _base_url(api: Mapping[str, Any]) -> str:
    base_url = validate.Section(api, "api", ApiConfig).string("base_url")
    if not base_url.startswith(("https://", "http://")):
        raise ConfigError("api.base_url", "must start with https:// (or http:// for a local simulator)")
    try:
        parts = urlsplit(base_url)
        usable = bool(parts.hostname) and (parts.port is None or parts.port > 0)  # .port raises past 65535
    except ValueError:  # an unclosed IPv6 bracket, a port that is not a number
        usable = False
    if not usable or any(not char.isprintable() or char.isspace() for char in base_url):
        raise ConfigError(
            "api.base_url", "must be a URL with a host and no spaces, like https://api.xplenty.com"
        )
    return base_url


def _discover(value: Any) -> DiscoverConfig | None:
    if value is None:
        return None
    section = validate.section(value, "discover", DiscoverConfig)
    package_ids = validate.ids(section.values.get("package_ids"), "discover.package_ids", "package ids")
    statuses = section.values.get("statuses")
    parsed: tuple[JobStatus, ...] | None = None
    if statuses is not None:
        if not isinstance(statuses, list) or not statuses:
            raise ConfigError("discover.statuses", "must be a non-empty list of job statuses")
        known = [status.value for status in LISTABLE_STATUSES]
        parsed = tuple(
            JobStatus(validate.choice(item, f"discover.statuses[{index}]", known))
            for index, item in enumerate(statuses)
        )
        parsed = tuple(dict.fromkeys(parsed))
    return DiscoverConfig(
        package_ids=package_ids,
        statuses=parsed,
        max_age_seconds=section.seconds("max_age_seconds", most=MAX_AGE_SECONDS),
        max_jobs=section.positive_int("max_jobs", most=MAX_DISCOVERED_JOBS),
    )


def _optional_path(section: Mapping[str, Any], key: str, base_dir: Path) -> str | None:
    value = validate.optional_string(section, key)
    return None if value is None else str(base_dir / value)


def _resolve_api_key(api: Mapping[str, Any], base_dir: Path, environ: Mapping[str, str]) -> str:
    """The key comes from api.api_key_file when given, else from an environment variable; never from the YAML."""
    key_file = validate.optional_string(api, "api.api_key_file")
    if key_file is not None:
        return read_key_file(base_dir / key_file, "api.api_key_file")
    variable = validate.string_or(api, "api.api_key_env", API_KEY_ENV)
    key = key_from_environment(environ, variable, "api.api_key_env")
    if key is None:
        problem = f"no API key: set api.api_key_file or the {variable} environment variable"
        raise ConfigError("api.api_key_file", problem)
    return key
