"""Access control for scrapers, against the exporter's real server (`App`) with `--web.config.file` settings.

Real TLS clients (`requests`, and `ssl` + `http.client` where the exact refusal matters) against web config files
in the exporter-toolkit format, certificates from `trustme` (a CA, a server certificate for 127.0.0.1, a client
certificate, and a second CA nobody trusts), and bcrypt hashes at the lowest cost, so the file runs fast.
"""

from __future__ import annotations

import base64
import http.client
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from exporter.app import App
from exporter.simulator import Simulator
from tests.support import (
    API_KEY,
    WEB_API_JOB,
    Pki,
    Serve,
    bcrypt_hash,
    client_context,
    handshake_error,
    serving,
)

USER = "prometheus"
PASSWORD = "s3cret-scrape-password"
# Prometheus (Go) sends the user:password bytes as UTF-8; bcrypt compares bytes, so that is what must match.
UNICODE_USER, UNICODE_PASSWORD = "grafana-ü", "pässwörd-ß"
PATHS = ("/metrics", "/healthz", "/readyz", "/", "/no-such-page")


@pytest.fixture(scope="module")
def password_hash() -> str:
    return bcrypt_hash(PASSWORD)


@pytest.fixture(scope="module")
def unicode_password_hash() -> str:
    return bcrypt_hash(UNICODE_PASSWORD)


@pytest.fixture(scope="module")
def serve(pki: Pki, api: Simulator) -> Iterator[Serve]:
    """Start an exporter with the given web config text (written next to the certificates); the exporters
    live as long as the module, since none of these tests changes one."""
    with serving(api, pki.directory) as start:
        yield start


TLS = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
HEADERS = (
    "http_server_config:\n  headers:\n"
    "    X-Frame-Options: deny\n    X-Content-Type-Options: nosniff\n"
    "    Strict-Transport-Security: max-age=31536000\n"
)
CONFIGURED_HEADERS = {
    "X-Frame-Options": "deny",
    "X-Content-Type-Options": "nosniff",
    "Strict-Transport-Security": "max-age=31536000",
}


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def raw_get(
    app: App, context: ssl.SSLContext, path: str = "/metrics", authorization: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One HTTPS request with exactly the Authorization header given (requests would re-encode odd ones)."""
    connection = http.client.HTTPSConnection("127.0.0.1", app.server.port, context=context, timeout=5)
    try:
        connection.request("GET", path, headers={"Authorization": authorization} if authorization else {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def handshake_refusal(app: App, context: ssl.SSLContext) -> str:
    """The reason the exporter's server gives for refusing this client (see support.handshake_error)."""
    return handshake_error(app.server.port, context)


# --- basic auth over TLS --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def auth_app(serve: Serve, password_hash: str, unicode_password_hash: str) -> App:
    return serve(
        f"{TLS}{HEADERS}basic_auth_users:\n  {USER}: {password_hash}\n"
        f"  {UNICODE_USER}: '{unicode_password_hash}'\n"
    )


def test_the_right_password_gets_metrics_that_parse(pki: Pki, auth_app: App) -> None:
    response = requests.get(
        auth_app.url("/metrics"), auth=(USER, PASSWORD), verify=pki.path("ca.crt"), timeout=5
    )

    assert response.status_code == 200
    assert auth_app.url().startswith("https://")
    names = {family.name for family in text_string_to_metric_families(response.text)}
    assert {"integrateio_exporter_build_info", "integrateio_watched_jobs"} <= names
    for name, value in CONFIGURED_HEADERS.items():
        assert response.headers[name] == value


def test_a_non_ascii_user_and_password_sent_as_utf8_are_served(pki: Pki, auth_app: App) -> None:
    status, _, body = raw_get(
        auth_app, client_context(pki), authorization=basic(UNICODE_USER, UNICODE_PASSWORD)
    )
    assert status == 200
    assert b"integrateio_watched_jobs" in body


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        basic(USER, "wrong"),
        basic(USER, PASSWORD.upper()),
        basic(USER, PASSWORD + "x"),
        basic("someone-else", PASSWORD),
        basic(UNICODE_USER, PASSWORD),
        "Basic " + base64.b64encode(f"{UNICODE_USER}:{UNICODE_PASSWORD}".encode("latin-1")).decode(),
        basic(USER, ""),
        "Bearer " + PASSWORD,
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(USER.encode()).decode(),  # no colon at all
    ],
    ids=[
        "none",
        "wrong",
        "case",
        "longer",
        "other-user",
        "another-users-password",
        "latin-1-bytes",
        "empty",
        "bearer",
        "garbage",
        "no-colon",
    ],
)
def test_anything_but_the_right_password_gets_401_with_a_basic_challenge(
    pki: Pki, auth_app: App, authorization: str | None
) -> None:
    status, headers, body = raw_get(auth_app, client_context(pki), authorization=authorization)

    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Basic ")
    assert b"integrateio_" not in body
    for name, value in CONFIGURED_HEADERS.items():  # headers go on refusals too
        assert headers[name] == value


@pytest.mark.parametrize("path", PATHS)
def test_every_path_is_protected(pki: Pki, auth_app: App, path: str) -> None:
    context = client_context(pki)
    refused, challenge, body = raw_get(auth_app, context, path)
    allowed, headers, _ = raw_get(auth_app, context, path, basic(USER, PASSWORD))

    assert refused == 401
    assert challenge["WWW-Authenticate"].startswith("Basic ")
    assert body == b"Unauthorized\n"
    expected = {"/no-such-page": {404}, "/readyz": {200, 503}}.get(path, {200})
    assert allowed in expected
    assert headers["X-Frame-Options"] == "deny"


def test_a_head_request_is_protected_too(pki: Pki, auth_app: App) -> None:
    connection = http.client.HTTPSConnection("127.0.0.1", auth_app.server.port, context=client_context(pki))
    try:
        connection.request("HEAD", "/metrics")
        response = connection.getresponse()
        assert (response.status, response.read()) == (401, b"")
    finally:
        connection.close()


def test_plain_http_is_not_served_on_the_tls_port(auth_app: App) -> None:
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"http://127.0.0.1:{auth_app.server.port}/metrics", auth=(USER, PASSWORD), timeout=5)


def test_a_client_that_never_says_hello_does_not_block_other_scrapers(pki: Pki, auth_app: App) -> None:
    idle = [socket.create_connection(("127.0.0.1", auth_app.server.port), timeout=5) for _ in range(5)]
    # And one that finished the handshake but never sends a request.
    idle.append(
        client_context(pki).wrap_socket(
            socket.create_connection(("127.0.0.1", auth_app.server.port), timeout=5),
            server_hostname="127.0.0.1",
        )
    )
    try:
        time.sleep(0.2)  # the server has accepted them and is waiting for their ClientHello
        started = time.monotonic()
        response = requests.get(
            auth_app.url("/metrics"), auth=(USER, PASSWORD), verify=pki.path("ca.crt"), timeout=5
        )
        took = time.monotonic() - started
    finally:
        for connection in idle:
            connection.close()

    assert response.status_code == 200
    assert took < 2.0


# --- client certificates ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mtls_app(serve: Serve) -> App:
    return serve(f"{TLS}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n{HEADERS}")


def test_a_client_certificate_from_the_trusted_ca_is_served(pki: Pki, mtls_app: App) -> None:
    response = requests.get(
        mtls_app.url("/metrics"), cert=pki.path("client.pem"), verify=pki.path("ca.crt"), timeout=5
    )

    assert response.status_code == 200
    assert any(f.name == "integrateio_watched_jobs" for f in text_string_to_metric_families(response.text))


def test_a_client_certificate_from_an_untrusted_ca_is_refused_at_the_handshake(
    pki: Pki, mtls_app: App
) -> None:
    assert handshake_refusal(mtls_app, client_context(pki, pki.stranger)) == "TLSV1_ALERT_UNKNOWN_CA"
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(
            mtls_app.url("/metrics"), cert=pki.path("stranger.pem"), verify=pki.path("ca.crt"), timeout=5
        )


def test_no_client_certificate_is_refused_at_the_handshake(pki: Pki, mtls_app: App) -> None:
    assert handshake_refusal(mtls_app, client_context(pki)) == "TLSV13_ALERT_CERTIFICATE_REQUIRED"
    tls12 = client_context(pki)
    tls12.maximum_version = ssl.TLSVersion.TLSv1_2
    assert handshake_refusal(mtls_app, tls12) == "SSLV3_ALERT_HANDSHAKE_FAILURE"
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(mtls_app.url("/healthz"), verify=pki.path("ca.crt"), timeout=5)


def test_client_certificate_and_password_are_both_required_when_both_are_configured(
    pki: Pki, serve: Serve, password_hash: str
) -> None:
    app = serve(
        f"{TLS}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n"
        f"basic_auth_users:\n  {USER}: {password_hash}\n"
    )
    trusted = client_context(pki, pki.client)

    assert raw_get(app, trusted)[0] == 401
    assert raw_get(app, trusted, authorization=basic(USER, PASSWORD))[0] == 200
    assert handshake_refusal(app, client_context(pki)) == "TLSV13_ALERT_CERTIFICATE_REQUIRED"


def test_a_refused_client_does_not_disturb_the_next_one(pki: Pki, mtls_app: App) -> None:
    for _ in range(3):
        handshake_refusal(mtls_app, client_context(pki, pki.stranger))
    status, _, _ = raw_get(mtls_app, client_context(pki, pki.client), "/healthz")
    assert status == 200


# --- protocol versions ----------------------------------------------------------------------------------------


def test_a_tls12_client_is_refused_when_min_version_is_tls13(pki: Pki, serve: Serve) -> None:
    app = serve(f"{TLS}  min_version: TLS13\n")
    tls12 = client_context(pki)
    tls12.maximum_version = ssl.TLSVersion.TLSv1_2

    with pytest.raises(ssl.SSLError) as refused:
        raw_get(app, tls12)
    status, _, _ = raw_get(app, client_context(pki))

    assert refused.value.reason == "TLSV1_ALERT_PROTOCOL_VERSION"
    assert status == 200
    with (
        socket.create_connection(("127.0.0.1", app.server.port), timeout=5) as raw,
        client_context(pki).wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        assert tls.version() == "TLSv1.3"


# --- a bad file stops the command line ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("web_config", "key"),
    [
        (
            f"{TLS}  client_auth_type: RequireAndVerifyClientCert\n",
            "tls_server_config.client_ca_file",
        ),
        (f"{TLS}  client_auth_typo: RequireAndVerifyClientCert\n", "tls_server_config.client_auth_typo"),
        (f"{TLS}  min_version: TLS14\n", "tls_server_config.min_version"),
        (f"basic_auth_users:\n  {USER}: {PASSWORD}\n", f"basic_auth_users.{USER}"),
        (
            "tls_server_config:\n  cert_file: missing.crt\n  key_file: server.key\n",
            "tls_server_config.cert_file",
        ),
        ("http_server_config:\n  headers:\n    Server: nginx\n", "http_server_config.headers.Server"),
    ],
    ids=["no-client-ca", "typo", "tls14", "plaintext-password", "missing-cert", "forbidden-header"],
)
def test_a_bad_web_config_exits_2_with_one_line_naming_the_key(
    pki: Pki, api: Simulator, tmp_path: Path, web_config: str, key: str
) -> None:
    web_file = pki.directory / f"bad-{key}.yml"
    web_file.write_text(web_config, encoding="utf-8")
    config_file = tmp_path / "config.yaml"
    config_file.write_text(
        f"api:\n  account_id: acme\n  base_url: {api.base_url}\njobs: [{WEB_API_JOB}]\n", encoding="utf-8"
    )

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "exporter",
            "--config",
            str(config_file),
            "--web.listen-address",
            "127.0.0.1:0",
            "--web.config.file",
            str(web_file),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "INTEGRATEIO_API_KEY": API_KEY},
        cwd=Path(__file__).resolve().parent.parent,
    )

    lines = result.stderr.splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1, lines
    assert key in lines[0]
    assert "Traceback" not in result.stderr
    assert PASSWORD not in result.stderr
    assert result.stdout == ""
