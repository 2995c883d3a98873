"""The Helm chart refuses to be installed wrong, and what it adds for a release that survives rollouts.

Rendered in-process by Helm (helm-python-sdk), as tests/test_helm.py does, and every manifest validated strictly
against the Kubernetes schemas of kubernetes-validate. Covered here: the `fail`s of templates/_validate.tpl (no
account, no key, HTTPS scrape without a CA, probes kubelet cannot pass, a PodDisruptionBudget that would block a
drain, persistence that pods would share), probes as full objects, the state volume (PersistentVolumeClaim or
volumeClaimTemplates, the state_file the exporter's own parser reads back), and the ServiceMonitor's relabelings,
which a real Prometheus applies to a real exporter: `instance` stays put across rollouts and the exporter's own
`endpoint` label is not renamed to `exported_endpoint`.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate  # type: ignore[import-untyped]
import pytest

from exporter import config as config_module
from exporter.app import App
from exporter.config import API_KEY_ENV, parse_config, parse_configs
from exporter.errors import ConfigError
from exporter.simulator import SimJob, Simulator
from exporter.validate import MAX_ID
from tests.e2e_support import prom_query, start_service, write_yaml
from tests.support import API_KEY, make_config, require_tools, wait_until
from tests.test_helm import (
    CHART,
    FULLNAME,
    KUBE_VERSIONS,
    MINIMAL,
    MULTI_ACCOUNT,
    NAMESPACE,
    SHARDED,
    container,
    only,
    pod_spec,
    render,
    render_raw,
    rendered_config,
    with_changes,
    workload,
)

TLS_ON = {"enabled": True, "existingSecret": "exporter-tls", "extraConfig": {}}
PERSISTENT = with_changes(MINIMAL, persistence={"enabled": True})
TCP_PROBES = {
    "liveness": {"httpGet": None, "tcpSocket": {"port": "http-metrics"}, "periodSeconds": 20},
    "readiness": {"httpGet": None, "tcpSocket": {"port": "http-metrics"}, "periodSeconds": 10},
}


@pytest.fixture(scope="module")
def chart() -> Any:
    with helm.Chart.load(CHART) as loaded:
        yield loaded


def validate_all(manifests: list[dict[str, Any]]) -> None:
    for manifest in manifests:
        if manifest["kind"] in ("ServiceMonitor", "PrometheusRule"):
            continue
        for version in KUBE_VERSIONS:
            kubernetes_validate.validate(manifest, version, strict=True)


def refusal(chart: helm.Chart, values: dict[str, Any]) -> str:
    """The one-line message of the chart's `fail`, without Helm's 'execution error at (file:line)' prefix."""
    with pytest.raises(helm.HelmRenderError) as raised:
        render_raw(chart, values)
    message = str(raised.value)
    assert "\n" not in message.strip()
    return re.sub(r"^.*?execution error at \([^)]*\): ", "", message.strip())


# --- refusals ------------------------------------------------------------------------------------------------


def test_no_account_is_refused_with_the_key_to_set(chart: helm.Chart) -> None:
    assert refusal(chart, {"apiKey": {"value": "k"}}) == (
        "config.api.account_id is empty: the exporter refuses to start without the Integrate.io account id; "
        "set it, e.g. --set config.api.account_id=my-account"
    )
    accounts = copy.deepcopy(MULTI_ACCOUNT)
    accounts["config"]["accounts"][1]["api"]["account_id"] = ""
    assert refusal(chart, accounts).startswith("config.accounts[1].api.account_id is empty")


def test_no_key_is_refused(chart: helm.Chart) -> None:
    assert refusal(chart, {"config": {"api": {"account_id": "acme"}}}) == (
        'no API key for config.api: set apiKey.existingSecret (a Secret with the key under "api-key") or '
        "apiKey.value (e.g. --set-file apiKey.value=key.txt)"
    )
    # several accounts: the staging account has no key of its own and the chart has none to give it
    assert refusal(chart, with_changes(MULTI_ACCOUNT, apiKey={"value": ""})).startswith(
        "no API key for config.accounts[1].api:"
    )


def test_a_key_variable_nobody_sets_is_refused(chart: helm.Chart) -> None:
    values = with_changes(MULTI_ACCOUNT, extraSecretEnv=[])
    assert refusal(chart, values).startswith(
        "config.accounts[0].api.api_key_env: ACME_API_KEY is set by neither extraSecretEnv nor extraEnv"
    )
    # any of the ways the key can reach the pod is enough
    for values in (
        with_changes(
            MINIMAL, apiKey={"value": ""}, config__api={"account_id": "a", "api_key_file": "/k/key"}
        ),
        with_changes(
            MINIMAL,
            apiKey={"value": ""},
            config__api={"account_id": "a", "api_key_env": "K"},
            extraEnv=[{"name": "K", "value": "from-a-sidecar-file"}],
        ),
        with_changes(MINIMAL, apiKey={"existingSecret": "integrateio", "mountAs": "env"}),
    ):
        render(chart, values)


def test_https_scrape_without_a_ca_is_refused(chart: helm.Chart) -> None:
    values = with_changes(MINIMAL, webConfig__tls=TLS_ON, serviceMonitor={"enabled": True})
    assert refusal(chart, values).startswith(
        "serviceMonitor.tlsConfig has no CA: the scrape is HTTPS (webConfig.tls.enabled)"
    )
    assert refusal(chart, with_changes(values, serviceMonitor__tlsConfig={"serverName": "x"})).startswith(
        "serviceMonitor.tlsConfig has no CA"
    )
    for tls_config in (
        {"ca": {"secret": {"name": "exporter-tls", "key": "ca.crt"}}},
        {"ca": {"configMap": {"name": "corp-ca", "key": "ca.crt"}}},
        {"caFile": "/etc/prometheus/secrets/ca.crt"},
        {"insecureSkipVerify": True},
    ):
        monitor = only(
            render(chart, with_changes(values, serviceMonitor__tlsConfig=tls_config)), "ServiceMonitor"
        )
        assert monitor["spec"]["endpoints"][0]["tlsConfig"] == tls_config
    # without TLS there is nothing to verify; without a ServiceMonitor the chart does not scrape
    render(chart, with_changes(MINIMAL, serviceMonitor={"enabled": True}))
    render(chart, with_changes(MINIMAL, webConfig__tls=TLS_ON))


@pytest.mark.parametrize(
    ("probes", "message"),
    [
        (
            {"liveness": {"tcpSocket": {"port": "http-metrics"}}},
            "probes.liveness: set exactly one of httpGet, tcpSocket, exec, grpc (found httpGet, tcpSocket); "
            "to switch to tcpSocket, also set probes.liveness.httpGet: null",
        ),
        (
            {"readiness": {"httpGet": None}},
            "probes.readiness: set exactly one of httpGet, tcpSocket, exec, grpc (found none); "
            "to switch to tcpSocket, also set probes.readiness.httpGet: null",
        ),
    ],
)
def test_a_probe_takes_exactly_one_handler(chart: helm.Chart, probes: dict[str, Any], message: str) -> None:
    assert refusal(chart, with_changes(MINIMAL, probes=probes)) == message


def test_probes_kubelet_cannot_pass_are_refused(chart: helm.Chart) -> None:
    mutual = with_changes(
        MINIMAL,
        webConfig__tls={**TLS_ON, "extraConfig": {"client_auth_type": "RequireAndVerifyClientCert"}},
    )
    assert refusal(chart, mutual).startswith(
        "probes.liveness.httpGet: the exporter requires client certificates"
    )
    # the way out the message names: tcpSocket
    exporter = container(render(chart, with_changes(mutual, probes=TCP_PROBES)))
    assert exporter["livenessProbe"] == {
        "tcpSocket": {"port": "http-metrics"},
        "initialDelaySeconds": 10,
        "periodSeconds": 20,
        "timeoutSeconds": 5,
        "failureThreshold": 3,
    }
    basic = with_changes(MINIMAL, webConfig={"basicAuthUsers": {"p": "$2y$x"}, "basicAuthExcludedPaths": []})
    assert refusal(chart, basic) == (
        "probes.liveness.httpGet: /healthz asks for basic auth (webConfig.basicAuthUsers): list it in "
        "webConfig.basicAuthExcludedPaths, or give httpGet.httpHeaders an Authorization header"
    )
    header = {"httpHeaders": [{"name": "Authorization", "value": "Basic cDpw"}]}
    with_header = with_changes(basic, probes__liveness__httpGet=header, probes__readiness__httpGet=header)
    assert (
        container(render(chart, with_header))["readinessProbe"]["httpGet"]["httpHeaders"]
        == header["httpHeaders"]
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            with_changes(SHARDED, podDisruptionBudget={"enabled": True, "minAvailable": 3}),
            "podDisruptionBudget.minAvailable: 3 of 3 pods would block every node drain; use maxUnavailable: 1",
        ),
        (
            with_changes(SHARDED, podDisruptionBudget={"enabled": True, "minAvailable": "70%"}),
            "podDisruptionBudget.minAvailable: 70% of 3 pods would block every node drain; use maxUnavailable: 1",
        ),
        (
            with_changes(MINIMAL, podDisruptionBudget={"enabled": True, "maxUnavailable": 0}),
            "podDisruptionBudget.maxUnavailable: 0 would block every node drain; use 1",
        ),
        (
            with_changes(SHARDED, podDisruptionBudget={"enabled": True, "maxUnavailable": "0%"}),
            "podDisruptionBudget.maxUnavailable: 0 would block every node drain; use 1",
        ),
        (
            with_changes(SHARDED, persistence={"enabled": True, "existingClaim": "mine"}),
            "persistence.existingClaim cannot serve a sharded StatefulSet: every pod needs its own volume "
            "(the chart makes one per pod); unset it",
        ),
        (
            with_changes(PERSISTENT, replicaCount=2),
            "persistence with replicaCount > 1: the replicas would share one state file; keep replicaCount: 1, "
            "or shard (sharding.enabled) for one volume per pod",
        ),
    ],
)
def test_what_would_block_a_drain_or_share_a_state_file_is_refused(
    chart: helm.Chart, values: dict[str, Any], message: str
) -> None:
    assert refusal(chart, values) == message


# --- probes, PodDisruptionBudget -----------------------------------------------------------------------------


def test_probes_are_rendered_verbatim(chart: helm.Chart) -> None:
    probes: dict[str, Any] = {
        "liveness": {
            "httpGet": {"path": "/healthz", "port": 9863, "scheme": "HTTP"},
            "initialDelaySeconds": 3,
            "periodSeconds": 7,
            "successThreshold": 1,
            "terminationGracePeriodSeconds": 30,
        },
        "readiness": {"httpGet": None, "tcpSocket": {"port": "http-metrics"}, "failureThreshold": 9},
    }
    manifests = render(chart, with_changes(MINIMAL, probes=probes))
    validate_all(manifests)
    exporter = container(manifests)
    # defaults of values.yaml not overridden stay (timeoutSeconds, failureThreshold); nothing else is added
    assert exporter["livenessProbe"] == {**probes["liveness"], "timeoutSeconds": 5, "failureThreshold": 3}
    assert exporter["readinessProbe"] == {
        "tcpSocket": {"port": "http-metrics"},
        "initialDelaySeconds": 5,
        "periodSeconds": 10,
        "timeoutSeconds": 5,
        "failureThreshold": 9,
    }
    # an httpGet without a scheme follows the server: HTTPS with TLS
    tls = container(render(chart, with_changes(MINIMAL, webConfig__tls=TLS_ON)))
    assert tls["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http-metrics", "scheme": "HTTPS"}


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (with_changes(MINIMAL, podDisruptionBudget={"enabled": True}), {"maxUnavailable": 1}),
        (with_changes(MINIMAL, podDisruptionBudget={"enabled": True, "minAvailable": 1}), None),
        (with_changes(MINIMAL, podDisruptionBudget={"enabled": True, "minAvailable": "50%"}), None),
        (
            with_changes(
                SHARDED, sharding__replicas=2, podDisruptionBudget={"enabled": True, "minAvailable": "50%"}
            ),
            {"minAvailable": "50%"},
        ),
        (
            with_changes(SHARDED, podDisruptionBudget={"enabled": True, "minAvailable": 2}),
            {"minAvailable": 2},
        ),
    ],
)
def test_a_budget_never_blocks_a_drain(
    chart: helm.Chart, values: dict[str, Any], expected: dict[str, Any] | None
) -> None:
    manifests = render(chart, values)
    budgets = [m for m in manifests if m["kind"] == "PodDisruptionBudget"]
    notes = render_raw(chart, values)["integrateio-exporter/templates/NOTES.txt"]
    if expected is None:
        assert budgets == []
        assert (
            "NOTE: no PodDisruptionBudget: with one pod, minAvailable would block every node drain" in notes
        )
    else:
        (budget,) = budgets
        budget["spec"].pop("selector")
        assert budget["spec"] == expected
        assert "NOTE: no PodDisruptionBudget" not in notes


# --- persistence ---------------------------------------------------------------------------------------------


def test_deployment_keeps_its_state_file_on_a_claim(chart: helm.Chart) -> None:
    # the key as a variable, so that the exporter's parser below needs no key file
    values = with_changes(PERSISTENT, persistence__storageClassName="fast", apiKey__mountAs="env")
    manifests = render(chart, values)
    validate_all(manifests)
    claim = only(manifests, "PersistentVolumeClaim", f"{FULLNAME}-state")
    assert claim["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "storageClassName": "fast",
        "resources": {"requests": {"storage": "128Mi"}},
    }
    deployment = only(manifests, "Deployment")
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}  # a RWO volume: never two pods at once
    volumes = {volume["name"]: volume for volume in pod_spec(manifests)["volumes"]}
    assert volumes["state"]["persistentVolumeClaim"] == {"claimName": f"{FULLNAME}-state"}
    mounts = {mount["name"]: mount for mount in container(manifests)["volumeMounts"]}
    assert mounts["state"] == {"name": "state", "mountPath": "/var/lib/integrateio-exporter"}  # writable
    config = parse_config(
        rendered_config(manifests), base_dir=Path("/"), environ={"INTEGRATEIO_API_KEY": "k"}
    )
    assert config.state_file == "/var/lib/integrateio-exporter/state.json"


def test_persistence_options(chart: helm.Chart) -> None:
    shared = render(chart, with_changes(PERSISTENT, persistence__accessModes=["ReadWriteMany"]))
    assert "strategy" not in only(shared, "Deployment")["spec"]  # a RWX volume does not need Recreate
    existing = render(chart, with_changes(PERSISTENT, persistence__existingClaim="mine"))
    assert [m for m in existing if m["kind"] == "PersistentVolumeClaim"] == []
    volumes = {volume["name"]: volume for volume in pod_spec(existing)["volumes"]}
    assert volumes["state"]["persistentVolumeClaim"] == {"claimName": "mine"}
    own = render(
        chart, with_changes(PERSISTENT, config__state_file="/var/lib/integrateio-exporter/mine.json")
    )
    assert rendered_config(own)["state_file"] == "/var/lib/integrateio-exporter/mine.json"
    # off by default: no claim, no state file, the Deployment's default rolling update
    plain = render(chart, MINIMAL)
    assert "state_file" not in rendered_config(plain) and "strategy" not in only(plain, "Deployment")["spec"]


def test_sharded_pods_each_get_a_volume(chart: helm.Chart) -> None:
    manifests = render(chart, with_changes(SHARDED, persistence={"enabled": True, "size": "1Gi"}))
    validate_all(manifests)
    assert [m for m in manifests if m["kind"] == "PersistentVolumeClaim"] == []
    (template,) = workload(manifests)["spec"]["volumeClaimTemplates"]
    assert template["metadata"]["name"] == "state"
    assert template["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "1Gi"}},
    }
    assert "state" not in [volume["name"] for volume in pod_spec(manifests)["volumes"]]  # the template's
    assert {"name": "state", "mountPath": "/var/lib/integrateio-exporter"} in container(manifests)[
        "volumeMounts"
    ]


def test_every_account_gets_its_own_state_file(chart: helm.Chart) -> None:
    values = with_changes(MULTI_ACCOUNT, persistence={"enabled": True}, apiKey__mountAs="env")
    manifests = render(chart, values)
    configs = parse_configs(
        rendered_config(manifests),
        base_dir=Path("/etc"),
        environ={"ACME_API_KEY": "a", "INTEGRATEIO_API_KEY": "b"},
    )
    assert [config.state_file for config in configs] == [
        "/var/lib/integrateio-exporter/state-prod.json",
        "/var/lib/integrateio-exporter/state-acme-staging.json",
    ]


# --- ServiceMonitor: a stable instance, the exporter's own endpoint label ------------------------------------


def monitor_relabelings(chart: helm.Chart, values: dict[str, Any]) -> list[dict[str, Any]]:
    monitor = only(render(chart, with_changes(values, serviceMonitor__enabled=True)), "ServiceMonitor")
    relabelings: list[dict[str, Any]] = monitor["spec"]["endpoints"][0]["relabelings"]
    return relabelings


def test_instance_is_the_deployment_or_the_pod_name(chart: helm.Chart) -> None:
    endpoint = {"action": "labeldrop", "regex": "endpoint"}
    assert monitor_relabelings(chart, MINIMAL) == [
        {"targetLabel": "instance", "replacement": FULLNAME},
        endpoint,
    ]
    by_pod = [{"sourceLabels": ["__meta_kubernetes_pod_name"], "targetLabel": "instance"}, endpoint]
    assert monitor_relabelings(chart, SHARDED) == by_pod
    assert monitor_relabelings(chart, with_changes(MINIMAL, replicaCount=2)) == by_pod
    user = {"targetLabel": "cluster", "replacement": "eu-1"}
    assert monitor_relabelings(chart, with_changes(MINIMAL, serviceMonitor__relabelings=[user]))[-1] == user


def prometheus_relabel(rule: dict[str, Any]) -> dict[str, Any]:
    """A ServiceMonitor RelabelConfig as the Prometheus Operator writes it into prometheus.yml."""
    return {re.sub(r"(?<!^)([A-Z])", r"_\1", key).lower(): value for key, value in rule.items()}


def operator_relabelings(job: str) -> list[dict[str, Any]]:
    """The target labels the Prometheus Operator sets before an endpoint's own relabelings (its promcfg.go):
    namespace, pod, job (the Service's name) and endpoint (the port's name)."""
    return [
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        {"target_label": "job", "replacement": job},
        {"target_label": "endpoint", "replacement": "http-metrics"},
    ]


def test_prometheus_keeps_the_exporter_labels_and_a_stable_instance(
    chart: helm.Chart, tmp_path: Path, stop_apps: list[App], request: pytest.FixtureRequest
) -> None:
    """A real Prometheus scrapes a real exporter three times over: with the operator's labels only (the clash the
    chart fixes), and through the chart's relabelings for the Deployment and for a sharded pod."""
    binaries = require_tools("prometheus")
    simulator = Simulator(account_id="acme", api_key=API_KEY)
    simulator.add_job(SimJob(id=157, status="running", progress=0.5))
    simulator.start()
    try:
        app = App(make_config(simulator, [157], interval=1.0), ("127.0.0.1", 0))
        app.start()
        stop_apps.append(app)
        target = app.url("/").removeprefix("http://").rstrip("/")
        pod = f"{FULLNAME}-7d9c5b8f6-x2x7q"  # a Deployment's pod: renamed at every rollout
        jobs = {
            "operator-only": [],
            "deployment": monitor_relabelings(chart, MINIMAL),
            "sharded": monitor_relabelings(chart, SHARDED),
        }
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "900ms"},
            "scrape_configs": [
                {
                    "job_name": name,
                    "static_configs": [
                        {
                            "targets": [target],
                            "labels": {
                                "__meta_kubernetes_namespace": NAMESPACE,
                                "__meta_kubernetes_pod_name": f"{FULLNAME}-1" if name == "sharded" else pod,
                            },
                        }
                    ],
                    "relabel_configs": operator_relabelings(name)
                    + [prometheus_relabel(r) for r in relabelings],
                }
                for name, relabelings in jobs.items()
            ],
        }
        prometheus = start_service(
            "prometheus",
            lambda port: [
                binaries["prometheus"],
                f"--config.file={write_yaml(tmp_path / 'prometheus.yml', config)}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            "/-/ready",
            tmp_path,
            request.addfinalizer,
        )

        def series(job: str) -> list[dict[str, str]] | None:
            answer = prom_query(prometheus.base_url, f'integrateio_api_requests_total{{job="{job}"}}')
            found = [item["metric"] for item in answer.get("data", {}).get("result", [])]
            return found or None

        labels = {job: wait_until(functools.partial(series, job), 30, f"{job}'s series") for job in jobs}
    finally:
        simulator.stop()
    # the clash: the operator's endpoint="http-metrics" wins, the exporter's own label is renamed
    assert {metric["endpoint"] for metric in labels["operator-only"]} == {"http-metrics"}
    assert all("exported_endpoint" in metric for metric in labels["operator-only"])
    assert {metric["instance"] for metric in labels["operator-only"]} == {target}
    for job, instance in (("deployment", FULLNAME), ("sharded", f"{FULLNAME}-1")):
        assert all("exported_endpoint" not in metric for metric in labels[job])
        assert {metric["endpoint"] for metric in labels[job]} <= {"get_job", "list_jobs", "rate_limit_status"}
        assert {metric["instance"] for metric in labels[job]} == {instance}
        assert {metric["namespace"] for metric in labels[job]} == {
            NAMESPACE
        }  # the operator's other labels stay


@pytest.mark.parametrize(
    "values",
    [
        PERSISTENT,
        with_changes(SHARDED, persistence={"enabled": True}),
        with_changes(MINIMAL, probes=TCP_PROBES),
        with_changes(MULTI_ACCOUNT, persistence={"enabled": True}),
    ],
    ids=["persistent", "sharded-persistent", "tcp-probes", "multi-account-persistent"],
)
def test_helm_lint_is_clean_with_the_new_options(chart: helm.Chart, values: dict[str, Any]) -> None:
    report = helm.lint(CHART, copy.deepcopy(values), strict=True, namespace=NAMESPACE)
    assert (report["errors"], report["messages"]) == ([], [])
    validate_all(render(chart, values))


# --- the schema's ranges are the exporter's own -------------------------------------------------------------

SCHEMA = CHART / "values.schema.json"
# (schema definition, key) → the exporter's limit: a value the exporter would refuse at start is refused by
# `helm install` already, and the two cannot drift apart.
EXPORTER_MAXIMA = {
    ("api", "timeout_seconds"): config_module.MAX_TIMEOUT_SECONDS,
    ("api", "max_response_bytes"): config_module.MAX_RESPONSE_BYTES,
    ("discover", "max_age_seconds"): config_module.MAX_AGE_SECONDS,
    ("discover", "max_jobs"): config_module.MAX_DISCOVERED_JOBS,
    ("polling", "interval_seconds"): config_module.MAX_INTERVAL_SECONDS,
    ("polling", "missing_recheck_seconds"): config_module.MAX_RECHECK_SECONDS,
    ("polling", "concurrency"): config_module.MAX_CONCURRENCY,
    ("polling", "outputs_refresh_seconds"): config_module.MAX_INTERVAL_SECONDS,
    ("rate_limit", "credits"): config_module.MAX_CREDITS,
    ("rate_limit", "window_seconds"): config_module.MAX_WINDOW_SECONDS,
}


def test_schema_maxima_are_the_exporters_limits() -> None:
    definitions = json.loads(SCHEMA.read_text(encoding="utf-8"))["definitions"]
    found = {key: definitions[key[0]]["properties"][key[1]].get("maximum") for key in EXPORTER_MAXIMA}
    assert found == EXPORTER_MAXIMA
    assert definitions["jobs"]["items"]["maximum"] == MAX_ID
    assert definitions["discover"]["properties"]["package_ids"]["items"]["maximum"] == MAX_ID


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("polling", "interval_seconds", 86401),
        ("polling", "concurrency", 65),
        ("rate_limit", "credits", 10**9 + 1),
        ("api", "timeout_seconds", 3601),
    ],
)
def test_schema_refuses_what_the_exporter_would_refuse_at_start(
    chart: helm.Chart, section: str, key: str, value: int
) -> None:
    values = copy.deepcopy(MINIMAL)
    values["config"].setdefault(section, {})[key] = value
    with pytest.raises(helm.HelmValuesError, match=f"{key}"):
        render_raw(chart, values)
    with pytest.raises(ConfigError, match=f"^{section}.{key}: "):
        parse_config(values["config"], base_dir=Path("."), environ={API_KEY_ENV: "key"})
