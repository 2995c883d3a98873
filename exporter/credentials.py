"""Key material, normalised or refused when the configuration is loaded — never at the first request.

The API key travels as the user name of HTTP Basic authentication, which requests encodes as Latin-1. A key file
saved by Windows Notepad starts with a UTF-8 byte-order mark (U+FEFF), and a key pasted from a chat or a PDF may
hold a typographic character: either one used to pass `--check-config` and then kill the poller at its first
request with a `UnicodeEncodeError` (not a `RequestException`), zero requests sent. So:

- what editors add around a key is dropped: a leading byte-order mark, surrounding spaces, tabs, CR and LF;
- what is left must be sendable: Latin-1 and no control character, or the configuration is refused in one line
  that names the key (`api.api_key_file`, or `api.api_key_env` with the variable) and the position of the first
  bad character — never the key or the character itself.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Mapping

from exporter.configfile import SECRET_LIMIT, read_text
from exporter.errors import ConfigError

BYTE_ORDER_MARK = "\ufeff"


def normalise(secret: str) -> str:
    """The secret without a byte-order mark and surrounding whitespace (CR, LF, spaces, tabs)."""
    return secret.strip().removeprefix(BYTE_ORDER_MARK).strip()


def unsendable(secret: str) -> str | None:
    """Why `secret` cannot be sent in an HTTP Basic header, naming only a position; None when it can."""
    for position, char in enumerate(secret, start=1):
        if ord(char) > 0xFF:
            return f"character {position} is outside Latin-1, which HTTP Basic authentication cannot carry"
        if unicodedata.category(char) == "Cc":
            return (
                f"character {position} is a control character, which HTTP Basic authentication cannot carry"
            )
    return None


def read_key_file(path: str | os.PathLike[str], key: str) -> str:
    """The normalised key in the file at `path`; ConfigError naming `key` when it is unreadable or unusable."""
    secret = normalise(read_text(path, key, limit=SECRET_LIMIT))
    if not secret:
        raise ConfigError(key, f"{path} is empty")
    problem = unsendable(secret)
    if problem is not None:
        raise ConfigError(key, f"the key in {path} is refused: {problem}")
    return secret


def key_from_environment(environ: Mapping[str, str], variable: str, key: str) -> str | None:
    """The normalised key in the environment variable, None when unset or blank; refused when unusable."""
    secret = normalise(environ.get(variable, ""))
    if not secret:
        return None
    problem = unsendable(secret)
    if problem is not None:
        raise ConfigError(key, f"the key in the environment variable {variable} is refused: {problem}")
    return secret
