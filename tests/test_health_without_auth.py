"""`basic_auth_excluded_paths`: the health endpoints served without basic auth, so a kubelet can probe them.

With basic auth on, a probe either gets 401 or carries the scraper's credential in clear text in the Pod spec.
The web config key `basic_auth_excluded_paths` (this exporter's addition to the exporter-toolkit format) lets
`/healthz` and `/readyz` through without a credential, and only those: anything else listed is refused at load
time. Tested over HTTP against the exporter's real server (`App`), fed by the simulated API on loopback, and
against the web config the Helm chart renders.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import requests
import yaml

from exporter.app import App
from exporter.errors import ConfigError
from exporter.simulator import Simulator
from exporter.webconfig import load_web_config
from tests.support import Serve, bcrypt_hash, serving

USER, PASSWORD = "prometheus", "scrape-password-5b1f"
CHART = Path(__file__).resolve().parent.parent / "helm/integrateio-exporter"
PROTECTED = ("/metrics", "/", "/api/jobs", "/no-such-page")


@pytest.fixture(scope="module")
def password_hash() -> str:
    return bcrypt_hash(PASSWORD)


@pytest.fixture(scope="module")
def serve(api: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    """Start a ready exporter with the given web config text; they live as long as the module."""
    with serving(api, tmp_path_factory.mktemp("web"), wait_ready=True) as start:
        yield start


def get(app: App, path: str, *, method: str = "GET", auth: bool = False) -> int:
    credentials = (USER, PASSWORD) if auth else None
    return requests.request(method, app.url(path), auth=credentials, timeout=10).status_code


def users(password_hash: str) -> str:
    return f"basic_auth_users:\n  {USER}: {password_hash}\n"


def test_excluded_health_paths_answer_without_a_credential(serve: Serve, password_hash: str) -> None:
    app = serve(users(password_hash) + "basic_auth_excluded_paths: [/healthz, /readyz]\n")
    for method in ("GET", "HEAD"):
        assert [get(app, path, method=method) for path in ("/healthz", "/readyz", "/healthz?verbose=1")] == [
            200,
            200,
            200,
        ]
    assert requests.get(app.url("/readyz"), timeout=10).text == "ok\n"
    # everything else still asks for the credential, and gets served with it
    assert [get(app, path) for path in PROTECTED] == [401, 401, 401, 401]
    assert [get(app, path, auth=True) for path in PROTECTED] == [200, 200, 200, 404]


def test_exclusion_is_an_exact_match_on_the_routed_path(serve: Serve, password_hash: str) -> None:
    app = serve(users(password_hash) + "basic_auth_excluded_paths: [/healthz]\n")
    assert get(app, "/healthz") == 200
    # only the listed path: /readyz was not excluded here, and near-misses never slip through
    for path in ("/readyz", "/healthz/", "/HEALTHZ", "/healthz/../metrics", "/metrics?/healthz"):
        assert get(app, path) == 401, path


def test_without_the_key_basic_auth_covers_the_health_paths_too(serve: Serve, password_hash: str) -> None:
    app = serve(users(password_hash))
    assert [get(app, "/healthz"), get(app, "/readyz")] == [401, 401]
    assert [get(app, "/healthz", auth=True), get(app, "/readyz", auth=True)] == [200, 200]


@pytest.mark.parametrize(
    ("listed", "message"),
    [
        (
            "[/healthz, /metrics]",
            "basic_auth_excluded_paths[1]: must be one of /healthz, /readyz, got '/metrics'",
        ),
        ("[/]", "basic_auth_excluded_paths[0]: must be one of /healthz, /readyz, got '/'"),
        ("/healthz", "basic_auth_excluded_paths: must be a list, got a string"),
        ("[7]", "basic_auth_excluded_paths[0]: must be a string, got an integer"),
    ],
)
def test_anything_but_the_health_paths_is_refused(tmp_path: Path, listed: str, message: str) -> None:
    path = tmp_path / "web.yml"
    path.write_text(f"basic_auth_excluded_paths: {listed}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_web_config(path)
    assert str(raised.value) == message


def render_chart(values: dict[str, Any]) -> list[dict[str, Any]]:
    with helm.Chart.load(CHART) as chart:
        rendered = chart.render(copy.deepcopy(values), name="prod", namespace="monitoring")
    return [
        document
        for path, text in sorted(rendered.items())
        if not path.endswith("NOTES.txt")
        for document in yaml.safe_load_all(text)
        if document
    ]


def test_the_chart_with_basic_auth_lets_its_own_probes_through(
    serve: Serve, password_hash: str, tmp_path: Path
) -> None:
    """The web config and probes the chart renders, served for real: the kubelet's requests (no header) pass."""
    values = {
        "config": {"api": {"account_id": "acme"}, "jobs": [157]},
        "apiKey": {"existingSecret": "integrateio"},
        "webConfig": {"basicAuthUsers": {USER: password_hash}},
    }
    manifests = render_chart(values)
    (secret,) = [
        m for m in manifests if m["kind"] == "Secret" and m["metadata"]["name"].endswith("web-config")
    ]
    web_config = secret["stringData"]["web-config.yml"]
    assert yaml.safe_load(web_config)["basic_auth_excluded_paths"] == ["/healthz", "/readyz"]
    (deployment,) = [m for m in manifests if m["kind"] == "Deployment"]
    (exporter,) = deployment["spec"]["template"]["spec"]["containers"]
    app = serve(web_config)
    for probe in ("livenessProbe", "readinessProbe"):
        http_get = exporter[probe]["httpGet"]
        assert "httpHeaders" not in http_get  # no credential in the Pod spec
        assert (http_get["scheme"], get(app, http_get["path"])) == ("HTTP", 200)
    assert get(app, "/metrics") == 401
    # the credential is not in the Pod spec in any form
    encoded = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert encoded not in yaml.safe_dump(deployment) and PASSWORD not in yaml.safe_dump(deployment)
