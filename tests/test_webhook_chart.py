"""The chart's web hook parts, rendered by Helm itself (offline, as tests/test_helm.py does): the config's
`webhook:` section read back by the exporter's parser, the Secret and its mount, an Ingress that routes the hook's
path and nothing else (its own TLS), the NetworkPolicy rule for the Ingress controller, and the refusals.
"""

from __future__ import annotations

import base64
import copy
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate  # type: ignore[import-untyped]
import pytest

from exporter.config import API_KEY_ENV, parse_config
from tests.test_helm import (
    FULLNAME,
    KUBE_VERSIONS,
    MINIMAL,
    MULTI_ACCOUNT,
    SHARDED,
    chart,
    container,
    only,
    pod_spec,
    render,
    render_raw,
    rendered_config,
)

__all__ = ["chart"]  # the module-scoped fixture, shared with tests/test_helm.py

CONTROLLER = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}]
SCRAPERS = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
HOOKED: dict[str, Any] = {
    **MINIMAL,
    "networkPolicy": {"ingressFrom": SCRAPERS},
    "webhook": {
        "enabled": True,
        "password": "hook-password\n",
        "salt": "2db5b8725e2d",
        "budgetShare": 0.2,
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "host": "hooks.example.com",
            "tlsSecret": "hooks-tls",
            "annotations": {"nginx.ingress.kubernetes.io/limit-rps": "20"},
        },
        "networkPolicyFrom": CONTROLLER,
    },
}
SECRET_DIR = "/var/run/secrets/integrateio-exporter/webhook"


def with_webhook(**changes: Any) -> dict[str, Any]:
    values = copy.deepcopy(HOOKED)
    values["webhook"].update(changes)
    return values


def test_the_config_section_is_rendered_and_accepted_by_the_exporter(
    chart: helm.Chart, tmp_path: Path
) -> None:
    section = rendered_config(render(chart, HOOKED))["webhook"]
    assert section == {
        "enabled": True,
        "path": "/webhook",
        "basic_auth": {"username": "integrateio", "password_file": f"{SECRET_DIR}/password"},
        "salt_file": f"{SECRET_DIR}/salt",
        "budget_share": 0.2,
        "url": "https://hooks.example.com/webhook",
    }
    # The exporter's own parser accepts it, with the files where the pod has them (here: in tmp_path).
    (tmp_path / "password").write_text("hook-password")
    (tmp_path / "salt").write_text("2db5b8725e2d")
    section["basic_auth"]["password_file"] = "password"
    section["salt_file"] = "salt"
    document = {"api": {"account_id": "acme"}, "jobs": [157], "webhook": section}
    parsed = parse_config(document, base_dir=tmp_path, environ={API_KEY_ENV: "k"}).webhook
    assert (
        parsed.enabled,
        parsed.path,
        parsed.username,
        parsed.password,
        parsed.salt,
        parsed.budget_share,
    ) == (
        True,
        "/webhook",
        "integrateio",
        "hook-password",
        "2db5b8725e2d",
        0.2,
    )


def test_the_password_and_salt_live_in_a_secret_mounted_read_only(chart: helm.Chart) -> None:
    manifests = render(chart, HOOKED)
    secret = only(manifests, "Secret", f"{FULLNAME}-webhook")
    assert {key: base64.b64decode(value).decode() for key, value in secret["data"].items()} == {
        "password": "hook-password",
        "salt": "2db5b8725e2d",
    }
    volume = next(v for v in pod_spec(manifests)["volumes"] if v["name"] == "webhook")
    assert volume["secret"] == {
        "secretName": f"{FULLNAME}-webhook",
        "defaultMode": 0o440,
        "items": [{"key": "password", "path": "password"}, {"key": "salt", "path": "salt"}],
    }
    mount = next(m for m in container(manifests)["volumeMounts"] if m["name"] == "webhook")
    assert mount == {"name": "webhook", "mountPath": SECRET_DIR, "readOnly": True}
    assert "hook-password" not in only(manifests, "ConfigMap", FULLNAME)["data"]["config.yaml"]


def test_an_existing_secret_with_a_salt_key(chart: helm.Chart) -> None:
    values = with_webhook(password="", salt="", existingSecret="hook-auth", existingSecretSaltKey="hook-salt")
    manifests = render(chart, values)
    assert [m["metadata"]["name"] for m in manifests if m["kind"] == "Secret"] == [f"{FULLNAME}-api-key"]
    volume = next(v for v in pod_spec(manifests)["volumes"] if v["name"] == "webhook")
    assert volume["secret"]["secretName"] == "hook-auth"
    assert volume["secret"]["items"] == [
        {"key": "password", "path": "password"},
        {"key": "hook-salt", "path": "salt"},
    ]
    without_salt = with_webhook(password="", salt="", existingSecret="hook-auth")
    assert "salt_file" not in rendered_config(render(chart, without_salt))["webhook"]


def test_the_ingress_routes_only_the_hook_path_with_its_own_tls(chart: helm.Chart) -> None:
    manifests = render(chart, HOOKED)
    ingress = only(manifests, "Ingress", f"{FULLNAME}-webhook")
    spec = ingress["spec"]
    assert spec["ingressClassName"] == "nginx"
    assert spec["tls"] == [{"hosts": ["hooks.example.com"], "secretName": "hooks-tls"}]
    (rule,) = spec["rules"]
    assert rule["host"] == "hooks.example.com"
    assert rule["http"]["paths"] == [
        {
            "path": "/webhook",
            "pathType": "Exact",  # not Prefix: /webhook/../metrics or /webhookx never reach the exporter
            "backend": {"service": {"name": FULLNAME, "port": {"name": "http-metrics"}}},
        }
    ]
    assert ingress["metadata"]["annotations"] == {"nginx.ingress.kubernetes.io/limit-rps": "20"}
    # /metrics stays internal: the Service is not exposed, and no other Ingress exists.
    assert only(manifests, "Service", FULLNAME)["spec"]["type"] == "ClusterIP"
    assert [m["kind"] for m in manifests].count("Ingress") == 1


def test_the_network_policy_lets_the_ingress_controller_deliver_hooks(chart: helm.Chart) -> None:
    policy = only(render(chart, HOOKED), "NetworkPolicy")
    port = [{"port": "http-metrics", "protocol": "TCP"}]
    assert policy["spec"]["ingress"] == [
        {"ports": port, "from": SCRAPERS},
        {"ports": port, "from": CONTROLLER},
    ]
    off = only(render(chart, {**MINIMAL, "networkPolicy": {"ingressFrom": SCRAPERS}}), "NetworkPolicy")
    assert off["spec"]["ingress"] == [{"ports": port, "from": SCRAPERS}]


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_every_manifest_with_hooks_validates_against_kubernetes_schemas(
    chart: helm.Chart, kube_version: str
) -> None:
    manifests = render(chart, HOOKED)
    for manifest in manifests:
        if manifest["kind"] not in ("ServiceMonitor", "PrometheusRule"):
            kubernetes_validate.validate(manifest, kube_version, strict=True)
    assert sorted(m["kind"] for m in manifests) == sorted(
        [
            "ConfigMap",
            "Deployment",
            "Service",
            "ServiceAccount",
            "NetworkPolicy",
            "Secret",
            "Secret",
            "Ingress",
        ]
    )


def test_hooks_are_off_by_default(chart: helm.Chart) -> None:
    manifests = render(chart, MINIMAL)
    assert "webhook" not in rendered_config(manifests)
    assert "Ingress" not in [m["kind"] for m in manifests]
    assert all(v["name"] != "webhook" for v in pod_spec(manifests)["volumes"])


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        (with_webhook(password=""), r"webhook\.enabled needs webhook\.password"),
        (
            with_webhook(ingress={"enabled": True, "tlsSecret": "t"}),
            r"webhook\.ingress\.enabled needs webhook\.ingress\.host",
        ),
        (
            with_webhook(ingress={"enabled": True, "host": "h"}),
            r"webhook\.ingress\.enabled needs webhook\.ingress\.tlsSecret",
        ),
        ({**SHARDED, "webhook": HOOKED["webhook"]}, r"webhook\.enabled with sharding\.enabled"),
        (
            {**MULTI_ACCOUNT, "webhook": HOOKED["webhook"]},
            r"with config\.accounts write webhook: in each account",
        ),
    ],
)
def test_what_would_not_work_is_refused_in_one_line(
    chart: helm.Chart, values: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(helm.HelmRenderError, match=complaint):
        render_raw(chart, values)


@pytest.mark.parametrize(
    ("changes", "complaint"),
    [
        ({"budgetShare": 1}, "/webhook/budgetShare"),
        ({"username": "a:b"}, "/webhook/username"),
        ({"path": "webhook"}, "/webhook/path"),
        ({"secret": "x"}, "'secret' not allowed"),
    ],
)
def test_the_schema_refuses_bad_webhook_values(
    chart: helm.Chart, changes: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(helm.HelmValuesError, match=complaint):
        render_raw(chart, with_webhook(**changes))
