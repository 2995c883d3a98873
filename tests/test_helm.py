"""The Helm chart helm/integrateio-exporter, linted and rendered by Helm itself, offline.

Helm runs in-process through PyPI's `helm-python-sdk` (Helm's Go SDK behind a C ABI: no helm binary, no
cluster). Every manifest rendered with the default values, and with every optional part switched on, is
validated against the Kubernetes OpenAPI schemas that PyPI's `kubernetes-validate` ships inside its wheel
(strict: unknown fields are errors), for the oldest Kubernetes the chart supports (1.25) and the newest the
package knows. The Prometheus Operator's ServiceMonitor and PrometheusRule are CRDs without a shipped schema:
their structure is asserted here. The configuration the chart renders (one account, discovery, several
accounts) is read back by the exporter's own parser, and the container's flags by its own argument parser.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from exporter.cli import build_parser, parse_shard
from exporter.config import Shard, parse_config, parse_configs

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "helm/integrateio-exporter"
RULES = CHART / "files/integrateio-alerts.yaml"
RELEASE = "prod"
NAMESPACE = "monitoring"
FULLNAME = "prod-integrateio-exporter"
KUBE_VERSIONS = ("1.25", kubernetes_validate.latest_version())
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}

REQUIRED: dict[str, Any] = {
    "config": {"api": {"account_id": "acme"}},
    "apiKey": {"existingSecret": "integrateio"},
}
"""The defaults plus what the chart refuses to render without: an account and a key."""
MINIMAL: dict[str, Any] = {
    "config": {"api": {"account_id": "acme"}, "jobs": [157, 158]},
    "apiKey": {"value": "k-123"},
}
KUBE_PROMETHEUS_STACK = {"release": "kube-prometheus-stack"}
FULL: dict[str, Any] = {
    "config": {
        "api": {"account_id": "acme", "timeout_seconds": 5, "max_response_bytes": 20971520},
        "jobs": [157, 1234567, 98765432],
        "polling": {"interval_seconds": 30, "missing_recheck_seconds": 1800},
        "rate_limit": {"credits": 5000, "window_seconds": 3600, "reserve": 0.2},
    },
    "apiKey": {"existingSecret": "integrateio", "secretKey": "token", "mountAs": "file"},
    "logLevel": "debug",
    "webConfig": {
        "tls": {"enabled": True, "existingSecret": "exporter-tls", "extraConfig": {"min_version": "TLS13"}},
        "basicAuthUsers": {"prometheus": "$2y$10$abcdefghijklmnopqrstuv"},
    },
    "extraArgs": ["--log.level=debug"],
    "extraEnv": [{"name": "TZ", "value": "UTC"}],
    "extraVolumes": [{"name": "ca", "configMap": {"name": "corp-ca"}}],
    "extraVolumeMounts": [{"name": "ca", "mountPath": "/etc/ssl/corp", "readOnly": True}],
    "service": {"annotations": {"example.com/team": "data"}, "labels": {"team": "data"}},
    "serviceAccount": {"annotations": {"example.com/role": "none"}},
    "podAnnotations": {"example.com/scrape": "false"},
    "podLabels": {"team": "data"},
    "imagePullSecrets": [{"name": "registry"}],
    "priorityClassName": "monitoring",
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "monitoring", "operator": "Exists", "effect": "NoSchedule"}],
    "affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["monitoring"]}]}
                ]
            }
        }
    },
    "serviceMonitor": {
        "enabled": True,
        "additionalLabels": KUBE_PROMETHEUS_STACK,
        "interval": "30s",
        "scrapeTimeout": "15s",
        "tlsConfig": {"ca": {"secret": {"name": "exporter-tls", "key": "ca.crt"}}, "serverName": FULLNAME},
        "basicAuth": {
            "username": {"name": "scrape-auth", "key": "username"},
            "password": {"name": "scrape-auth", "key": "password"},
        },
        "relabelings": [{"targetLabel": "cluster", "replacement": "prod"}],
        "metricRelabelings": [{"sourceLabels": ["__name__"], "regex": "go_.*", "action": "drop"}],
    },
    "prometheusRule": {"enabled": True, "additionalLabels": KUBE_PROMETHEUS_STACK},
    "grafanaDashboard": {"enabled": True, "annotations": {"grafana_folder": "Integrate.io"}},
}
STABLE_INSTANCE = [
    {"targetLabel": "instance", "replacement": FULLNAME},
    {"action": "labeldrop", "regex": "endpoint"},
]
HEADLESS = f"{FULLNAME}-headless"
SHARDED: dict[str, Any] = {
    **MINIMAL,
    "sharding": {"enabled": True, "replicas": 3},
    "podDisruptionBudget": {"enabled": True},
    "serviceMonitor": {"enabled": True},
}
ACCOUNTS: list[dict[str, Any]] = [
    {"name": "prod", "api": {"account_id": "acme", "api_key_env": "ACME_API_KEY"}, "jobs": [157, 1234567]},
    {
        "api": {"account_id": "acme-staging", "timeout_seconds": 3},
        "discover": {"package_ids": [42], "statuses": ["running", "failed"], "max_jobs": 50},
        "rate_limit": {"credits": 2000},
    },
]
MULTI_ACCOUNT: dict[str, Any] = {
    "config": {"accounts": ACCOUNTS, "polling": {"interval_seconds": 30}},
    "apiKey": {"value": "k-123"},
    "extraSecretEnv": [{"name": "ACME_API_KEY", "secretName": "integrateio-acme", "key": "api-key"}],
}
VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": REQUIRED,
    "minimal": MINIMAL,
    "full": FULL,
    "key-as-env": {**MINIMAL, "apiKey": {"value": "k-123", "mountAs": "env"}},
    "existing-secret-as-env": {**MINIMAL, "apiKey": {"existingSecret": "integrateio", "mountAs": "env"}},
    "basic-auth-only": {
        **MINIMAL,
        "webConfig": {"tls": {"enabled": False}, "basicAuthUsers": {"p": "$2y$x"}},
    },
    "sharded": SHARDED,
    "multi-account": MULTI_ACCOUNT,
}


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART) as loaded:
        yield loaded


def render_raw(chart: helm.Chart, values: dict[str, Any]) -> dict[str, str]:
    return chart.render(copy.deepcopy(values), name=RELEASE, namespace=NAMESPACE)


def render(chart: helm.Chart, values: dict[str, Any]) -> list[dict[str, Any]]:
    manifests: list[dict[str, Any]] = []
    for path, text in sorted(render_raw(chart, values).items()):
        if path.endswith("NOTES.txt"):
            continue
        manifests.extend(document for document in yaml.safe_load_all(text) if document)
    return manifests


def only(manifests: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [m for m in manifests if m["kind"] == kind and (name is None or m["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {[m['metadata']['name'] for m in found]}"
    return found[0]


def workload(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    """The Deployment, or the StatefulSet with sharding: exactly one of them."""
    found = [m for m in manifests if m["kind"] in ("Deployment", "StatefulSet")]
    assert len(found) == 1, [m["kind"] for m in found]
    return found[0]


def pod_spec(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = workload(manifests)["spec"]["template"]["spec"]
    return spec


def container(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    pod = pod_spec(manifests)
    (exporter,) = pod["containers"]
    assert isinstance(exporter, dict)
    return exporter


def rendered_config(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    text = only(manifests, "ConfigMap", FULLNAME)["data"]["config.yaml"]
    document: dict[str, Any] = yaml.safe_load(text)
    return document


# --- lint and schemas ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", VALUE_SETS)
def test_helm_lint_is_clean(name: str) -> None:
    report = helm.lint(CHART, copy.deepcopy(VALUE_SETS[name]), strict=True, namespace=NAMESPACE)
    assert report["errors"] == []
    assert [message for message in report["messages"] if message["severity"] >= 2] == []
    assert [message["error"] for message in report["messages"]] == []


def test_helm_lint_reports_bad_values() -> None:
    report = helm.lint(CHART, {"apiKey": {"mountAs": "disk"}}, strict=True)
    problems = report["errors"] + [
        message["error"] for message in report["messages"] if message["severity"] >= 2
    ]
    assert any("mountAs" in problem for problem in problems), report


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"jobs": 1}, "additional properties 'jobs' not allowed"),
        ({"config": {"api": {"account_id": "a"}, "jobs": ["157"]}}, "/config/jobs/0"),
        ({"config": {"api": {"account_id": "a"}, "jobs": [1, 1]}}, "/config/jobs"),
        ({"config": {"api": {"account_id": "a"}, "jobs": [1], "rate_limit": {"reserve": 1}}}, "reserve"),
        ({"config": {"api": {"account_id": "a", "key": "x"}, "jobs": [1]}}, "'key' not allowed"),
        ({"config": {"api": {"account_id": "a", "base_url": "ftp://x"}, "jobs": [1]}}, "base_url"),
        ({"logLevel": "verbose"}, "/logLevel"),
        ({"serviceMonitor": {"interval": "1 minute"}}, "/serviceMonitor/interval"),
    ],
)
def test_schema_refuses_bad_values(chart: helm.Chart, values: dict[str, Any], complaint: str) -> None:
    with pytest.raises(helm.HelmValuesError, match=complaint):
        render_raw(chart, values)


@pytest.mark.parametrize("name", VALUE_SETS)
@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_every_manifest_validates_against_kubernetes_schemas(
    chart: helm.Chart, name: str, kube_version: str
) -> None:
    manifests = render(chart, VALUE_SETS[name])
    kinds = sorted(m["kind"] for m in manifests if m["kind"] not in CRD_KINDS)
    for manifest in manifests:
        if manifest["kind"] in CRD_KINDS:
            continue  # no schema shipped for CRDs: asserted by the ServiceMonitor/PrometheusRule tests below
        kubernetes_validate.validate(manifest, kube_version, strict=True)
    sharded = name == "sharded"
    expected = [
        "ConfigMap",
        "StatefulSet" if sharded else "Deployment",
        "Service",
        "ServiceAccount",
        "NetworkPolicy",
    ]
    if sharded:
        expected += ["Service", "PodDisruptionBudget"]  # the headless Service; the PDB is on in SHARDED
    if name != "defaults" and not VALUE_SETS[name]["apiKey"].get("existingSecret"):
        expected.append("Secret")  # the API key
    if name in ("full", "basic-auth-only"):
        expected.append("Secret")  # the web config
    if name == "full":
        expected.append("ConfigMap")  # the dashboard
    assert kinds == sorted(expected)


def test_strict_validation_does_catch_a_bad_manifest(chart: helm.Chart) -> None:
    deployment = only(render(chart, MINIMAL), "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["pth"] = "/healthz"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBE_VERSIONS[-1], strict=True)


def test_tls_without_a_certificate_secret_is_refused(chart: helm.Chart) -> None:
    with pytest.raises(helm.HelmRenderError, match=r"webConfig\.tls\.existingSecret"):
        render_raw(chart, {**MINIMAL, "webConfig": {"tls": {"enabled": True}, "basicAuthUsers": {}}})


# --- the Deployment -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", VALUE_SETS)
def test_hardened_security_context(chart: helm.Chart, name: str) -> None:
    manifests = render(chart, VALUE_SETS[name])
    pod = pod_spec(manifests)
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "fsGroup": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert container(manifests)["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == FULLNAME
    mounts = {mount["mountPath"]: mount for mount in container(manifests)["volumeMounts"]}
    assert mounts["/tmp"]["name"] == "tmp"  # the only writable path
    assert all(mount.get("readOnly") for path, mount in mounts.items() if path != "/tmp")


def test_probes_ports_resources_and_args_by_default(chart: helm.Chart) -> None:
    manifests = render(chart, MINIMAL)
    exporter = container(manifests)
    assert exporter["image"] == "integrateio-exporter:0.1.0"
    assert exporter["ports"] == [{"name": "http-metrics", "containerPort": 9863, "protocol": "TCP"}]
    assert exporter["livenessProbe"]["httpGet"] == {
        "path": "/healthz",
        "port": "http-metrics",
        "scheme": "HTTP",
    }
    assert exporter["readinessProbe"]["httpGet"] == {
        "path": "/readyz",
        "port": "http-metrics",
        "scheme": "HTTP",
    }
    assert exporter["resources"] == {
        "requests": {"cpu": "10m", "memory": "64Mi"},
        "limits": {"memory": "256Mi"},
    }
    assert exporter["args"] == [
        "--config=/etc/integrateio-exporter/config.yaml",
        "--web.listen-address=:9863",
        "--log.level=info",
    ]
    assert "env" not in exporter  # the key is a file by default
    service = only(manifests, "Service")
    assert service["spec"]["ports"] == [
        {"name": "http-metrics", "port": 9863, "targetPort": "http-metrics", "protocol": "TCP"}
    ]
    selector = only(manifests, "Deployment")["spec"]["selector"]["matchLabels"]
    assert service["spec"]["selector"] == selector
    assert selector.items() <= only(manifests, "Deployment")["spec"]["template"]["metadata"]["labels"].items()


@pytest.mark.parametrize("name", VALUE_SETS)
def test_container_args_are_flags_the_exporter_accepts(chart: helm.Chart, name: str) -> None:
    """The image's ENTRYPOINT is the console script, so the Deployment's args go straight to its parser."""
    exporter = container(render(chart, VALUE_SETS[name]))
    assert "command" not in exporter  # keep the image's ENTRYPOINT
    args = build_parser().parse_args(exporter["args"])
    assert (args.config, args.listen_address, args.demo, args.check_config) == (
        "/etc/integrateio-exporter/config.yaml",
        ":9863",
        False,
        False,
    )
    web = any(volume["name"] == "web-config" for volume in exporter["volumeMounts"])
    expected = "/var/run/secrets/integrateio-exporter/web/web-config.yml" if web else None
    assert args.web_config_file == expected
    assert args.shard == ("auto/3" if name == "sharded" else None)


def test_scheduling_values_pass_through(chart: helm.Chart) -> None:
    manifests = render(chart, FULL)
    pod = pod_spec(manifests)
    for key in ("nodeSelector", "tolerations", "affinity", "imagePullSecrets", "priorityClassName"):
        assert pod[key] == FULL[key]
    exporter = container(manifests)
    assert exporter["env"] == FULL["extraEnv"]
    assert exporter["volumeMounts"][-1] == FULL["extraVolumeMounts"][0]
    assert pod["volumes"][-1] == FULL["extraVolumes"][0]
    assert exporter["args"][-1] == "--log.level=debug"
    template = only(manifests, "Deployment")["spec"]["template"]["metadata"]
    assert template["annotations"]["example.com/scrape"] == "false"
    assert template["labels"]["team"] == "data"
    assert "nodeSelector" not in pod_spec(render(chart, MINIMAL))


# --- configuration and API key ------------------------------------------------------------------------------


def test_config_is_rendered_from_values_and_accepted_by_the_exporter(chart: helm.Chart) -> None:
    manifests = render(chart, FULL)
    config = rendered_config(manifests)
    expected = copy.deepcopy(FULL["config"])
    expected["api"]["base_url"] = "https://api.xplenty.com"
    expected["api"]["api_key_file"] = "/var/run/secrets/integrateio-exporter/api-key/token"
    assert config == expected
    assert config["jobs"] == [157, 1234567, 98765432]  # large ids stay integers (no 1.234567e+06)
    assert all(type(job) is int for job in config["jobs"])
    # the exporter's own validation accepts what the chart renders
    del config["api"]["api_key_file"]
    parsed = parse_config(config, base_dir=Path("/"), environ={"INTEGRATEIO_API_KEY": "k"})
    assert (parsed.jobs, parsed.rate_limit.reserve, parsed.api.max_response_bytes) == (
        (157, 1234567, 98765432),
        0.2,
        20971520,
    )


def test_api_key_from_the_chart_secret_as_a_file(chart: helm.Chart) -> None:
    manifests = render(chart, MINIMAL)
    secret = only(manifests, "Secret", f"{FULLNAME}-api-key")
    assert secret["data"] == {"api-key": "ay0xMjM="}  # base64("k-123")
    pod = pod_spec(manifests)
    volume = next(v for v in pod["volumes"] if v["name"] == "api-key")
    assert volume["secret"] == {
        "secretName": f"{FULLNAME}-api-key",
        "defaultMode": 0o440,
        "items": [{"key": "api-key", "path": "api-key"}],
    }
    mount = next(m for m in container(manifests)["volumeMounts"] if m["name"] == "api-key")
    assert rendered_config(manifests)["api"]["api_key_file"] == f"{mount['mountPath']}/api-key"


def test_existing_secret_as_a_file(chart: helm.Chart) -> None:
    manifests = render(chart, FULL)
    assert [m["metadata"]["name"] for m in manifests if m["kind"] == "Secret"] == [f"{FULLNAME}-web-config"]
    pod = pod_spec(manifests)
    volume = next(v for v in pod["volumes"] if v["name"] == "api-key")
    assert volume["secret"]["secretName"] == "integrateio"
    assert volume["secret"]["items"] == [{"key": "token", "path": "token"}]


@pytest.mark.parametrize(
    ("name", "secret"), [("key-as-env", f"{FULLNAME}-api-key"), ("existing-secret-as-env", "integrateio")]
)
def test_api_key_as_environment_variable(chart: helm.Chart, name: str, secret: str) -> None:
    manifests = render(chart, VALUE_SETS[name])
    assert container(manifests)["env"] == [
        {"name": "INTEGRATEIO_API_KEY", "valueFrom": {"secretKeyRef": {"name": secret, "key": "api-key"}}}
    ]
    assert "api_key_file" not in rendered_config(manifests)["api"]
    pod = pod_spec(manifests)
    assert "api-key" not in [volume["name"] for volume in pod["volumes"]]


def pod_annotations(chart: helm.Chart, values: dict[str, Any]) -> dict[str, str]:
    annotations: dict[str, str] = only(render(chart, values), "Deployment")["spec"]["template"]["metadata"][
        "annotations"
    ]
    return annotations


def with_changes(values: dict[str, Any], **changes: Any) -> dict[str, Any]:
    changed = copy.deepcopy(values)
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = changed
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    return changed


def test_checksums_roll_the_pods_exactly_when_config_or_secret_change(chart: helm.Chart) -> None:
    base = pod_annotations(chart, MINIMAL)
    assert len(base["checksum/config"]) == len(base["checksum/secret"]) == 64
    assert pod_annotations(chart, MINIMAL) == base  # deterministic
    interval = pod_annotations(chart, with_changes(MINIMAL, config__polling={"interval_seconds": 30}))
    assert interval["checksum/config"] != base["checksum/config"]
    assert interval["checksum/secret"] == base["checksum/secret"]
    jobs = pod_annotations(chart, with_changes(MINIMAL, config__jobs=[157]))
    assert jobs["checksum/config"] != base["checksum/config"]
    key = pod_annotations(chart, with_changes(MINIMAL, apiKey__value="k-456"))
    assert (key["checksum/config"], key["checksum/secret"] != base["checksum/secret"]) == (
        base["checksum/config"],
        True,
    )
    unrelated = pod_annotations(chart, with_changes(MINIMAL, resources={"limits": {"memory": "512Mi"}}))
    assert unrelated == base


# --- web config (TLS and basic auth for scrapers) -----------------------------------------------------------


def test_web_config_with_tls_and_basic_auth(chart: helm.Chart) -> None:
    manifests = render(chart, FULL)
    exporter = container(manifests)
    mounts = {m["name"]: m["mountPath"] for m in exporter["volumeMounts"]}
    assert f"--web.config.file={mounts['web-config']}/web-config.yml" in exporter["args"]
    secret = only(manifests, "Secret", f"{FULLNAME}-web-config")
    web = yaml.safe_load(secret["stringData"]["web-config.yml"])
    assert web == {
        "tls_server_config": {
            "cert_file": f"{mounts['tls']}/tls.crt",
            "key_file": f"{mounts['tls']}/tls.key",
            "min_version": "TLS13",
        },
        "basic_auth_users": {"prometheus": "$2y$10$abcdefghijklmnopqrstuv"},
        "basic_auth_excluded_paths": ["/healthz", "/readyz"],
    }
    pod = pod_spec(manifests)
    tls = next(v for v in pod["volumes"] if v["name"] == "tls")
    assert tls["secret"]["secretName"] == "exporter-tls"
    for probe in ("livenessProbe", "readinessProbe"):
        assert exporter[probe]["httpGet"]["scheme"] == "HTTPS"
        assert (
            "httpHeaders" not in exporter[probe]["httpGet"]
        )  # the health paths are excluded from basic auth


def test_basic_auth_without_tls_keeps_http(chart: helm.Chart) -> None:
    manifests = render(chart, VALUE_SETS["basic-auth-only"])
    web = yaml.safe_load(only(manifests, "Secret", f"{FULLNAME}-web-config")["stringData"]["web-config.yml"])
    assert web == {"basic_auth_users": {"p": "$2y$x"}, "basic_auth_excluded_paths": ["/healthz", "/readyz"]}
    assert container(manifests)["livenessProbe"]["httpGet"]["scheme"] == "HTTP"
    assert "tls" not in [v["name"] for v in pod_spec(manifests)["volumes"]]


# --- ServiceMonitor, PrometheusRule (the dashboard: tests/test_dashboard.py) ------------------------------


def test_optional_parts_are_off_by_default(chart: helm.Chart) -> None:
    manifests = render(chart, REQUIRED)
    kinds = {m["kind"] for m in manifests}
    assert not kinds & CRD_KINDS
    assert [m["metadata"]["name"] for m in manifests if m["kind"] == "ConfigMap"] == [FULLNAME]


def test_service_monitor(chart: helm.Chart) -> None:
    manifests = render(chart, FULL)
    monitor = only(manifests, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["namespace"] == NAMESPACE
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    service = only(manifests, "Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    sm = FULL["serviceMonitor"]
    assert monitor["spec"]["endpoints"] == [
        {
            "port": "http-metrics",
            "path": "/metrics",
            "interval": "30s",
            "scrapeTimeout": "15s",
            "scheme": "https",
            "tlsConfig": sm["tlsConfig"],
            "basicAuth": sm["basicAuth"],
            "relabelings": STABLE_INSTANCE + sm["relabelings"],
            "metricRelabelings": sm["metricRelabelings"],
        }
    ]
    plain = only(render(chart, with_changes(MINIMAL, serviceMonitor={"enabled": True})), "ServiceMonitor")
    # (the chart's own relabelings are tested in tests/test_chart_guards.py)
    assert plain["spec"]["endpoints"] == [
        {
            "port": "http-metrics",
            "path": "/metrics",
            "interval": "60s",
            "scrapeTimeout": "10s",
            "scheme": "http",
            "relabelings": STABLE_INSTANCE,
        }
    ]
    assert "release" not in plain["metadata"]["labels"]


def test_prometheus_rule_embeds_the_rule_file_unchanged(chart: helm.Chart) -> None:
    rule = only(render(chart, FULL), "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert rule["metadata"]["namespace"] == NAMESPACE
    source = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    assert rule["spec"] == {"groups": source["groups"]}


def test_prometheus_rule_labels_and_extra_groups(chart: helm.Chart) -> None:
    extra = {"name": "mine", "rules": [{"alert": "Mine", "expr": "vector(1)"}]}
    values = with_changes(
        MINIMAL,
        prometheusRule={
            "enabled": True,
            "ruleLabels": {"team": "data", "severity": "page"},
            "additionalGroups": [extra],
        },
    )
    groups = only(render(chart, values), "PrometheusRule")["spec"]["groups"]
    source = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    assert [group["name"] for group in groups] == [group["name"] for group in source] + ["mine"]
    for group, original in zip(groups, source, strict=False):
        for rule, original_rule in zip(group["rules"], original["rules"], strict=True):
            if "record" in rule:
                assert "labels" not in rule  # ruleLabels label alerts, not recorded series
            else:
                assert rule["labels"] == {"team": "data", "severity": original_rule["labels"]["severity"]}
            assert rule["expr"] == original_rule["expr"]
    assert groups[-1] == {
        "name": "mine",
        "rules": [{"alert": "Mine", "expr": "vector(1)", "labels": {"team": "data", "severity": "page"}}],
    }


# --- sharding: StatefulSet, headless Service, PodDisruptionBudget --------------------------------------------


def test_sharding_renders_a_statefulset_instead_of_the_deployment(chart: helm.Chart) -> None:
    manifests = render(chart, SHARDED)
    assert [m["kind"] for m in manifests if m["kind"] == "Deployment"] == []
    statefulset = only(manifests, "StatefulSet", FULLNAME)
    spec = statefulset["spec"]
    assert (spec["replicas"], spec["serviceName"], spec["podManagementPolicy"]) == (3, HEADLESS, "Parallel")
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    assert "volumeClaimTemplates" not in spec  # nothing to keep: a restarted shard refreshes its jobs
    # the same hardened pod as the Deployment's, plus the shard flag
    plain = only(render(chart, MINIMAL), "Deployment")["spec"]["template"]["spec"]
    assert {**spec["template"]["spec"], "containers": []} == {**plain, "containers": []}
    exporter = container(manifests)
    assert exporter["args"][-1] == "--shard=auto/3"
    assert exporter["args"][:-1] == container(render(chart, MINIMAL))["args"]


@pytest.mark.parametrize("ordinal", [0, 1, 2])
def test_each_statefulset_pod_takes_its_shard_from_its_hostname(chart: helm.Chart, ordinal: int) -> None:
    """A StatefulSet pod's hostname is <statefulset>-<ordinal>: `--shard auto/3` makes it shard <ordinal>."""
    manifests = render(chart, SHARDED)
    args = build_parser().parse_args(container(manifests)["args"])
    hostname = f"{only(manifests, 'StatefulSet')['metadata']['name']}-{ordinal}"
    assert parse_shard(args.shard, hostname) == Shard(ordinal, 3)


def test_sharding_adds_a_headless_service_that_is_not_scraped(chart: helm.Chart) -> None:
    manifests = render(chart, SHARDED)
    headless = only(manifests, "Service", HEADLESS)
    assert headless["spec"]["clusterIP"] == "None"
    pod_labels = workload(manifests)["spec"]["template"]["metadata"]["labels"]
    assert headless["spec"]["selector"].items() <= pod_labels.items()
    assert headless["spec"]["ports"] == [
        {"name": "http-metrics", "port": 9863, "targetPort": "http-metrics", "protocol": "TCP"}
    ]
    # The ServiceMonitor selects the ordinal Service only; selecting both would scrape every pod twice (two
    # `job` labels), which would also split the pods' package series in the rules' `by (job, …)`.
    service = only(manifests, "Service", FULLNAME)
    selector = only(manifests, "ServiceMonitor")["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert not selector.items() <= headless["metadata"]["labels"].items()
    assert "clusterIP" not in service["spec"]


def test_without_sharding_there_is_no_statefulset(chart: helm.Chart) -> None:
    for values in (MINIMAL, FULL, with_changes(MINIMAL, sharding={"enabled": False, "replicas": 5})):
        kinds = [m["kind"] for m in render(chart, values)]
        assert "StatefulSet" not in kinds and "PodDisruptionBudget" not in kinds
        assert kinds.count("Service") == 1


@pytest.mark.parametrize(
    ("budget", "expected"),
    [
        ({"enabled": True}, {"maxUnavailable": 1}),
        ({"enabled": True, "maxUnavailable": "50%"}, {"maxUnavailable": "50%"}),
        ({"enabled": True, "minAvailable": 2}, {"minAvailable": 2}),
    ],
)
def test_pod_disruption_budget(chart: helm.Chart, budget: dict[str, Any], expected: dict[str, Any]) -> None:
    one_pod = () if "minAvailable" in budget else (with_changes(MINIMAL, podDisruptionBudget=budget),)
    for values in (with_changes(SHARDED, podDisruptionBudget=budget), *one_pod):
        manifests = render(chart, values)
        pdb = only(manifests, "PodDisruptionBudget", FULLNAME)
        assert pdb["apiVersion"] == "policy/v1"
        selector = pdb["spec"].pop("selector")["matchLabels"]
        assert pdb["spec"] == expected
        assert selector.items() <= workload(manifests)["spec"]["template"]["metadata"]["labels"].items()
        kubernetes_validate.validate(pdb, KUBE_VERSIONS[0], strict=True)


def test_pod_disruption_budget_takes_one_bound_only(chart: helm.Chart) -> None:
    budget = {"enabled": True, "minAvailable": 1, "maxUnavailable": 1}
    with pytest.raises(helm.HelmRenderError, match="not both"):
        render_raw(chart, with_changes(SHARDED, podDisruptionBudget=budget))


# --- several accounts, discovery, keys from Secrets ----------------------------------------------------------


def test_extra_secret_env_exposes_one_key_per_account(chart: helm.Chart) -> None:
    manifests = render(chart, MULTI_ACCOUNT)
    env = container(manifests)["env"]
    assert env == [
        {
            "name": "ACME_API_KEY",
            "valueFrom": {"secretKeyRef": {"name": "integrateio-acme", "key": "api-key"}},
        }
    ]
    # beside the key as an environment variable (mountAs: env) and the user's own variables, in that order
    values = with_changes(
        MULTI_ACCOUNT, apiKey={"value": "k-123", "mountAs": "env"}, extraEnv=[{"name": "TZ", "value": "UTC"}]
    )
    names = [variable["name"] for variable in container(render(chart, values))["env"]]
    assert names == ["INTEGRATEIO_API_KEY", "ACME_API_KEY", "TZ"]


def test_several_accounts_render_a_config_the_exporter_accepts(chart: helm.Chart) -> None:
    manifests = render(chart, MULTI_ACCOUNT)
    config = rendered_config(manifests)
    assert list(config) == ["accounts"]  # nothing beside accounts: the exporter allows nothing else
    prod, staging = config["accounts"]
    # the top-level api (but account_id), polling and rate_limit of values.yaml are every account's defaults
    assert prod["api"] == {
        "account_id": "acme",
        "api_key_env": "ACME_API_KEY",  # its own key: the chart's key file is not forced on it
        "base_url": "https://api.xplenty.com",
        "timeout_seconds": 10,
    }
    assert staging["api"] == {
        "account_id": "acme-staging",
        "api_key_file": "/var/run/secrets/integrateio-exporter/api-key/api-key",  # the chart's key (apiKey)
        "base_url": "https://api.xplenty.com",
        "timeout_seconds": 3,  # its own value wins
    }
    assert prod["polling"] == staging["polling"] == {"interval_seconds": 30, "missing_recheck_seconds": 3600}
    assert (prod["rate_limit"]["credits"], staging["rate_limit"]["credits"]) == (5000, 2000)
    assert prod["jobs"] == [157, 1234567] and all(type(job) is int for job in prod["jobs"])
    del staging["api"]["api_key_file"]
    staging["api"]["api_key_env"] = "STAGING_KEY"
    parsed = parse_configs(config, base_dir=Path("/"), environ={"ACME_API_KEY": "k1", "STAGING_KEY": "k2"})
    assert [(c.name, c.labelled, c.jobs) for c in parsed] == [
        ("prod", True, (157, 1234567)),
        ("acme-staging", True, ()),
    ]
    assert parsed[1].discover is not None and parsed[1].discover.package_ids == (42,)
    assert (parsed[0].polling.interval_seconds, parsed[1].rate_limit.credits) == (30, 2000)
    assert (
        "account_id is empty"
        not in render_raw(chart, MULTI_ACCOUNT)["integrateio-exporter/templates/NOTES.txt"]
    )


def test_several_accounts_refuse_top_level_jobs(chart: helm.Chart) -> None:
    for changes in ({"config__jobs": [1]}, {"config__api": {"account_id": "acme"}}):
        with pytest.raises(helm.HelmRenderError, match=r"config\.accounts replaces"):
            render_raw(chart, with_changes(MULTI_ACCOUNT, **changes))


def test_discovery_without_job_ids(chart: helm.Chart) -> None:
    values = with_changes(
        MINIMAL, config__jobs=[], config__discover={"package_ids": [42, 43], "max_age_seconds": 7200}
    )
    manifests = render(chart, values)
    config = rendered_config(manifests)
    del config["api"]["api_key_file"]
    parsed = parse_config(config, base_dir=Path("/"), environ={"INTEGRATEIO_API_KEY": "k"})
    assert parsed.jobs == ()
    assert parsed.discover is not None
    assert (parsed.discover.package_ids, parsed.discover.max_age_seconds) == ((42, 43), 7200)
    notes = render_raw(chart, values)["integrateio-exporter/templates/NOTES.txt"]
    assert "config.jobs is empty" not in notes


def test_own_key_variable_of_a_single_account_is_respected(chart: helm.Chart) -> None:
    values = with_changes(
        MINIMAL,
        config__api={"account_id": "acme", "api_key_env": "ACME_API_KEY"},
        apiKey={"value": ""},
        extraSecretEnv=[{"name": "ACME_API_KEY", "secretName": "acme", "key": "token"}],
    )
    manifests = render(chart, values)
    assert "api_key_file" not in rendered_config(manifests)["api"]
    assert [variable["name"] for variable in container(manifests)["env"]] == ["ACME_API_KEY"]
    assert "WARNING: no API key" not in render_raw(chart, values)["integrateio-exporter/templates/NOTES.txt"]


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"sharding": {"enabled": True, "replicas": 0}}, "/sharding/replicas"),
        ({"sharding": {"enabled": True, "replicas": 2, "mode": "x"}}, "'mode' not allowed"),
        ({"podDisruptionBudget": {"enabled": True, "minAvailable": "half"}}, "minAvailable"),
        ({"extraSecretEnv": [{"name": "K", "secretName": "s"}]}, "key"),
        ({"extraSecretEnv": [{"name": "1K", "secretName": "s", "key": "k"}]}, "/extraSecretEnv/0/name"),
        ({"config": {"api": {"account_id": "a"}, "jobs": [], "discover": {}}}, "package_ids"),
        (
            {"config": {"api": {"account_id": "a"}, "jobs": [], "discover": {"package_ids": [0]}}},
            "package_ids",
        ),
        (
            {
                "config": {
                    "api": {"account_id": "a"},
                    "jobs": [],
                    "discover": {"package_ids": [1], "statuses": ["x"]},
                }
            },
            "statuses",
        ),
        ({"config": {"accounts": [{"jobs": [1]}]}}, "api"),
        ({"config": {"accounts": [{"api": {"account_id": "a"}, "jobz": [1]}]}}, "'jobz' not allowed"),
        ({"config": {"accounts": []}}, "/config/accounts"),
    ],
)
def test_schema_refuses_bad_new_values(chart: helm.Chart, values: dict[str, Any], complaint: str) -> None:
    with pytest.raises(helm.HelmValuesError, match=complaint):
        render_raw(chart, values)


# --- NOTES.txt ----------------------------------------------------------------------------------------------


def test_notes_warn_about_what_is_missing(chart: helm.Chart) -> None:
    defaults = render_raw(chart, REQUIRED)["integrateio-exporter/templates/NOTES.txt"]
    assert "config.jobs is empty" in defaults
    full = render_raw(chart, FULL)["integrateio-exporter/templates/NOTES.txt"]
    assert "WARNING" not in full
    assert f"https://{FULLNAME}.{NAMESPACE}.svc:9863/metrics" in full
    assert 'with labels {"release":"kube-prometheus-stack"}' in full
    assert "Sharded" not in full


def test_notes_explain_sharding(chart: helm.Chart) -> None:
    notes = render_raw(chart, SHARDED)["integrateio-exporter/templates/NOTES.txt"]
    assert "WARNING" not in notes
    assert f"Sharded over 3 pods (StatefulSet {FULLNAME}, headless Service {HEADLESS})" in notes
    assert "--shard auto/3" in notes
    assert "1/3 of rate_limit.credits" in notes
    assert f"http://{FULLNAME}-0.{HEADLESS}.{NAMESPACE}.svc:9863/metrics" in notes
    assert f"port-forward pod/{FULLNAME}-0 9863" in notes
    accounts = render_raw(chart, MULTI_ACCOUNT)["integrateio-exporter/templates/NOTES.txt"]
    assert "Accounts: prod, acme-staging (every series carries an account label)." in accounts
