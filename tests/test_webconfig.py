"""`--web.config.file`: real TLS handshakes and real HTTP clients against a tiny server built like the exporter's.

The server below wraps its listening socket with `WebConfig.ssl_context()` and answers 401 unless
`WebConfig.authorize()` agrees, which is what the exporter's own server does; nothing about TLS is mocked.
"""

from __future__ import annotations

import base64
import http.client
import logging
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import bcrypt
import pytest
import requests
import trustme

from exporter.errors import ConfigError
from exporter.webconfig import WebConfig, load_web_config
from tests.support import Pki, bcrypt_hash, client_context, handshake_error

PASSWORD = "correct horse battery staple"
BOB_PASSWORD = "bobs-other-secret"


@pytest.fixture(scope="module")
def alice_hash() -> str:
    return bcrypt_hash(PASSWORD)


@pytest.fixture(scope="module")
def bob_hash() -> str:
    return bcrypt_hash(BOB_PASSWORD)


def write_config(pki: Pki, text: str, name: str = "web.yml") -> Path:
    path = pki.directory / name
    path.write_text(text, encoding="utf-8")
    return path


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class Handler(BaseHTTPRequestHandler):
    """What the exporter's server does with a WebConfig: headers always, 401 unless authorized."""

    server: WebServer

    def do_GET(self) -> None:
        authorized = self.server.web_config.authorize(self.headers.get("Authorization"))
        body = b"ok\n" if authorized else b"Unauthorized\n"
        self.send_response(200 if authorized else 401)
        for name, value in self.server.web_config.response_headers.items():
            self.send_header(name, value)
        if not authorized:
            self.send_header("WWW-Authenticate", "Basic")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: handshake failures are the point of several tests."""


class WebServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, web_config: WebConfig) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.web_config = web_config
        context = web_config.ssl_context()
        if context is not None:
            self.socket = context.wrap_socket(self.socket, server_side=True)

    def handle_error(self, request: object, client_address: object) -> None:
        """Quiet, like log_message."""


@contextmanager
def serving(web_config: WebConfig) -> Iterator[int]:
    server = WebServer(web_config)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def get(port: int, context: ssl.SSLContext, authorization: str | None = None) -> tuple[int, str]:
    """One HTTPS GET with a raw Authorization header (requests would re-encode malformed ones)."""
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=5)
    try:
        connection.request(
            "GET", "/metrics", headers={"Authorization": authorization} if authorization else {}
        )
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


# --- basic auth over TLS -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def auth_port(pki: Pki, alice_hash: str, bob_hash: str) -> Iterator[int]:
    path = write_config(
        pki,
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
        "http_server_config:\n  headers:\n    X-Frame-Options: deny\n    X-Content-Type-Options: nosniff\n"
        "    Content-Security-Policy: ''\n"
        f"basic_auth_users:\n  alice: {alice_hash}\n  bob: '{bob_hash}'\n",
        "auth.yml",
    )
    with serving(load_web_config(path)) as port:
        yield port


def test_the_right_password_is_served_with_the_configured_headers(pki: Pki, auth_port: int) -> None:
    response = requests.get(
        f"https://127.0.0.1:{auth_port}/metrics",
        auth=("alice", PASSWORD),
        verify=pki.path("ca.crt"),
        timeout=5,
    )

    assert (response.status_code, response.text) == (200, "ok\n")
    assert response.headers["X-Frame-Options"] == "deny"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "Content-Security-Policy" not in response.headers  # blank means unset
    assert "WWW-Authenticate" not in response.headers


def test_every_user_has_their_own_password(pki: Pki, auth_port: int) -> None:
    ok = requests.get(
        f"https://127.0.0.1:{auth_port}/", auth=("bob", BOB_PASSWORD), verify=pki.path("ca.crt"), timeout=5
    )
    crossed = requests.get(
        f"https://127.0.0.1:{auth_port}/", auth=("bob", PASSWORD), verify=pki.path("ca.crt"), timeout=5
    )

    assert (ok.status_code, crossed.status_code) == (200, 401)


@pytest.mark.parametrize(
    "auth",
    [
        pytest.param(("alice", "wrong password"), id="wrong-password"),
        pytest.param(("alice", ""), id="empty-password"),
        pytest.param(("mallory", PASSWORD), id="unknown-user"),
        pytest.param(("", PASSWORD), id="empty-user"),
        pytest.param(None, id="no-credentials"),
    ],
)
def test_anything_but_the_right_password_gets_401_with_a_basic_challenge(
    pki: Pki, auth_port: int, auth: tuple[str, str] | None
) -> None:
    response = requests.get(
        f"https://127.0.0.1:{auth_port}/", auth=auth, verify=pki.path("ca.crt"), timeout=5
    )

    assert (response.status_code, response.text) == (401, "Unauthorized\n")
    assert response.headers["WWW-Authenticate"] == "Basic"
    assert response.headers["X-Frame-Options"] == "deny"


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("Basic !!!not-base64!!!", id="not-base64"),
        pytest.param("Basic " + base64.b64encode(f"alice{PASSWORD}".encode()).decode(), id="no-colon"),
        pytest.param("Basic", id="no-token"),
        pytest.param("Bearer " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode(), id="other-scheme"),
        pytest.param(basic("alice", PASSWORD)[:-2], id="truncated"),
        pytest.param(
            "Basic " + base64.b64encode(b"\xffalice:" + PASSWORD.encode()).decode(), id="not-utf8-user"
        ),
    ],
)
def test_malformed_authorization_headers_get_401(pki: Pki, auth_port: int, header: str) -> None:
    assert get(auth_port, client_context(pki), header) == (401, "Unauthorized\n")


def test_the_scheme_is_case_insensitive(pki: Pki, auth_port: int) -> None:
    header = "basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()

    assert get(auth_port, client_context(pki), header) == (200, "ok\n")


# --- the credential cache --------------------------------------------------------------------------------------


class CountingCheckpw:
    """Counts bcrypt work, the cost the cache exists to avoid."""

    def __init__(self) -> None:
        self.calls = 0
        self.real = bcrypt.checkpw

    def __call__(self, password: bytes, hashed: bytes) -> bool:
        self.calls += 1
        return self.real(password, hashed)


@pytest.fixture
def checkpw(monkeypatch: pytest.MonkeyPatch) -> CountingCheckpw:
    counter = CountingCheckpw()
    monkeypatch.setattr(bcrypt, "checkpw", counter)
    return counter


def test_a_successful_check_is_cached_but_failures_always_pay_for_bcrypt(
    pki: Pki, alice_hash: str, checkpw: CountingCheckpw
) -> None:
    config = load_web_config(write_config(pki, f"basic_auth_users:\n  alice: {alice_hash}\n"))

    results = [config.authorize(basic("alice", PASSWORD)) for _ in range(5)]
    after_successes = checkpw.calls
    failures = [config.authorize(basic("alice", "guess")) for _ in range(3)]

    assert results == [True] * 5
    assert after_successes == 1
    assert failures == [False] * 3
    assert checkpw.calls == 4


def test_an_unknown_user_costs_a_bcrypt_check_like_a_known_one(
    pki: Pki, alice_hash: str, checkpw: CountingCheckpw
) -> None:
    config = load_web_config(write_config(pki, f"basic_auth_users:\n  alice: {alice_hash}\n"))

    assert [config.authorize(basic("mallory", PASSWORD)) for _ in range(2)] == [False, False]
    assert checkpw.calls == 2


def test_passwords_beyond_bcrypts_72_bytes_are_refused_without_truncation(pki: Pki) -> None:
    long_password = "x" * 72
    hashed = bcrypt_hash(long_password)
    config = load_web_config(write_config(pki, f"basic_auth_users:\n  alice: {hashed}\n"))

    assert config.authorize(basic("alice", long_password)) is True
    assert config.authorize(basic("alice", long_password + "y")) is False


def test_neither_password_nor_hash_shows_in_the_repr(pki: Pki, alice_hash: str) -> None:
    config = load_web_config(write_config(pki, f"basic_auth_users:\n  alice: {alice_hash}\n"))
    config.authorize(basic("alice", PASSWORD))

    assert PASSWORD not in repr(config)
    assert alice_hash not in repr(config)


def test_without_users_everyone_is_authorized(pki: Pki) -> None:
    config = load_web_config(write_config(pki, "http_server_config:\n  http2: false\n"))

    assert (config.authorize(None), config.authorize("Basic garbage"), config.tls_enabled) == (
        True,
        True,
        False,
    )
    assert config.ssl_context() is None


def test_an_empty_file_means_plain_http_without_auth(pki: Pki) -> None:
    config = load_web_config(write_config(pki, ""))

    assert config == WebConfig()
    assert (config.tls_enabled, dict(config.users), dict(config.response_headers)) == (False, {}, {})


def test_plain_http_with_basic_auth(pki: Pki, alice_hash: str) -> None:
    config = load_web_config(write_config(pki, f"basic_auth_users:\n  alice: {alice_hash}\n"))

    with serving(config) as port:
        ok = requests.get(f"http://127.0.0.1:{port}/", auth=("alice", PASSWORD), timeout=5)
        refused = requests.get(f"http://127.0.0.1:{port}/", timeout=5)

    assert (ok.status_code, refused.status_code) == (200, 401)


# --- client certificates -----------------------------------------------------------------------------------------


def mtls_config(pki: Pki, client_auth_type: str) -> WebConfig:
    return load_web_config(
        write_config(
            pki,
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
            f"  client_ca_file: ca.crt\n  client_auth_type: {client_auth_type}\n",
            f"{client_auth_type}.yml",
        )
    )


@pytest.fixture(scope="module")
def mtls_port(pki: Pki) -> Iterator[int]:
    with serving(mtls_config(pki, "RequireAndVerifyClientCert")) as port:
        yield port


def test_a_client_certificate_from_the_trusted_ca_is_accepted(pki: Pki, mtls_port: int) -> None:
    assert get(mtls_port, client_context(pki, pki.client)) == (200, "ok\n")


def test_requests_with_a_trusted_client_certificate_is_accepted(pki: Pki, mtls_port: int) -> None:

    response = requests.get(
        f"https://127.0.0.1:{mtls_port}/", cert=pki.path("client.pem"), verify=pki.path("ca.crt"), timeout=5
    )

    assert (response.status_code, response.text) == (200, "ok\n")


def test_a_client_certificate_from_an_untrusted_ca_is_refused_at_the_handshake(
    pki: Pki, mtls_port: int
) -> None:
    assert handshake_error(mtls_port, client_context(pki, pki.stranger)) == "TLSV1_ALERT_UNKNOWN_CA"


def test_no_client_certificate_is_refused_when_one_is_required(pki: Pki, mtls_port: int) -> None:
    assert handshake_error(mtls_port, client_context(pki)) == "TLSV13_ALERT_CERTIFICATE_REQUIRED"


def test_no_client_certificate_is_refused_over_tls12_too(pki: Pki, mtls_port: int) -> None:
    context = client_context(pki)
    context.maximum_version = ssl.TLSVersion.TLSv1_2

    assert handshake_error(mtls_port, context) == "SSLV3_ALERT_HANDSHAKE_FAILURE"


def test_requests_without_a_client_certificate_fails(pki: Pki, mtls_port: int) -> None:
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"https://127.0.0.1:{mtls_port}/", verify=pki.path("ca.crt"), timeout=5)


def test_verify_if_given_lets_certificate_less_clients_in_but_not_strangers(pki: Pki) -> None:
    with serving(mtls_config(pki, "VerifyClientCertIfGiven")) as port:
        anonymous = get(port, client_context(pki))
        trusted = get(port, client_context(pki, pki.client))
        stranger = handshake_error(port, client_context(pki, pki.stranger))

    assert (anonymous, trusted, stranger) == ((200, "ok\n"), (200, "ok\n"), "TLSV1_ALERT_UNKNOWN_CA")


def test_request_client_cert_does_not_verify_anything(pki: Pki) -> None:
    config = mtls_config(pki, "RequestClientCert")

    with serving(config) as port:
        assert get(port, client_context(pki, pki.stranger)) == (200, "ok\n")
    assert config.tls is not None
    assert config.tls.verify_mode == ssl.CERT_NONE


# --- protocol versions and cipher suites ---------------------------------------------------------------------


def tls_config(pki: Pki, extra: str) -> WebConfig:
    return load_web_config(
        write_config(
            pki, f"tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n{extra}", "v.yml"
        )
    )


def test_min_version_tls13_refuses_a_tls12_client(pki: Pki) -> None:
    context = client_context(pki)
    context.maximum_version = ssl.TLSVersion.TLSv1_2

    with serving(tls_config(pki, "  min_version: TLS13\n")) as port:
        with pytest.raises(ssl.SSLError) as refused:
            get(port, context)
        accepted = get(port, client_context(pki))

    assert refused.value.reason == "TLSV1_ALERT_PROTOCOL_VERSION"
    assert accepted == (200, "ok\n")


def negotiated(pki: Pki, config: WebConfig) -> tuple[str | None, tuple[str, str, int] | None]:
    with (
        serving(config) as port,
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        client_context(pki).wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        return tls.version(), tls.cipher()


def test_max_version_and_cipher_suites_use_go_names(pki: Pki) -> None:
    default = negotiated(pki, tls_config(pki, "  max_version: TLS12\n"))
    chosen = negotiated(
        pki,
        tls_config(
            pki,
            "  max_version: TLS12\n"
            "  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384]\n"
            "  prefer_server_cipher_suites: false\n",
        ),
    )

    assert default == ("TLSv1.2", ("ECDHE-ECDSA-AES256-GCM-SHA384", "TLSv1.2", 256))
    assert chosen == ("TLSv1.2", ("ECDHE-ECDSA-AES128-GCM-SHA256", "TLSv1.2", 128))


def test_curve_preferences_are_accepted_and_ignored_with_a_warning(
    pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="exporter.webconfig"):
        config = tls_config(pki, "  curve_preferences: [X25519, CurveP256]\n")

    assert config.tls_enabled is True
    assert caplog.messages == [
        "tls_server_config.curve_preferences is not supported by Python's ssl module and is ignored; "
        "OpenSSL's defaults apply"
    ]


def test_relative_paths_follow_the_config_file_not_the_working_directory(
    pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_web_config(
        write_config(
            pki, f"tls_server_config:\n  cert_file: server.crt\n  key_file: {pki.path('server.key')}\n"
        )
    )

    assert config.tls is not None
    assert (config.tls.cert_file, config.tls.key_file) == (
        pki.directory / "server.crt",
        pki.directory / "server.key",
    )
    assert isinstance(config.ssl_context(), ssl.SSLContext)


# --- configuration errors ----------------------------------------------------------------------------------------

TLS = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"

BAD_CONFIGS = [
    pytest.param("- a list\n", "--web.config.file: must be a mapping, got a list", id="not-a-mapping"),
    pytest.param(
        "basic_auth_users: {}\nbasic_auth_userz: {}\n",
        "basic_auth_userz: unknown key (known: basic_auth_excluded_paths, basic_auth_users, http_server_config, "
        "tls_server_config)",
        id="unknown-top-level-key",
    ),
    pytest.param(
        TLS + "  client_auth: RequireAndVerifyClientCert\n",
        "tls_server_config.client_auth: unknown key (known: cert_file, cipher_suites, client_auth_type, "
        "client_ca_file, curve_preferences, key_file, max_version, min_version, prefer_server_cipher_suites)",
        id="misspelt-tls-key",
    ),
    pytest.param(
        TLS + "  client_auth_type: VerifyEverything\n  client_ca_file: ca.crt\n",
        "tls_server_config.client_auth_type: must be one of NoClientCert, RequestClientCert, RequireAnyClientCert, "
        "VerifyClientCertIfGiven, RequireAndVerifyClientCert, got 'VerifyEverything'",
        id="bad-client-auth-type",
    ),
    pytest.param(
        TLS + "  client_auth_type: RequireAndVerifyClientCert\n",
        "tls_server_config.client_ca_file: required when client_auth_type is RequireAndVerifyClientCert",
        id="verify-without-ca",
    ),
    pytest.param(
        TLS + "  client_auth_type: VerifyClientCertIfGiven\n",
        "tls_server_config.client_ca_file: required when client_auth_type is VerifyClientCertIfGiven",
        id="verify-if-given-without-ca",
    ),
    pytest.param(
        TLS + "  client_ca_file: ca.crt\n",
        "tls_server_config.client_ca_file: set but client_auth_type is NoClientCert; set RequireAndVerifyClientCert",
        id="ca-without-policy",
    ),
    pytest.param(
        TLS + "  client_auth_type: RequireAnyClientCert\n",
        "tls_server_config.client_auth_type: RequireAnyClientCert is not supported (Python's ssl cannot require "
        "a certificate without verifying it); use RequireAndVerifyClientCert with client_ca_file",
        id="require-any",
    ),
    pytest.param(
        "tls_server_config:\n  key_file: server.key\n",
        "tls_server_config.cert_file: required when tls_server_config is set",
        id="no-cert-file",
    ),
    pytest.param(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: 42\n",
        "tls_server_config.key_file: must be a string, got an integer",
        id="key-file-not-a-string",
    ),
    pytest.param(
        "tls_server_config:\n  cert_file: missing.crt\n  key_file: server.key\n",
        "tls_server_config.cert_file: cannot read {dir}/missing.crt: No such file or directory",
        id="missing-cert-file",
    ),
    pytest.param(
        "tls_server_config:\n  cert_file: server.key\n  key_file: server.key\n",
        "tls_server_config.cert_file: no PEM certificate in {dir}/server.key",
        id="key-as-cert",
    ),
    pytest.param(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.crt\n",
        "tls_server_config.key_file: no PEM private key in {dir}/server.crt",
        id="cert-as-key",
    ),
    pytest.param(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: other.key\n",
        "tls_server_config.key_file: does not match the certificate in cert_file",
        id="mismatched-key",
    ),
    pytest.param(
        TLS + "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: server.key\n",
        "tls_server_config.client_ca_file: no PEM certificate in {dir}/server.key",
        id="ca-not-a-certificate",
    ),
    pytest.param(
        TLS + "  min_version: TLS14\n",
        "tls_server_config.min_version: must be one of TLS10, TLS11, TLS12, TLS13, got 'TLS14'",
        id="bad-min-version",
    ),
    pytest.param(
        TLS + "  min_version: TLS13\n  max_version: TLS12\n",
        "tls_server_config.max_version: TLS12 is below min_version TLS13",
        id="max-below-min",
    ),
    pytest.param(
        TLS + "  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_RSA_WITH_RC4_128_SHA]\n",
        "tls_server_config.cipher_suites[1]: must be one of "
        + ", ".join(
            [
                "TLS_RSA_WITH_AES_128_CBC_SHA",
                "TLS_RSA_WITH_AES_256_CBC_SHA",
                "TLS_RSA_WITH_AES_128_GCM_SHA256",
                "TLS_RSA_WITH_AES_256_GCM_SHA384",
                "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
                "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
                "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
                "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
                "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
                "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
                "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
                "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
                "TLS_AES_128_GCM_SHA256",
                "TLS_AES_256_GCM_SHA384",
                "TLS_CHACHA20_POLY1305_SHA256",
            ]
        )
        + ", got 'TLS_RSA_WITH_RC4_128_SHA'",
        id="unknown-cipher",
    ),
    pytest.param(
        TLS + "  curve_preferences: [CurveP256, P-256]\n",
        "tls_server_config.curve_preferences[1]: must be one of CurveP256, CurveP384, CurveP521, X25519, got 'P-256'",
        id="unknown-curve",
    ),
    pytest.param(
        TLS + "  prefer_server_cipher_suites: 'yes'\n",
        "tls_server_config.prefer_server_cipher_suites: must be true or false, got a string",
        id="bool-as-string",
    ),
    pytest.param(
        TLS + "  client_allowed_sans: [scraper.example.com]\n",
        "tls_server_config.client_allowed_sans: not supported: Python's ssl module cannot match client certificate "
        "SANs during the handshake; issue scraper certificates from a dedicated CA instead",
        id="client-allowed-sans",
    ),
    pytest.param(
        "tls_server_config:\n  cert: '-----BEGIN CERTIFICATE-----'\n  key_file: server.key\n",
        "tls_server_config.cert: inline PEM is not supported; put the certificate in a file and set cert_file",
        id="inline-cert",
    ),
    pytest.param(
        "rate_limit:\n  interval: 1s\n  burst: 20\n",
        "rate_limit: not supported by this exporter; rate-limit scrapes in a reverse proxy",
        id="rate-limit",
    ),
    pytest.param(
        "http_server_config:\n  headers:\n    Server: nginx\n",
        "http_server_config.headers.Server: cannot be set (allowed: Content-Security-Policy, "
        "Strict-Transport-Security, X-Content-Type-Options, X-Frame-Options, X-XSS-Protection)",
        id="header-not-allowed",
    ),
    pytest.param(
        "http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
        "http_server_config.headers.X-Frame-Options: must be one of deny, sameorigin, got 'allow'",
        id="bad-header-value",
    ),
    pytest.param(
        "http_server_config:\n  http2: 1\n",
        "http_server_config.http2: must be true or false, got an integer",
        id="http2-not-bool",
    ),
    pytest.param(
        "http_server_config:\n  http3: true\n",
        "http_server_config.http3: unknown key (known: headers, http2)",
        id="unknown-http-key",
    ),
    pytest.param(
        "basic_auth_users:\n  - alice\n",
        "basic_auth_users: must be a mapping, got a list",
        id="users-not-a-mapping",
    ),
    pytest.param(
        "basic_auth_users:\n  123: $2b$04$abcdefghijklmnopqrstuvABCDEFGHIJKLMNOPQRSTUVWXYZ01234\n",
        "basic_auth_users.123: user name must be a string, got an integer",
        id="user-not-a-string",
    ),
    pytest.param(
        "basic_auth_users:\n  'a:b': $2b$04$abcdefghijklmnopqrstuvABCDEFGHIJKLMNOPQRSTUVWXYZ01234\n",
        "basic_auth_users.a:b: user name cannot contain ':' (basic auth splits user and password on it)",
        id="user-with-colon",
    ),
    pytest.param(
        "basic_auth_users:\n  alice: {password: x}\n",
        "basic_auth_users.alice: not a bcrypt hash",
        id="hash-not-a-string",
    ),
    pytest.param(
        "a: [\n",
        "--web.config.file: invalid YAML in {dir}/web.yml at line 2, column 1: expected the "
        "node content, but found '<stream end>'",
        id="bad-yaml",
    ),
    pytest.param(
        "basic_auth_users:\n  alice: $2b$04$abcdefghijklmnopqrstuvABCDEFGHIJKLMNOPQRSTUVWXYZ01234\n  alice: x\n",
        "--web.config.file: invalid YAML in {dir}/web.yml at line 3, column 3: duplicate key 'alice'",
        id="duplicate-user",
    ),
]


@pytest.fixture(scope="module")
def other_key(pki: Pki) -> None:
    trustme.CA().issue_cert("127.0.0.1").private_key_pem.write_to_path(pki.directory / "other.key")


@pytest.mark.usefixtures("other_key")
@pytest.mark.parametrize(("text", "message"), BAD_CONFIGS)
def test_each_config_error_names_its_key(pki: Pki, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_web_config(write_config(pki, text))

    assert str(error.value) == message.format(dir=pki.directory)


def test_an_unreadable_config_file_is_named_by_the_flag(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        load_web_config(tmp_path / "absent.yml")

    assert (
        str(error.value) == f"--web.config.file: cannot read {tmp_path}/absent.yml: No such file or directory"
    )
    assert error.value.key == "--web.config.file"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(f"basic_auth_users:\n  alice: {PASSWORD}\n", id="plaintext-instead-of-hash"),
        pytest.param(f"basic_auth_users:\n  alice: '{PASSWORD}'\n  bob: [\n", id="yaml-error-after-password"),
        pytest.param(f"basic_auth_users:\n  alice: {PASSWORD}: more\n", id="yaml-error-on-password-line"),
        pytest.param(f"basic_auth_users:\n  alice: x\n  alice: {PASSWORD}\n", id="duplicate-with-password"),
        pytest.param(f'basic_auth_users:\n  alice: "{PASSWORD}"\nbasic_auth: x\n', id="unknown-key-after"),
    ],
)
def test_the_password_never_appears_in_an_error(pki: Pki, text: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_web_config(write_config(pki, text))

    assert PASSWORD not in str(error.value)
    assert "horse" not in str(error.value)


def test_a_hash_never_appears_in_an_error(pki: Pki, alice_hash: str) -> None:
    text = f"basic_auth_users:\n  alice: {alice_hash}\n  bob: {alice_hash[:-1]}\n"

    with pytest.raises(ConfigError) as error:
        load_web_config(write_config(pki, text))

    assert str(error.value) == "basic_auth_users.bob: not a bcrypt hash"


def test_an_encrypted_key_is_refused_instead_of_prompting_for_a_passphrase(pki: Pki) -> None:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(pki.directory.joinpath("server.key").read_bytes(), password=None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    )
    (pki.directory / "encrypted.key").write_bytes(encrypted)

    with pytest.raises(ConfigError) as error:
        load_web_config(
            write_config(pki, "tls_server_config:\n  cert_file: server.crt\n  key_file: encrypted.key\n")
        )

    assert str(error.value) == (
        "tls_server_config.key_file: is encrypted, and the web config format has no passphrase: "
        "decrypt it (openssl pkey)"
    )


def test_bcrypt_hash_prefixes_2a_2b_2y_are_all_accepted(pki: Pki, alice_hash: str) -> None:
    body = alice_hash[4:]
    config = load_web_config(
        write_config(pki, f"basic_auth_users:\n  a: $2a${body}\n  b: $2b${body}\n  y: $2y${body}\n")
    )

    assert [config.authorize(basic(user, PASSWORD)) for user in "aby"] == [True, True, True]
