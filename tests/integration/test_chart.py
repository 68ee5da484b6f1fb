# SPDX-License-Identifier: Apache-2.0
"""The Helm chart, checked by Helm itself and by the real API server.

``helm`` is the pinned release built by ``wio.devcluster`` (``python -m wio.devcluster build``);
``helm lint --strict`` and ``helm template`` run on ``charts/wio``, and every rendered object,
CRDs included, passes a server-side dry run (``kubectl apply --server-side --dry-run=server``)
against the local control plane: schema, defaulting and admission as a real install meets them.
The rendered objects must also say what ``deploy/`` says (RBAC, the admission policy) and run
the operator safely.
"""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.cluster import REPO
from wio.config import parse_config
from wio.devcluster import Binaries, ControlPlane
from wio.devcluster.binaries import kubernetes_version

pytestmark = pytest.mark.integration

CHART = REPO / "charts" / "wio"
DEPLOY = REPO / "deploy"
CONFIG_PATH = "/etc/wio/config.yaml"
CLUSTER_SCOPED = {
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
}


def _run(argv: list[str | Path], **kwargs: Any) -> str:
    done = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, check=False, **kwargs
    )
    assert done.returncode == 0, f"{argv[0]} {argv[1]} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def render(helm: Path, namespace: str, *settings: str) -> list[dict[str, Any]]:
    """``helm template`` of the chart into ``namespace``, CRDs included."""
    argv: list[str | Path] = [helm, "template", "wio", CHART, "--namespace", namespace]
    argv += ["--include-crds", "--kube-version", kubernetes_version()]
    for setting in settings:
        argv += ["--set", setting]
    return [doc for doc in yaml.safe_load_all(_run(argv)) if doc]


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def test_the_chart_passes_helm_lint_strict(helm: Path) -> None:
    out = _run([helm, "lint", "--strict", CHART, "--kube-version", kubernetes_version()])
    assert "1 chart(s) linted, 0 chart(s) failed" in out


def test_helm_is_the_pinned_release(helm: Path) -> None:
    assert _run([helm, "version", "--template", "{{ .Version }}"]).startswith("v3.")


def test_every_rendered_object_passes_a_server_side_dry_run(
    helm: Path, binaries: Binaries, control_plane: ControlPlane, namespace: str, crds: list[str]
) -> None:
    docs = render(helm, namespace, "networkPolicy.enabled=true")
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "ConfigMap", "Service", "ServiceAccount", "Role", "ClusterRole"} <= kinds
    assert {"NetworkPolicy", "PodDisruptionBudget"} <= kinds
    assert "CustomResourceDefinition" in kinds
    for doc in docs:
        if doc["kind"] not in CLUSTER_SCOPED:
            assert doc["metadata"]["namespace"] == namespace
    out = _run(
        [
            binaries.kubectl,
            f"--kubeconfig={control_plane.kubeconfig}",
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=helm-dry-run",
            "--dry-run=server",
            "-f",
            "-",
        ],
        input=yaml.safe_dump_all(docs),
    )
    assert out.count("(server dry run)") == len(docs), out


def test_chart_is_versioned_like_the_package(helm: Path) -> None:
    chart = yaml.safe_load(_run([helm, "show", "chart", CHART]))
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert chart["apiVersion"] == "v2"
    assert chart["appVersion"] == project["version"]


def test_the_operator_pod_runs_unprivileged_and_its_probes_and_config_line_up(
    helm: Path,
) -> None:
    docs = render(helm, "wio-system")
    pod = _one(docs, "Deployment", "wio")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["serviceAccountName"] == "wio"
    (container,) = pod["containers"]
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    env = {e["name"]: e for e in container["env"]}
    assert env["WIO_CONFIG"]["value"] == CONFIG_PATH
    text = _one(docs, "ConfigMap", "wio-config")["data"]["config.yaml"]
    config = parse_config(yaml.safe_load(text), {})
    assert set(config.signers) == {"default"}
    assert (config.http_port, config.metrics_port) == (8443, 9090)
    assert config.serves_tls
    assert config.leader_election


def test_replicas_are_spread_rolled_one_at_a_time_and_protected_from_drains(helm: Path) -> None:
    docs = render(helm, "wio-system")
    deployment = _one(docs, "Deployment", "wio")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    pod = deployment["spec"]["template"]["spec"]
    (term,) = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    selector = term["podAffinityTerm"]["labelSelector"]["matchLabels"]
    assert selector == deployment["spec"]["selector"]["matchLabels"]
    (container,) = pod["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["WIO_POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    budget = _one(docs, "PodDisruptionBudget", "wio")
    assert budget["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": selector}}
    # One replica: no budget (it would block every drain).
    single = render(helm, "wio-system", "replicas=1")
    assert not [d for d in single if d["kind"] == "PodDisruptionBudget"]


def test_the_network_policy_opens_each_port_to_whom_it_is_for(helm: Path) -> None:
    assert not [d for d in render(helm, "wio-system") if d["kind"] == "NetworkPolicy"]
    docs = render(helm, "wio-system", "networkPolicy.enabled=true")
    policy = _one(docs, "NetworkPolicy", "wio")["spec"]
    pod_labels = _one(docs, "Deployment", "wio")["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert policy["policyTypes"] == ["Ingress"]
    public, metrics = policy["ingress"]
    assert public == {"ports": [{"port": "https", "protocol": "TCP"}]}  # from anywhere
    assert metrics["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    assert metrics["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    container_ports = {
        p["name"]
        for p in _one(docs, "Deployment", "wio")["spec"]["template"]["spec"]["containers"][0][
            "ports"
        ]
    }
    assert container_ports == {"https", "metrics"}


@pytest.mark.parametrize("kind", ["ClusterRole", "Role"])
def test_the_chart_grants_exactly_the_rules_of_deploy_rbac(helm: Path, kind: str) -> None:
    chart = _one(render(helm, "wio-system"), kind, "wio")["rules"]
    assert chart == _one(_documents(DEPLOY / "rbac.yaml"), kind, "wio")["rules"]


def test_renamed_state_objects_are_what_the_role_names(helm: Path) -> None:
    docs = render(helm, "ops", "config.revocationConfigMap=revoked", "config.localCASecret=ca")
    named = {
        (resource, name)
        for rule in _one(docs, "Role", "wio")["rules"]
        for resource in rule["resources"]
        for name in rule.get("resourceNames", [])
    }
    assert named == {("secrets", "ca"), ("configmaps", "revoked"), ("leases", "wio-leader")}
    for kind in ("ClusterRoleBinding", "RoleBinding"):
        assert _one(docs, kind, "wio")["subjects"] == [
            {"kind": "ServiceAccount", "name": "wio", "namespace": "ops"}
        ]


def test_the_chart_ships_the_workload_binding_policy_of_deploy(helm: Path) -> None:
    chart = [d for d in render(helm, "wio-system") if d["kind"].startswith("ValidatingAdmission")]
    plain = _documents(DEPLOY / "workload-binding.yaml")
    assert [(d["kind"], d["spec"]) for d in chart] == [(d["kind"], d["spec"]) for d in plain]


def test_the_chart_ships_the_repository_crds(helm: Path) -> None:
    rendered = render(helm, "wio-system")
    chart = {d["metadata"]["name"]: d for d in rendered if d["kind"] == "CustomResourceDefinition"}
    repo = {d["metadata"]["name"]: d for p in (REPO / "crds").glob("*.yaml") for d in _documents(p)}
    assert {n: d for n, d in chart.items() if n in repo} == repo
