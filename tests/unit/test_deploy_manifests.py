# SPDX-License-Identifier: Apache-2.0
"""The plain install manifests (deploy/, Dockerfile) say what the operator needs, safely.

Pure file checks: every document parses; the pod runs unprivileged and read-only; RBAC has no
wildcards; the chart's CRD files are the repository's; the shipped configuration is one the
operator accepts. The chart's templates are checked by Helm itself and the real API server
(tests/integration/test_chart.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from wio.config import parse_config
from wio.names import LEADER_LEASE

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
CHART = REPO / "charts" / "wio"
CONFIG_PATH = "/etc/wio/config.yaml"
#: A plain Prometheus rules file, not a Kubernetes object (the chart wraps it in a PrometheusRule).
RULES = DEPLOY / "prometheus-rules.yaml"


# -- loading ----------------------------------------------------------------------------------


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _deploy_docs() -> list[dict[str, Any]]:
    paths = sorted(p for p in DEPLOY.glob("*.yaml") if p != RULES)
    return [doc for path in paths for doc in _documents(path)]


def _one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


# -- every file parses -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    sorted(DEPLOY.rglob("*.yaml"))
    + sorted((CHART / "crds").glob("*.yaml"))
    + [CHART / "Chart.yaml", CHART / "values.yaml"],
    ids=lambda p: str(p.relative_to(REPO)),
)
def test_every_manifest_parses_as_yaml(path: Path) -> None:
    docs = _documents(path)
    assert docs
    # Chart.yaml, values.yaml and the rules file are not Kubernetes objects.
    if path.parent.name != "wio" and path != RULES:
        for doc in docs:
            assert {"apiVersion", "kind", "metadata"} <= set(doc)
            assert doc["metadata"]["name"]


# -- CRDs ---------------------------------------------------------------------------------------


def test_chart_crds_are_byte_identical_to_the_repository_crds() -> None:
    repo = {p.name: p.read_bytes() for p in (REPO / "crds").glob("*.yaml")}
    chart = {p.name: p.read_bytes() for p in (CHART / "crds").glob("*.yaml")}
    assert sorted(chart) == sorted(repo), "run: cp crds/*.yaml charts/wio/crds/"
    stale = [name for name in repo if chart[name] != repo[name]]
    assert not stale, f"charts/wio/crds is stale for {stale}; run: cp crds/*.yaml charts/wio/crds/"


def test_the_chart_alerts_are_byte_identical_to_the_plain_rules_file() -> None:
    chart = CHART / "files" / "prometheus-rules.yaml"
    assert chart.read_bytes() == RULES.read_bytes(), (
        f"run: cp {RULES.relative_to(REPO)} {chart.relative_to(REPO)}"
    )


# -- the pod ------------------------------------------------------------------------------------


def _pod_spec(docs: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = _one(docs, "Deployment", "wio")["spec"]["template"]["spec"]
    return spec


def test_operator_pod_runs_unprivileged_with_a_read_only_root() -> None:
    docs = _deploy_docs()
    deployment = _one(docs, "Deployment", "wio")
    # Two replicas, rolled one at a time with the new one up first (a standby to hand to).
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    assert _one(docs, "PodDisruptionBudget", "wio")["spec"]["maxUnavailable"] == 1
    pod = _pod_spec(docs)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is True
    assert pod["serviceAccountName"] == "wio"
    (container,) = pod["containers"]
    context = container["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context.get("privileged", False) is False
    assert context["capabilities"]["drop"] == ["ALL"]
    assert not context["capabilities"].get("add")
    assert context["seccompProfile"]["type"] == "RuntimeDefault"
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind])


def test_operator_probes_port_and_config_mount_line_up() -> None:
    docs = _deploy_docs()
    pod = _pod_spec(docs)
    (container,) = pod["containers"]
    assert container["ports"] == [
        {"name": "https", "containerPort": 8443, "protocol": "TCP"},
        {"name": "metrics", "containerPort": 9090, "protocol": "TCP"},
    ]
    # The probes on the operations port: the public one speaks TLS and has no probes.
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    env = {e["name"]: e for e in container["env"]}
    assert env["WIO_CONFIG"]["value"] == CONFIG_PATH
    assert env["WIO_OPERATOR_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.namespace"
    )
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    config_mount = next(m for m in mounts.values() if CONFIG_PATH.startswith(m["mountPath"]))
    config_volume = volumes[config_mount["name"]]["configMap"]
    assert config_volume["name"] == "wio-config"
    assert config_volume["items"] == [{"key": "config.yaml", "path": "config.yaml"}]
    assert mounts["tmp"]["mountPath"] == "/tmp"  # the only writable path
    service = _one(docs, "Service", "wio")
    ports = {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]}
    assert ports == {"https": (8443, "https"), "metrics": (9090, "metrics")}


def test_shipped_configuration_is_accepted_with_the_local_default_signer() -> None:
    text = _one(_deploy_docs(), "ConfigMap", "wio-config")["data"]["config.yaml"]
    config = parse_config(yaml.safe_load(text), {})
    assert config.trust_domain.name == "example.org"
    assert config.jwt_issuer == "https://wio.example.org"
    assert set(config.signers) == {"default"}
    assert (config.http_port, config.metrics_port) == (8443, 9090)
    assert config.serves_tls
    assert config.watch_namespaces == ()


def test_dockerfile_runs_wio_run_as_the_uid_of_the_pod() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    # The base is an argument (a locally made one where no registry is reachable).
    assert "ARG BASE_IMAGE=python:3.11-slim" in dockerfile
    assert [line for line in dockerfile.splitlines() if line.startswith("FROM")] == [
        "FROM ${BASE_IMAGE} AS build",
        "FROM ${BASE_IMAGE}",
    ]
    assert "USER 10001:10001" in dockerfile
    assert "EXPOSE 8443 9090" in dockerfile
    assert 'ENTRYPOINT ["wio", "run"]' in dockerfile
    assert "[devcluster]" not in dockerfile  # no etcd or OpenBao in the image
    assert _pod_spec(_deploy_docs())["securityContext"]["runAsUser"] == 10001


# -- RBAC ---------------------------------------------------------------------------------------

_RBAC_KINDS = ("ClusterRole", "Role")


def test_rbac_has_no_wildcards() -> None:
    docs = _deploy_docs()
    roles = [d for d in docs if d["kind"] in _RBAC_KINDS]
    assert {d["kind"] for d in roles} == set(_RBAC_KINDS)
    for role in roles:
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs", "resourceNames"):
                for item in rule.get(field, []):
                    assert "*" not in item, f"{role['kind']} rule {rule} has a wildcard in {field}"
            assert "nonResourceURLs" not in rule


def test_rbac_never_reads_secrets_one_by_one_outside_the_operator_namespace() -> None:
    cluster_role = _one(_deploy_docs(), "ClusterRole", "wio")
    for rule in cluster_role["rules"]:
        if "secrets" in rule["resources"]:
            assert "get" not in rule["verbs"]
            assert set(rule["verbs"]) == {"list", "watch", "create", "patch", "delete"}
    verbs = {v for rule in cluster_role["rules"] for v in rule["verbs"]}
    assert not verbs & {"get", "deletecollection", "escalate", "bind", "impersonate"}
    # `update` only on the finalizers subresource (OwnerReferencesPermissionEnforcement).
    updates = [r for r in cluster_role["rules"] if "update" in r["verbs"]]
    assert all(res.endswith("/finalizers") for r in updates for res in r["resources"])
    resources = {res for rule in cluster_role["rules"] for res in rule["resources"]}
    assert "tokenreviews" not in resources


def test_role_names_the_state_objects_the_default_configuration_uses() -> None:
    defaults = parse_config({"trustDomain": "example.org", "jwtIssuer": "https://a.example"}, {})
    role = _one(_deploy_docs(), "Role", "wio")
    named = {
        (resource, name)
        for rule in role["rules"]
        for resource in rule["resources"]
        for name in rule.get("resourceNames", [])
    }
    assert named == {
        ("secrets", defaults.local_ca_secret),
        ("configmaps", defaults.revocation_configmap),
        ("leases", LEADER_LEASE),
    }


def test_bindings_grant_the_roles_to_the_operator_service_account() -> None:
    docs = _deploy_docs()
    account = _one(docs, "ServiceAccount", "wio")
    namespace = account["metadata"]["namespace"]
    assert _one(docs, "Deployment", "wio")["metadata"]["namespace"] == namespace
    assert _one(docs, "Role", "wio")["metadata"]["namespace"] == namespace
    for kind, role_kind in (("ClusterRoleBinding", "ClusterRole"), ("RoleBinding", "Role")):
        binding = _one(docs, kind, "wio")
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": role_kind,
            "name": "wio",
        }
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "wio", "namespace": namespace}
        ]


def test_every_alert_has_its_runbook_in_the_readme() -> None:
    rules = yaml.safe_load((REPO / "deploy" / "prometheus-rules.yaml").read_text())
    readme = (REPO / "README.md").read_text()
    alerts = {r["alert"] for group in rules["groups"] for r in group["rules"] if "alert" in r}
    for alert in alerts:
        assert f"### Runbook: {alert}\n" in readme, alert
        rule_urls = {
            r["annotations"]["runbook_url"]
            for group in rules["groups"]
            for r in group["rules"]
            if r.get("alert") == alert
        }
        assert {url.rsplit("#", 1)[1] for url in rule_urls} == {f"runbook-{alert.lower()}"}
