"""`--web.config.file`: TLS, client certificates, basic auth and extra headers in the exporter-toolkit format.

Operators of Prometheus exporters already have a web config file written for the Go exporters
(https://github.com/prometheus/exporter-toolkit/blob/master/docs/web-configuration.md). Reading the same file
means one way to secure every exporter on a host::

    tls_server_config:
      cert_file: server.crt            # relative paths are resolved against this file's directory
      key_file: server.key
      client_auth_type: RequireAndVerifyClientCert
      client_ca_file: ca.crt
      min_version: TLS12
    http_server_config:
      headers: {X-Frame-Options: deny}
    basic_auth_users:
      alice: $2y$10$mDwo.lAisC94iLAyP81MCesa29IzH37oigHC/42V2pdJlUprsJPze
    basic_auth_excluded_paths: [/healthz, /readyz]   # this exporter's own key, see below

Where Python's `ssl` module cannot do what the Go toolkit does, the file is refused with a reason rather than
silently served with weaker protection than the operator asked for: `RequireAnyClientCert` (Python cannot
require a certificate without verifying it), `client_allowed_sans`, inline PEM (`cert`, `key`, `client_ca`) and
`rate_limit`. `curve_preferences` is validated and ignored with a warning, since it only tunes performance.

`basic_auth_excluded_paths` is this exporter's addition to the format: the paths served without basic auth, so
that a kubelet can probe health without a credential written into the Pod spec. Only `/healthz` and `/readyz`
may be listed (they answer "ok" or "not ok" and nothing else); any other path is refused, so a typo can never
open `/metrics` or the status page.

Everything is checked once, at load time, so a bad file stops the exporter at startup instead of failing the
first scrape. No error message ever carries a password or a hash.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import re
import secrets
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import bcrypt

from exporter import validate
from exporter.configfile import CERTIFICATE, load_yaml, read_pem
from exporter.errors import ConfigError
from exporter.validate import default

log = logging.getLogger(__name__)

FILE_KEY = "--web.config.file"
"""The key named by errors about the file as a whole: the flag is what the operator typed."""

_TOP_LEVEL_KEYS = ("tls_server_config", "http_server_config", "basic_auth_users", "basic_auth_excluded_paths")
_EXCLUDABLE_PATHS = ("/healthz", "/readyz")
_TLS_KEYS = (
    "cert_file",
    "key_file",
    "client_auth_type",
    "client_ca_file",
    "min_version",
    "max_version",
    "cipher_suites",
    "prefer_server_cipher_suites",
    "curve_preferences",
)
_HTTP_KEYS = ("http2", "headers")

_UNSUPPORTED: Mapping[str, str] = {
    "rate_limit": "not supported by this exporter; rate-limit scrapes in a reverse proxy",
    "tls_server_config.cert": "inline PEM is not supported; put the certificate in a file and set cert_file",
    "tls_server_config.key": "inline PEM is not supported; put the key in a file and set key_file",
    "tls_server_config.client_ca": "inline PEM is not supported; put the CA in a file and set client_ca_file",
    "tls_server_config.client_allowed_sans": (
        "not supported: Python's ssl module cannot match client certificate SANs during the handshake; "
        "issue scraper certificates from a dedicated CA instead"
    ),
}

_TLS_VERSIONS: Mapping[str, ssl.TLSVersion] = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}

_VERIFY_MODES: Mapping[str, ssl.VerifyMode] = {
    "NoClientCert": ssl.CERT_NONE,
    # Go asks for a certificate and never checks it; the exporter never reads it either, so not asking at all
    # is the same thing as far as anyone can observe.
    "RequestClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
_CLIENT_AUTH_TYPES = (
    "NoClientCert",
    "RequestClientCert",
    "RequireAnyClientCert",
    "VerifyClientCertIfGiven",
    "RequireAndVerifyClientCert",
)
_CLIENT_AUTH_ALIASES: Mapping[str, str] = {"RequireClientCert": "RequireAnyClientCert"}  # kept by Go too

# Go's names (crypto/tls CipherSuites()) to OpenSSL's. The TLS 1.3 suites map to None: neither Go nor Python
# lets them be configured, so naming them is accepted and changes nothing, exactly as in the Go toolkit.
_CIPHER_SUITES: Mapping[str, str | None] = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_AES_128_GCM_SHA256": None,
    "TLS_AES_256_GCM_SHA384": None,
    "TLS_CHACHA20_POLY1305_SHA256": None,
}
_CURVES = ("CurveP256", "CurveP384", "CurveP521", "X25519")

# The Go toolkit allows only these headers, and pins the values of the two that have a fixed vocabulary, so
# that every exporter in the ecosystem answers the same way.
_HEADER_VALUES: Mapping[str, tuple[str, ...] | None] = {
    "Content-Security-Policy": None,
    "Strict-Transport-Security": None,
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": None,
}

_BCRYPT_HASH = re.compile(r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")
_BCRYPT_MAX_PASSWORD = 72  # bcrypt ignores (bcrypt<5) or refuses (bcrypt>=5) anything longer
_AUTH_CACHE_LIMIT = 1024


@dataclass(frozen=True)
class TLSSettings:
    """The validated `tls_server_config`, with paths already resolved against the web config's directory."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None
    client_auth_type: str = "NoClientCert"
    min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    max_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3
    openssl_ciphers: str | None = None
    prefer_server_cipher_suites: bool = True

    @property
    def verify_mode(self) -> ssl.VerifyMode:
        """How the handshake treats client certificates, per `client_auth_type`."""
        return _VERIFY_MODES[self.client_auth_type]


class _CredentialCache:
    """Remembers which credentials bcrypt already accepted, so a scrape every few seconds costs microseconds.

    bcrypt at cost 10-12 takes 50-250 ms of CPU: paid on every scrape it would dominate the exporter. Keys are
    HMAC-SHA-256 under a per-process random key, not a plain SHA-256, so that a memory dump does not hand an
    attacker a fast hash to brute-force the password with (which would undo the point of bcrypt). Failures are
    never cached, so a wrong guess always pays the full bcrypt price. One bcrypt at a time (as in the Go
    toolkit): a flood of bad guesses then costs one core, and cached scrapers never wait for it.
    """

    def __init__(self) -> None:
        self._secret = secrets.token_bytes(32)
        self._accepted: dict[bytes, None] = {}
        self._lock = threading.Lock()
        self.bcrypt_lock = threading.Lock()

    def key(self, credentials: bytes) -> bytes:
        """The cache key for the raw `user:password` bytes of a Basic header."""
        return hmac.new(self._secret, credentials, hashlib.sha256).digest()

    def __contains__(self, key: bytes) -> bool:
        with self._lock:
            return key in self._accepted

    def remember(self, key: bytes) -> None:
        """Remember an accepted key; the oldest entry makes room, so memory stays bounded."""
        with self._lock:
            if len(self._accepted) >= _AUTH_CACHE_LIMIT:
                del self._accepted[next(iter(self._accepted))]
            self._accepted[key] = None


@dataclass(frozen=True)
class WebConfig:
    """What the HTTP server needs from `--web.config.file`: a TLS context, a credential check and headers.

    `WebConfig()` is the configuration without a file: plain HTTP, no authentication, no extra headers.
    """

    tls: TLSSettings | None = None
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    users: Mapping[str, bytes] = field(default_factory=lambda: MappingProxyType({}), repr=False)
    excluded_paths: frozenset[str] = frozenset()
    _cache: _CredentialCache = field(default_factory=_CredentialCache, init=False, repr=False, compare=False)

    @property
    def tls_enabled(self) -> bool:
        """Whether the server must speak HTTPS."""
        return self.tls is not None

    @property
    def response_headers(self) -> Mapping[str, str]:
        """Extra headers for every response, from `http_server_config.headers` (blank values left out)."""
        return self.headers

    def ssl_context(self) -> ssl.SSLContext | None:
        """A fresh server-side context, or None for plain HTTP.

        Built anew on each call, from the files as they are now, so a server that rebuilds its listener picks up
        renewed certificates. Raises ConfigError if a file became unreadable since loading.
        """
        return None if self.tls is None else _build_ssl_context(self.tls)

    def authorize(self, authorization_header: str | None, path: str = "") -> bool:
        """Whether a request for `path` with this `Authorization` header may be served.

        True when no users are configured, or for a path of `basic_auth_excluded_paths` (matched exactly, on
        the path the server routes by, so it can only ever reach a health endpoint). Otherwise the header must be `Basic base64(user:password)` for a
        configured user whose bcrypt hash matches. An unknown user is checked against a real hash anyway, so the
        response time does not tell which user names exist.
        """
        if not self.users or path in self.excluded_paths:
            return True
        credentials = parse_basic_auth(authorization_header)
        if credentials is None:
            return False
        user, password, raw = credentials
        key = self._cache.key(raw)
        if user in self.users and key in self._cache:
            return True
        if not self._bcrypt_accepts(user, password):
            return False
        self._cache.remember(key)
        return True

    def _bcrypt_accepts(self, user: str, password: bytes) -> bool:
        """The slow check, serialized; a decoy hash stands in for unknown users to keep the timing flat."""
        hashed = self.users.get(user)
        if len(password) > _BCRYPT_MAX_PASSWORD:
            return False
        with self._cache.bcrypt_lock:
            matches = bcrypt.checkpw(password, hashed if hashed is not None else _decoy_hash(self.users))
        return hashed is not None and matches


def _decoy_hash(users: Mapping[str, bytes]) -> bytes:
    """A configured hash, so an unknown user costs the same bcrypt work as a known one with a wrong password."""
    return next(iter(users.values()))


def parse_basic_auth(header: str | None) -> tuple[str, bytes, bytes] | None:
    """(user, password, raw `user:password` bytes) from a Basic header, or None if it is not a valid one.

    The password stays bytes: bcrypt works on bytes, and a client's encoding is none of our business.
    """
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        raw = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user_bytes, colon, password = raw.partition(b":")
    if not colon:
        return None
    try:
        user = user_bytes.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return user, password, raw


def load_web_config(path: str | os.PathLike[str]) -> WebConfig:
    """Read and fully validate a web config file, including the certificate files it names.

    Raises ConfigError naming the offending key; never with a password or hash in the message.
    """
    config_path = Path(path).absolute()  # relative cert paths must not depend on a later chdir
    document = validate.mapping(load_yaml(config_path, FILE_KEY), FILE_KEY)
    _reject_unknown_keys(document, "", _TOP_LEVEL_KEYS)
    config = WebConfig(
        tls=_parse_tls(document.get("tls_server_config"), config_path.parent),
        headers=MappingProxyType(_parse_http(document.get("http_server_config"))),
        users=MappingProxyType(_parse_users(document.get("basic_auth_users"))),
        excluded_paths=_parse_excluded_paths(document.get("basic_auth_excluded_paths")),
    )
    config.ssl_context()  # load the certificates now, so that a bad one stops startup, not the first scrape
    return config


def _reject_unknown_keys(section: Mapping[Any, Any], prefix: str, known: tuple[str, ...]) -> None:
    """Typos must not pass silently: a misspelt `client_auth_type` would otherwise disable client auth. Keys of
    the Go toolkit that this exporter cannot honour get their own reason."""
    for name in section:
        if f"{prefix}{name}" in _UNSUPPORTED:
            raise ConfigError(f"{prefix}{name}", _UNSUPPORTED[f"{prefix}{name}"])
    validate.reject_unknown_keys(section, prefix, known)


def _parse_tls(value: object, base: Path) -> TLSSettings | None:
    """The TLS settings, or None when the section is absent or empty (plain HTTP)."""
    section = validate.mapping(value, "tls_server_config")
    if not section:
        return None
    _reject_unknown_keys(section, "tls_server_config.", _TLS_KEYS)
    auth_type = _client_auth_type(section.get("client_auth_type", default(TLSSettings, "client_auth_type")))
    min_version, max_version = _tls_versions(section)
    _check_curves(section.get("curve_preferences"))
    return TLSSettings(
        cert_file=_required_path(section, "cert_file", base),
        key_file=_required_path(section, "key_file", base),
        client_ca_file=_client_ca_file(section, auth_type, base),
        client_auth_type=auth_type,
        min_version=min_version,
        max_version=max_version,
        openssl_ciphers=_openssl_ciphers(section.get("cipher_suites")),
        prefer_server_cipher_suites=validate.boolean(
            section.get("prefer_server_cipher_suites", default(TLSSettings, "prefer_server_cipher_suites")),
            "tls_server_config.prefer_server_cipher_suites",
        ),
    )


def _resolve(value: object, key: str, base: Path) -> Path:
    text = validate.string(value, key)
    if not text:
        raise ConfigError(key, "must not be empty")
    return base / Path(text).expanduser()  # an absolute path replaces base


def _required_path(section: Mapping[str, Any], name: str, base: Path) -> Path:
    key = f"tls_server_config.{name}"
    if section.get(name) is None:
        raise ConfigError(key, "required when tls_server_config is set")
    return _resolve(section[name], key, base)


def _client_auth_type(value: object) -> str:
    key = "tls_server_config.client_auth_type"
    text = _CLIENT_AUTH_ALIASES.get(value, value) if isinstance(value, str) else value
    auth_type = validate.choice(text, key, _CLIENT_AUTH_TYPES)
    if auth_type == "RequireAnyClientCert":
        raise ConfigError(
            key,
            "RequireAnyClientCert is not supported (Python's ssl cannot require a certificate without "
            "verifying it); use RequireAndVerifyClientCert with client_ca_file",
        )
    return auth_type


def _client_ca_file(section: Mapping[str, Any], auth_type: str, base: Path) -> Path | None:
    """The CA that signs scraper certificates: required exactly when certificates are verified."""
    key = "tls_server_config.client_ca_file"
    value = section.get("client_ca_file")
    verifies = _VERIFY_MODES[auth_type] != ssl.CERT_NONE
    if value is None and verifies:
        raise ConfigError(key, f"required when client_auth_type is {auth_type}")
    if value is not None and auth_type == "NoClientCert":
        raise ConfigError(key, "set but client_auth_type is NoClientCert; set RequireAndVerifyClientCert")
    return None if value is None else _resolve(value, key, base)


def _tls_versions(section: Mapping[str, Any]) -> tuple[ssl.TLSVersion, ssl.TLSVersion]:
    names = list(_TLS_VERSIONS)
    name_of = {version: name for name, version in _TLS_VERSIONS.items()}  # the defaults are TLSSettings'
    lowest = validate.choice(
        section.get("min_version", name_of[default(TLSSettings, "min_version")]),
        "tls_server_config.min_version",
        names,
    )
    highest = validate.choice(
        section.get("max_version", name_of[default(TLSSettings, "max_version")]),
        "tls_server_config.max_version",
        names,
    )
    if _TLS_VERSIONS[highest] < _TLS_VERSIONS[lowest]:
        raise ConfigError("tls_server_config.max_version", f"{highest} is below min_version {lowest}")
    return _TLS_VERSIONS[lowest], _TLS_VERSIONS[highest]


def _openssl_ciphers(value: object) -> str | None:
    """An OpenSSL cipher string for the listed Go suite names, or None to keep OpenSSL's defaults."""
    if value is None:
        return None
    key = "tls_server_config.cipher_suites"
    names = [
        validate.choice(name, f"{key}[{index}]", list(_CIPHER_SUITES))
        for index, name in enumerate(validate.a_list(value, key))
    ]
    openssl_names = [name for name in (_CIPHER_SUITES[go_name] for go_name in names) if name is not None]
    return ":".join(openssl_names) or None


def _check_curves(value: object) -> None:
    """Validated like Go does, then ignored: Python's ssl cannot set a group list, and OpenSSL's is sound."""
    if value is None:
        return
    key = "tls_server_config.curve_preferences"
    for index, name in enumerate(validate.a_list(value, key)):
        validate.choice(name, f"{key}[{index}]", _CURVES)
    if value:
        log.warning(
            "%s is not supported by Python's ssl module and is ignored; OpenSSL's defaults apply", key
        )


def _parse_http(value: object) -> dict[str, str]:
    """The extra response headers; `http2` is accepted and has no effect (the server speaks HTTP/1.1)."""
    section = validate.mapping(value, "http_server_config")
    _reject_unknown_keys(section, "http_server_config.", _HTTP_KEYS)
    if "http2" in section:
        validate.boolean(section["http2"], "http_server_config.http2")
    headers = validate.mapping(section.get("headers"), "http_server_config.headers")
    return {name: text for name, text in ((n, _header(n, v)) for n, v in headers.items()) if text}


def _header(name: object, value: object) -> str:
    key = f"http_server_config.headers.{name}"
    if name not in _HEADER_VALUES:
        raise ConfigError(key, f"cannot be set (allowed: {', '.join(_HEADER_VALUES)})")
    text = "" if value is None else validate.string(value, key)
    allowed = _HEADER_VALUES[str(name)]
    if text and allowed is not None and text not in allowed:
        raise ConfigError(key, f"must be one of {', '.join(allowed)}, got {text!r}")
    if any(char in text for char in "\r\n\0"):
        raise ConfigError(key, "must be a single line")
    return text


def _parse_users(value: object) -> dict[str, bytes]:
    """User name to bcrypt hash. Malformed hashes fail here rather than at the first scrape."""
    section = validate.mapping(value, "basic_auth_users")
    return {_user_name(name): _bcrypt_hash(name, hashed) for name, hashed in section.items()}


def _parse_excluded_paths(value: object) -> frozenset[str]:
    """The health paths served without basic auth; nothing else may be listed."""
    key = "basic_auth_excluded_paths"
    items = [] if value is None else validate.a_list(value, key)
    return frozenset(
        validate.choice(path, f"{key}[{index}]", _EXCLUDABLE_PATHS) for index, path in enumerate(items)
    )


def _user_name(name: object) -> str:
    key = f"basic_auth_users.{name}"
    if not isinstance(name, str):
        raise ConfigError(key, f"user name must be a string, got {validate.type_name(name)}")
    if ":" in name:
        raise ConfigError(key, "user name cannot contain ':' (basic auth splits user and password on it)")
    return name


def _bcrypt_hash(name: object, value: object) -> bytes:
    """The hash as bytes; the message never shows the value, which may well be a plaintext password."""
    if not isinstance(value, str) or not _BCRYPT_HASH.fullmatch(value):
        raise ConfigError(f"basic_auth_users.{name}", "not a bcrypt hash")
    return value.encode("ascii")


def _build_ssl_context(tls: TLSSettings) -> ssl.SSLContext:
    """A server context from validated settings; file problems become ConfigErrors naming the key."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = tls.min_version
    context.maximum_version = tls.max_version
    _load_certificate(context, tls.cert_file, tls.key_file)
    if tls.openssl_ciphers is not None:
        _set_ciphers(context, tls.openssl_ciphers)
    if tls.prefer_server_cipher_suites:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    if tls.client_ca_file is not None and tls.verify_mode != ssl.CERT_NONE:
        _load_client_ca(context, tls.client_ca_file)
    context.verify_mode = tls.verify_mode
    return context


_ENCRYPTED_KEY = "is encrypted, and the web config format has no passphrase: decrypt it (openssl pkey)"


def _no_passphrase() -> bytes:
    """Passed as the key password so that OpenSSL never prompts on the terminal of a daemon."""
    raise ConfigError("tls_server_config.key_file", _ENCRYPTED_KEY)


def _load_certificate(context: ssl.SSLContext, cert_file: Path, key_file: Path) -> None:
    read_pem("tls_server_config.cert_file", cert_file, CERTIFICATE, "certificate")
    key_pem = read_pem("tls_server_config.key_file", key_file, b"PRIVATE KEY-----", "private key")
    if b"ENCRYPTED" in key_pem:
        raise ConfigError("tls_server_config.key_file", _ENCRYPTED_KEY)
    try:
        context.load_cert_chain(cert_file, key_file, password=_no_passphrase)
    except ssl.SSLError as error:
        if error.reason == "KEY_VALUES_MISMATCH":
            raise ConfigError(
                "tls_server_config.key_file", "does not match the certificate in cert_file"
            ) from None
        raise ConfigError(
            "tls_server_config.cert_file", f"cannot load {cert_file} with {key_file}: {error.reason or error}"
        ) from None


def _load_client_ca(context: ssl.SSLContext, ca_file: Path) -> None:
    key = "tls_server_config.client_ca_file"
    read_pem(key, ca_file, CERTIFICATE, "certificate")
    try:
        context.load_verify_locations(cafile=ca_file)
    except ssl.SSLError as error:
        raise ConfigError(key, f"cannot load {ca_file}: {error.reason or error}") from None


def _set_ciphers(context: ssl.SSLContext, ciphers: str) -> None:
    try:
        context.set_ciphers(ciphers)
    except ssl.SSLError:
        raise ConfigError(
            "tls_server_config.cipher_suites", "none of these suites is available in OpenSSL"
        ) from None
