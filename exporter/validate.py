"""The checks every configuration file shares: types, ranges, known keys, defaults — one wording for all.

`config.yaml` and `--web.config.file` are both validated with these, so an operator reads the same sentence for
the same mistake in either file (`rate_limit.reserve: must be at least 0 and below 1, got 1.5`). Every check
raises `ConfigError(key, problem)`: one line naming the key.

Defaults live once, on the dataclass field; `default(RateLimitConfig, "credits")` reads them from there, and a
`Section` reads each key of a section with the default of its field, so the parser never repeats a literal that
could drift from the documented default.

Numbers are checked against a range, not only a sign: a value that Python can parse but the exporter cannot use
(a window of 1e300 s overflows `Event.wait`, 10**400 credits overflow a float) must be refused when the file is
read — at start and in `--check-config` alike — not later in a worker thread.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Mapping
from typing import Any

from exporter.errors import ConfigError

_TYPE_NAMES = {
    dict: "a mapping",
    list: "a list",
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
}


def type_name(value: object) -> str:
    """The YAML word for a value's type, for messages that must not echo the value itself."""
    if value is None:
        return "nothing"
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def shown(value: object) -> str:
    """A value as a message may show it: a 400-digit integer is described, not printed."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**20:
        return f"a {len(str(abs(value)))}-digit integer"
    if isinstance(value, float):
        return f"{value:g}"
    return repr(value)


def field_names(cls: type) -> set[str]:
    """The keys a section may have: the fields of the dataclass it becomes."""
    return {each.name for each in dataclasses.fields(cls)}


def default(cls: type, name: str) -> Any:
    """The default declared on a dataclass field: the one place a default is written."""
    for each in dataclasses.fields(cls):
        if each.name == name:
            if each.default is dataclasses.MISSING:
                raise LookupError(f"{cls.__name__}.{name} has no default")
            return each.default
    raise LookupError(f"{cls.__name__} has no field {name}")


def mapping(
    value: object, key: str, known: Collection[str] | None = None, *, required: bool = False
) -> Mapping[Any, Any]:
    """A mapping (`{}` when absent, unless required), whose keys are all in `known` when that is given."""
    if value is None:
        if required:
            raise ConfigError(key, "is required")
        return {}
    if not isinstance(value, dict):
        raise ConfigError(key, f"must be a mapping, got {type_name(value)}")
    if known is not None:
        reject_unknown_keys(value, "" if key == "config" else f"{key}.", known)
    return value


def reject_unknown_keys(section: Mapping[Any, Any], prefix: str, known: Collection[str]) -> None:
    """Typos must not pass silently: a misspelt key would otherwise mean its default, without a word."""
    for name in section:
        if name not in known:
            raise ConfigError(f"{prefix}{name}", f"unknown key (known: {', '.join(sorted(known))})")


def field_value(section: Mapping[Any, Any], key: str) -> Any:
    """The value at the last part of `key`, or None when absent or null (`key:` means 'the default')."""
    return section.get(key.rsplit(".", 1)[-1])


def string(value: object, key: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(key, f"must be a string, got {type_name(value)}")
    return value


def optional_string(section: Mapping[Any, Any], key: str) -> str | None:
    """The string at `key`, or None when the key is absent or null."""
    value = field_value(section, key)
    return None if value is None else string(value, key)


def string_or(section: Mapping[Any, Any], key: str, fallback: str) -> str:
    """The string at `key`, or `fallback` when the key is absent or null."""
    value = optional_string(section, key)
    return fallback if value is None else value


def required_string(section: Mapping[Any, Any], key: str) -> str:
    value = field_value(section, key)
    if value is None:
        raise ConfigError(key, "is required")
    return string(value, key)


def boolean(value: object, key: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(key, f"must be true or false, got {type_name(value)}")
    return value


def optional_boolean(section: Mapping[Any, Any], key: str, fallback: bool) -> bool:
    """The switch at `key`, or `fallback` when the key is absent or null (`enabled:` means 'the default')."""
    value = field_value(section, key)
    return fallback if value is None else boolean(value, key)


def choice(value: object, key: str, choices: Collection[str]) -> str:
    text = string(value, key)
    if text not in choices:
        raise ConfigError(key, f"must be one of {', '.join(choices)}, got {text!r}")
    return text


def a_list(value: object, key: str) -> list[Any]:
    if not isinstance(value, list):
        raise ConfigError(key, f"must be a list, got {type_name(value)}")
    return value


def number(section: Mapping[Any, Any], key: str, fallback: float) -> float:
    """A finite-or-not float (ranges are the caller's), refusing what cannot become a float at all."""
    value = field_value(section, key)
    if value is None:
        return fallback
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(key, f"must be a number, got {type_name(value)}")
    try:
        return float(value)
    except OverflowError:
        raise ConfigError(key, f"must be a number, got {shown(value)}, too large for one") from None


def seconds(section: Mapping[Any, Any], key: str, fallback: float, *, most: float) -> float:
    """A duration greater than 0 and at most `most` seconds."""
    value = number(section, key, fallback)
    if not 0.0 < value <= most:  # also refuses nan
        raise ConfigError(key, f"must be a number greater than 0 and at most {most:g}, got {value:g}")
    return value


def positive_int(section: Mapping[Any, Any], key: str, fallback: int, *, most: int) -> int:
    """A count from 1 to `most`."""
    value = field_value(section, key)
    if value is None:
        return fallback
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(key, f"must be an integer, got {type_name(value)}")
    if not 0 < value <= most:
        raise ConfigError(key, f"must be an integer from 1 to {most}, got {shown(value)}")
    return value


def fraction(section: Mapping[Any, Any], key: str, fallback: float) -> float:
    """A share: at least 0 and below 1."""
    value = number(section, key, fallback)
    if not 0.0 <= value < 1.0 or math.isnan(value):
        raise ConfigError(key, f"must be at least 0 and below 1, got {value:g}")
    return value


MAX_ID = 2**63 - 1
"""The largest id the API can hand out (a signed 64-bit integer)."""


def ids(value: object, key: str, what: str, *, allow_empty: bool = False) -> tuple[int, ...]:
    """A list of positive ids (`what` names them in the message), duplicates dropped in order."""
    if not isinstance(value, list):
        raise ConfigError(key, f"must be a list of {what}, got {type_name(value)}")
    if not value and not allow_empty:
        raise ConfigError(key, f"must be a non-empty list of {what}")
    seen: dict[int, None] = {}
    for index, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, int) or not 0 < item <= MAX_ID:
            raise ConfigError(f"{key}[{index}]", f"must be a positive integer, got {shown(item)}")
        seen[item] = None
    return tuple(seen)


@dataclasses.dataclass(frozen=True)
class Section:
    """A section of the file (`values`, at `key`) read as the dataclass `kind` it becomes.

    A key is named once, by its field: the message names it in full (`schedules.interval_seconds`) and the
    fallback is the field's default, so a parser says only what is the key's own, its range, and the name in the
    message and the default it stands for cannot drift apart.
    """

    values: Mapping[Any, Any]
    key: str
    kind: type

    def full_key(self, name: str) -> str:
        return f"{self.key}.{name}"

    def boolean(self, name: str) -> bool:
        return optional_boolean(self.values, self.full_key(name), default(self.kind, name))

    def string(self, name: str) -> str:
        return string_or(self.values, self.full_key(name), default(self.kind, name))

    def seconds(self, name: str, *, most: float) -> float:
        return seconds(self.values, self.full_key(name), default(self.kind, name), most=most)

    def positive_int(self, name: str, *, most: int) -> int:
        return positive_int(self.values, self.full_key(name), default(self.kind, name), most=most)

    def fraction(self, name: str) -> float:
        return fraction(self.values, self.full_key(name), default(self.kind, name))


def section(value: object, key: str, kind: type, known: Collection[str] | None = None) -> Section:
    """The mapping at `key` (`{}` when absent) as a `Section` of `kind`; its keys are `kind`'s fields unless
    `known` lists them: `webhook:` has `basic_auth` and `salt_file` where its dataclass has the credentials read
    from them, and `rate_limit:` has no `shards`, which `--shard` sets."""
    return Section(mapping(value, key, field_names(kind) if known is None else known), key, kind)
